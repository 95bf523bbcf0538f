"""Where things are: the boxes, edge routes and groups of a computed :class:`Layout`, and its self-checks."""

from __future__ import annotations

from dataclasses import dataclass


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
