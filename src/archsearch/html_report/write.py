"""Writing the page: :func:`write_report`, the live :class:`LiveReport`, the jinja2 template and the atomic write."""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Optional

from archsearch.errors import ArchsearchError, JournalError
from archsearch.html_report.constants import FILENAME, FIRST_COST, SHARE, TEMPLATE
from archsearch.html_report.gather import _gather


# -- public API ---------------------------------------------------------------------------------
def write_report(run_dir: str, out: Optional[str] = None, live: bool = False) -> str:
    """Write the report of the search in ``run_dir`` to ``out`` (default ``run_dir/report.html``)
    atomically (a temporary file beside it, then ``os.replace``); return the path written.

    ``live``: the page reloads itself every few seconds and says the search is running.
    Bad input (not a search directory, a corrupt journal, an unwritable ``out``) raises an
    :class:`ArchsearchError` with a one-line message and leaves ``run_dir`` as it was; with
    ``out`` given nothing is written into ``run_dir``.
    """
    return _write(run_dir, out, live, {})


class LiveReport:
    """Rewrites ``run_dir/report.html`` during a search.

    :meth:`update` (after each completed trial) writes only when the time since the last write
    times :data:`SHARE` (0.02) is at least what the last write cost (measured), or with
    ``force``. It also keeps the running total in budget: no write unless what all writes cost so
    far plus two more like the last (this one and the final page) stays within 2% of the time
    since the report was created, so an expensive first write (imports) and the final page are
    paid for too; before any write has been measured, one is assumed to cost :data:`FIRST_COST`,
    so the first page appears once 2% of the search's time covers it and the final page (after
    about 50 s: a shorter search gets its page at the end only). :meth:`close` writes the final
    page, which does not reload. Never raises: a
    failed write is reported once through ``warn`` (one line, without a ``warning:`` prefix) and
    the search goes on. ``writes`` and ``seconds`` count what writing cost.
    """

    def __init__(self, run_dir: str, warn: Callable[[str], None] = lambda s: None) -> None:
        self.run_dir = run_dir
        self.warn = warn
        self.writes = 0
        self.seconds = 0.0
        self.last_cost = 0.0
        self._last_end: Optional[float] = None
        self._created = time.monotonic()
        self._warned = False
        self._cache: dict[str, Any] = {}  # space, diagram and latency of the best, kept between writes

    def update(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force:
            if self._last_end is None:  # not measured yet: assume a first write's cost (imports included)
                if 2 * FIRST_COST > SHARE * (now - self._created):
                    return
            elif (now - self._last_end) * SHARE < self.last_cost \
                    or self.seconds + 2 * self.last_cost > SHARE * (now - self._created):
                return
        self._write(live=True)

    def close(self) -> None:
        self._write(live=False)

    def _write(self, live: bool) -> None:
        start = time.perf_counter()
        try:
            _write(self.run_dir, None, live, self._cache)
        except Exception as exc:  # noqa: BLE001 - a report must never stop a search
            if not self._warned:
                self._warned = True
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                try:
                    self.warn(f"could not write {os.path.join(self.run_dir, FILENAME)}: {first}")
                except Exception:  # noqa: BLE001
                    pass
        finally:
            self.last_cost = time.perf_counter() - start
            self.seconds += self.last_cost
            self.writes += 1
            self._last_end = time.monotonic()


# -- writing ------------------------------------------------------------------------------------
def _write(run_dir: str, out: Optional[str], live: bool, cache: dict[str, Any]) -> str:
    journal_path = _check_run_dir(run_dir)
    path = out if out is not None else os.path.join(run_dir, FILENAME)
    _check_out(path)
    context = _gather(run_dir, journal_path, live, cache)
    html = _template().render(**context)
    _atomic_write(path, html)
    return path


def _check_run_dir(run_dir: str) -> str:
    from archsearch.storage.journal import Journal

    if not os.path.isdir(run_dir):
        raise JournalError(f"{run_dir} is not a search directory (no such directory)")
    path = os.path.join(run_dir, Journal.FILENAME)
    if not os.path.isfile(path):
        raise JournalError(f"{run_dir} is not a search directory (no {Journal.FILENAME} in it)")
    return path


def _check_out(path: str) -> None:
    if os.path.isdir(path):
        raise ArchsearchError(f"cannot write the report to {path}: it is a directory (give a file name)")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        what = "is not a directory" if os.path.exists(parent) else "does not exist"
        raise ArchsearchError(f"cannot write the report to {path}: {parent} {what}")


def _atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise ArchsearchError(f"cannot write the report to {path}: {exc.strerror or exc}") from None


_TEMPLATE_CACHE: list[Any] = []
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # archsearch/, which holds templates/


def _template() -> Any:
    if not _TEMPLATE_CACHE:
        import jinja2

        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(os.path.join(_PACKAGE_DIR, "templates")),
            autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
        _TEMPLATE_CACHE.append(env.get_template(TEMPLATE))
    return _TEMPLATE_CACHE[0]
