"""``PredictParams.extras=False``: only what a headless run writes, and the same labels, boxes and masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segviewer.adapters.base import PredictParams
from segviewer.adapters.registry import create_adapter
from segviewer.core.results import Detections, SemanticMap
from segviewer.synth.generate import generate_scene

SEMANTIC = ("shapes_fcn", "shapes_unet", "shapes_pcv")


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return generate_scene(7, (120, 160)).image


def _loaded(model_id: str):
    ad = create_adapter(model_id)
    ad.load("cpu")
    return ad


def test_params_key_tells_the_two_apart() -> None:
    assert PredictParams().extras is True
    assert PredictParams(extras=False).key() != PredictParams().key()


@pytest.mark.parametrize("model_id", SEMANTIC)
def test_semantic_labels_without_probs_or_logits(model_id: str, image: np.ndarray) -> None:
    ad = _loaded(model_id)
    full = ad.predict(image)
    lean = ad.predict(image, PredictParams(extras=False))
    assert isinstance(full, SemanticMap) and isinstance(lean, SemanticMap)
    assert full.probs is not None and full.logits is not None  # the window's default keeps them
    assert lean.probs is None and lean.logits is None
    np.testing.assert_array_equal(lean.labels, full.labels)
    assert lean.categories == full.categories


def test_fcn_stages_honour_extras(image: np.ndarray) -> None:
    stages = _loaded("shapes_fcn").predict_stages(image, PredictParams(extras=False))
    assert all(m.probs is None and m.logits is None for m in stages.values())


def test_pcv_predict_computes_no_votes(image: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """``predict`` returns the semantic map only; the votes' softmax (18 channels) was computed and
    thrown away before."""
    ad = _loaded("shapes_pcv")
    channels: list[int] = []
    real = torch.softmax

    def counting(x: torch.Tensor, *a: object, **k: object) -> torch.Tensor:
        channels.append(int(x.shape[0]))
        return real(x, *a, **k)

    monkeypatch.setattr(torch, "softmax", counting)
    ad.predict(image, PredictParams(extras=False))
    assert channels == []
    ad.predict(image)
    assert channels == [len(ad.card.categories)]  # the semantic probabilities, not the 18 vote cells
    vp = ad.predict_votes(image)
    assert vp.votes.shape[0] == 18 and vp.semantic.probs is not None


def test_maskrcnn_same_detections_without_mask_logits(image: np.ndarray) -> None:
    ad = _loaded("shapes_maskrcnn")
    full = ad.predict(image, PredictParams(min_score=0.05))
    lean = ad.predict(image, PredictParams(min_score=0.05, extras=False))
    assert isinstance(full, Detections) and isinstance(lean, Detections)
    assert len(full) > 0 and full.mask_logits is not None and len(full.mask_logits) == len(full)
    assert lean.mask_logits is None
    np.testing.assert_array_equal(lean.boxes, full.boxes)
    np.testing.assert_array_equal(lean.scores, full.scores)
    np.testing.assert_array_equal(lean.class_ids, full.class_ids)
    assert lean.masks is not None and full.masks is not None
    for a, b in zip(lean.masks.crops, full.masks.crops):
        np.testing.assert_array_equal(a, b)
