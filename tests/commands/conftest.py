"""Shared set-up of the command tests that run bundled models."""

from __future__ import annotations

import pytest


@pytest.fixture
def offline_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """No weight downloads (the bundled models only) and one torch thread (the 2-core CI machine).
    torch is imported here, not at the top, so command tests without a model don't pay for it."""
    import torch

    monkeypatch.setenv("SEGVIEWER_OFFLINE", "1")
    torch.set_num_threads(1)
