"""Computing a :class:`Layout`: layering, then components and groups stacked vertically, edges routed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from archsearch.spaces.diagram.components import _Component
from archsearch.spaces.diagram.geometry import Box, EdgeRoute, GroupBox, Layout, NodeBox
from archsearch.spaces.diagram.style import (
    BLOCK_GAP,
    CAPTION_FONT,
    CAPTION_WRAP,
    COMPONENT_GAP,
    EDGE_FONT,
    EDGE_WRAP,
    FRAME_PAD,
    GAP_MAX,
    GAP_MIN,
    LABEL_COLUMN_MIN,
    LABEL_PAD_X,
    LABEL_PAD_Y,
    MARGIN,
    NODE_FONT,
    NODE_PAD_X,
    NODE_PAD_Y,
    NODE_WRAP,
    TITLE_FONT,
    TITLE_GAP,
    TITLE_MIN_WRAP,
    _text_box,
    _wrap_points,
)

if TYPE_CHECKING:  # annotations only: importing it at run time would be circular
    from archsearch.spaces.diagram.model import Diagram


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
