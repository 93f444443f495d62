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


def checked_card(model_id: str) -> Any:
    """``model_id``'s card after checking its checkpoint: shipped in ``models/``, the card's sha256,
    within the issues' 15 MiB budget."""
    import hashlib
    from pathlib import Path

    from segviewer.adapters.registry import get_card, models_dir

    card = get_card(model_id)
    path = Path(card.extra["checkpoint_path"])
    assert path.is_file() and path.parent == models_dir().resolve()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == card.sha256
    assert path.stat().st_size <= 15 * 2**20
    return card
