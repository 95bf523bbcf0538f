"""What a trial used, measured in the process that ran it: peak resident memory and CPU seconds.

Linux only for memory: the kernel keeps a process's resident high-water mark (``VmHWM``) and
lets the process reset it (``/proc/self/clear_refs``), so a worker that runs many trials still
reports each trial's own peak. Where the reset is refused, the peak since the process started
(``ru_maxrss``) is all there is: it is reported under another name, ``process_peak_rss_mb``,
because it may belong to an earlier trial. Elsewhere no memory figure is reported.
"""

from __future__ import annotations

import os
import re
import sys
import time
from typing import Optional, Union

LINUX = sys.platform.startswith("linux")


def status_kb(field: str, pid: Union[int, str] = "self") -> Optional[int]:
    """A ``kB`` field (``VmHWM``, ``VmSize``, ...) of ``/proc/PID/status``; None when unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            match = re.search(rf"^{field}:\s+(\d+)\s+kB", f.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def reset_peak_rss() -> bool:
    """Reset this process's resident high-water mark; False where the kernel refuses."""
    if not LINUX:
        return False
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def process_cpu_s(pid: int) -> Optional[float]:
    """CPU seconds (user + system, all threads) another process has used; None when unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class ResourceMeter:
    """Started just before a trial, read just after it (whatever its outcome)."""

    def __init__(self) -> None:
        self.cpu_start = time.process_time()
        self.reset = reset_peak_rss()
        self.rss_start = status_kb("VmRSS") if self.reset else None  # the high-water mark starts here

    def metrics(self) -> dict[str, float]:
        out = {"cpu_s": time.process_time() - self.cpu_start}
        if not LINUX:
            return out
        peak = status_kb("VmHWM") if self.reset else None
        if peak is not None:
            out["peak_rss_mb"] = peak / 1024
            if self.rss_start is not None:  # what the trial added on top of the process it ran in
                out["trial_rss_mb"] = max(0, peak - self.rss_start) / 1024
        else:
            import resource

            out["process_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return out


def usage_of(pid: int, cpu_start: Optional[float]) -> dict[str, float]:
    """What a trial running in worker ``pid`` has used so far (read before the worker is killed):
    its peak since the worker reset it at the trial's start, its CPU seconds since ``cpu_start``."""
    out: dict[str, float] = {}
    cpu = process_cpu_s(pid)
    if cpu is not None and cpu_start is not None:
        out["cpu_s"] = max(0.0, cpu - cpu_start)
    peak = status_kb("VmHWM", pid)
    if peak is not None:
        out["peak_rss_mb"] = peak / 1024
    return out


def limit_address_space(extra_bytes: int) -> None:
    """Let this process map at most ``extra_bytes`` more than it has now (``RLIMIT_AS``): an
    allocation past it fails with an out-of-memory error instead of waking the kernel's OOM killer."""
    import resource

    size_kb = status_kb("VmSize")
    if size_kb is None:
        return
    limit = size_kb * 1024 + extra_bytes
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
