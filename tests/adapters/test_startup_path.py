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
