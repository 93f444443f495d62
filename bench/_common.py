"""Shared benchmark helpers: a timing loop, thread pinning, ratios and plain-text tables.

Benchmarks run on a shared machine: pin threads the same way for us and for peers, time each
candidate interleaved with the others (A B A B ..., so a burst of load hits them all), report
medians, and print the load average beside the numbers. :func:`ratio` refuses to compare
candidates that were not timed interleaved in the same run.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

# The benchmarks time the checkout they live in, installed or not.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(1, _ROOT)

__all__ = ["pin_threads", "time_ms", "time_both", "time_interleaved", "Timings", "NotInterleaved", "ratio",
           "table", "machine_line", "load_line"]


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


class NotInterleaved(RuntimeError):
    """A ratio was asked of candidates that were not timed alternately in one run."""


class Timings(dict):
    """``name -> (median wall ms, median CPU ms)``, with how they were taken.

    ``interleaved`` is True only when every candidate was timed once per round, round after
    round (A B A B ...), the same number of times; ``walls``/``cpus`` keep every sample.
    """

    def __init__(self, medians: Mapping[str, tuple[float, float]], interleaved: bool,
                 walls: Mapping[str, list[float]], cpus: Mapping[str, list[float]]) -> None:
        super().__init__(medians)
        self.interleaved = interleaved
        self.walls = {k: list(v) for k, v in walls.items()}
        self.cpus = {k: list(v) for k, v in cpus.items()}

    def spread(self, name: str) -> tuple[float, float]:
        """(min, max) wall ms of one candidate's samples."""
        return min(self.walls[name]), max(self.walls[name])


def time_both(fns: Mapping[str, Callable[[], Any]], repeats: int = 20, warmup: int = 2,
              budget_s: float | None = None, interleave: bool = True) -> Timings:
    """Median ``(wall ms, CPU ms)`` per candidate.

    By default candidates are timed round-robin, one call each per round (A B A B ...), so a
    burst of load from other jobs hits them all; ``interleave=False`` runs each candidate's
    calls back to back instead (warm caches, the usual way to time a kernel), and
    :func:`ratio` then refuses to compare them. CPU time is the process's (all threads), so it
    is robust to other jobs on a shared machine without flattering multi-threaded candidates.
    ``budget_s`` ends the rounds early (after at least 3) once they took ``budget_s`` seconds
    per candidate, every candidate keeping the same number of calls.
    """
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}

    def once(k: str) -> None:
        c0, t0 = time.process_time(), time.perf_counter()
        fns[k]()
        t1, c1 = time.perf_counter(), time.process_time()
        wall[k].append((t1 - t0) * 1000.0)
        cpu[k].append((c1 - c0) * 1000.0)

    if interleave:
        for fn in fns.values():
            for _ in range(warmup):
                fn()
        for r in range(repeats):
            if budget_s is not None and r >= 3 and sum(map(sum, wall.values())) / 1000.0 > budget_s * len(fns):
                break
            for k in fns:
                once(k)
    else:
        for k, fn in fns.items():
            for _ in range(warmup):
                fn()
            for _ in range(repeats):
                if budget_s is not None and len(wall[k]) >= 3 and sum(wall[k]) / 1000.0 > budget_s:
                    break
                once(k)
    counts = {len(v) for v in wall.values()}
    return Timings({k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in fns},
                   interleaved=interleave and len(counts) == 1, walls=wall, cpus=cpu)


def time_interleaved(fns: Mapping[str, Callable[[], Any]], repeats: int = 20, warmup: int = 2,
                     budget_s: float | None = None, clock: str = "wall") -> dict[str, float]:
    """Median milliseconds per candidate (``clock`` "wall" or "cpu"), timed round-robin; see :func:`time_both`."""
    both = time_both(fns, repeats, warmup, budget_s, interleave=True)
    return {k: v[0] if clock == "wall" else v[1] for k, v in both.items()}


def ratio(timings: Timings, slower: str, faster: str, clock: str = "wall") -> float:
    """How many times ``faster`` is quicker than ``slower`` (median over median).

    Raises :class:`NotInterleaved` unless both were timed alternately in the same run: a ratio
    of candidates timed at different moments on a shared machine measures the other jobs.
    """
    if not getattr(timings, "interleaved", False):
        raise NotInterleaved(f"no ratio: {slower!r} and {faster!r} were not timed interleaved (A B A B ...)")
    k = 0 if clock == "wall" else 1
    return timings[slower][k] / timings[faster][k]


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


def load_line() -> str:
    """The 1, 5 and 15 minute load averages, to print beside results."""
    try:
        return "load avg " + ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "load avg n/a"


def machine_line() -> str:
    """One line naming the machine and its load, to print beside results."""
    return f"{platform.processor() or platform.machine()} · {os.cpu_count()} CPUs · {load_line()}"
