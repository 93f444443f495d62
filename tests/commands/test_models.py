"""``segviewer models``: the zoo and bundled cards with their weight state, without building networks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from segviewer.adapters.registry import HF_ZOO, ZOO
from segviewer.cli import main


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("SEGVIEWER_CACHE", str(tmp_path / "cache"))
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("SEGVIEWER_MODELS", str(models))
    import torch

    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    return models


def _card(models: Path, with_checkpoint: bool) -> None:
    (models / "shapes_unet.toml").write_text(textwrap.dedent('''
        id = "shapes_unet"
        task = "semantic"
        family = "U-Net, trained on the shapes world"
        adapter = "segviewer.adapters.shapes:ShapesUNet"
        categories = ["sky", "grass", "circle"]
        checkpoint = "shapes_unet.pt"
    '''))
    if with_checkpoint:
        (models / "shapes_unet.pt").write_bytes(b"w")


def test_table_lists_every_id_with_task_state_and_file(_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _card(_env, with_checkpoint=True)
    cached = tmp_path / "torch_home" / "hub" / "checkpoints"
    cached.mkdir(parents=True)
    (cached / "lraspp_mobilenet_v3_large-d234d4ea.pth").write_bytes(b"w")
    assert main(["models"]) == 0
    lines = {ln.split()[0]: ln.split() for ln in capsys.readouterr().out.splitlines() if ln.strip()}
    for mid in ZOO:
        assert mid in lines
    assert lines["lraspp_mobilenet_v3_large"][1:4] == ["semantic", "cached", "lraspp_mobilenet_v3_large-d234d4ea.pth"]
    assert lines["fcn_resnet50"][1:5] == ["semantic", "needs", "download", "fcn_resnet50_coco-1167a1af.pth"]
    assert lines["shapes_unet"][1:4] == ["semantic", "bundled", "shapes_unet.pt"]


def test_json_and_task_filter_and_bad_cards(_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _card(_env, with_checkpoint=False)
    (_env / "broken.toml").write_text("id = 'broken'\n")
    assert main(["models", "--json", "--task", "semantic"]) == 0
    cap = capsys.readouterr()
    rows = json.loads(cap.out)
    hf_semantic = sum(spec["task"] == "semantic" for spec in HF_ZOO.values())  # SegFormer (transformers)
    assert {r["task"] for r in rows} == {"semantic"} and len(rows) == 7 + hf_semantic
    assert {r["id"]: r["weights"] for r in rows}["shapes_unet"] == "missing"
    assert "broken.toml" in cap.err


def test_models_command_does_not_import_torch_once_the_zoo_is_cached(tmp_path: Path) -> None:
    assert main(["models"]) == 0  # the first listing on a machine fills the cache
    assert any((tmp_path / "cache").glob("torchvision-zoo-*.json"))
    code = "import sys; from segviewer.cli import main; main(['models']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip().splitlines()[-1] == "False"
