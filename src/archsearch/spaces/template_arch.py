"""The template space's genotype: one (block, kernel, depth, width[, se]) stage after another, and
its string form (see :mod:`archsearch.spaces.template`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Union


from archsearch.errors import ParseError
from archsearch.spaces.base import Architecture


BLOCKS = ("conv", "mbconv3", "mbconv6", "sep_conv", "resblock")
BLOCK_DESCRIPTIONS = {
    "conv": "conv-BN-ReLU",
    "mbconv3": "inverted bottleneck x3",
    "mbconv6": "inverted bottleneck x6",
    "sep_conv": "depthwise-separable conv",
    "resblock": "ResNet basic block",
}
DEFAULT_WIDTHS = (0.5, 0.75, 1.0, 1.25)
MAX_STAGES = 8

Width = Union[float, int]  # float: multiplier of the stage's base width; int: absolute channels


_INT = {int}  # decode's fast path: indices that are all plain ints


# -- the genotype ---------------------------------------------------------------
@dataclass(frozen=True)
class TemplateStage:
    """One stage's choices. ``width`` is a float multiplier or an int channel count (option ``channels``)."""

    block: str
    kernel: int
    depth: int
    width: Width
    se: bool = False

    def __str__(self) -> str:
        w = f"c{self.width}" if is_absolute(self.width) else f"w{float(self.width)!r}"
        return f"{self.block}:k{self.kernel}:d{self.depth}:{w}" + (":se" if self.se else "")


def is_absolute(width: Any) -> bool:
    return isinstance(width, int) and not isinstance(width, bool)


# ``w``: any plain decimal number, optionally with an exponent, so every float's repr parses back
# (length-capped: repr never needs more than 17 significant digits and a 3-digit exponent)
_STAGE_RE = re.compile(
    r"([a-z0-9_]+):k([0-9]{1,4}):d([0-9]{1,4}):"
    r"(?:w([0-9]{1,20}(?:\.[0-9]{1,20})?(?:[eE][-+]?[0-9]{1,3})?)|c([0-9]{1,6}))(:se)?",
    re.ASCII,
)


@dataclass(frozen=True)
class TemplateArch(Architecture):
    """``canonical`` is ``to_dict``: every field changes the network. (Two multipliers that round to
    one width on a tiny base width build the same stage, but the base is the space's, not the genotype's.)"""

    stages: tuple[TemplateStage, ...]
    space = "template"

    def __str__(self) -> str:
        return "|".join(str(s) for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        out = []
        for s in self.stages:
            key = "channels" if is_absolute(s.width) else "width"
            out.append({"block": s.block, "kernel": s.kernel, "depth": s.depth, key: s.width, "se": s.se})
        return {"stages": out}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TemplateArch":
        stages = data["stages"]
        if not isinstance(stages, list) or not stages:
            raise ParseError("template architecture JSON: 'stages' must be a non-empty list")
        out = []
        for i, item in enumerate(stages):
            if not isinstance(item, dict):
                raise ParseError(f"template architecture JSON: stage {i} must be an object")
            unknown = set(item) - {"block", "kernel", "depth", "width", "channels", "se"}
            if unknown:
                raise ParseError(f"template architecture JSON: stage {i} has unknown key {sorted(unknown)[0]!r}")
            if ("width" in item) == ("channels" in item):
                raise ParseError(f"template architecture JSON: stage {i} needs exactly one of 'width', 'channels'")
            block, kernel, depth, se = item["block"], item["kernel"], item["depth"], item.get("se", False)
            if not isinstance(block, str) or not isinstance(se, bool):
                raise ParseError(f"template architecture JSON: stage {i} block must be a string and se a boolean")
            if not is_absolute(kernel) or not is_absolute(depth):
                raise ParseError(f"template architecture JSON: stage {i} kernel and depth must be integers")
            if "channels" in item:
                width: Width = item["channels"]
                if not is_absolute(width):
                    raise ParseError(f"template architecture JSON: stage {i} channels must be an integer")
            else:
                width = item["width"]
                if isinstance(width, bool) or not isinstance(width, (int, float)):
                    raise ParseError(f"template architecture JSON: stage {i} width must be a number")
                width = float(width)
            out.append(TemplateStage(block, kernel, depth, width, se))
        return cls(tuple(out))

    @classmethod
    def parse(cls, text: str) -> "TemplateArch":
        out = []
        for i, tok in enumerate(t.strip() for t in text.strip().split("|")):
            m = _STAGE_RE.fullmatch(tok)
            if m is None:
                raise ParseError(f"stage {i + 1} {tok[:40]!r}: expected block:kK:dD:wW[:se] or block:kK:dD:cC[:se], "
                                 f"e.g. mbconv6:k3:d2:w1.0")
            block, k, d, w, c, se = m.groups()
            width = int(c) if c is not None else float(w)
            if width in (0.0, float("inf")):  # 1e999 overflows, 1e-999 underflows: neither prints back
                raise ParseError(f"stage {i + 1}: width multiplier w{w} is not a positive finite number")
            out.append(TemplateStage(block, int(k), int(d), width, se is not None))
        return cls(tuple(out))
