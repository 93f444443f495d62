"""Flow estimators on a known translation, RAFT's plumbing, and the offline weights error."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from segviewer.adapters.flow import DISFlow, FarnebackFlow, RAFTFlow, make_flow_estimator
from segviewer.analysis.flow import endpoint_error
from segviewer.core.errors import SegviewerError, WeightsUnavailableError
from segviewer.core.results import FlowField
from segviewer.core.timing import Timings


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.random((h // 4 + 1, w // 4 + 1, 3)).astype(np.float32)
    img = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def _pair(dx: int, dy: int, h: int = 96, w: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """frame_b is frame_a moved by (dx, dy): content at p in a is at p + (dx, dy) in b."""
    big = _texture(h + 40, w + 40)
    a = big[20 : 20 + h, 20 : 20 + w]
    b = big[20 - dy : 20 - dy + h, 20 - dx : 20 - dx + w]
    gt = np.zeros((h, w, 2), np.float32)
    gt[..., 0], gt[..., 1] = dx, dy
    return np.ascontiguousarray(a), np.ascontiguousarray(b), gt


@pytest.mark.parametrize("name", ["dis", "dis_fast", "farneback"])
def test_opencv_estimators_recover_a_translation(name: str) -> None:
    a, b, gt = _pair(3, -2)
    t = Timings()
    flow = make_flow_estimator(name).estimate(a, b, t)
    assert isinstance(flow, FlowField) and flow.uv.shape == (96, 128, 2)
    inner = np.zeros((96, 128), bool)
    inner[12:-12, 12:-12] = True
    assert endpoint_error(flow.uv, gt, inner) < 0.5
    assert endpoint_error(-flow.uv, gt, inner) > 3.0  # the sign convention is the one documented
    assert t["flow"] > 0


def test_bad_pairs_and_names() -> None:
    with pytest.raises(SegviewerError, match="one size"):
        DISFlow().estimate(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8))
    with pytest.raises(SegviewerError, match="uint8"):
        FarnebackFlow().estimate(np.zeros((8, 8), np.float32), np.zeros((8, 8), np.float32))
    with pytest.raises(SegviewerError, match="Unknown flow estimator"):
        make_flow_estimator("flownet")
    with pytest.raises(SegviewerError, match="preset"):
        DISFlow("slow")


def test_raft_without_weights_offline_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    pytest.importorskip("torchvision")
    monkeypatch.setenv("SEGVIEWER_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsUnavailableError, match="raft_small"):
        RAFTFlow("small")


def test_raft_plumbing_with_random_weights_pads_to_multiples_of_8() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    raft = RAFTFlow("small", random_init=True, num_flow_updates=2)
    a, b, _ = _pair(2, 1, h=50, w=70)  # neither side divisible by 8
    flow = raft.estimate(a, b)
    assert flow.uv.shape == (50, 70, 2) and np.all(np.isfinite(flow.uv))


def test_raft_loads_a_users_weights_file_and_from_the_hub_cache(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """The two offline routes to real RAFT weights: a file the user picks, and torch's hub cache
    under TORCH_HOME (what a previous online run leaves). A state dict of the wrong network is one
    clear error."""
    torch = pytest.importorskip("torch")
    from segviewer.adapters.flow import RAFT_URLS
    from segviewer.core.errors import CheckpointMismatchError

    torch.manual_seed(1)
    torch.set_num_threads(1)
    src = RAFTFlow("small", random_init=True, num_flow_updates=2)
    user = tmp_path / "my_raft.pth"
    torch.save(src._model.state_dict(), user)
    a, b, _ = _pair(3, -2, h=64, w=96)
    want = src.estimate(a, b).uv
    monkeypatch.setenv("SEGVIEWER_OFFLINE", "1")
    np.testing.assert_array_equal(RAFTFlow("small", weights=user, num_flow_updates=2).estimate(a, b).uv, want)
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / RAFT_URLS["raft_small"].rsplit("/", 1)[1]).write_bytes(user.read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    np.testing.assert_array_equal(RAFTFlow("small", num_flow_updates=2).estimate(a, b).uv, want)
    with pytest.raises(CheckpointMismatchError):
        RAFTFlow("large", weights=user)
