"""``predict_with_internals``: ONE pass gives the result the layers show and the internals, and
that result equals what a plain ``predict`` returns (bundled shapes models, and a random-init
torchvision Mask R-CNN through its adapter, whose preprocessing differs from ours)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segviewer.adapters.base import PredictParams
from segviewer.adapters.internals import DetectorInternals
from segviewer.adapters.one_pass import InternalsUnavailable, internals_kind, predict_with_internals
from segviewer.adapters.registry import create_adapter
from segviewer.core.errors import SegviewerError
from segviewer.core.imageio import read_image
from segviewer.core.timing import Timings
from tests.adapters.test_internals_pcv import SCENES


def _scene() -> np.ndarray:
    return read_image(SCENES / "scene_000.png")[:300, :420]  # not a multiple of 32 on purpose


def _count_passes(adapter) -> list[int]:  # noqa: ANN001
    n = [0]
    m = adapter.module
    getattr(m, "backbone", m).register_forward_pre_hook(lambda *_: n.__setitem__(0, n[0] + 1))
    return n


def _same_detections(a, b) -> None:  # noqa: ANN001
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    assert (a.masks is None) == (b.masks is None)
    if a.masks is not None:
        np.testing.assert_array_equal(a.masks.to_full(), b.masks.to_full())


def test_shapes_maskrcnn_result_equals_predict_and_internals_explain_it() -> None:
    adapter = create_adapter("shapes_maskrcnn")
    adapter.load("cpu")
    img = _scene()
    params = PredictParams(min_score=0.2)
    plain = adapter.predict(img, params)
    passes = _count_passes(adapter)
    tm = Timings()
    result, it = predict_with_internals(adapter, img, params, tm)
    assert passes[0] == 1  # one forward pass
    _same_detections(result, plain)
    assert isinstance(it, DetectorInternals) and it.replay_matches
    assert it.score_thresh == pytest.approx(0.2)  # the thresholds the pass ran with
    assert adapter.module.roi_heads.score_thresh != 0.2  # ...which the adapter restored afterwards
    assert it.image_size == img.shape[:2] and min(it.model_size) == 256  # the adapter's own resize
    np.testing.assert_allclose(it.to_image(it.detections.boxes), result.boxes, atol=1e-3)
    assert it.mask_logits is not None and len(it.mask_logits) == len(result)
    assert {"preprocess", "model", "postprocess", "internals"} <= set(tm)


def test_torchvision_detector_result_equals_predict() -> None:
    mod = pytest.importorskip("segviewer.adapters.torchvision_detection")
    from segviewer.adapters.base import ModelCard
    from segviewer.synth.classes import DETECTION_CATEGORIES

    card = ModelCard(id="maskrcnn_resnet50_fpn", task="instance", family="torchvision",
                     categories=DETECTION_CATEGORIES, weights_source="none")
    adapter = mod.TorchvisionDetector(card)
    torch.manual_seed(3)
    adapter.load("cpu")
    img = _scene()
    params = PredictParams(min_score=0.0, extra=(("min_size", 160), ("max_size", 224)))
    plain = adapter.predict(img, params)
    result, it = predict_with_internals(adapter, img, params)
    _same_detections(result, plain)
    assert it.replay_matches and len(it.detections) == len(result) > 0
    assert it.score_thresh == 0.0 and it.image_size == img.shape[:2]
    np.testing.assert_allclose(it.to_image(it.detections.boxes), result.boxes, rtol=1e-5, atol=1e-2)


def test_fcn_stage_result_equals_predict() -> None:
    adapter = create_adapter("shapes_fcn")
    adapter.load("cpu")
    img = _scene()
    passes = _count_passes(adapter)
    for stage in ("8s", "16s"):
        params = PredictParams(extra=(("stage", stage),)) if stage != "8s" else PredictParams()
        result, stages = predict_with_internals(adapter, img, params)
        assert result is stages[stage] and set(stages) == {"32s", "16s", "8s"}
        np.testing.assert_array_equal(result.labels, adapter.predict(img, params).labels)
    assert passes[0] == 2 + 2  # two hooked passes, two plain ones
    with pytest.raises(SegviewerError, match="stages"):
        predict_with_internals(adapter, img, PredictParams(extra=(("stage", "4s"),)))


def test_kinds_and_models_without_internals() -> None:
    unet = create_adapter("shapes_unet")
    unet.load("cpu")
    assert internals_kind(unet) == ""
    assert internals_kind(create_adapter("shapes_pcv")) == "votes"
    assert internals_kind(create_adapter("shapes_fcn")) == "stages"
    img = _scene()
    result, why = predict_with_internals(unet, img)
    assert isinstance(why, InternalsUnavailable) and "no region proposal network" in why.message
    np.testing.assert_array_equal(result.labels, unet.predict(img).labels)
