"""Weight resolution (user file > hub cache > download), the offline message, checkpoint reading."""

from __future__ import annotations

import argparse
import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from segviewer.adapters import weights as W
from segviewer.adapters.registry import create_adapter, get_card
from segviewer.core.errors import CheckpointMismatchError, SegviewerError, WeightsUnavailableError

URL = "https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_coco-258fb6c6.pth"


def test_offline_message_names_model_file_folder_and_bundled_models(hub_checkpoints: Path) -> None:
    adapter = create_adapter("fasterrcnn_resnet50_fpn")
    with pytest.raises(WeightsUnavailableError) as info:
        adapter.load("cpu")  # urlopen is forbidden by conftest: reaching it would fail differently
    msg = str(info.value)
    assert "\n" not in msg
    assert "fasterrcnn_resnet50_fpn" in msg
    assert "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth" in msg
    assert str(hub_checkpoints) in msg
    assert "SEGVIEWER_OFFLINE=1" in msg and "segviewer models" in msg and "--weights" in msg
    assert not adapter.loaded


def test_explicit_allow_download_false_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGVIEWER_OFFLINE")
    assert W.downloads_allowed() is True
    assert W.downloads_allowed(False) is False
    with pytest.raises(WeightsUnavailableError, match="downloads are off"):
        W.resolve_weights("m", URL, allow_download=False)
    monkeypatch.setenv("SEGVIEWER_OFFLINE", "0")
    assert W.downloads_allowed() is True


def test_failed_download_is_one_sentence(monkeypatch: pytest.MonkeyPatch, hub_checkpoints: Path) -> None:
    def refuse(*a: object, **k: object) -> None:
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(WeightsUnavailableError) as info:
        W.resolve_weights("fasterrcnn_resnet50_fpn", URL, allow_download=True)
    msg = str(info.value)
    assert "could not be downloaded (Temporary failure in name resolution)" in msg
    assert str(hub_checkpoints) in msg and "\n" not in msg
    assert not hub_checkpoints.exists() or not any(hub_checkpoints.iterdir())


def test_hub_dir_without_torch_follows_torch_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert W.hub_checkpoint_dir() == Path(torch.hub.get_dir()) / "checkpoints" == tmp_path / "hub" / "checkpoints"
    import sys

    monkeypatch.delitem(sys.modules, "torch")  # the torch-free branch computes the same folder
    assert W.hub_checkpoint_dir() == tmp_path / "hub" / "checkpoints"


def _served(tmp_path: Path, payload: bytes, good_hash: bool = True) -> str:
    digest = hashlib.sha256(payload).hexdigest()[:8] if good_hash else "deadbeef"
    src = tmp_path / "served" / f"tiny_model-{digest}.pth"
    src.parent.mkdir()
    src.write_bytes(payload)
    return src.as_uri()


def test_download_reports_progress_checks_hash_and_caches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                          hub_checkpoints: Path) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", urllib.request.build_opener().open)  # file:// only here
    payload = bytes(range(256)) * 9000  # > 2 chunks of 1 MiB
    url = _served(tmp_path, payload)
    calls: list[tuple[int, int]] = []
    got = W.resolve_weights("tiny", url, allow_download=True, progress=lambda d, t: calls.append((d, t)))
    assert got == hub_checkpoints / W.weights_file_name(url)
    assert got.read_bytes() == payload
    assert calls[0] == (0, len(payload)) and calls[-1] == (len(payload), len(payload))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and len(calls) >= 3
    # second time: the cache answers, no download (urlopen forbidden again)
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("downloaded twice"))
    assert W.resolve_weights("tiny", url, allow_download=True) == got


def test_download_with_wrong_hash_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                 hub_checkpoints: Path) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", urllib.request.build_opener().open)
    url = _served(tmp_path, b"not the weights", good_hash=False)
    with pytest.raises(WeightsUnavailableError, match="sha256"):
        W.resolve_weights("tiny", url, allow_download=True)
    assert list(hub_checkpoints.iterdir()) == []


def test_user_file_wins_and_missing_user_file_is_named(tmp_path: Path, hub_checkpoints: Path) -> None:
    hub_checkpoints.mkdir(parents=True)
    (hub_checkpoints / W.weights_file_name(URL)).write_bytes(b"x")
    mine = tmp_path / "mine.pth"
    mine.write_bytes(b"y")
    assert W.resolve_weights("m", URL, user_file=mine) == mine
    assert W.resolve_weights("m", URL) == hub_checkpoints / W.weights_file_name(URL)
    with pytest.raises(WeightsUnavailableError, match="nope.pth does not exist"):
        W.resolve_weights("m", URL, user_file=tmp_path / "nope.pth")


@pytest.mark.parametrize("wrap", ["bare", "model", "state_dict", "reference_script", "data_parallel"])
def test_read_state_dict_unwraps_common_layouts(tmp_path: Path, wrap: str) -> None:
    sd = {"a.weight": torch.randn(2, 3), "b.bias": torch.zeros(4)}
    obj: object = {
        "bare": sd,
        "model": {"model": sd, "epoch": 3},
        "state_dict": {"state_dict": sd},
        "reference_script": {"model": sd, "args": argparse.Namespace(lr=0.02, epochs=26), "epoch": 25},
        "data_parallel": {f"module.{k}": v for k, v in sd.items()},
    }[wrap]
    p = tmp_path / "ck.pth"
    torch.save(obj, p)
    got = W.read_state_dict(p)
    assert set(got) == set(sd)
    assert all(torch.equal(got[k], sd[k]) for k in sd)


def test_read_state_dict_refuses_non_checkpoints(tmp_path: Path) -> None:
    p = tmp_path / "junk.pth"
    p.write_bytes(b"this is not a zip or a pickle")
    with pytest.raises(CheckpointMismatchError, match="junk.pth is not a PyTorch checkpoint"):
        W.read_state_dict(p)
    torch.save({"epoch": 3, "note": "no tensors"}, p)
    with pytest.raises(CheckpointMismatchError, match="holds no"):
        W.read_state_dict(p)


def test_check_state_dict_names_first_mismatch() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    good = {k: v.clone() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    W.check_state_dict(model, good, source="ck.pth", model_id="toy")  # counters may be absent
    bad = dict(good, **{"0.weight": torch.zeros(8, 3, 3, 3)})
    with pytest.raises(CheckpointMismatchError, match=r"ck.pth does not fit toy: tensor 0.weight should be \(4, 3, 3, 3\) but is \(8, 3, 3, 3\)"):
        W.check_state_dict(model, bad, source="ck.pth", model_id="toy")
    missing = {k: v for k, v in good.items() if k != "1.running_var"}
    with pytest.raises(CheckpointMismatchError, match=r"tensor 1.running_var \(4,\) is missing"):
        W.check_state_dict(model, missing, source="ck.pth", model_id="toy")
    with pytest.raises(CheckpointMismatchError, match=r"unexpected tensor 2.weight \(1,\)"):
        W.check_state_dict(model, dict(good, **{"2.weight": torch.zeros(1)}), source="ck.pth", model_id="toy")


def test_class_names_file_formats(tmp_path: Path) -> None:
    ck = tmp_path / "ft.pth"
    assert W.read_class_names(ck, 3, background=True)[0] == ("__background__", "class 1", "class 2")
    assert W.read_class_names(ck, 3, background=False)[0] == ("class 0", "class 1", "class 2")
    names = tmp_path / "ft.json"
    names.write_text(json.dumps(["cat", "dog"]))
    cats, kps, used = W.read_class_names(ck, 3, background=True)
    assert cats == ("__background__", "cat", "dog") and kps is None and used == names
    names.write_text(json.dumps({"2": "dog"}))
    assert W.read_class_names(ck, 3, background=True)[0] == ("__background__", "class 1", "dog")
    names.write_text(json.dumps({"categories": ["bg", "a", "b"], "keypoint_names": ["tip", "tail"]}))
    assert W.read_class_names(ck, 3, background=True, num_keypoints=2)[:2] == (("bg", "a", "b"), ("tip", "tail"))
    names.write_text(json.dumps(["a", "b", "c", "d", "e"]))
    with pytest.raises(SegviewerError, match="ft.json lists 5 class names but the checkpoint has 3"):
        W.read_class_names(ck, 3, background=True)
    names.write_text("{not json")
    with pytest.raises(SegviewerError, match="cannot be read"):
        W.read_class_names(ck, 3, background=True)
    names.unlink()
    (tmp_path / "ft.toml").write_text('categories = ["sky", "sea", "sand"]\n')
    assert W.read_class_names(ck, 3, background=False)[0] == ("sky", "sea", "sand")


def test_card_file_name_matches_torchvision_url() -> None:
    card = get_card("fasterrcnn_resnet50_fpn")
    assert card.weights_file == W.weights_file_name(URL) and card.weights_url == URL
