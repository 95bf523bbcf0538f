"""Shared building blocks for cell spaces (DARTS, NAS-Bench-201, hierarchical), keyed by name.

Shapes are (B, C, H, W) throughout. Every op keeps the spatial size at stride 1 and halves it
(ceil) at stride 2, so cell nodes can be summed without bookkeeping.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class Zero(nn.Module):
    """The 'none' op: no connection. Keeps the graph shape-valid (zeros of the output shape)."""

    def __init__(self, c_out: int, stride: int) -> None:
        super().__init__()
        self.c_out, self.stride = c_out, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if x.shape[1] != self.c_out:
            return x.new_zeros(x.shape[0], self.c_out, *x.shape[2:])
        return x.mul(0.0)


class ReLUConvBN(nn.Module):
    """ReLU -> Conv(k, no bias) -> BN: the pre-activation conv of DARTS and NAS-Bench-201."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, affine: bool = True) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class DilConv(nn.Module):
    """ReLU -> depthwise dilated conv -> pointwise conv -> BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int,
                 affine: bool = True) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class SepConv(nn.Module):
    """Two stacked DilConv(dilation 1): the DARTS separable conv (stride on the first only)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int,
                 affine: bool = True) -> None:
        super().__init__()
        self.op = nn.Sequential(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class FactorizedReduce(nn.Module):
    """Halve the map without losing half the pixels: two offset 1x1 stride-2 convs, concatenated."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even output width, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        a = self.conv_1(x)
        # the second conv sees the map shifted by one pixel; pad odd sizes so both halves match
        b = self.conv_2(nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1)))
        return self.bn(torch.cat([a, b], dim=1))


class Pool(nn.Module):
    """3x3 max or average pooling (average excludes padding), with a 1x1 ReLUConvBN if widths differ."""

    def __init__(self, kind: str, c_in: int, c_out: int, stride: int, affine: bool = True) -> None:
        super().__init__()
        self.pre = None if c_in == c_out else ReLUConvBN(c_in, c_out, 1, affine=affine)
        self.pool = (nn.MaxPool2d(3, stride, padding=1) if kind == "max"
                     else nn.AvgPool2d(3, stride, padding=1, count_include_pad=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x if self.pre is None else self.pre(x))


class Identity(nn.Module):
    """skip_connect: identity at stride 1 with equal widths; FactorizedReduce otherwise."""

    def __init__(self, c_in: int, c_out: int, stride: int, affine: bool = True) -> None:
        super().__init__()
        if stride == 1 and c_in == c_out:
            self.op: nn.Module = nn.Identity()
        elif stride == 1:
            self.op = ReLUConvBN(c_in, c_out, 1, affine=affine)
        else:
            self.op = FactorizedReduce(c_in, c_out, affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)
