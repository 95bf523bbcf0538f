"""The look: fonts, sizes (points), colours and spacing, and measured text widths and wrapping
(both renderers and the layout use them).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Callable, Sequence

FORMATS = (".dot", ".gv", ".svg", ".png", ".pdf")
ENGINES = ("auto", "graphviz", "matplotlib")
# -- style (sizes in points) ------------------------------------------------------
FONT = "DejaVu Sans"  # matplotlib's bundled font: measured widths match what is drawn
DOT_FONT = "Helvetica"
NODE_FONT, EDGE_FONT, TITLE_FONT, CAPTION_FONT = 10.0, 8.5, 11.0, 9.5
LINE_SPACING = 1.2  # matplotlib's: a text of n lines is about n * 1.2 * size high
NODE_WRAP, EDGE_WRAP, CAPTION_WRAP = 190.0, 130.0, 400.0  # wrap widths in points
TITLE_MIN_WRAP = 380.0
DOT_NODE_WRAP, DOT_EDGE_WRAP, DOT_TITLE_WRAP = 32, 24, 100  # the same in characters, for DOT
NODE_PAD_X, NODE_PAD_Y, LABEL_PAD_X, LABEL_PAD_Y = 8.0, 5.0, 3.0, 1.5
NODE_SEP, LABEL_SEP, VIRTUAL_SEP, VIRTUAL_H = 12.0, 5.0, 6.0, 2.0
GAP_MIN, GAP_MAX = 18.0, 56.0  # horizontal gap between columns (grows with the edges' slope)
LABEL_COLUMN_MIN = 8.0
MARGIN, FRAME_PAD, COMPONENT_GAP, BLOCK_GAP, TITLE_GAP = 12.0, 8.0, 18.0, 14.0, 10.0
NODE_FILL, NODE_EDGE = "#e8f0fe", "#4a6fa5"
END_FILL, END_EDGE = "#edf7e8", "#5b8a3c"  # sources and sinks (inputs, outputs)
EDGE_COLOR, LABEL_COLOR, FRAME_COLOR = "#555555", "#1f2f4f", "#9aa5b1"
MAX_PIXELS = 16000  # PNG: the longer side is kept below this (dpi is lowered for huge diagrams)
LEFT = "\\l"  # DOT's end-of-line escape for left-justified lines


def _quote(text: str, newline: str = "\\n") -> str:
    """A DOT string; ``newline`` is the escape that ends a line ("\\l": left-justified lines)."""
    body = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", newline)
    return '"' + body + (newline if newline != "\\n" and body else "") + '"'


@functools.lru_cache(maxsize=8192)
def _text_width(text: str, size: float, bold: bool = False) -> float:
    """Width in points of one line of ``text`` at ``size`` points, as matplotlib draws it."""
    if not text:
        return 0.0
    try:
        from matplotlib.font_manager import FontProperties

        prop = FontProperties(family=FONT, size=size, weight="bold" if bold else "normal")
        width, _, _ = _text_to_path().get_text_width_height_descent(text, prop, ismath=False)
        return float(width)
    except Exception:  # pragma: no cover - no usable matplotlib font: a generous estimate
        return (0.72 if bold else 0.65) * size * len(text)


@functools.lru_cache(maxsize=1)
def _text_to_path() -> Any:
    from matplotlib.textpath import TextToPath

    return TextToPath()


def _wrap(text: str, limit: float, measure: Callable[[str], float]) -> list[str]:
    """Greedy word wrap: break after spaces and ``, | ; /``; cut tokens longer than a line.

    A line's width is taken as the sum of its tokens' (and a cut token's characters') widths,
    so each piece is measured once; the boxes are sized from the finished lines."""
    lines: list[str] = []
    for para in str(text).split("\n"):
        line, width = "", 0.0
        for token in [t for t in re.split(r"(?<=[ ,|;/])", para) if t]:
            w = measure(token)
            if line and width + measure(token.rstrip()) > limit:  # a trailing space may overhang
                lines.append(line.rstrip())
                token = token.lstrip()
                line, width = "", 0.0
                w = measure(token)
            if w <= limit or len(token) <= 1:
                line, width = line + token, width + w
                continue
            for ch in token:  # a token longer than a line: cut it
                cw = measure(ch)
                if line and width + cw > limit:
                    lines.append(line.rstrip())
                    line, width = "", 0.0
                line, width = line + ch, width + cw
        lines.append(line.rstrip())
    return lines


def _wrap_points(text: str, limit: float, size: float, bold: bool = False) -> list[str]:
    return _wrap(text, limit, lambda s: _text_width(s, size, bold))


def _wrap_chars(text: str, limit: int) -> str:
    return "\n".join(_wrap(text, limit, len))


def _text_box(lines: Sequence[str], size: float, pad_x: float, pad_y: float,
              bold: bool = False) -> tuple[float, float]:
    width = max((_text_width(line, size, bold) for line in lines), default=0.0)
    return width + 2 * pad_x, LINE_SPACING * size * max(1, len(lines)) + 2 * pad_y
