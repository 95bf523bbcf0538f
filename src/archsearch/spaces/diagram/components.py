"""One weakly connected component being laid out: its items (nodes, virtual slots, edge labels) per
rank, crossing reduction (barycenter sweeps plus adjacent swaps) and placement (weighted isotonic).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from archsearch.spaces.diagram.style import LABEL_SEP, NODE_SEP, VIRTUAL_H, VIRTUAL_SEP

if TYPE_CHECKING:  # annotations only: importing it at run time would be circular
    from archsearch.spaces.diagram.layout import _LayoutBuilder


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
