"""The start-up path of ``predict``: what loading each bundled model imports.

A plain ``import torchvision`` also imports TorchDynamo (about 1.2 s, as long as torch itself);
every bundled model must load and predict without it, and the torch-only nets without torchvision.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from segviewer.adapters.registry import list_cards

_FRESH = """
import dataclasses, hashlib, sys
import numpy as np
if sys.argv[1] == "plain":  # torchvision as a plain import would give it (TorchDynamo and all)
    import torchvision  # noqa: F401
from segviewer.adapters.registry import create_adapter
from segviewer.adapters.shapes import PLAIN_TORCH_KINDS
from segviewer.synth.generate import generate_scene


def digest(value):
    h = hashlib.sha256()
    for f in dataclasses.fields(value):
        v = getattr(value, f.name)
        if dataclasses.is_dataclass(v):
            h.update(digest(v).encode())
        elif isinstance(v, np.ndarray):
            h.update(f.name.encode() + np.ascontiguousarray(v).tobytes())
    return h.hexdigest()


image = generate_scene(7, (120, 160)).image
adapters = [create_adapter(m) for m in sys.argv[2:]]
plain = [a for a in adapters if getattr(a, "model_kind", None) in PLAIN_TORCH_KINDS]
assert plain, "no torch-only bundled net"
for a in plain + [a for a in adapters if a not in plain]:
    a.load("cpu")
    print(a.card.id, digest(a.predict(image)))
    if sys.argv[1] == "quick":
        assert "torch._dynamo" not in sys.modules, f"{a.card.id} imported TorchDynamo"
        if a in plain:
            assert "torchvision" not in sys.modules, f"{a.card.id} imported torchvision"
"""


def _run_ok(code: str) -> None:
    """Run ``code`` in a fresh interpreter; it must print OK."""
    r = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "OK", r.stderr[-3000:]


def _bundled_ids() -> list[str]:
    """Bundled models whose weights are present (a card may land before its checkpoint)."""
    from pathlib import Path

    return [c.id for c in list_cards() if c.weights_source == "bundled"
            and Path(str(c.extra.get("checkpoint_path", ""))).is_file()]


@pytest.mark.slow  # two fresh interpreters load and run every bundled model: 10-30 s
def test_every_bundled_model_loads_and_predicts_without_torchdynamo_and_the_same_outputs() -> None:
    ids = _bundled_ids()
    assert {"shapes_fcn", "shapes_maskrcnn", "shapes_yolo", "shapes_centernet"} <= set(ids)
    out = {}
    for how in ("quick", "plain"):
        r = subprocess.run([sys.executable, "-c", _FRESH, how, *ids], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        out[how] = dict(line.split() for line in r.stdout.splitlines())
    assert sorted(out["quick"]) == sorted(ids)
    assert out["quick"] == out["plain"]  # the quick import changes no prediction


_LEAN = """
import io, sys
from segviewer.adapters.runtime import import_torchvision
tv = import_torchvision()
put_off = [m for m in ("torch.onnx", "torchvision.datasets", "torch._dynamo") if m in sys.modules]
assert not put_off, f"imported with torchvision: {put_off}"
assert tv.datasets.CocoDetection.__module__ == "torchvision.datasets.coco"  # the real package, on first use
from torchvision.datasets import VOCSegmentation  # noqa: F401
import torch
from torchvision.ops import roi_align

class Net(torch.nn.Module):
    def forward(self, x, boxes):
        return roi_align(x, boxes, output_size=2, aligned=True)

buf = io.BytesIO()  # torchvision's ONNX rule for roi_align, registered once torch.onnx was imported
torch.onnx.export(Net(), (torch.rand(1, 1, 8, 8), torch.tensor([[0, 0.0, 0.0, 4.0, 4.0]])), buf,
                  dynamo=False, opset_version=16)
assert b"RoiAlign" in buf.getvalue()
print("OK")
"""


def test_torchvision_import_puts_off_datasets_and_onnx_rules_until_used() -> None:
    _run_ok(_LEAN)


_MODELS_LAZY = """
import subprocess, sys
from segviewer.adapters.runtime import import_torchvision
tv = import_torchvision()
families = ("torchvision.models.convnext", "torchvision.models.quantization", "torchvision.models.video")
assert not [m for m in families if m in sys.modules], "torchvision.models' __init__ ran"
assert "torchvision.models.detection" in sys.modules and tv.models.detection.MaskRCNN
assert tv.models.video.__name__ == "torchvision.models.video"  # a submodule, imported on its own
assert "torchvision.models.convnext" not in sys.modules
from torchvision.models import *  # noqa: F403 - the first other name runs the real __init__
names = sorted(list_models())  # noqa: F405
assert "torchvision.models.convnext" in sys.modules and callable(resnet50)  # noqa: F405
assert not hasattr(tv.models, "no_such_model") and "get_model" in dir(tv.models)
assert "__getattr__" not in vars(tv.models)
plain = subprocess.run([sys.executable, "-W", "ignore", "-c",
                        "import torchvision.models as m; print(' '.join(sorted(m.list_models())))"],
                       capture_output=True, text=True, check=True).stdout.split()
assert names == plain, (len(names), len(plain))
from torchvision.models import get_model
assert type(get_model("resnet18", weights=None)).__name__ == "ResNet"
print("OK")
"""


def test_torchvision_models_init_runs_only_when_a_name_beyond_its_submodules_is_asked() -> None:
    _run_ok(_MODELS_LAZY)


_MODELS_LAZY_NAMES = """
import sys
from segviewer.adapters.runtime import import_torchvision
tv = import_torchvision()
import torchvision.models.quantization  # a submodule; it imports torchvision.models.googlenet, binding it
from torchvision.models import alexnet, googlenet  # the real __init__ binds these to functions, not modules
assert callable(alexnet) and callable(googlenet) and callable(tv.models.googlenet), (alexnet, googlenet)
assert type(alexnet(weights=None)).__name__ == "AlexNet"
assert tv.models.resnet.__name__ == "torchvision.models.resnet"  # a module in a plain import too
assert "torchvision.models.convnext" not in sys.modules, "the real __init__ ran"
assert getattr(tv.models, "no.such", None) is None  # not an identifier: no submodule import tried
print("OK")
"""


def test_lazy_torchvision_models_reads_star_exported_submodule_names_as_a_plain_import_binds_them() -> None:
    _run_ok(_MODELS_LAZY_NAMES)


_MODELS_LAZY_THREADS = """
import importlib.abc, sys, threading, time
from segviewer.adapters.runtime import import_torchvision
tv = import_torchvision()
started, release = threading.Event(), threading.Event()

class Gate(importlib.abc.MetaPathFinder):  # holds the real __init__ half way (before get_model is bound)
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision.models.swin_transformer":
            started.set()
            release.wait(60)
        return None

sys.meta_path.insert(0, Gate())
got = {}

def ask(key, what):
    try:
        got[key] = what()
    except Exception as e:
        got[key] = e

a = threading.Thread(target=ask, args=("a", lambda: tv.models.list_models()))
a.start()
assert started.wait(60)
b = threading.Thread(target=ask, args=("b", lambda: tv.models.get_model))
c = threading.Thread(target=ask, args=("c", lambda: __import__("torchvision.models", fromlist=["WeightsEnum"]).WeightsEnum))
b.start(); c.start()
time.sleep(0.3)  # b and c now ask while the __init__ is half done
release.set()
for t in (a, b, c):
    t.join(60)
assert "resnet18" in got["a"], got
assert callable(got["b"]) and got["b"].__name__ == "get_model", got
assert got["c"].__name__ == "WeightsEnum", got
print("OK")
"""


def test_lazy_torchvision_models_other_threads_wait_for_the_real_init_instead_of_seeing_it_half_done() -> None:
    _run_ok(_MODELS_LAZY_THREADS)
