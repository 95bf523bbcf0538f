"""The hierarchical network: primitives, motif and cell DAGs, and the CIFAR template around them.

Network (the paper's small CIFAR template): stem conv3x3-BN-ReLU with ``channels`` channels,
then ``stages`` groups of ``cells`` level-3 cells; between groups a 3x3 separable conv with
stride 2 that doubles the width (stride 1 once the map is below 4 pixels, so small inputs
work); global average pool, linear.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn

from archsearch.core import Task
from archsearch.spaces import ops
from archsearch.spaces.hierarchical_dag import HierarchicalArch, dag_inputs, live_nodes


# -- level 1: primitives --------------------------------------------------------
def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


def _sep_conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3x3 depthwise (stride) then 1x1 pointwise, BN, ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_in, 3, stride, 1, groups=c_in, bias=False),
                         nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


def primitive(name: str, c: int) -> nn.Module:
    """A level-1 operation on ``c`` channels at stride 1 (``none`` is never built)."""
    if name == "conv1":
        return _conv_bn_relu(c, c, 1)
    if name == "dw3":
        return _conv_bn_relu(c, c, 3, groups=c)
    if name == "sep3":
        return _sep_conv(c, c)
    if name in ("max3", "avg3"):
        return ops.Pool(name[:3], c, c, 1)
    if name == "id":
        return ops.Identity(c, c, 1)
    raise ValueError(f"no module for primitive {name!r}")


class Dag(nn.Module):
    """A motif or cell: node i = merge(op_ji(node j) for incoming j); returns the last node."""

    def __init__(self, nodes: int, entries: Sequence[str], c: int, make_op: Callable[[str], nn.Module]) -> None:
        super().__init__()
        incoming = dag_inputs(nodes, entries)
        live = live_nodes(incoming)
        self.plan: list[tuple[int, list[tuple[int, str]]]] = []  # (node, [(source, edge key)])
        self.edges = nn.ModuleDict()
        self.merges = nn.ModuleDict()
        for i in range(1, nodes):
            if not live[i]:
                continue
            sources = []
            for j, op in incoming[i]:
                key = f"{j}_{i}"
                self.edges[key] = make_op(op)
                sources.append((j, key))
            if len(sources) > 1:
                self.merges[str(i)] = _conv_bn_relu(len(sources) * c, c, 1)
            self.plan.append((i, sources))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states: dict[int, torch.Tensor] = {0: x}
        out = x
        for i, sources in self.plan:
            if len(sources) == 1:
                j, key = sources[0]
                out = self.edges[key](states[j])
            else:
                out = self.merges[str(i)](torch.cat([self.edges[key](states[j]) for j, key in sources], dim=1))
            states[i] = out
        return out


class HierarchicalNet(nn.Module):
    def __init__(self, arch: HierarchicalArch, task: Task, motif_nodes: int, cell_nodes: int,
                 channels: int, cells: int, stages: int) -> None:
        super().__init__()
        c, h = channels, min(task.input_shape[1:])
        self.stem = _conv_bn_relu(task.input_shape[0], c, 3)

        def make_cell(width: int) -> Dag:
            def level2(op: str) -> nn.Module:
                if op == "id":
                    return ops.Identity(width, width, 1)
                motif = arch.motifs[int(op[1:]) - 1]
                return Dag(motif_nodes, motif, width, lambda p: primitive(p, width))
            return Dag(cell_nodes, arch.cell, width, level2)

        body: list[nn.Module] = []
        for s in range(stages):
            if s > 0:
                stride = 2 if h >= 4 else 1  # never shrink a map below 2x2
                body.append(_sep_conv(c, 2 * c, stride))
                c, h = 2 * c, (h + stride - 1) // stride
            body += [make_cell(c) for _ in range(cells)]
        self.body = nn.Sequential(*body)
        self.head = nn.Linear(c, task.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(self.stem(x))  # (B, C, H', W')
        return self.head(x.mean(dim=(2, 3)))
