"""Architecture diagrams as data: nodes, labelled edges and optional groups, drawn as layered DAGs.

A :class:`Diagram` holds what to draw; :meth:`Diagram.layout` computes where (a :class:`Layout`:
boxes in points, 1/72 inch, y growing downwards), which tests can check and the matplotlib
drawing follows exactly:

* layers by longest path from the sources, left to right (cycles, if any, are broken by drawing
  their back edges reversed); :meth:`Diagram.node` may give a node a least layer, so a cell's
  fixed stages get their own columns even when an edge is missing;
* every edge that spans layers runs through virtual slots in the columns it crosses, and its
  label gets a slot of its own in a label column between two node columns (as graphviz's
  ``dot`` does), so a label box can overlap neither a node box nor another label;
* nodes within a column are ordered by barycenter sweeps plus adjacent swaps (fewer crossings)
  and spaced vertically by their box heights (weighted isotonic placement towards their
  neighbours, so chains run straight);
* weakly connected components, and :meth:`Diagram.group` groups (e.g. DARTS's two cells), are
  stacked vertically; a group gets a frame with its caption;
* the figure size follows from the layout, so the (wrapped) title is never cut.

Rendering (:meth:`Diagram.render`, :meth:`Diagram.svg`): ``.dot``/``.gv`` writes the DOT text;
``.svg``/``.png``/``.pdf`` uses graphviz's ``dot`` when it is installed (Debian package
``graphviz``) and the matplotlib drawing of :meth:`Diagram.layout` otherwise. ``engine=`` forces
one ("graphviz" or "matplotlib"; default "auto").
"""

from __future__ import annotations

import functools
import io
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from archsearch.errors import ArchsearchError, ConfigError

FORMATS = (".dot", ".gv", ".svg", ".png", ".pdf")
ENGINES = ("auto", "graphviz", "matplotlib")

# -- style (sizes in points) ------------------------------------------------------
FONT = "DejaVu Sans"  # matplotlib's bundled font: measured widths match what is drawn
DOT_FONT = "Helvetica"
NODE_FONT, EDGE_FONT, TITLE_FONT, CAPTION_FONT = 10.0, 8.5, 11.0, 9.5
LINE_SPACING = 1.2  # matplotlib's: a text of n lines is about n * 1.2 * size high
NODE_WRAP, EDGE_WRAP, CAPTION_WRAP = 190.0, 130.0, 400.0  # wrap widths in points
TITLE_MIN_WRAP = 380.0
DOT_NODE_WRAP, DOT_EDGE_WRAP, DOT_TITLE_WRAP = 32, 24, 100  # the same in characters, for DOT
NODE_PAD_X, NODE_PAD_Y, LABEL_PAD_X, LABEL_PAD_Y = 8.0, 5.0, 3.0, 1.5
NODE_SEP, LABEL_SEP, VIRTUAL_SEP, VIRTUAL_H = 12.0, 5.0, 6.0, 2.0
GAP_MIN, GAP_MAX = 18.0, 56.0  # horizontal gap between columns (grows with the edges' slope)
LABEL_COLUMN_MIN = 8.0
MARGIN, FRAME_PAD, COMPONENT_GAP, BLOCK_GAP, TITLE_GAP = 12.0, 8.0, 18.0, 14.0, 10.0
NODE_FILL, NODE_EDGE = "#e8f0fe", "#4a6fa5"
END_FILL, END_EDGE = "#edf7e8", "#5b8a3c"  # sources and sinks (inputs, outputs)
EDGE_COLOR, LABEL_COLOR, FRAME_COLOR = "#555555", "#1f2f4f", "#9aa5b1"
MAX_PIXELS = 16000  # PNG: the longer side is kept below this (dpi is lowered for huge diagrams)


LEFT = "\\l"  # DOT's end-of-line escape for left-justified lines


def _quote(text: str, newline: str = "\\n") -> str:
    """A DOT string; ``newline`` is the escape that ends a line ("\\l": left-justified lines)."""
    body = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", newline)
    return '"' + body + (newline if newline != "\\n" and body else "") + '"'


@functools.lru_cache(maxsize=8192)
def _text_width(text: str, size: float, bold: bool = False) -> float:
    """Width in points of one line of ``text`` at ``size`` points, as matplotlib draws it."""
    if not text:
        return 0.0
    try:
        from matplotlib.font_manager import FontProperties

        prop = FontProperties(family=FONT, size=size, weight="bold" if bold else "normal")
        width, _, _ = _text_to_path().get_text_width_height_descent(text, prop, ismath=False)
        return float(width)
    except Exception:  # pragma: no cover - no usable matplotlib font: a generous estimate
        return (0.72 if bold else 0.65) * size * len(text)


@functools.lru_cache(maxsize=1)
def _text_to_path() -> Any:
    from matplotlib.textpath import TextToPath

    return TextToPath()


def _wrap(text: str, limit: float, measure: Callable[[str], float]) -> list[str]:
    """Greedy word wrap: break after spaces and ``, | ; /``; cut tokens longer than a line.

    A line's width is taken as the sum of its tokens' (and a cut token's characters') widths,
    so each piece is measured once; the boxes are sized from the finished lines."""
    lines: list[str] = []
    for para in str(text).split("\n"):
        line, width = "", 0.0
        for token in [t for t in re.split(r"(?<=[ ,|;/])", para) if t]:
            w = measure(token)
            if line and width + measure(token.rstrip()) > limit:  # a trailing space may overhang
                lines.append(line.rstrip())
                token = token.lstrip()
                line, width = "", 0.0
                w = measure(token)
            if w <= limit or len(token) <= 1:
                line, width = line + token, width + w
                continue
            for ch in token:  # a token longer than a line: cut it
                cw = measure(ch)
                if line and width + cw > limit:
                    lines.append(line.rstrip())
                    line, width = "", 0.0
                line, width = line + ch, width + cw
        lines.append(line.rstrip())
    return lines


def _wrap_points(text: str, limit: float, size: float, bold: bool = False) -> list[str]:
    return _wrap(text, limit, lambda s: _text_width(s, size, bold))


def _wrap_chars(text: str, limit: int) -> str:
    return "\n".join(_wrap(text, limit, len))


def _text_box(lines: Sequence[str], size: float, pad_x: float, pad_y: float,
              bold: bool = False) -> tuple[float, float]:
    width = max((_text_width(line, size, bold) for line in lines), default=0.0)
    return width + 2 * pad_x, LINE_SPACING * size * max(1, len(lines)) + 2 * pad_y


# -- the layout, as data ------------------------------------------------------------
@dataclass(frozen=True)
class Box:
    """An axis-aligned rectangle in points: (x, y) is the top-left corner, y grows downwards."""

    x: float
    y: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.x + self.width

    @property
    def bottom(self) -> float:
        return self.y + self.height

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.width / 2, self.y + self.height / 2

    def overlaps(self, other: "Box", margin: float = 0.0) -> bool:
        """True when the interiors intersect (boxes that only touch do not overlap)."""
        return (self.x < other.right + margin and other.x < self.right + margin
                and self.y < other.bottom + margin and other.y < self.bottom + margin)

    def within(self, other: "Box", tol: float = 1e-6) -> bool:
        return (self.x >= other.x - tol and self.y >= other.y - tol
                and self.right <= other.right + tol and self.bottom <= other.bottom + tol)

    def contains(self, x: float, y: float, inset: float = 0.0) -> bool:
        return self.x + inset < x < self.right - inset and self.y + inset < y < self.bottom - inset


@dataclass(frozen=True)
class NodeBox:
    id: str
    lines: tuple[str, ...]  # the label, wrapped
    box: Box
    layer: int
    terminal: bool  # a source or a sink: drawn in the "input/output" colours


@dataclass(frozen=True)
class EdgeRoute:
    """An edge's drawn path: straight runs inside columns, S-curves (cubic, horizontal
    tangents) across the gaps between columns; the arrow ends at ``points[-1]`` on ``dst``."""

    src: str
    dst: str
    label: tuple[str, ...]  # wrapped; empty for an unlabelled edge
    points: tuple[tuple[float, float], ...]
    label_box: Box | None
    reversed: bool = False  # a back edge of a cycle, laid out right to left

    def segments(self) -> list[tuple[str, tuple[tuple[float, float], ...]]]:
        """("line", (p0, p1)) or ("curve", (p0, c1, c2, p1)) pieces, as drawn."""
        out: list[tuple[str, tuple[tuple[float, float], ...]]] = []
        for (x0, y0), (x1, y1) in zip(self.points, self.points[1:]):
            if abs(x0 - x1) < 1e-9 and abs(y0 - y1) < 1e-9:
                continue
            if abs(x0 - x1) > 1e-9 and abs(y0 - y1) > 1e-9:
                mx = (x0 + x1) / 2
                out.append(("curve", ((x0, y0), (mx, y0), (mx, y1), (x1, y1))))
            else:
                out.append(("line", ((x0, y0), (x1, y1))))
        return out

    def sample(self, per_segment: int = 24) -> list[tuple[float, float]]:
        """Points along the drawn path (for checks: does an edge cross a box?)."""
        pts: list[tuple[float, float]] = []
        for kind, p in self.segments():
            for k in range(per_segment + 1):
                t = k / per_segment
                if kind == "line":
                    pts.append((p[0][0] + t * (p[1][0] - p[0][0]), p[0][1] + t * (p[1][1] - p[0][1])))
                else:
                    a, b, c, d = p
                    u = 1 - t
                    pts.append((u ** 3 * a[0] + 3 * u * u * t * b[0] + 3 * u * t * t * c[0] + t ** 3 * d[0],
                                u ** 3 * a[1] + 3 * u * u * t * b[1] + 3 * u * t * t * c[1] + t ** 3 * d[1]))
        return pts


@dataclass(frozen=True)
class GroupBox:
    label: tuple[str, ...]  # the caption, wrapped
    frame: Box
    caption: Box


@dataclass
class Layout:
    """Where everything goes, in points; the figure is ``width`` x ``height`` points."""

    width: float
    height: float
    title: tuple[str, ...]
    title_box: Box | None
    nodes: dict[str, NodeBox]
    edges: list[EdgeRoute]
    groups: list[GroupBox]

    @property
    def figure(self) -> Box:
        return Box(0.0, 0.0, self.width, self.height)

    def label_boxes(self) -> list[Box]:
        return [e.label_box for e in self.edges if e.label_box is not None]

    def problems(self) -> list[str]:
        """Everything that would make the drawing hard to read; empty for a good layout."""
        out = []
        nodes = list(self.nodes.values())
        labels = [(e, e.label_box) for e in self.edges if e.label_box is not None]
        for i, a in enumerate(nodes):
            for b in nodes[i + 1:]:
                if a.box.overlaps(b.box):
                    out.append(f"nodes {a.id!r} and {b.id!r} overlap")
        for e, box in labels:
            for n in nodes:
                if box.overlaps(n.box):
                    out.append(f"label {' '.join(e.label)!r} of {e.src}->{e.dst} overlaps node {n.id!r}")
        for i, (e, a) in enumerate(labels):
            for f, b in labels[i + 1:]:
                if a.overlaps(b):
                    out.append(f"labels of {e.src}->{e.dst} and {f.src}->{f.dst} overlap")
        for g in self.groups:
            for n in nodes:
                if g.caption.overlaps(n.box):
                    out.append(f"caption {' '.join(g.label)!r} overlaps node {n.id!r}")
            for e, box in labels:
                if g.caption.overlaps(box):
                    out.append(f"caption {' '.join(g.label)!r} overlaps a label of {e.src}->{e.dst}")
        everything = ([("title", self.title_box)] if self.title_box else []) + [(n.id, n.box) for n in nodes] + [
            (f"label of {e.src}->{e.dst}", b) for e, b in labels] + [("group frame", g.frame) for g in self.groups]
        for name, box in everything:
            if not box.within(self.figure):
                out.append(f"{name} is outside the figure")
        for e in self.edges:
            for x, y in e.sample(8):
                hit = next((n.id for n in nodes if n.id not in (e.src, e.dst) and n.box.contains(x, y, 0.5)), None)
                if hit:
                    out.append(f"edge {e.src}->{e.dst} crosses node {hit!r}")
                    break
        return out


# -- the diagram ----------------------------------------------------------------------
@dataclass
class Diagram:
    """A directed graph to draw. Node ids are strings; labels default to the id.

    ``groups``: (caption, node ids) drawn framed together (graphviz: a cluster);
    ``node_layers``: the least layer (column) of a node, for cells with fixed stages.
    """

    title: str = ""
    nodes: list[tuple[str, str]] = field(default_factory=list)
    edges: list[tuple[str, str, str]] = field(default_factory=list)
    groups: list[tuple[str, list[str]]] = field(default_factory=list)
    node_layers: dict[str, int] = field(default_factory=dict)

    def node(self, node_id: str, label: str | None = None, *, layer: int | None = None) -> str:
        if all(n != node_id for n, _ in self.nodes):
            self.nodes.append((node_id, label if label is not None else node_id))
        if layer is not None:
            self.node_layers[node_id] = int(layer)
        return node_id

    def edge(self, src: str, dst: str, label: str = "") -> None:
        self.node(src)
        self.node(dst)
        self.edges.append((src, dst, label))

    def group(self, label: str, node_ids: Sequence[str]) -> None:
        """Frame ``node_ids`` together under ``label`` (a node belongs to its first group)."""
        self.groups.append((label, list(node_ids)))

    # -- structure --------------------------------------------------------------------
    def _layering(self) -> tuple[dict[str, int], set[int]]:
        """Longest-path layer of each node, and the indices of edges reversed to break cycles.

        Back edges are found by depth-first search in node order; a node's layer is at least its
        ``node_layers`` entry. Self-loops take no part."""
        ids = [n for n, _ in self.nodes]
        out_edges: dict[str, list[tuple[int, str]]] = {n: [] for n in ids}
        for i, (s, t, _) in enumerate(self.edges):
            if s != t:
                out_edges[s].append((i, t))
        state = {n: 0 for n in ids}  # 0 new, 1 on the stack, 2 done
        flipped: set[int] = set()
        for root in ids:
            if state[root]:
                continue
            state[root] = 1
            stack = [(root, iter(out_edges[root]))]
            while stack:
                node, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    state[node] = 2
                    stack.pop()
                    continue
                i, t = nxt
                if state[t] == 1:
                    flipped.add(i)
                elif state[t] == 0:
                    state[t] = 1
                    stack.append((t, iter(out_edges[t])))
        preds: dict[str, list[str]] = {n: [] for n in ids}
        indeg = {n: 0 for n in ids}
        succ: dict[str, list[str]] = {n: [] for n in ids}
        for i, (s, t, _) in enumerate(self.edges):
            if s == t:
                continue
            a, b = (t, s) if i in flipped else (s, t)
            preds[b].append(a)
            succ[a].append(b)
            indeg[b] += 1
        depth = {n: max(0, self.node_layers.get(n, 0)) for n in ids}
        ready = [n for n in ids if indeg[n] == 0]
        while ready:
            n = ready.pop(0)
            for m in succ[n]:
                depth[m] = max(depth[m], depth[n] + 1)
                indeg[m] -= 1
                if indeg[m] == 0:
                    ready.append(m)
        return depth, flipped

    def layers(self) -> dict[str, int]:
        """Longest-path depth of each node from a source (cycles, if any, are broken)."""
        return self._layering()[0]

    def terminals(self) -> set[str]:
        """Sources and sinks (inputs and outputs), drawn in their own colours."""
        has_in = {t for s, t, _ in self.edges if s != t}
        has_out = {s for s, t, _ in self.edges if s != t}
        return {n for n, _ in self.nodes if n not in has_in or n not in has_out}

    # -- graphviz ---------------------------------------------------------------------
    def to_dot(self) -> str:
        font = f'fontname="{DOT_FONT}"'
        lines = [
            "digraph architecture {",
            f"  graph [rankdir=LR, newrank=true, {font}, fontsize=12, nodesep=0.3, ranksep=0.45, pad=0.25];",
            f'  node [shape=box, style="rounded,filled", fillcolor="{NODE_FILL}", color="{NODE_EDGE}", '
            f'{font}, fontsize=10, margin="0.14,0.06"];',
            f'  edge [{font}, fontsize=9, color="{EDGE_COLOR}", fontcolor="{LABEL_COLOR}", arrowsize=0.7];',
        ]
        known = {n for n, _ in self.nodes}
        placed: set[str] = set()
        for k, (label, members) in enumerate(self.groups):
            members = [m for m in dict.fromkeys(members) if m in known and m not in placed]
            if not members:
                continue
            placed.update(members)
            lines.append(f'  subgraph "cluster_{k}" {{')
            lines.append(f'    label={_quote(_wrap_chars(label, DOT_TITLE_WRAP), LEFT)}; style="rounded,dashed"; '
                         f'color="{FRAME_COLOR}"; fontsize=10; labeljust=l;')
            lines += [f"    {_quote(m)};" for m in members]
            lines += self._dot_same_rank(members, "    ")
            lines.append("  }")
        ends = self.terminals()
        for node_id, label in self.nodes:
            colour = f', fillcolor="{END_FILL}", color="{END_EDGE}"' if node_id in ends else ""
            lines.append(f"  {_quote(node_id)} [label={_quote(_wrap_chars(label, DOT_NODE_WRAP))}{colour}];")
        for src, dst, label in self.edges:
            attr = f" [label={_quote(_wrap_chars(label, DOT_EDGE_WRAP))}]" if label else ""
            lines.append(f"  {_quote(src)} -> {_quote(dst)}{attr};")
        # fixed layers: invisible edges keep the stages in order where no real edge does
        by_layer: dict[int, list[str]] = {}
        for n, _ in self.nodes:
            if n in self.node_layers:
                by_layer.setdefault(self.node_layers[n], []).append(n)
        real = {(s, t) for s, t, _ in self.edges}
        steps = sorted(by_layer)
        for lo, hi in zip(steps, steps[1:]):
            for a in by_layer[lo]:
                for b in by_layer[hi]:
                    if (a, b) not in real:
                        lines.append(f"  {_quote(a)} -> {_quote(b)} [style=invis, minlen={hi - lo}];")
        lines += self._dot_same_rank([n for n, _ in self.nodes if n not in placed], "  ")
        if self.title:  # set last, so the clusters above do not inherit it
            lines.append(f"  label={_quote(_wrap_chars(self.title, DOT_TITLE_WRAP), LEFT)}; labelloc=t; "
                         "labeljust=l; fontsize=12;")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _dot_same_rank(self, members: Sequence[str], indent: str) -> list[str]:
        """``rank=same`` for nodes given the same fixed layer (e.g. a cell's two inputs)."""
        by_layer: dict[int, list[str]] = {}
        for m in members:
            if m in self.node_layers:
                by_layer.setdefault(self.node_layers[m], []).append(m)
        return [f"{indent}{{rank=same; {' '.join(_quote(m) + ';' for m in ms)}}}"
                for _, ms in sorted(by_layer.items()) if len(ms) > 1]

    # -- layout -------------------------------------------------------------------------
    def layout(self) -> Layout:
        """The layered left-to-right layout that the matplotlib drawing shows (see the module doc)."""
        return _LayoutBuilder(self).build()

    # -- output -------------------------------------------------------------------------
    @staticmethod
    def _graphviz(engine: str) -> str | None:
        """The ``dot`` program to use, or None for matplotlib."""
        if engine not in ENGINES:
            raise ConfigError(f"diagram engine {engine!r} is unknown (valid: {', '.join(ENGINES)})")
        if engine == "matplotlib":
            return None
        dot = shutil.which("dot")
        if engine == "graphviz" and not dot:
            raise ConfigError("diagram engine 'graphviz' needs graphviz's 'dot' program on PATH "
                              "(Debian/Ubuntu: apt-get install graphviz)")
        return dot

    def render(self, path: str | os.PathLike[str], engine: str = "auto") -> Path:
        """Write the diagram; the format follows the file suffix. ``engine``: "auto" (graphviz's
        ``dot`` when installed, else matplotlib), "graphviz" or "matplotlib"."""
        out = Path(path)
        suffix = out.suffix.lower()
        if suffix not in FORMATS:
            raise ConfigError(f"diagram file {str(out)!r}: unknown format {suffix or '(none)'!r} "
                              f"(valid: {', '.join(FORMATS)})")
        if engine not in ENGINES:
            self._graphviz(engine)  # raises: unknown engine
        out.parent.mkdir(parents=True, exist_ok=True)
        if suffix in (".dot", ".gv"):
            out.write_text(self.to_dot())
            return out
        dot = self._graphviz(engine)
        if dot:
            try:
                subprocess.run([dot, f"-T{suffix[1:]}", "-o", str(out)], input=self.to_dot(), text=True,
                               check=True, capture_output=True)
                return out
            except (OSError, subprocess.CalledProcessError) as exc:
                if engine == "graphviz":
                    raise ArchsearchError(f"graphviz 'dot' could not draw {out}: {_why(exc)}") from None
        self._draw_matplotlib(out)
        return out

    def svg(self, engine: str = "auto") -> str:
        """The diagram as an ``<svg>`` element (no XML prolog), to inline in an HTML page."""
        dot = self._graphviz(engine)
        text = None
        if dot:
            try:
                text = subprocess.run([dot, "-Tsvg"], input=self.to_dot(), text=True, check=True,
                                      capture_output=True).stdout
            except (OSError, subprocess.CalledProcessError) as exc:
                if engine == "graphviz":
                    raise ArchsearchError(f"graphviz 'dot' could not draw the diagram: {_why(exc)}") from None
        if text is None:
            buf = io.BytesIO()
            fig = self._figure()
            fig.savefig(buf, format="svg", metadata={"Date": None})
            text = buf.getvalue().decode("utf-8")
        start = text.find("<svg")
        return text[start:] if start >= 0 else text

    def _figure(self, layout: Layout | None = None) -> Any:
        """A matplotlib Figure drawing ``layout`` (default: :meth:`layout`), 1 data unit = 1 point."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
        from matplotlib.path import Path as MplPath

        lay = layout or self.layout()
        fig = Figure(figsize=(lay.width / 72, lay.height / 72))
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, lay.width)
        ax.set_ylim(lay.height, 0)
        ax.axis("off")
        text_kw = dict(family=FONT, ha="center", va="center", linespacing=LINE_SPACING, parse_math=False)
        for g in lay.groups:
            f = g.frame
            ax.add_patch(FancyBboxPatch((f.x, f.y), f.width, f.height, boxstyle="round,pad=0,rounding_size=6",
                                        fc="#fafbfc", ec=FRAME_COLOR, lw=0.8, ls="--", zorder=0))
            ax.text(g.caption.x, g.caption.y + g.caption.height / 2, "\n".join(g.label), fontsize=CAPTION_FONT,
                    fontweight="bold", color="#44505c", zorder=1, **{**text_kw, "ha": "left"})
        for e in lay.edges:
            verts, codes = [], []
            for kind, p in e.segments():
                if not verts:
                    verts.append(p[0])
                    codes.append(MplPath.MOVETO)
                verts += list(p[1:])
                codes += [MplPath.LINETO] if kind == "line" else [MplPath.CURVE4] * 3
            if len(verts) < 2:
                continue
            ax.add_patch(FancyArrowPatch(path=MplPath(verts, codes), arrowstyle="-|>,head_length=5,head_width=2.6",
                                         mutation_scale=1, color=EDGE_COLOR, lw=0.9, zorder=2,
                                         shrinkA=0, shrinkB=0))
            if e.label_box is not None:
                b = e.label_box
                ax.add_patch(FancyBboxPatch((b.x, b.y), b.width, b.height, boxstyle="round,pad=0,rounding_size=2",
                                            fc="white", ec="none", zorder=3))
                ax.text(*b.center, "\n".join(e.label), fontsize=EDGE_FONT, color=LABEL_COLOR, zorder=4, **text_kw)
        for n in lay.nodes.values():
            b = n.box
            fill, edge = (END_FILL, END_EDGE) if n.terminal else (NODE_FILL, NODE_EDGE)
            ax.add_patch(FancyBboxPatch((b.x, b.y), b.width, b.height, boxstyle="round,pad=0,rounding_size=4",
                                        fc=fill, ec=edge, lw=1.0, zorder=5))
            ax.text(*b.center, "\n".join(n.lines), fontsize=NODE_FONT, color="#111111", zorder=6, **text_kw)
        if lay.title_box is not None:
            t = lay.title_box
            ax.text(t.x, t.y + t.height / 2, "\n".join(lay.title), fontsize=TITLE_FONT, fontweight="bold",
                    zorder=7, **{**text_kw, "ha": "left"})
        return fig

    def _draw_matplotlib(self, out: Path) -> None:
        lay = self.layout()
        fig = self._figure(lay)
        suffix = out.suffix.lower()
        if suffix == ".png":
            dpi = max(30.0, min(150.0, MAX_PIXELS / (max(lay.width, lay.height) / 72)))
            fig.savefig(out, dpi=dpi, facecolor="white")
        elif suffix == ".svg":
            fig.savefig(out, metadata={"Date": None})
        else:
            fig.savefig(out, metadata={"CreationDate": None})


def _why(exc: BaseException) -> str:
    """The last line of what ``dot`` said (or of the error), for a one-line message."""
    text = (getattr(exc, "stderr", None) or str(exc)).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


# -- the layered layout -----------------------------------------------------------------
class _Item:
    """One slot in a column: a node, an edge label, or a virtual point of a long edge."""

    __slots__ = ("rank", "width", "height", "kind", "node", "preds", "succs", "y")

    def __init__(self, rank: int, width: float, height: float, kind: str, node: str | None = None) -> None:
        self.rank, self.width, self.height, self.kind, self.node = rank, width, height, kind, node
        self.preds: list[tuple[int, float]] = []
        self.succs: list[tuple[int, float]] = []
        self.y = 0.0


def _isotonic(targets: Sequence[float], weights: Sequence[float]) -> list[float]:
    """Weighted least-squares non-decreasing fit (pool adjacent violators)."""
    blocks: list[list[float]] = []  # value, weight, count
    for t, w in zip(targets, weights):
        blocks.append([t, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, c2 = blocks.pop()
            v1, w1, c1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    out: list[float] = []
    for v, _, c in blocks:
        out += [v] * int(c)
    return out


class _Component:
    """The column slots of one weakly connected component, ordered and placed vertically."""

    def __init__(self, nodes: list[str], edge_ids: list[int], builder: "_LayoutBuilder") -> None:
        d, b = builder.diagram, builder
        self.items: list[_Item] = []
        self.node_item: dict[str, int] = {}
        self.chains: dict[int, tuple[list[int], bool, bool]] = {}  # edge -> (items, reversed, self-loop)
        for n in nodes:
            w, h = b.node_size[n]
            self.node_item[n] = self._add(_Item(2 * b.depth[n], w, h, "node", n))
        load: dict[int, int] = {}
        for ei in edge_ids:
            s, t, label = d.edges[ei]
            lw, lh = b.edge_size[ei]
            if s == t:
                a = self.node_item[s]
                v = self._add(_Item(self.items[a].rank + 1, lw if label else 0.0, lh if label else VIRTUAL_H,
                                    "label" if label else "virtual"))
                self._link(a, v, 2.0)
                self.chains[ei] = ([a, v], False, True)
                continue
            rev = ei in b.flipped
            ia, ib = (self.node_item[t], self.node_item[s]) if rev else (self.node_item[s], self.node_item[t])
            ra, rb = self.items[ia].rank, self.items[ib].rank
            mids = list(range(ra + 1, rb))
            label_rank = None
            if label:
                middle = (ra + rb) / 2
                label_rank = min((r for r in mids if r % 2), key=lambda r: (load.get(r, 0), abs(r - middle), r))
                load[label_rank] = load.get(label_rank, 0) + 1
            chain, prev = [ia], ia
            for r in mids:
                is_label = r == label_rank
                v = self._add(_Item(r, lw if is_label else 0.0, lh if is_label else VIRTUAL_H,
                                    "label" if is_label else "virtual"))
                self._link(prev, v, 2.0 if prev == ia else 8.0)
                chain.append(v)
                prev = v
            self._link(prev, ib, 2.0)
            chain.append(ib)
            self.chains[ei] = (chain, rev, False)
        self.ranks: dict[int, list[int]] = {}
        for i, it in enumerate(self.items):
            self.ranks.setdefault(it.rank, []).append(i)
        self._order()
        self._place()

    def _add(self, item: _Item) -> int:
        self.items.append(item)
        return len(self.items) - 1

    def _link(self, a: int, b: int, weight: float) -> None:
        self.items[a].succs.append((b, weight))
        self.items[b].preds.append((a, weight))

    # ordering: barycenter sweeps, then adjacent swaps --------------------------------
    def _positions(self) -> dict[int, int]:
        return {i: k for order in self.ranks.values() for k, i in enumerate(order)}

    def _crossings(self) -> int:
        pos = self._positions()
        total = 0
        for order in self.ranks.values():
            pairs = sorted((pos[i], pos[j]) for i in order for j, _ in self.items[i].succs)
            for k, (_, b1) in enumerate(pairs):
                for a2, b2 in pairs[k + 1:]:
                    if b2 < b1 and a2 != pairs[k][0]:
                        total += 1
        return total

    def _order(self) -> None:
        if not self.ranks:
            return
        lo, hi = min(self.ranks), max(self.ranks)
        best, best_order = None, None
        for sweep in range(8):
            down = sweep % 2 == 0
            pos = self._positions()
            for r in (range(lo + 1, hi + 1) if down else range(hi - 1, lo - 1, -1)):
                order = self.ranks.get(r, [])
                current = {i: k for k, i in enumerate(order)}

                def key(i: int) -> tuple[float, int]:
                    nb = self.items[i].preds if down else self.items[i].succs
                    nb = [j for j, _ in nb if j in pos and self.items[j].rank != r]
                    return (sum(pos[j] for j in nb) / len(nb) if nb else float(current[i]), current[i])

                self.ranks[r] = sorted(order, key=key)
                pos.update({i: k for k, i in enumerate(self.ranks[r])})
            crossings = self._crossings()
            if best is None or crossings < best:
                best, best_order = crossings, {r: list(o) for r, o in self.ranks.items()}
            if best == 0:
                break
        assert best_order is not None
        self.ranks = best_order
        if best:
            self._transpose()

    def _transpose(self) -> None:
        for _ in range(8):
            improved = False
            pos = self._positions()
            for r, order in self.ranks.items():
                for k in range(len(order) - 1):
                    u, v = order[k], order[k + 1]
                    if self._pair_crossings(v, u, pos) < self._pair_crossings(u, v, pos):
                        order[k], order[k + 1] = v, u
                        pos[u], pos[v] = k + 1, k
                        improved = True
            if not improved:
                return

    def _pair_crossings(self, u: int, v: int, pos: dict[int, int]) -> int:
        """Crossings between u's and v's edges if u sits above v."""
        n = 0
        for side in ("preds", "succs"):
            for a, _ in getattr(self.items[u], side):
                for b, _ in getattr(self.items[v], side):
                    if pos[a] > pos[b]:
                        n += 1
        return n

    # vertical placement ---------------------------------------------------------------
    def _gap(self, a: _Item, b: _Item) -> float:
        if a.kind == "node" and b.kind == "node":
            extra = NODE_SEP
        elif "label" in (a.kind, b.kind) and "node" not in (a.kind, b.kind):
            extra = LABEL_SEP
        else:
            extra = VIRTUAL_SEP
        return (a.height + b.height) / 2 + extra

    def _settle(self, order: list[int], targets: list[float], weights: list[float]) -> None:
        offsets = [0.0]
        for a, b in zip(order, order[1:]):
            offsets.append(offsets[-1] + self._gap(self.items[a], self.items[b]))
        fit = _isotonic([t - o for t, o in zip(targets, offsets)], weights)
        for i, z, o in zip(order, fit, offsets):
            self.items[i].y = z + o

    def _place(self) -> None:
        for order in self.ranks.values():
            self._settle(order, [0.0] * len(order), [1.0] * len(order))
            mid = (self.items[order[0]].y + self.items[order[-1]].y) / 2
            for i in order:
                self.items[i].y -= mid
        ranks = sorted(self.ranks)
        for sweep in range(14):
            sides = ("preds",) if sweep % 2 == 0 else ("succs",)
            if sweep >= 10:
                sides = ("preds", "succs")
            for r in (ranks if sweep % 2 == 0 else ranks[::-1]):
                order = self.ranks[r]
                targets, weights = [], []
                for i in order:
                    it = self.items[i]
                    nb = [(j, w) for side in sides for j, w in getattr(it, side) if j != i]
                    total = sum(w for _, w in nb)
                    if total:
                        targets.append(sum(self.items[j].y * w for j, w in nb) / total)
                        weights.append(total)
                    else:
                        targets.append(it.y)
                        weights.append(0.05)
                self._settle(order, targets, weights)
        top = min((it.y - it.height / 2 for it in self.items), default=0.0)
        for it in self.items:
            it.y -= top
        self.height = max((it.y + it.height / 2 for it in self.items), default=0.0)


class _LayoutBuilder:
    def __init__(self, diagram: Diagram) -> None:
        self.diagram = d = diagram
        self.depth, self.flipped = d._layering()
        self.node_lines = {n: tuple(_wrap_points(label, NODE_WRAP, NODE_FONT)) for n, label in d.nodes}
        self.node_size = {n: _text_box(lines, NODE_FONT, NODE_PAD_X, NODE_PAD_Y) for n, lines in self.node_lines.items()}
        self.edge_lines = [tuple(_wrap_points(label, EDGE_WRAP, EDGE_FONT)) if label else () for _, _, label in d.edges]
        self.edge_size = [_text_box(lines, EDGE_FONT, LABEL_PAD_X, LABEL_PAD_Y) if lines else (0.0, 0.0)
                          for lines in self.edge_lines]

    def _blocks(self) -> list[tuple[str, list[tuple[list[str], list[int]]]]]:
        """(caption, components) per block: components sharing a group form one framed block."""
        d = self.diagram
        ids = [n for n, _ in d.nodes]
        index = {n: i for i, n in enumerate(ids)}
        parent = list(range(len(ids)))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        def union(a: int, b: int) -> None:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)

        for s, t, _ in d.edges:
            union(index[s], index[t])
        comp_of = [find(i) for i in range(len(ids))]
        comps: dict[int, tuple[list[str], list[int]]] = {}
        for i, n in enumerate(ids):
            comps.setdefault(comp_of[i], ([], []))[0].append(n)
        for ei, (s, _, _) in enumerate(d.edges):
            comps[comp_of[index[s]]][1].append(ei)
        block_parent = {c: c for c in comps}

        def bfind(c: int) -> int:
            while block_parent[c] != c:
                c = block_parent[c]
            return c

        captions: dict[int, list[str]] = {}
        for label, members in d.groups:
            roots = [comp_of[index[m]] for m in members if m in index]
            if not roots:
                continue
            for r in roots[1:]:
                a, b = bfind(roots[0]), bfind(r)
                if a != b:
                    block_parent[max(a, b)] = min(a, b)
        for label, members in d.groups:
            roots = [comp_of[index[m]] for m in members if m in index]
            if roots:
                names = captions.setdefault(bfind(roots[0]), [])
                if label not in names:
                    names.append(label)
        blocks: dict[int, list[tuple[list[str], list[int]]]] = {}
        for c in sorted(comps):
            blocks.setdefault(bfind(c), []).append(comps[c])
        out = []
        for b in sorted(blocks):
            caption, cs = " / ".join(captions.get(b, [])), blocks[b]
            if caption and len(cs) > 1:  # a group is laid out as one piece, isolated inputs included
                cs = [(sorted((n for ns, _ in cs for n in ns), key=index.__getitem__),
                       sorted(e for _, es in cs for e in es))]
            out.append((caption, cs))
        return out

    def build(self) -> Layout:
        d = self.diagram
        blocks = [(caption, [_Component(nodes, edges, self) for nodes, edges in comps])
                  for caption, comps in self._blocks()]
        comps = [c for _, cs in blocks for c in cs]
        # columns: width of the widest slot; gaps grow with the steepest edge crossing them
        widths: dict[int, float] = {}
        slopes: dict[int, float] = {}
        for c in comps:
            for it in c.items:
                widths[it.rank] = max(widths.get(it.rank, 0.0), it.width)
                for j, _ in it.succs:
                    other = c.items[j]
                    if other.rank == it.rank + 1:
                        slopes[it.rank] = max(slopes.get(it.rank, 0.0), abs(other.y - it.y))
        top_rank = max(widths, default=-1)
        left: dict[int, float] = {}
        x = MARGIN + FRAME_PAD
        for r in range(top_rank + 1):
            w = widths.get(r, 0.0)
            left[r] = x
            widths[r] = max(w, LABEL_COLUMN_MIN if r % 2 else 0.0)
            x += widths[r] + min(GAP_MAX, max(GAP_MIN, 0.3 * slopes.get(r, 0.0)))
        content_right = (left[top_rank] + widths[top_rank]) if top_rank >= 0 else MARGIN + FRAME_PAD
        right = {r: left[r] + widths[r] for r in left}
        center = {r: left[r] + widths[r] / 2 for r in left}
        # vertical: title, then blocks (framed when captioned), components stacked within
        y = MARGIN
        title_lines: tuple[str, ...] = ()
        title_box = None
        if d.title:
            title_lines = tuple(_wrap_points(d.title, max(content_right - MARGIN, TITLE_MIN_WRAP), TITLE_FONT, True))
            tw, th = _text_box(title_lines, TITLE_FONT, 0.0, 0.0, True)
            title_box = Box(MARGIN, y, tw, th)
            y += th + TITLE_GAP
        offsets: list[float] = []
        frames: list[tuple[tuple[str, ...], float, float, float, float]] = []  # caption, cap w, h, top, bottom
        for caption, cs in blocks:
            top = y
            cap_lines: tuple[str, ...] = ()
            cap_w = cap_h = 0.0
            if caption:
                cap_lines = tuple(_wrap_points(caption, CAPTION_WRAP, CAPTION_FONT, True))
                cap_w, cap_h = _text_box(cap_lines, CAPTION_FONT, 0.0, 0.0, True)
                y += 4.0 + cap_h + 6.0
            for c in cs:
                offsets.append(y)
                y += c.height + COMPONENT_GAP
            y -= COMPONENT_GAP
            if caption:
                y += FRAME_PAD
                frames.append((cap_lines, cap_w, cap_h, top, y))
            y += BLOCK_GAP
        height = y - BLOCK_GAP + MARGIN if blocks else y + MARGIN - (TITLE_GAP if d.title else 0.0)
        width = max(content_right + FRAME_PAD + MARGIN,
                    (title_box.right + MARGIN) if title_box else 0.0,
                    max((MARGIN + 6.0 + cw + 6.0 + MARGIN for _, cw, _, _, _ in frames), default=0.0),
                    2 * MARGIN + 1.0)
        groups = [GroupBox(lines, Box(MARGIN, top, width - 2 * MARGIN, bottom - top),
                           Box(MARGIN + 6.0, top + 4.0, cw, ch)) for lines, cw, ch, top, bottom in frames]
        # boxes
        ends = d.terminals()
        nodes: dict[str, NodeBox] = {}
        for c, off in zip(comps, offsets):
            for it in c.items:
                it.y += off
            for n, i in c.node_item.items():
                it = c.items[i]
                nodes[n] = NodeBox(n, self.node_lines[n], Box(center[it.rank] - it.width / 2, it.y - it.height / 2,
                                                             it.width, it.height), self.depth[n], n in ends)
        # ports: several edges at one side of a node spread over its height, ordered by where they go
        ports: dict[tuple[int, int, str], float] = {}  # (component, edge, "out"/"in") -> y
        for k, c in enumerate(comps):
            sides: dict[tuple[str, str], list[tuple[float, int]]] = {}
            for ei, (chain, _, loop) in c.chains.items():
                if loop:
                    continue
                a, b = c.items[chain[0]], c.items[chain[-1]]
                sides.setdefault((a.node, "out"), []).append((c.items[chain[1]].y, ei))  # type: ignore[arg-type]
                sides.setdefault((b.node, "in"), []).append((c.items[chain[-2]].y, ei))  # type: ignore[arg-type]
            for (n, side), lst in sides.items():
                box = nodes[n].box
                lst.sort()
                span = min(box.height * 0.6, 7.0 * (len(lst) - 1))
                for m, (_, ei) in enumerate(lst):
                    offset = -span / 2 + span * m / (len(lst) - 1) if len(lst) > 1 else 0.0
                    ports[(k, ei, side)] = box.y + box.height / 2 + offset
        routes: list[EdgeRoute | None] = [None] * len(d.edges)
        for k, c in enumerate(comps):
            for ei, (chain, rev, loop) in c.chains.items():
                s, t, _ = d.edges[ei]
                label_box = None
                for i in chain[1:-1] if not loop else chain[1:]:
                    it = c.items[i]
                    if it.kind == "label":
                        label_box = Box(center[it.rank] - it.width / 2, it.y - it.height / 2, it.width, it.height)
                if loop:
                    a = c.items[chain[0]]
                    box = nodes[s].box
                    lab = c.items[chain[1]]
                    y1, y2 = box.y + box.height * 0.3, box.y + box.height * 0.7
                    pts = [(box.right, y1), (right[a.rank], y1), (center[lab.rank], lab.y),
                           (right[a.rank], y2), (box.right, y2)]
                else:
                    first, last = c.items[chain[0]], c.items[chain[-1]]
                    a_box, b_box = nodes[first.node].box, nodes[last.node].box  # type: ignore[index]
                    py, qy = ports[(k, ei, "out")], ports[(k, ei, "in")]
                    pts = [(a_box.right, py), (right[first.rank], py)]
                    for i in chain[1:-1]:
                        it = c.items[i]
                        pts += [(left[it.rank], it.y), (right[it.rank], it.y)]
                    pts += [(left[last.rank], qy), (b_box.x, qy)]
                    if rev:
                        pts.reverse()
                routes[ei] = EdgeRoute(s, t, self.edge_lines[ei], tuple(pts), label_box, rev)
        return Layout(width, height, title_lines, title_box, nodes, [r for r in routes if r is not None], groups)
