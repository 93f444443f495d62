"""adapters.runtime: torchvision without TorchDynamo, building without random weights, thread counts."""

from __future__ import annotations

import subprocess
import sys

import cv2
import pytest
import torch

from segviewer.adapters.registry import create_adapter
from segviewer.adapters.runtime import no_weight_init, set_threads

_FRESH = """
import sys
from segviewer.adapters.runtime import import_torchvision
import_torchvision()
assert "torchvision.ops" in sys.modules and "torchvision.models.detection" in sys.modules
assert "torch._dynamo" not in sys.modules, "TorchDynamo was imported"
import torch
from torchvision.ops import roi_align
x = torch.arange(16.0).reshape(1, 1, 4, 4)
out = roi_align(x, [torch.tensor([[0.0, 0.0, 3.0, 3.0]])], output_size=2, aligned=True)
assert out.shape == (1, 1, 2, 2)
import torch._dynamo  # the real package, complete, once something asks for it
assert callable(torch._dynamo.reset) and type(sys.modules["torch._dynamo.utils"]).__name__ == "module"
from segviewer.adapters.runtime import _lazy_is_compile_supported
assert _lazy_is_compile_supported("cpu") in (True, False)
print("OK")
"""


def test_import_torchvision_skips_dynamo_in_a_fresh_interpreter() -> None:
    r = subprocess.run([sys.executable, "-c", _FRESH], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and r.stdout.strip() == "OK", r.stderr[-2000:]


def test_no_weight_init_draws_no_random_numbers_and_is_undone() -> None:
    torch.manual_seed(3)
    before = torch.get_rng_state()
    with no_weight_init():
        torch.nn.Conv2d(8, 8, 3)
        torch.nn.Linear(8, 4)
    assert torch.equal(torch.get_rng_state(), before)
    torch.nn.Linear(8, 4)
    assert not torch.equal(torch.get_rng_state(), before)


def test_bundled_maskrcnn_loads_exactly_its_checkpoint() -> None:
    from segviewer.training import checkpoint

    ad = create_adapter("shapes_maskrcnn")
    ad.load("cpu")
    state = checkpoint.load(ad.weights_path)["state_dict"]
    own = ad.module.state_dict()
    assert set(own) == set(state)
    for k, v in own.items():
        assert torch.equal(v, state[k].to(v.dtype)), k


def test_random_init_still_draws_weights() -> None:
    """--random-init (no checkpoint) must not build from uninitialised memory."""
    torch.manual_seed(0)
    a = create_adapter("shapes_unet", random_init=True)
    a.load("cpu")
    torch.manual_seed(0)
    b = create_adapter("shapes_unet", random_init=True)
    b.load("cpu")
    for (k, v), w in zip(a.module.state_dict().items(), b.module.state_dict().values()):
        assert torch.equal(v, w), k


def test_set_threads() -> None:
    before, cv_before = torch.get_num_threads(), cv2.getNumThreads()
    try:
        set_threads(1)
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
        with pytest.raises(ValueError):
            set_threads(0)
    finally:
        torch.set_num_threads(before)
        cv2.setNumThreads(cv_before)
