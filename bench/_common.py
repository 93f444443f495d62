"""Shared benchmark helpers: a timing loop, thread pinning and plain-text tables.

Benchmarks run on a shared machine: pin threads the same way for us and for peers, time each
candidate interleaved with the others (so a burst of load hits them all), and report medians.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["pin_threads", "time_ms", "time_both", "time_interleaved", "table", "machine_line"]


def pin_threads(n: int) -> None:
    """Give OpenCV and torch (when installed) ``n`` threads each, so no candidate gets more cores."""
    import cv2

    cv2.setNumThreads(n)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(n)


def time_ms(fn: Callable[[], Any], repeats: int = 20, warmup: int = 2) -> list[float]:
    """Wall-clock milliseconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def time_both(fns: Mapping[str, Callable[[], Any]], repeats: int = 20, warmup: int = 2,
              budget_s: float | None = None, interleave: bool = False) -> dict[str, tuple[float, float]]:
    """Median ``(wall ms, CPU ms)`` per candidate.

    By default each candidate runs its ``warmup`` and ``repeats`` calls back to back (warm
    caches, the usual way to time a kernel); ``interleave=True`` times them round-robin, one call
    each per round, so each call starts with caches the others have stirred. CPU time is the
    process's (all threads), so it is robust to other jobs on a shared machine without
    flattering multi-threaded candidates. ``budget_s`` stops a candidate early (after at least
    3 timed calls) once its own wall time exceeds the budget, so one slow peer cannot stretch
    the run.
    """
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}

    def once(k: str) -> None:
        if budget_s is not None and len(wall[k]) >= 3 and sum(wall[k]) / 1000.0 > budget_s:
            return
        c0, t0 = time.process_time(), time.perf_counter()
        fns[k]()
        t1, c1 = time.perf_counter(), time.process_time()
        wall[k].append((t1 - t0) * 1000.0)
        cpu[k].append((c1 - c0) * 1000.0)

    if interleave:
        for fn in fns.values():
            for _ in range(warmup):
                fn()
        for _ in range(repeats):
            for k in fns:
                once(k)
    else:
        for k, fn in fns.items():
            for _ in range(warmup):
                fn()
            for _ in range(repeats):
                once(k)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in fns}


def time_interleaved(fns: Mapping[str, Callable[[], Any]], repeats: int = 20, warmup: int = 2,
                     budget_s: float | None = None, clock: str = "wall") -> dict[str, float]:
    """Median milliseconds per candidate (``clock`` "wall" or "cpu"), timed round-robin; see :func:`time_both`."""
    both = time_both(fns, repeats, warmup, budget_s, interleave=True)
    return {k: v[0] if clock == "wall" else v[1] for k, v in both.items()}


def table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    """A left-aligned plain-text table (floats with 3 significant decimals)."""
    def fmt(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    cells = [[fmt(v) for v in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join([line, sep, *body])


def machine_line() -> str:
    """One line naming the machine and its load, to print beside results."""
    try:
        load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        load = "n/a"
    return f"{platform.processor() or platform.machine()} · {os.cpu_count()} CPUs · load avg {load}"
