"""The DARTS network built from a genotype (DARTS NetworkCIFAR): stem conv3x3 to 3C + BN;
``cells`` cells with reductions (stride 2 on the edges from the cell inputs, channels doubled)
at ``cells // 3`` and ``2 * cells // 3``; global average pool + linear; an optional auxiliary
head after cell ``2 * cells // 3``."""

from __future__ import annotations


import torch
import torch.nn as nn
import torch.nn.functional as F

from archsearch.core import Task
from archsearch.spaces.capabilities import AuxiliaryClassifier
from archsearch.spaces.ops import DilConv, FactorizedReduce, Identity, Pool, ReLUConvBN, SepConv, Zero
from archsearch.spaces.darts_genotype import DartsArch, Gene


# -- operations -----------------------------------------------------------------
def edge_op(name: str, c: int, stride: int, affine: bool = True) -> nn.Module:
    """One cell edge: ``name`` from :data:`OPS` at width ``c``."""
    if name == "none":
        return Zero(c, stride)
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        return Pool(name[:3], c, c, stride, affine)
    if name == "skip_connect":
        return Identity(c, c, stride, affine)
    k = int(name[-1])
    if name.startswith("sep_conv"):
        return SepConv(c, c, k, stride, k // 2, affine)
    return DilConv(c, c, k, stride, k - 1, 2, affine)  # dilation 2: padding k - 1 keeps the size


def drop_path(x: torch.Tensor, p: float) -> torch.Tensor:
    """Zero whole samples with probability ``p`` and rescale the rest (DARTS/NASNet regularizer)."""
    keep = 1.0 - p
    mask = x.new_empty(x.shape[0], 1, 1, 1).bernoulli_(keep)
    return x * mask / keep


def preprocess(c_pp: int, c_p: int, c: int, reduction_prev: bool, affine: bool) -> tuple[nn.Module, nn.Module]:
    """Bring both cell inputs to width ``c`` and the same map size (c_{k-2} is twice as large
    when the previous cell reduced)."""
    pre0 = FactorizedReduce(c_pp, c, affine) if reduction_prev else ReLUConvBN(c_pp, c, 1, affine=affine)
    return pre0, ReLUConvBN(c_p, c, 1, affine=affine)


# -- the network built from a genotype --------------------------------------------
class DartsCell(nn.Module):
    def __init__(self, genes: Gene, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool) -> None:
        super().__init__()
        self.reduction = reduction
        self.pre0, self.pre1 = preprocess(c_pp, c_p, c, reduction_prev, affine=True)
        strides = [2 if reduction and j < 2 else 1 for _, j in genes]
        self.ops = nn.ModuleList(edge_op(op, c, s) for (op, _), s in zip(genes, strides))
        self.inputs = [j for _, j in genes]
        # as DARTS: drop path on every edge except a plain identity
        self.droppable = [not (op == "skip_connect" and s == 1) for (op, _), s in zip(genes, strides)]
        self.nodes = len(genes) // 2

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for i in range(self.nodes):
            total = None
            for k in (2 * i, 2 * i + 1):
                h = self.ops[k](states[self.inputs[k]])
                if drop_prob > 0.0 and self.training and self.droppable[k]:
                    h = drop_path(h, drop_prob)
                total = h if total is None else total + h
            states.append(total)
        return torch.cat(states[2:], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS AuxiliaryHeadCIFAR: ReLU, avg-pool to 2x2, conv1x1 128, conv2x2 768, linear.

    DARTS pools with a 5x5 window at stride 3, which makes 2x2 only from 8..10-pixel maps (CIFAR
    at 2/3 depth); any other map size (8x8 digits give 2x2 there) is pooled adaptively to 2x2.
    """

    def __init__(self, c: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(c, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        if 8 <= x.shape[2] <= 10 and 8 <= x.shape[3] <= 10:
            x = F.avg_pool2d(x, 5, stride=3, count_include_pad=False)
        else:
            x = F.adaptive_avg_pool2d(x, 2)
        return self.classifier(self.features(x).flatten(1))


def reduction_cells(cells: int) -> set[int]:
    """Indices of the reduction cells: 1/3 and 2/3 of the depth (they coincide for 1 cell)."""
    return {cells // 3, 2 * cells // 3}


def stem(c_in: int, c: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))


class DartsNetwork(nn.Module, AuxiliaryClassifier):
    """DARTS NetworkCIFAR for any input shape. ``drop_path_prob`` may be changed (scheduled) by a trainer."""

    def __init__(self, arch: DartsArch, task: Task, channels: int, cells: int, auxiliary: bool,
                 drop_path_prob: float = 0.0) -> None:
        super().__init__()
        c_stem = 3 * channels
        self.stem = stem(task.input_shape[0], c_stem)
        c_pp, c_p, c = c_stem, c_stem, channels
        reductions = reduction_cells(cells)
        self.aux_index = 2 * cells // 3
        self.cells = nn.ModuleList()
        reduction_prev, c_aux = False, c_p
        for i in range(cells):
            reduction = i in reductions
            if reduction:
                c *= 2
            cell = DartsCell(arch.reduce if reduction else arch.normal, c_pp, c_p, c, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.nodes * c
            if i == self.aux_index:
                c_aux = c_p
        self.auxiliary_head = AuxiliaryHead(c_aux, task.num_classes) if auxiliary else None
        self.classifier = nn.Linear(c_p, task.num_classes)
        self.drop_path_prob = drop_path_prob
        self.aux_logits: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.aux_logits = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            # the auxiliary head ends in BatchNorm on a 1x1 map: in training a batch of one gives
            # it a single value per channel, which BatchNorm rejects, so that batch gets no aux loss
            if i == self.aux_index and self.auxiliary_head is not None and self.training and x.shape[0] > 1:
                self.aux_logits = self.auxiliary_head(s1)
        return self.classifier(s1.mean(dim=(2, 3)))

    def auxiliary_logits(self) -> torch.Tensor | None:
        return self.aux_logits
