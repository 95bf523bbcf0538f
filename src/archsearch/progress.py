"""Progress: a live rich bar on a terminal, plain log lines otherwise (CI, pipes, files)."""

from __future__ import annotations

import sys
import time
from typing import Any, Optional, TextIO

from archsearch.core import Trial, TrialState


def _fmt(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.4f}"


class Progress:
    def __init__(self, total: int, done: int = 0, stream: Optional[TextIO] = None,
                 live: Optional[bool] = None, quiet: bool = False, label: str = "search") -> None:
        self.stream = stream or sys.stderr
        self.total, self.done = total, done
        self.quiet = quiet
        self.live = (self.stream.isatty() if live is None else live) and not quiet
        self.best: Optional[float] = None
        self.start = time.monotonic()
        self._bar: Any = None
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress
            from rich.progress import TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._bar = RichProgress(
                TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[what]} {task.fields[best]}"), TimeElapsedColumn(), TextColumn("ETA"),
                TimeRemainingColumn(), console=Console(file=self.stream), transient=False,
            )
            self._task = self._bar.add_task(label, total=total, completed=done, best="-",
                                            what="valid" if label != "search" else "best")
            self._bar.start()

    def message(self, text: str) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.console.print(text)
        else:
            print(text, file=self.stream, flush=True)

    def trial(self, trial: Trial, best: Optional[float]) -> None:
        self.best = best
        if trial.state is TrialState.COMPLETE:
            self.done += 1
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, best=_fmt(best))
            if trial.state is TrialState.FAILED:
                self._bar.console.print(f"trial {trial.number} failed: {(trial.error or '').splitlines()[0]}")
            return
        if self.quiet:
            return
        elapsed = time.monotonic() - self.start
        if trial.state is TrialState.COMPLETE:
            eta = elapsed / max(self.done, 1) * (self.total - self.done)
            print(f"trial {trial.number:>4} complete  reward {_fmt(trial.reward)}  best {_fmt(best)}  "
                  f"[{self.done}/{self.total}] elapsed {elapsed:.0f}s eta {eta:.0f}s  {trial.arch}",
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

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
