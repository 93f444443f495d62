"""The bundled shapes-world models: each card's checkpoint is intact (sha256), loads through the
registry, and still scores close to its card's metric on 20 fresh scenes of unseen seeds.

A broken checkpoint, a changed architecture or an adapter bug (resizing, mask pasting, stage
selection) drops the metric far below the bound and fails here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from segviewer.adapters.registry import create_adapter, get_card, models_dir
from segviewer.core.errors import CheckpointMismatchError, WeightsUnavailableError

EXPECTED = ("shapes_maskrcnn", "shapes_fcn", "shapes_unet", "shapes_pcv")
KIND = {"shapes_maskrcnn": "maskrcnn", "shapes_fcn": "fcn", "shapes_unet": "unet", "shapes_pcv": "pcv"}
# metric -> how far under the card's figure (200 scenes) the 20-scene figure may fall
MARGINS = {"mask_ap": 0.08, "mask_ap50": 0.06, "miou": 0.04, "16s_miou": 0.04, "32s_miou": 0.05,
           "vote_acc": 0.05}
TEST_OFFSET = 500_000  # validation seeds VAL_SEED + 500_000...: neither training nor the card's set


def _shipped() -> list[str]:
    return [m for m in EXPECTED if (models_dir() / f"{m}.toml").is_file()]


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_the_four_models_are_shipped() -> None:
    assert _shipped() == list(EXPECTED)


@pytest.mark.parametrize("model_id", _shipped())
def test_card_sha256_and_size_match_the_checkpoint(model_id: str) -> None:
    card = get_card(model_id)
    path = Path(card.extra["checkpoint_path"])
    assert path.is_file() and path.parent == models_dir().resolve()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == card.sha256
    assert path.stat().st_size <= 25e6
    assert card.file_size_mb == pytest.approx(path.stat().st_size / 1e6, abs=0.01)
    assert card.extra["training"]["command"].startswith("segviewer train")


def test_shipped_checkpoints_fit_the_size_budget() -> None:
    total = sum((models_dir() / f"{m}.pt").stat().st_size for m in _shipped())
    assert total <= 60e6


@pytest.mark.slow
@pytest.mark.parametrize("model_id", _shipped())
def test_metric_close_to_the_card(model_id: str) -> None:
    from segviewer.training.evaluate import evaluate_adapter

    card = get_card(model_id)
    ad = create_adapter(model_id)
    ad.load("cpu")
    got = evaluate_adapter(ad, KIND[model_id], 20, offset=TEST_OFFSET)
    checked = [k for k in MARGINS if k in card.metrics]
    assert checked, f"{model_id}'s card lists none of {sorted(MARGINS)}"
    for k in checked:
        assert got[k] >= card.metrics[k] - MARGINS[k], f"{model_id} {k}: {got[k]:.3f} vs card {card.metrics[k]:.3f}"


def test_fcn_stages_and_resizing() -> None:
    if "shapes_fcn" not in _shipped():
        pytest.skip("shapes_fcn not shipped")
    from segviewer.training.data import VAL_SEED, shapes_semantic

    ad = create_adapter("shapes_fcn")
    ad.load("cpu")
    smp = shapes_semantic(VAL_SEED + TEST_OFFSET)
    stages = ad.predict_stages(smp.image)
    assert list(stages) == ["32s", "16s", "8s"]
    acc = {k: float(np.mean(m.labels == smp.labels)) for k, m in stages.items()}
    assert acc["8s"] >= acc["32s"] - 0.01 and acc["8s"] > 0.9
    # a 2x larger input: labels come back at that size and agree with the 256-px prediction
    import cv2

    big = cv2.resize(smp.image, (512, 512), interpolation=cv2.INTER_LINEAR)
    lab = ad.predict(big).labels
    assert lab.shape == (512, 512)
    assert np.mean(lab[1::2, 1::2] == stages["8s"].labels) > 0.95


def test_maskrcnn_returns_compact_masks_in_input_coordinates() -> None:
    if "shapes_maskrcnn" not in _shipped():
        pytest.skip("shapes_maskrcnn not shipped")
    import cv2

    from segviewer.training.data import VAL_SEED, shapes_instance

    ad = create_adapter("shapes_maskrcnn")
    ad.load("cpu")
    smp = shapes_instance(VAL_SEED + TEST_OFFSET + 1)
    img = cv2.resize(smp.image, (384, 320), interpolation=cv2.INTER_LINEAR)  # not square, not 256
    det = ad.predict(img)
    assert det.image_size == (320, 384) and det.masks is not None
    assert len(det) and det.scores.min() >= 0.05
    top = det.above(0.5)
    # every confident mask lies inside its box, give or take the one padded 28x28 cell that
    # Mask R-CNN's paste adds (paste is per crop, in input pixels)
    assert len(top)
    for i in range(len(top)):
        x0, y0 = top.masks.offsets[i]
        ch, cw = top.masks.crops[i].shape
        bx0, by0, bx1, by1 = top.boxes[i]
        tx, ty = (bx1 - bx0) / 28 + 2, (by1 - by0) / 28 + 2
        assert ch > 0 and x0 >= bx0 - tx and y0 >= by0 - ty
        assert x0 + cw <= bx1 + tx and y0 + ch <= by1 + ty
        assert top.masks.crops[i].mean() > 0.2  # a shape, not a speck


def test_a_missing_or_foreign_checkpoint_is_one_sentence(tmp_path: Path) -> None:
    if "shapes_unet" not in _shipped():
        pytest.skip("shapes_unet not shipped")
    ad = create_adapter("shapes_unet")
    with pytest.raises(WeightsUnavailableError):
        ad.load("cpu", weights=tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointMismatchError):
        ad.load("cpu", weights=junk)
    if "shapes_fcn" in _shipped():  # an FCN checkpoint given to the U-Net adapter
        with pytest.raises(CheckpointMismatchError, match="fcn"):
            ad.load("cpu", weights=models_dir() / "shapes_fcn.pt")
    assert not ad.loaded


def test_random_init_builds_without_weights() -> None:
    from segviewer.core.results import SemanticMap

    for mid in _shipped():
        ad = create_adapter(mid, random_init=True)
        ad.load("cpu")
        out = ad.predict(np.zeros((70, 90, 3), np.uint8))
        assert out.image_size == (70, 90)
        if isinstance(out, SemanticMap):
            assert out.labels.max() < len(ad.card.categories)


@pytest.mark.parametrize("shape", [(300, 400), (1, 1)])
def test_every_bundled_model_answers_an_empty_image(shape: tuple[int, int]) -> None:
    """A flat grey photo or a 1x1 PNG holds no object: zero detections is an answer, not a crash
    (the Mask R-CNN once raised 'Inplace update to inference tensor' when the mask head saw no box)."""
    from segviewer.adapters.base import PredictParams
    from segviewer.core.results import Detections

    img = np.full((*shape, 3), 128, np.uint8)
    for model_id in _shipped():
        ad = create_adapter(model_id)
        ad.load("cpu")
        out = ad.predict(img)  # whatever it finds on grey, it answers
        assert out.image_size == shape
        if isinstance(out, Detections):
            none = ad.predict(img, PredictParams(min_score=0.999))  # nothing passes: the empty path
            assert len(none) == 0 and none.image_size == shape
            assert none.mask_logits is not None and none.mask_logits.shape == (0, 28, 28)


def test_mask_logits_hook_selects_nothing_outside_inference_mode() -> None:
    import torch

    from segviewer.adapters._convert import MaskLogitsHook

    head = torch.nn.Conv2d(4, 3, 1)
    holder = torch.nn.Module()
    holder.mask_predictor = head
    with torch.inference_mode(), MaskLogitsHook(holder) as hook:
        head(torch.zeros(0, 4, 28, 28))
    got = hook.select(torch.zeros(0, dtype=torch.int64))  # outside inference mode, as shapes.py does
    assert got is not None and got.shape == (0, 28, 28) and got.dtype == np.float16


def test_a_thin_panorama_is_not_blown_up_past_the_long_side_cap() -> None:
    """48 x 3000 once became a 256 x 16000 network input (16 s over the four models)."""
    from segviewer.adapters.shapes import MAX_LONG_PER_SHORT, TRAIN_SHORT_SIDE, _resize_short

    strip = np.zeros((48, 3000, 3), np.uint8)
    assert max(_resize_short(strip, TRAIN_SHORT_SIDE).shape[:2]) == MAX_LONG_PER_SHORT * TRAIN_SHORT_SIDE
    assert _resize_short(np.zeros((480, 640, 3), np.uint8), TRAIN_SHORT_SIDE).shape[:2] == (256, 341)
    if "shapes_fcn" in _shipped():
        ad = create_adapter("shapes_fcn")
        ad.load("cpu")
        assert ad.predict(np.full((48, 3000, 3), 90, np.uint8)).labels.shape == (48, 3000)
