"""What a server process costs, read from /proc (Linux only).

CPU time is utime + stime from /proc/<pid>/stat (proc(5) fields 14 and 15, in clock ticks,
summed over every thread of the process); memory is VmHWM / VmRSS from /proc/<pid>/status.
Writing "5" to /proc/<pid>/clear_refs resets VmHWM to the current RSS (Linux >= 4.0), so
one server process can report a separate peak for each run.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Spread", "cpu_seconds", "cpu_split", "memory_kib", "reset_peak_rss", "spread"]

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds the process has used so far (all its threads)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) / _TICKS, int(fields[12]) / _TICKS


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (all its threads)."""
    user, system = cpu_split(pid)
    return user + system


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of the process, in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS; False when the kernel refuses."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Spread:
    """Median with the min and max of repeated measurements."""

    median: float
    low: float
    high: float
    n: int


def spread(values: list[float]) -> Spread:
    """Median, min and max of at least one measurement."""
    return Spread(statistics.median(values), min(values), max(values), len(values))
