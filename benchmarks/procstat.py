"""CPU time of processes from Linux's /proc, for the benchmarks' CPU-per-cycle columns
(elsewhere every figure reads as 0)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class ProcCpu(NamedTuple):
    ppid: int
    name: str
    cpu_s: float  # user + system time of the process itself
    reaped_s: float  # the same, of the children it has waited for (ended ones)


def proc_cpu(pid: int) -> ProcCpu | None:
    """One process's CPU seconds so far; ``None`` once it has ended."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return ProcCpu(int(fields[1]), text[text.index("(") + 1:text.rindex(")")],
                   (int(fields[11]) + int(fields[12])) / _TICK,
                   (int(fields[13]) + int(fields[14])) / _TICK)


def all_processes() -> dict[int, ProcCpu]:
    table = {}
    for entry in Path("/proc").glob("[0-9]*"):
        found = proc_cpu(int(entry.name))
        if found is not None:
            table[int(entry.name)] = found
    return table
