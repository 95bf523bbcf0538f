"""The skip_chain genotype: one layer per token, each with the anchor set of earlier layers it reads.

String form, one ``op:KHxKW:filters[:sS][<-i,j,...]`` token per layer joined by ``|``. ``<-``
lists the anchor (0-based indices of earlier layers) and is left out when the layer reads no
layer; ``:sS`` is left out at stride 1::

    conv:3x3:36|sep_conv:5x3:48<-0|max_pool:3x3:24:s2|conv:1x7:64<-0,2

``parse`` also accepts a square kernel written once (``conv:3:36``) and ``:s1``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

from archsearch.errors import ParseError
from archsearch.spaces.base import Architecture

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KERNEL = re.compile(r"([0-9]{1,4})(?:\s*[xX]\s*([0-9]{1,4}))?")
_INT = re.compile(r"[0-9]{1,6}")
_STRIDE = re.compile(r"[sS]([0-9]{1,3})")
_FORMAT = "op:KHxKW:filters[:sS][<-inputs], e.g. conv:3x5:36<-0,2"


# -- the genotype ---------------------------------------------------------------
class SkipLayer(NamedTuple):
    """One layer; ``inputs`` is the anchor set: sorted indices of earlier layers, may be empty.

    A named tuple, not a dataclass: decode builds a dozen per architecture in tight search loops.
    """

    op: str
    kernel_h: int
    kernel_w: int
    filters: int
    stride: int
    inputs: tuple[int, ...]

    def __str__(self) -> str:
        stride = f":s{self.stride}" if self.stride != 1 else ""
        inputs = "<-" + ",".join(map(str, self.inputs)) if self.inputs else ""
        return f"{self.op}:{self.kernel_h}x{self.kernel_w}:{self.filters}{stride}{inputs}"


def check_inputs(i: int, inputs: Sequence[int]) -> None:
    if len(set(inputs)) != len(inputs):
        raise ParseError(f"layer {i}: an input is listed twice in {list(inputs)}")
    for j in inputs:
        if not 0 <= j < i:
            where = "layer 0 always reads the stem" if i == 0 else f"valid: 0..{i - 1}"
            raise ParseError(f"layer {i}: input {j} is not an earlier layer ({where})")


@dataclass(frozen=True)
class SkipChainArch(Architecture):
    """``canonical`` is ``to_dict``: every field changes the network (pools too project to ``filters``)."""

    layers: tuple[SkipLayer, ...]
    space = "skip_chain"

    def __str__(self) -> str:
        return "|".join(str(layer) for layer in self.layers)

    def unused(self) -> tuple[int, ...]:
        """Layers (the last aside) that no later layer reads: the fix-up concatenates them at the end."""
        used = {j for layer in self.layers for j in layer.inputs}
        return tuple(j for j in range(len(self.layers) - 1) if j not in used)

    def to_dict(self) -> dict[str, Any]:
        return {"layers": [[x.op, x.kernel_h, x.kernel_w, x.filters, x.stride, list(x.inputs)]
                           for x in self.layers]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SkipChainArch":
        layers = data["layers"]
        if not isinstance(layers, list):
            raise ParseError("skip_chain architecture JSON: 'layers' must be a list")
        out = []
        for i, item in enumerate(layers):
            if not isinstance(item, (list, tuple)) or len(item) != 6:
                raise ParseError(f"skip_chain architecture JSON: layer {i} must be "
                                 "[op, kernel_h, kernel_w, filters, stride, [inputs]]")
            op, kh, kw, f, s, inputs = item
            if not isinstance(op, str) or not isinstance(inputs, (list, tuple)) or not all(
                    isinstance(v, int) and not isinstance(v, bool) for v in (kh, kw, f, s, *inputs)):
                raise ParseError(f"skip_chain architecture JSON: layer {i} needs a string op, "
                                 "integer sizes and a list of integer inputs")
            check_inputs(i, inputs)
            out.append(SkipLayer(op, kh, kw, f, s, tuple(sorted(inputs))))
        return cls(tuple(out))

    @classmethod
    def parse(cls, text: str) -> "SkipChainArch":
        return cls(tuple(_parse_layer(i, tok.strip()) for i, tok in enumerate(text.strip().split("|"))))


def _parse_layer(i: int, tok: str) -> SkipLayer:
    head, arrow, tail = tok.partition("<-")
    parts = [p.strip() for p in head.split(":")]
    if "<-" in tail or len(parts) not in (3, 4):
        raise ParseError(f"layer {i} {tok!r}: expected {_FORMAT}")
    op, kernel, filters = parts[:3]
    if not _NAME.fullmatch(op):
        raise ParseError(f"layer {i} {tok!r}: op {op!r} is not a name (expected {_FORMAT})")
    k = _KERNEL.fullmatch(kernel)
    if not k:
        raise ParseError(f"layer {i} {tok!r}: kernel {kernel!r} must be KHxKW (e.g. 3x5) or one size")
    if not _INT.fullmatch(filters):
        raise ParseError(f"layer {i} {tok!r}: filters {filters!r} must be a positive integer")
    s = _STRIDE.fullmatch(parts[3]) if len(parts) == 4 else None
    if len(parts) == 4 and not s:
        raise ParseError(f"layer {i} {tok!r}: stride {parts[3]!r} must be written s1, s2, ...")
    inputs: list[int] = []
    if arrow:
        items = [x.strip() for x in tail.split(",")]
        if not all(_INT.fullmatch(x) for x in items):
            raise ParseError(f"layer {i} {tok!r}: inputs after '<-' must be layer indices like 0,2 "
                             "(leave '<-' out for a layer that reads the stem)")
        inputs = [int(x) for x in items]
        check_inputs(i, inputs)
    kh = int(k.group(1))
    return SkipLayer(op, kh, int(k.group(2) or kh), int(filters), int(s.group(1)) if s else 1,
                     tuple(sorted(inputs)))
