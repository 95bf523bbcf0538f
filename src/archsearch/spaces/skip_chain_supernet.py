"""The skip_chain supernet (ENAS macro): every layer's op and every skip as choice points."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn as nn

from archsearch.core import Task
from archsearch.spaces.base import Architecture
from archsearch.spaces.skip_chain_arch import SkipChainArch, SkipLayer
from archsearch.spaces.skip_chain_network import STEM, Pooled, conv_bn_relu, layer_op, layer_stages, stage_sizes
from archsearch.spaces.supernet import ChoicePoint, Supernet, mix

if TYPE_CHECKING:
    from archsearch.spaces.skip_chain import SkipChainSpace


class SkipChainSupernet(Supernet):
    """ENAS-macro weight sharing: one fixed width, an op choice per layer, an on/off choice per skip.

    Choice points, per layer i in order: ``layer{i}.op`` (candidates ``{op}_{k}x{k}`` for every op
    and kernel of the space: square kernels only) then ``layer{i}.input{j}`` (``off``/``on``) for
    j < i, the same names as the space's decisions. Every layer is ``supernet_filters`` wide
    (the stem too) and runs at the smallest stride offered, so a layer's inputs are *summed*,
    each scaled by its ``on`` weight, where the standalone network concatenates them. The
    fix-ups are relaxed the same way: the stem joins layer i's sum with weight prod_j off(j, i)
    (the chance that it reads nothing), and layer j joins the last layer's output with weight
    prod_i off(j, i) (the chance that nobody reads it); with one-hot weights these are the
    discrete rules. Sizes follow the standalone rule (pool to the smallest, stage caps).

    ``derive``: argmax op candidate per layer, a skip when its ``on`` weight beats ``off``,
    filters ``supernet_filters`` and the smallest stride. ``path`` is lossy on what the supernet
    does not search: filters and stride are ignored and a kh x kw kernel runs the square
    candidate of side max(kh, kw).
    """

    # what one-shot methods read: pools (the square-kernel ``max_pool_KxK``/``avg_pool_KxK`` candidates,
    # c_in == c_out so no projection) have no parameters; no candidate is a skip (identity) op, the
    # anchors' ``on`` adds an input rather than replacing an op; PC-DARTS's options are DARTS-space only
    param_free: frozenset[str] = frozenset()  # set per instance: the names depend on space.kernels
    skip_candidates: frozenset[str] = frozenset()

    def __init__(self, space: "SkipChainSpace", task: Task) -> None:
        super().__init__()
        self.space = space
        n, c = space.layers, space.supernet_filters
        self.filters, self.stride, self.reductions = c, min(space.strides), space.reductions
        self.candidates = tuple((op, k) for op in space.ops for k in space.kernels)
        self._index = {cand: i for i, cand in enumerate(self.candidates)}
        self.param_free = frozenset(f"{op}_{k}x{k}" for op, k in self.candidates if op in ("max_pool", "avg_pool"))
        self.stem = conv_bn_relu(task.input_shape[0], c, 3, 3, 1)
        self.cells = nn.ModuleList(
            nn.ModuleList(layer_op(op, c, c, k, k, self.stride, affine=False) for op, k in self.candidates)
            for _ in range(n))
        self.head = nn.Linear(c, task.num_classes)
        self.stages = layer_stages(n, space.reductions)
        self.choice_points: list[ChoicePoint] = []
        self._op_cp: list[int] = []
        self._skip_cp: list[list[int]] = []  # [i][j]: choice point of skip j -> i
        for i in range(n):
            self._op_cp.append(len(self.choice_points))
            self.choice_points.append(ChoicePoint(f"layer{i}.op", tuple(f"{op}_{k}x{k}" for op, k in self.candidates)))
            self._skip_cp.append(list(range(len(self.choice_points), len(self.choice_points) + i)))
            self.choice_points += [ChoicePoint(f"layer{i}.input{j}", ("off", "on")) for j in range(i)]
        # skip j -> i is row i * (i - 1) // 2 + j of the stacked (skips, 2) weights; layer i's rows
        # are contiguous. _unused_rows[j]: the rows of j's readers i > j, padded with the index of
        # an appended 1.0, so one gather + prod gives every "nobody reads j" product at once
        self._skip_flat = [cp for row in self._skip_cp for cp in row]
        skips = len(self._skip_flat)
        self._row = [i * (i - 1) // 2 for i in range(n)]
        self._unused_list = [[self._row[i] + j for i in range(j + 1, n)] for j in range(n - 1)]
        pad = [rows + [skips] * (n - 1 - len(rows)) for rows in self._unused_list]
        self.register_buffer("_unused_rows", torch.tensor(pad, dtype=torch.long).reshape(n - 1, max(n - 1, 0)),
                             persistent=False)

    def forward(self, x: torch.Tensor, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(weights) != len(self.choice_points):
            raise ValueError(f"expected {len(self.choice_points)} weight vectors, got {len(weights)}")
        s = self.stem(x)  # (B, C, H, W)
        caps = stage_sizes(s.shape[2], s.shape[3], self.reductions)
        pooled = Pooled()
        dead = s.new_zeros(())  # zero weights join as scalars so their gradient path exists (as in mix)
        n = len(self.stages)
        if self._skip_flat:
            skip = torch.stack([weights[cp] for cp in self._skip_flat])  # (skips, 2): off, on
            off = skip[:, 0]
            live = skip.ne(0).tolist()  # the zero mask of every skip, one host sync per forward
        outs: list[torch.Tensor] = []
        for i, stage in enumerate(self.stages):
            terms: list[tuple[torch.Tensor | None, int, torch.Tensor]] = []
            row = self._row[i]
            for j, cp in enumerate(self._skip_cp[i]):
                on = weights[cp][1]
                if live[row + j][1]:
                    terms.append((on, j, outs[j]))
                else:
                    dead = dead + on
            if i == 0:
                terms.append((None, STEM, s))
            else:
                reads_stem = off[row : row + i].prod()  # prod_j off(j, i): the chance that i reads nothing
                if terms and not all(live[row + j][0] for j in range(i)):
                    dead = dead + reads_stem  # a factor is exactly 0
                else:
                    terms.append((reads_stem, STEM, s))
            outs.append(mix(self.cells[i], self._sum(terms, caps[stage], pooled), weights[self._op_cp[i]]))
        terms = [(None, n - 1, outs[-1])]
        if n > 1:
            off1 = torch.cat([off, off.new_ones(1)])  # the pad index reads the 1.0
            unused = off1[self._unused_rows].prod(dim=1)  # (n - 1,): prod_{i > j} off(j, i)
            for j, rows in enumerate(self._unused_list):
                if all(live[r][0] for r in rows):
                    terms.append((unused[j], j, outs[j]))
                else:
                    dead = dead + unused[j]  # a factor is exactly 0
        final = self._sum(terms, caps[-1], pooled)
        return self.head(final.mean(dim=(2, 3))) + dead

    @staticmethod
    def _sum(terms: list[tuple[torch.Tensor | None, int, torch.Tensor]], cap: tuple[int, int],
             pooled: Pooled) -> torch.Tensor:
        maps = pooled.align([(src, m) for _, src, m in terms], cap)
        out = None
        for (w, _, _), m in zip(terms, maps):
            y = m if w is None else w * m
            out = y if out is None else out + y
        assert out is not None
        return out

    def derive(self, weights: Sequence[torch.Tensor]) -> SkipChainArch:
        layers = []
        for i, cp in enumerate(self._op_cp):
            op, k = self.candidates[int(torch.argmax(weights[cp]))]
            inputs = tuple(j for j, s in enumerate(self._skip_cp[i]) if bool(weights[s][1] > weights[s][0]))
            layers.append(SkipLayer(op, k, k, self.filters, self.stride, inputs))
        return SkipChainArch(tuple(layers))

    def as_run(self, arch: Architecture) -> Architecture:
        """Every layer at the supernet's width and stride, with the square kernel that ran."""
        return self.derive(self.path_weights(arch))

    def path(self, arch: Architecture) -> list[int]:
        self.space.validate(arch)
        assert isinstance(arch, SkipChainArch)
        out = []
        for i, layer in enumerate(arch.layers):
            out.append(self._index[(layer.op, max(layer.kernel_h, layer.kernel_w))])
            out += [int(j in layer.inputs) for j in range(i)]
        return out
