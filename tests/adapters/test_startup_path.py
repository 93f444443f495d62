"""The start-up path of ``predict``: what loading each bundled model imports.

A plain ``import torchvision`` also imports TorchDynamo (about 1.2 s, as long as torch itself);
every bundled model must load and predict without it, and the torch-only nets without torchvision.
"""

from __future__ import annotations

import subprocess
import sys

from segviewer.adapters.registry import list_cards

_FRESH = """
import sys
import numpy as np
from segviewer.adapters.registry import create_adapter
from segviewer.adapters.shapes import PLAIN_TORCH_KINDS

image = (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)
adapters = [create_adapter(m) for m in sys.argv[1:]]
plain = [a for a in adapters if getattr(a, "model_kind", None) in PLAIN_TORCH_KINDS]
assert plain, "no torch-only bundled net"
for a in plain + [a for a in adapters if a not in plain]:
    a.load("cpu")
    a.predict(image)
    assert "torch._dynamo" not in sys.modules, f"{a.card.id} imported TorchDynamo"
    if a in plain:
        assert "torchvision" not in sys.modules, f"{a.card.id} imported torchvision"
print("OK", len(adapters))
"""


def _bundled_ids() -> list[str]:
    """Bundled models whose weights are present (a card may land before its checkpoint)."""
    from pathlib import Path

    return [c.id for c in list_cards() if c.weights_source == "bundled"
            and Path(str(c.extra.get("checkpoint_path", ""))).is_file()]


def test_every_bundled_model_loads_and_predicts_without_torchdynamo() -> None:
    ids = _bundled_ids()
    assert {"shapes_fcn", "shapes_maskrcnn", "shapes_yolo", "shapes_centernet"} <= set(ids)
    r = subprocess.run([sys.executable, "-c", _FRESH, *ids], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.startswith("OK"), r.stderr[-3000:]
    assert r.stdout.split() == ["OK", str(len(ids))]


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
    r = subprocess.run([sys.executable, "-W", "ignore", "-c", _LEAN], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "OK", r.stderr[-3000:]
