"""Limits and names the report's modules share."""

from __future__ import annotations

FILENAME = "report.html"
TEMPLATE = "report.html.j2"
TOP_K = 50  # rows of the trials table; the rest are counted
MAX_FAILED = 50  # failed trials listed (newest first)
MAX_CURVES = 5  # learning curves of the top trials
MAX_EPOCH_ROWS = 200  # one-shot epochs listed
RELOAD_SECONDS = 5  # a live page reloads itself this often
FIRST_COST = 0.5  # seconds a first write is assumed to take (imports matplotlib and jinja2) until measured
SHARE = 0.02  # LiveReport: writing may cost at most this share of the search's time
MAX_ERROR_CHARS = 4000  # of a failed trial's error text
MAX_CONFIG_CHARS = 100_000
SECTIONS = ("summary", "plan", "diagram", "curve", "trials", "failed", "learning-curves", "pareto", "calibration",
            "oneshot", "config")
ONESHOT_STRATEGIES = ("darts", "gdas", "enas", "spos")
