"""Per-stage wall-clock timings (decode, preprocess, model, postprocess, render) for the status bar."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Timings(dict[str, float]):
    """Seconds per stage name; stages that run twice add up."""

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - t0

    def summary(self) -> str:
        """``decode 3 ms · model 120 ms`` in insertion order."""
        return " · ".join(f"{k} {v * 1000:.0f} ms" for k, v in self.items())
