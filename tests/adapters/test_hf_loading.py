"""Loading transformers checkpoints: --weights DIR, the HF cache offline, the one-sentence refusal
when neither is there, and never running code that a checkpoint carries."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from segviewer.adapters import registry
from segviewer.adapters.hf_loading import cached_snapshot, check_checkpoint_dir, hf_cache_dir
from segviewer.core.errors import CheckpointMismatchError, SegviewerError, WeightsUnavailableError
from tests.adapters import hf_tiny


@pytest.fixture(autouse=True)
def _hf_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(scope="module")
def segformer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hf_tiny.segformer(tmp_path_factory.mktemp("hf") / "segformer")


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_checkpoint_carrying_code_is_refused_and_its_code_never_runs(segformer_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "code_ran"
    bad = _copy(segformer_dir, tmp_path / "custom")
    cfg = json.loads((bad / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForSemanticSegmentation": "modeling_evil.EvilModel"}
    (bad / "config.json").write_text(json.dumps(cfg))
    (bad / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    ad = registry.create_adapter("segformer_b0_ade")
    with pytest.raises(CheckpointMismatchError) as err:
        ad.load("cpu", bad)
    msg = str(err.value)
    assert "carries its own Python code" in msg and "auto_map in config.json" in msg and "modeling_evil.py" in msg
    assert "never runs code from a checkpoint" in msg and "\n" not in msg
    assert not marker.exists() and not ad.loaded
    # a .py file alone (no auto_map) is refused as well
    cfg.pop("auto_map")
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointMismatchError, match=r"modeling_evil.py"):
        ad.load("cpu", bad)


def test_pickled_weights_load_only_through_weights_only(segformer_dir: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    folder = _copy(segformer_dir, tmp_path / "bin")
    state = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    ad = registry.create_adapter("segformer_b0_ade")
    ad.load("cpu", folder)  # plain tensors: fine
    img = np.full((20, 30, 3), 90, np.uint8)
    ref = registry.create_adapter("segformer_b0_ade")
    ref.load("cpu", segformer_dir)
    np.testing.assert_array_equal(ad.predict(img).labels, ref.predict(img).labels)

    marker = tmp_path / "pickle_ran"

    class Evil:
        def __reduce__(self) -> tuple:
            return (open, (str(marker), "w"))

    torch.save({**state, "evil": Evil()}, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointMismatchError, match=r"could not be loaded as segformer_b0_ade"):
        registry.create_adapter("segformer_b0_ade").load("cpu", folder)
    assert not marker.exists()


def test_missing_tensors_and_other_families_are_refused(segformer_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    folder = _copy(segformer_dir, tmp_path / "partial")
    state = load_file(str(folder / "model.safetensors"))
    gone = sorted(k for k in state if k.startswith("decode_head.classifier"))[0]
    del state[gone]
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointMismatchError, match=rf"tensor {gone} is missing from the checkpoint"):
        registry.create_adapter("segformer_b0_ade").load("cpu", folder)
    with pytest.raises(CheckpointMismatchError,
                       match=r"is a segformer checkpoint; detr_resnet50 loads detr checkpoints \(--model segformer_b0_ade does\)"):
        registry.create_adapter("detr_resnet50").load("cpu", segformer_dir)
    with pytest.raises(WeightsUnavailableError, match=r"is a file; .* pass that folder to --weights"):
        registry.create_adapter("segformer_b0_ade").load("cpu", segformer_dir / "model.safetensors")
    with pytest.raises(CheckpointMismatchError, match=r"no config.json"):
        registry.create_adapter("segformer_b0_ade").load("cpu", tmp_path)


def _cache_snapshot(src: Path, repo: str) -> Path:
    """``src`` laid out as huggingface_hub caches a download of ``repo``."""
    root = hf_cache_dir() / ("models--" + repo.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    return _copy(src, root / "snapshots" / commit)


def test_hf_cache_is_read_offline_and_reloading_gives_the_same_result(segformer_dir: Path) -> None:
    card = registry.get_card("segformer_b0_ade")
    repo = card.extra["hf_repo"]
    assert registry.weight_state(card) == "needs download"
    snap = _cache_snapshot(segformer_dir, repo)
    assert cached_snapshot(repo) == snap and registry.weight_state(card) == "cached"
    ad = registry.create_adapter("segformer_b0_ade")
    ad.load("cpu")
    assert ad.weights_path == snap and ad.card.categories == hf_tiny.CATS
    img = np.random.default_rng(1).integers(0, 255, (33, 47, 3), dtype=np.uint8)
    other = registry.create_adapter("segformer_b0_ade")
    other.load("cpu", segformer_dir)
    np.testing.assert_array_equal(ad.predict(img).labels, other.predict(img).labels)


def test_nothing_cached_and_offline_is_one_sentence_like_torchvisions(monkeypatch: pytest.MonkeyPatch) -> None:
    ad = registry.create_adapter("mask2former_swin_tiny_coco_panoptic")
    with pytest.raises(WeightsUnavailableError) as err:
        ad.load("cpu")
    msg = str(err.value)
    assert msg.startswith("mask2former_swin_tiny_coco_panoptic needs the Hugging Face checkpoint "
                          "facebook/mask2former-swin-tiny-coco-panoptic, which is not in ")
    assert str(hf_cache_dir()) in msg and "downloads are off" in msg and "--weights DIR" in msg
    assert "segviewer models" in msg and "\n" not in msg
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(WeightsUnavailableError, match="downloads are off"):  # SEGVIEWER_OFFLINE=1 (conftest)
        ad.load("cpu")
    monkeypatch.setenv("SEGVIEWER_OFFLINE", "0")
    with pytest.raises(WeightsUnavailableError, match="downloads are off"):
        ad.load("cpu", allow_download=False)  # predict --no-download


def test_missing_extra_is_named_by_the_registry_and_models_command(monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str],
                                                                     tmp_path: Path) -> None:
    import importlib.util

    from segviewer.cli import main

    (tmp_path / "exported.toml").write_text(  # an ONNX card among the bundled ones
        'id = "exported"\ntask = "detection"\nfamily = "an export"\ncategories = ["a"]\n'
        'adapter = "segviewer.adapters.onnx_runtime:OnnxAdapter"\ncheckpoint = "exported.onnx"\n'
        '[onnx]\nlayout = "detection"\n')
    monkeypatch.setenv("SEGVIEWER_MODELS", str(tmp_path))

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("transformers", "onnxruntime") else real(name, *a))
    card = registry.get_card("detr_resnet50")
    assert registry.missing_extra(card) == "transformers"
    with pytest.raises(SegviewerError, match=r"detr_resnet50 needs the transformers extra, which is not installed: "
                                              r"pip install 'segviewer\[transformers\]'"):
        registry.create_adapter("detr_resnet50")
    assert main(["models", "--task", "detection"]) == 0
    rows = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines() if ln.strip()}
    for mid in ("detr_resnet50", "rtdetr_r50vd"):
        assert "needs the transformers extra" in rows[mid]
    assert "needs the transformers extra" not in rows["fasterrcnn_resnet50_fpn"]
    assert "needs the onnx extra" in rows["exported"]
    with pytest.raises(SegviewerError, match=r"exported needs the onnx extra, which is not installed"):
        registry.create_adapter("exported")


def test_listing_imports_neither_torch_nor_transformers(tmp_path: Path) -> None:
    registry.list_cards()  # fills the torchvision zoo's metadata cache, as a first listing does
    code = ("import sys; from segviewer.adapters import registry as r; "
            "[r.weight_state(c) for c in r.list_cards()]; print(sorted({'torch', 'transformers'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_check_checkpoint_dir_returns_the_config(segformer_dir: Path) -> None:
    cfg = check_checkpoint_dir(segformer_dir, ("segformer",), "x")
    assert cfg["model_type"] == "segformer" and cfg["id2label"]["0"] == "cat"


def test_random_init_builds_the_reference_architecture() -> None:
    ad = registry.create_adapter("segformer_b0_ade", random_init=True)
    ad.load("cpu")
    assert ad.weights_path is None and len(ad.card.categories) == 150
    assert sum(p.numel() for p in ad.module.parameters()) > 3_000_000  # MiT-B0, not a toy
    res = ad.predict(np.zeros((40, 60, 3), np.uint8))
    assert res.labels.shape == (40, 60)
