"""A :class:`Diagram`: what to draw (nodes, labelled edges, groups) and its renderers: the DOT text,
graphviz's ``dot`` when installed, and the matplotlib drawing of its :class:`Layout` otherwise.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from archsearch.errors import ArchsearchError, ConfigError
from archsearch.spaces.diagram.geometry import Layout
from archsearch.spaces.diagram.layout import _LayoutBuilder
from archsearch.spaces.diagram.style import (
    CAPTION_FONT,
    DOT_EDGE_WRAP,
    DOT_FONT,
    DOT_NODE_WRAP,
    DOT_TITLE_WRAP,
    EDGE_COLOR,
    EDGE_FONT,
    END_EDGE,
    END_FILL,
    ENGINES,
    FONT,
    FORMATS,
    FRAME_COLOR,
    LABEL_COLOR,
    LEFT,
    LINE_SPACING,
    MAX_PIXELS,
    NODE_EDGE,
    NODE_FILL,
    NODE_FONT,
    TITLE_FONT,
    _quote,
    _wrap_chars,
)


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
