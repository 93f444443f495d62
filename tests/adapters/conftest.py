"""Adapter tests never touch the network: downloads are off, the hub cache is an empty temp folder,
and ``urlopen`` is replaced so that any attempt to fetch something fails the test loudly."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import numpy as np
import pytest


class NetworkUsed(AssertionError):
    pass


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("torch_home")
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setenv("SEGVIEWER_OFFLINE", "1")
    monkeypatch.setenv("SEGVIEWER_CACHE", str(home / "segviewer_cache"))
    import torch

    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)  # get_dir() follows TORCH_HOME again

    def forbidden(*args: object, **kwargs: object) -> None:
        raise NetworkUsed(f"a test tried to open {args[0] if args else kwargs}")

    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    torch.set_num_threads(1)
    return home


@pytest.fixture
def hub_checkpoints(_no_network: Path) -> Path:
    """The (empty) hub cache folder ``torch.hub.get_dir()/checkpoints`` of this test."""
    import torch

    d = Path(torch.hub.get_dir()) / "checkpoints"
    assert d.parent.parent == _no_network
    return d


@pytest.fixture
def image() -> np.ndarray:
    """A small deterministic RGB image with some structure (not flat noise)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:128]
    img = np.stack([(xx * 2) % 256, (yy * 2) % 256, (xx + yy) % 256], axis=-1).astype(np.float64)
    img += rng.normal(0, 10, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
