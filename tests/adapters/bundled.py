"""A bundled model loaded once per test module, on one thread, with its forward passes counted
(tests that promise "one pass" read ``adapter.passes``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def counted_adapter(model_id: str) -> Iterator[Any]:
    """Generator body of a module-scoped fixture: ``yield from counted_adapter("shapes_yolo")``."""
    import torch

    from segviewer.adapters.registry import create_adapter

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    ad = create_adapter(model_id)
    ad.load("cpu")
    passes: list[int] = []
    ad.module.register_forward_pre_hook(lambda *_: passes.append(1))
    ad.passes = passes
    try:
        yield ad
    finally:
        torch.set_num_threads(n)
