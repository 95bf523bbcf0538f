"""``archsearch report``: one self-contained HTML page for a search directory.

The page is rendered from ``templates/report.html.j2`` (jinja2) with every plot drawn by
matplotlib as inline SVG and the best architecture's diagram inline too, so it opens from a
file with no network (no CDN, no external URL). Sections, each with a stable id:

``summary`` (data, space and its size, strategy, budget and time, the best architecture with
its metrics, parameters, FLOPs, CPU latency and how to use it), ``diagram``, ``curve``,
``trials`` (sortable top-k table), ``failed``, ``learning-curves``, ``pareto``, ``calibration``,
``oneshot`` and ``config``. Every section is always present; one that does not apply to the
search (no failed trial, a single objective, no calibration, not a one-shot search, no learning
curve recorded yet) holds one line saying so.

:func:`write_report` reads the journal without its lock (a running search keeps writing it;
SQLite's WAL mode lets readers in) and writes the page atomically. :class:`LiveReport` rewrites
``RUN/report.html`` during a search, throttled to a small share of the search's time, and never
raises.
"""

from __future__ import annotations

from archsearch.html_report.constants import (
    FILENAME,
    FIRST_COST,
    RELOAD_SECONDS,
    SECTIONS,
    SHARE,
    TOP_K,
)
from archsearch.html_report.write import (
    LiveReport,
    write_report,
)

__all__ = ['LiveReport', 'write_report', 'SECTIONS', 'FILENAME', 'FIRST_COST', 'SHARE', 'RELOAD_SECONDS', 'TOP_K']
