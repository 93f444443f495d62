"""Logits for UPSNet's panoptic head: the adapters return the mask head's raw 28x28 logits and the
semantic head's class logits, compact (float16), from the same forward pass, and consistent with
the thresholded masks and argmax labels they already returned."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from segviewer.adapters.base import PredictParams
from segviewer.adapters.registry import create_adapter, models_dir
from segviewer.core.results import Detections, ResultError, SemanticMap


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _shipped(model_id: str) -> None:
    if not (models_dir() / f"{model_id}.pt").is_file() and not list(models_dir().glob(f"{model_id}*.pt")):
        pytest.skip(f"{model_id} is not shipped")


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    from segviewer.training.data import VAL_SEED, shapes_instance

    return shapes_instance(VAL_SEED + 1234).image


def _sigmoid_masks(det: Detections) -> np.ndarray:
    """Masks pasted from sigmoid(mask_logits) the way the adapter pastes probabilities."""
    from segviewer.adapters._convert import paste_masks_compact

    probs = torch.sigmoid(torch.from_numpy(det.mask_logits.astype(np.float32)))[:, None]
    return paste_masks_compact(probs, torch.from_numpy(det.boxes.copy()), det.image_size).to_full()


def test_shapes_maskrcnn_gives_mask_logits_that_agree_with_its_masks(scene: np.ndarray) -> None:
    _shipped("shapes_maskrcnn")
    ad = create_adapter("shapes_maskrcnn")
    ad.load("cpu")
    det = ad.predict(scene, PredictParams(min_score=0.3))
    assert len(det) >= 3
    assert det.mask_logits is not None and det.mask_logits.shape == (len(det), 28, 28)
    assert det.mask_logits.dtype == np.float16
    assert np.abs(det.mask_logits).max() > 1  # logits, not probabilities
    # thresholding the logits at 0 (= probability 0.5) gives back the masks, bar float16 ties
    full, mine = det.masks.to_full(), _sigmoid_masks(det)
    assert np.mean(full == mine) > 0.999
    # the subsets stay aligned with their detections, and the bytes are accounted for
    top = det.above(0.8)
    assert np.array_equal(top.mask_logits, det.mask_logits[det.scores >= 0.8])
    assert det.nbytes() >= det.mask_logits.nbytes + det.boxes.nbytes
    back = pickle.loads(pickle.dumps(det))  # results travel from the model process by pickle
    assert np.array_equal(back.mask_logits, det.mask_logits)


@pytest.mark.parametrize("model_id", ["shapes_fcn", "shapes_unet"])
def test_shapes_semantic_models_give_logits_whose_argmax_is_the_labels(model_id: str, scene: np.ndarray) -> None:
    _shipped(model_id)
    ad = create_adapter(model_id)
    ad.load("cpu")
    sem = ad.predict(scene)
    assert sem.logits is not None and sem.logits.dtype == np.float16
    assert sem.logits.shape[0] == len(sem.categories) and max(sem.logits.shape[1:]) <= 512
    up = sem.logits_at_image_size()
    assert up.shape == (len(sem.categories), *sem.image_size)
    assert np.mean(up.argmax(0) == sem.labels) > 0.995
    assert sem.nbytes() == sem.labels.nbytes + sem.probs.nbytes + sem.logits.nbytes


def test_torchvision_mask_rcnn_logits_come_from_the_same_pass(image: np.ndarray) -> None:
    from segviewer.adapters._convert import MaskLogitsHook

    torch.manual_seed(0)
    ad = create_adapter("maskrcnn_resnet50_fpn", random_init=True)
    ad.load("cpu")
    calls = []
    h = ad.module.roi_heads.mask_predictor.register_forward_hook(lambda *a: calls.append(1))
    try:
        det = ad.predict(image, PredictParams(min_score=0.0, max_detections=6, extra=(("min_size", 96),)))
    finally:
        h.remove()
    assert calls == [1], "the mask head must run once per prediction"
    assert det.mask_logits is not None and det.mask_logits.shape == (len(det), 28, 28) and len(det) == 6
    assert np.mean(det.masks.to_full() == _sigmoid_masks(det)) > 0.999
    assert not ad.module.roi_heads.mask_predictor._forward_hooks  # the hook is removed again
    # a detector without a mask head gives none
    assert MaskLogitsHook(torch.nn.Module()).select(torch.zeros(0, dtype=torch.int64)) is None


def test_torchvision_segmenter_keeps_its_low_res_logits(image: np.ndarray) -> None:
    torch.manual_seed(0)
    ad = create_adapter("lraspp_mobilenet_v3_large", random_init=True)
    ad.load("cpu")
    sem = ad.predict(image, PredictParams(extra=(("min_size", 96),)))
    assert sem.logits is not None and sem.logits.shape[0] == 21 and sem.logits.dtype == np.float16
    assert sem.logits.shape[1:] == sem.probs.shape[1:]
    soft = np.exp(sem.logits.astype(np.float64))
    assert np.allclose(soft / soft.sum(0), sem.probs, atol=2e-3)  # the probabilities' own logits


def test_result_types_validate_logits() -> None:
    boxes = np.array([[0, 0, 4, 4], [1, 1, 5, 5]], np.float32)
    d = Detections((8, 8), boxes, [0.9, 0.8], [1, 1], ("bg", "a"), mask_logits=np.zeros((2, 28, 28)))
    assert d.mask_logits.dtype == np.float32  # float64 is stored as float32
    with pytest.raises(ResultError, match="mask_logits must be"):
        Detections((8, 8), boxes, [0.9, 0.8], [1, 1], ("bg", "a"), mask_logits=np.zeros((3, 28, 28)))
    with pytest.raises(ResultError, match="mask_logits must be"):
        Detections((8, 8), boxes, [0.9, 0.8], [1, 1], ("bg", "a"), mask_logits=np.zeros((2, 28, 14)))
    with pytest.raises(ResultError, match="NaN"):
        Detections((8, 8), boxes, [0.9, 0.8], [1, 1], ("bg", "a"), mask_logits=np.full((2, 28, 28), np.nan))
    lab = np.zeros((8, 8), np.uint8)
    s = SemanticMap(lab, ("a", "b"), logits=np.zeros((2, 4, 4), np.float16))
    assert s.logits_at_image_size().shape == (2, 8, 8)
    with pytest.raises(ResultError, match="logits must be"):
        SemanticMap(lab, ("a", "b"), logits=np.zeros((3, 4, 4), np.float16))
    with pytest.raises(ResultError, match="floating point"):
        SemanticMap(lab, ("a", "b"), logits=np.zeros((2, 4, 4), np.int32))
