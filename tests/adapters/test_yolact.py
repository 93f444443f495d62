"""The bundled YOLACT (shapes_yolact): its card matches the checkpoint, one forward pass gives the
masks and what assembled them, every mask equals its assembly (and torch's own operators on the
model's raw outputs), its boxes are exactly the bundled YOLO's (the detector is frozen), and it
answers images with nothing in them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segviewer.adapters.base import PredictParams
from segviewer.adapters.one_pass import capture_kinds, predict_with_internals
from segviewer.adapters.registry import create_adapter
from segviewer.training.data import VAL_SEED, shapes_instance
from tests.adapters.bundled import checked_card, counted_adapter

MODEL = "shapes_yolact"


@pytest.fixture(scope="module")
def yolact():  # noqa: ANN201
    yield from counted_adapter(MODEL)


def _scene(k: int = 0) -> np.ndarray:
    return shapes_instance(VAL_SEED + 710_000 + k).image


def test_card_matches_the_checkpoint() -> None:
    card = checked_card(MODEL)
    assert card.extra["training"]["command"].startswith("segviewer train --model yolact")
    assert card.metrics["mask_ap"] >= 0.65  # the bar on 200 unseen scenes


def test_one_pass_gives_masks_and_their_assembly(yolact) -> None:  # noqa: ANN001
    before = len(yolact.passes)
    det, it = predict_with_internals(yolact, _scene())
    assert capture_kinds(yolact) == it.kinds == ("yolo_grid", "yolact")  # the YOLO grid tab draws it too
    assert len(yolact.passes) == before + 1
    assert len(det) > 0 and det.masks is not None
    assert it.coef.shape == (len(det), it.num_prototypes)
    assert it.proto.ndim == 3 and it.proto.min() >= 0  # ReLU'd prototypes
    assert np.abs(it.coef).max() <= 1  # tanh'd coefficients
    for i in range(len(det)):
        a = it.assembly(i)
        assert np.array_equal(a.mask, det.masks.crops[i])
        assert a.offset == tuple(det.masks.offsets[i]) or not a.mask.size


def test_masks_equal_torch_on_the_raw_outputs(yolact) -> None:  # noqa: ANN001
    """Recompute each mask from the net's raw tensors with torch: sigmoid(P c), interpolated to the
    model frame, then to the input, thresholded inside the box."""
    img = _scene(1)
    det, it = predict_with_internals(yolact, img)
    from segviewer.adapters.nets.registry import to_tensor

    with torch.inference_mode():
        outs = yolact.module(to_tensor([img]))
    k = it.num_prototypes
    proto = outs["proto"][0]
    h, w = img.shape[:2]
    for i in range(len(det)):
        (r, c), b = it.candidates.cell[it.keep[i]], it.candidates.prior[it.keep[i]]
        coef = outs["coef"][0, b * k:(b + 1) * k, r, c]
        assert torch.allclose(coef, torch.from_numpy(it.coef[i]), atol=1e-6)
        prob = torch.sigmoid(torch.einsum("k,khw->hw", coef, proto))
        full = F.interpolate(prob[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()
        x0, y0 = det.masks.offsets[i]
        crop = det.masks.crops[i]
        want = full[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]] >= 0.5
        assert (want != crop).mean() < 1e-3, i  # equal but for float rounding at 0.5


def test_boxes_are_the_bundled_yolos(yolact) -> None:  # noqa: ANN001
    yolo = create_adapter("shapes_yolo")
    yolo.load("cpu")
    for k in range(3):
        a, b = yolact.predict(_scene(k)), yolo.predict(_scene(k))
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.class_ids, b.class_ids)
        np.testing.assert_array_equal(a.scores, b.scores)


@pytest.mark.parametrize("shape", [(300, 400), (1, 1), (37, 2000)])
def test_nothing_found_is_an_answer(yolact, shape: tuple[int, int]) -> None:  # noqa: ANN001
    img = np.full((*shape, 3), 128, np.uint8)
    none = yolact.predict(img, PredictParams(min_score=0.999))
    assert len(none) == 0 and none.image_size == shape and none.masks is not None
    det, it = predict_with_internals(yolact, img)
    assert det.image_size == shape and it.coef.shape[0] == len(det)


def test_a_resized_photo_keeps_masks_inside_their_boxes(yolact) -> None:  # noqa: ANN001
    import cv2

    img = cv2.resize(_scene(2), (640, 480))
    det = yolact.predict(img)
    assert det.image_size == (480, 640) and len(det)
    for box, crop, (x0, y0) in zip(det.boxes, det.masks.crops, det.masks.offsets):
        if crop.size:
            assert x0 + 0.5 >= box[0] and y0 + 0.5 >= box[1]
            assert x0 + crop.shape[1] - 0.5 <= box[2] + 1e-4 and y0 + crop.shape[0] - 0.5 <= box[3] + 1e-4
