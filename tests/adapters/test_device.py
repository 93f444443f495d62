"""Device choice: best available by default; an explicit but unavailable choice is an error."""

from __future__ import annotations

import pytest
import torch

from segviewer.adapters.device import available_devices, resolve_device
from segviewer.core.errors import SegviewerError


def test_auto_picks_the_best_available() -> None:
    devs = available_devices()
    assert devs[-1] == "cpu"
    assert resolve_device(None) == resolve_device("auto") == devs[0]
    assert ("cuda" in devs) == torch.cuda.is_available()


def test_cpu_always_works() -> None:
    assert resolve_device("cpu") == resolve_device(" CPU ") == "cpu"


def test_unknown_and_unavailable_devices_are_refused() -> None:
    with pytest.raises(SegviewerError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(SegviewerError, match="cuda:99"):
        resolve_device("cuda:99")
    if not torch.cuda.is_available():
        with pytest.raises(SegviewerError, match="CUDA is not available"):
            resolve_device("cuda")
    else:
        assert resolve_device("cuda") == "cuda" and resolve_device("cuda:0") == "cuda:0"
