"""The bundled CenterNet: its card's checkpoint is intact and small, it reloads through the registry,
one hooked pass gives the layers' boxes and the heads (counted), the boxes are the decoder's
formula on the heads, and the card's box AP holds on fresh unseen scenes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segviewer.adapters.base import PredictParams
from segviewer.adapters.registry import create_adapter, get_card, models_dir
from segviewer.analysis import centernet as dec
from segviewer.training.data import shapes_instance
from tests.adapters.bundled import checked_card

MODEL = "shapes_centernet"
TEST_OFFSET = 500_000
pytestmark = pytest.mark.skipif(not (models_dir() / f"{MODEL}.toml").is_file(),
                                reason=f"{MODEL} is not shipped in models/")  # validation seeds VAL_SEED + 500_000...: neither training nor the card's set


@pytest.fixture(scope="module")
def adapter():  # noqa: ANN201
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    ad = create_adapter(MODEL)
    ad.load("cpu")
    yield ad
    torch.set_num_threads(n)


def test_card_sha256_size_and_command() -> None:
    card = checked_card(MODEL)
    assert card.task == "detection" and card.categories[0] == "__background__"
    assert card.metrics["box_ap"] >= 0.80 and card.extra["training"]["steps"] > 0  # the bar, 200 unseen scenes


def test_one_pass_gives_the_layers_boxes_and_the_heads(adapter) -> None:  # noqa: ANN001
    from segviewer.adapters.one_pass import capture_kinds, predict_with_internals

    passes: list[int] = []
    hook = adapter.module.register_forward_pre_hook(lambda *_: passes.append(1))
    try:
        img = shapes_instance(10_000_050, (200, 300)).image  # not the training scale: the resize counts
        params = PredictParams(min_score=0.1)
        det, it = predict_with_internals(adapter, img, params)
        assert passes == [1]
        assert capture_kinds(adapter) == it.kinds == ("centernet_heads",)
        plain = adapter.predict(img, params)
    finally:
        hook.remove()
    np.testing.assert_array_equal(plain.boxes, det.boxes)
    np.testing.assert_array_equal(plain.scores, det.scores)
    # the boxes are the formula on the heads at the kept peaks, in image pixels
    assert it.image_size == (200, 300) and it.model_size == (256, 384)
    pk = it.peaks
    keep = pk.scores >= 0.1
    np.testing.assert_array_equal(np.flatnonzero(keep), it.detections)
    sx, sy = it.scale
    want = dec.decode_boxes(pk.ys[keep], pk.xs[keep], it.offset, it.size, it.stride) * [sx, sy, sx, sy]
    want[:, 0::2] = want[:, 0::2].clip(0, 300)
    want[:, 1::2] = want[:, 1::2].clip(0, 200)
    np.testing.assert_allclose(det.boxes, want, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(det.class_ids, pk.cls[keep] + 1)
    # the peaks are the heatmap's local maxima, and the scores its values there
    assert np.array_equal(it.heat[pk.cls, pk.ys, pk.xs], pk.scores)
    np.testing.assert_array_equal(np.argwhere(it.heat == dec.maxpool3(it.heat)), pk.all_cyx)
    # a click next to the best peak reads that peak's heads
    if len(pk.scores) and pk.scores[0] >= 0.1:
        x, y = (pk.xs[0] + 0.9) * it.stride * sx, (pk.ys[0] + 0.9) * it.stride * sy
        info = it.at(x, y, None, 0.1)
        assert (info.row, info.col, info.cls, info.rank) == (pk.ys[0], pk.xs[0], pk.cls[0], 0) and info.is_peak


def test_box_ap_close_to_the_card(adapter) -> None:  # noqa: ANN001
    from segviewer.training.evaluate import evaluate_adapter

    card = get_card(MODEL)
    got = evaluate_adapter(adapter, "centernet", 12, offset=TEST_OFFSET)
    assert got["box_ap50"] >= card.metrics["box_ap50"] - 0.08
    assert got["box_ap"] >= card.metrics["box_ap"] - 0.10
