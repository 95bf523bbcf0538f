"""How numbers, sizes, durations, fidelities and errors read on the page."""

from __future__ import annotations

import json
import math
from typing import Any


# -- formatting ---------------------------------------------------------------------------------
def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _key(value: Any) -> str:
    return repr(float(value)) if _finite(value) else ""


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == int(value) and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:.4f}" if 1e-3 <= abs(value) < 1e4 else f"{value:.4g}"
    return str(value)


def _fmt_int(value: Any) -> str:
    return f"{int(round(value)):,}" if _finite(value) else "-"


def _fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


def _fmt_size(n: Any) -> str:
    try:
        value = float(n)
    except (TypeError, ValueError, OverflowError):
        return str(n)
    if math.isinf(value):
        return "infinite"
    if value < 1e9:
        return f"{int(n):,}"
    return f"{value:.3g}".replace("e+", " x 10^")


def _fmt_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min"


def _effort(f: dict[str, Any]) -> float:
    try:
        return (float(f.get("epochs", 1)) * float(f.get("data_fraction", 1.0)) * float(f.get("width", 1.0))
                * float(f.get("depth", 1.0)))
    except (TypeError, ValueError):
        return 0.0


def _fmt_fidelity(f: dict[str, Any]) -> str:
    parts = [f"{f.get('epochs', '?')} ep"]
    if f.get("data_fraction") not in (None, 1, 1.0):
        parts.append(f"{float(f['data_fraction']):.0%} data")
    if f.get("resolution"):
        parts.append(f"res {f['resolution']}")
    for k in ("width", "depth"):
        if f.get(k) not in (None, 1, 1.0):
            parts.append(f"{k} x{f[k]:g}")
    return ", ".join(parts)


def _options(section: dict[str, Any]) -> str:
    options = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in section.items() if k != "name"]
    return f" ({', '.join(options)})" if options else ""


def _one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text[:300]
