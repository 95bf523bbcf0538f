"""Progress: a live rich bar on a terminal, plain log lines otherwise (CI, pipes, files).

The ETA counts what comes after the bar too: ``extra`` seconds (the search's estimate of its final
training), so a user is never told a search is about to end when minutes of training remain.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Optional, TextIO

from archsearch.core import Trial, TrialState


def _fmt(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.4f}"


class Progress:
    def __init__(self, total: int, done: int = 0, stream: Optional[TextIO] = None,
                 live: Optional[bool] = None, quiet: bool = False, label: str = "search", extra: float = 0.0) -> None:
        self.stream = stream or sys.stderr
        self.total, self.done, self.done0 = total, done, done
        self.quiet = quiet
        self.extra = extra  # seconds of work after the bar (final training), counted in the ETA
        self.live = (self.stream.isatty() if live is None else live) and not quiet
        self.best: Optional[float] = None
        self.start = time.monotonic()
        self._bar: Any = None
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress
            from rich.progress import TextColumn, TimeElapsedColumn

            self._bar = RichProgress(
                TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[what]} {task.fields[best]}"), TimeElapsedColumn(),
                TextColumn("ETA {task.fields[eta]}"), console=Console(file=self.stream), transient=False,
            )
            self._task = self._bar.add_task(label, total=total, completed=done, best="-", eta="-",
                                            what={"search": "best", "final": "loss"}.get(label, "valid"))
            self._bar.start()

    def message(self, text: str) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.console.print(text)
        else:
            print(text, file=self.stream, flush=True)

    def eta(self) -> Optional[float]:
        """Seconds left: the rate so far times what remains, plus ``extra``; None before any progress."""
        done = self.done - self.done0
        if done <= 0:
            return None
        elapsed = time.monotonic() - self.start
        return elapsed / done * max(self.total - self.done, 0) + self.extra

    def _eta_text(self) -> str:
        eta = self.eta()
        if eta is None:
            return "-"
        text = f"{eta:.0f}s" if eta < 120 else f"{eta / 60:.1f}min"
        if self.extra <= 0:
            return text
        return text + f" (final training ~{self.extra:.{0 if self.extra >= 10 else 1}f}s)"

    def trial(self, trial: Trial, best: Optional[float]) -> None:
        self.best = best
        if trial.state is TrialState.COMPLETE:
            self.done += 1
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, best=_fmt(best), eta=self._eta_text())
            if trial.state is TrialState.FAILED:
                self._bar.console.print(f"trial {trial.number} failed: {(trial.error or '').splitlines()[0]}")
            return
        if self.quiet:
            return
        elapsed = time.monotonic() - self.start
        if trial.state is TrialState.COMPLETE:
            print(f"trial {trial.number:>4} complete  reward {_fmt(trial.reward)}  best {_fmt(best)}  "
                  f"[{self.done}/{self.total}] elapsed {elapsed:.0f}s eta {self._eta_text()}  {trial.arch}",
                  file=self.stream, flush=True)
        else:
            print(f"trial {trial.number:>4} failed    {(trial.error or '').splitlines()[0]}  "
                  f"[{self.done}/{self.total}] elapsed {elapsed:.0f}s", file=self.stream, flush=True)

    def epoch(self, record: dict[str, Any]) -> None:
        """One one-shot epoch done: its losses, the supernet's valid accuracy, the derived architecture."""
        self.done = int(record["epoch"])
        losses = "  ".join(f"{k} {v:.4f}" for k, v in record.items()
                           if k.endswith("loss") and isinstance(v, float))
        text = (f"epoch {self.done:>3}/{self.total}  {losses}  valid_acc {_fmt(record.get('valid_acc'))}  "
                f"skips {record.get('skips', 0)}  {record.get('seconds', 0.0):.1f}s  {record.get('arch', '')}")
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, best=_fmt(record.get("valid_acc")))
            self._bar.console.print(text, highlight=False)
        elif not self.quiet:
            print(text, file=self.stream, flush=True)

    def final_epoch(self, point: dict[str, float]) -> None:
        """One epoch of final training done: its loss, time so far and time left."""
        self.done = int(point["epoch"])
        elapsed = time.monotonic() - self.start
        text = (f"final training epoch {self.done:>3}/{self.total}  train_loss {_fmt(point.get('train_loss'))}  "
                f"elapsed {elapsed:.0f}s eta {self._eta_text()}")
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, best=_fmt(point.get("train_loss")), eta=self._eta_text())
        elif not self.quiet:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
