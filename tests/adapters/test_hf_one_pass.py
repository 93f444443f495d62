"""The app's one hooked pass (``one_pass.predict_with_internals``) for the set-prediction families:
one forward of the network gives the layers' result (the same as a plain ``predict``) and the query
internals, whose capture kinds say what the Internals dock can draw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segviewer.adapters.base import PredictParams
from segviewer.adapters.one_pass import capture_kinds, internals_kind, predict_with_internals
from segviewer.adapters.registry import create_adapter
from segviewer.analysis.queries import QUERY_KINDS, QueryInternals
from tests.adapters import hf_tiny

IDS = {"detr": "detr_resnet50", "rt_detr": "rtdetr_r50vd", "rt_detr_v2": "rtdetr_v2_r50vd", "mask2former": "mask2former_swin_tiny_coco_panoptic",
       "oneformer": "oneformer_swin_tiny_ade20k"}
KINDS = {"detr": {"query_classes", "query_attention", "query_boxes"},
         "rt_detr": {"query_classes", "query_attention", "query_boxes"},
         "rt_detr_v2": {"query_classes", "query_attention", "query_boxes"},
         "mask2former": {"query_classes", "query_attention", "query_masks", "query_merge"},
         "oneformer": {"query_classes", "query_attention", "query_masks", "query_merge"}}


@pytest.fixture(autouse=True)
def _hf_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf_one_pass")
    return {fam: hf_tiny.BUILDERS[fam](root / fam) for fam in IDS}


def _same(a: object, b: object) -> None:
    for name in ("boxes", "scores", "class_ids", "segment_ids"):
        if hasattr(a, name):
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-5)


@pytest.mark.parametrize("fam", list(IDS))
def test_one_forward_gives_the_result_and_the_queries(fam: str, folders: dict[str, Path], image: np.ndarray) -> None:
    ad = create_adapter(IDS[fam])
    ad.load("cpu", folders[fam])
    assert internals_kind(ad) == "queries" and set(capture_kinds(ad)) == KINDS[fam] <= set(QUERY_KINDS)
    passes: list[int] = []
    ad.module.register_forward_pre_hook(lambda *_: passes.append(1))
    params = PredictParams(min_score=0.0)
    result, it = predict_with_internals(ad, image, params)
    assert len(passes) == 1
    assert isinstance(it, QueryInternals) and set(it.kinds) == KINDS[fam]
    assert it.image_size == image.shape[:2] and it.attention_map(0).shape == image.shape[:2]
    _same(result, ad.predict(image, params))
