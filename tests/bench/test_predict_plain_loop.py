"""bench/predict.py's plain torch loops compute what ``predict`` computes (else its ratios would
compare different work): boxes, scores, classes and masks agree with the adapters', image by image."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "predict.py"


@pytest.fixture(scope="module")
def bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_predict_under_test", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    from segviewer.synth.generate import generate_scene

    return [generate_scene(1000 + i, (240, 320)).image for i in range(2)]


def _loop(bench: Any, model_id: str) -> tuple[Any, Any]:
    from segviewer.adapters.registry import create_adapter

    ad = create_adapter(model_id)
    ad.load("cpu")
    head = getattr(ad, "head", None)
    kind = "msrcnn" if head is not None else ad.model_kind
    return ad, bench.PlainLoop(copy.deepcopy(ad.module), kind, ad.card.categories, copy.deepcopy(head))


@pytest.mark.parametrize("model_id", ["shapes_yolo", "shapes_yolact", "shapes_centernet", "shapes_msrcnn"])
def test_plain_loop_agrees_and_writes_what_predict_writes(bench: Any, images: list[np.ndarray], model_id: str,
                                                         tmp_path: Path) -> None:
    from segviewer.adapters.base import PredictParams

    ad, loop = _loop(bench, model_id)
    segs = [ad.predict(img, PredictParams(extras=False)) for img in images]
    plains = [loop.run(img) for img in images]
    assert sum(len(s) for s in segs) > 0  # the scenes hold shapes: a comparison of nothing proves nothing
    text, same = bench._agreement(segs, plains)
    assert same, text
    assert ("masks" in plains[0]) == (segs[0].masks is not None)
    if model_id == "shapes_msrcnn":  # scored by Mask Scoring R-CNN's rule, as predict writes it
        np.testing.assert_allclose(plains[0]["scores"], plains[0]["box_scores"] * plains[0]["mask_iou"], rtol=1e-6)

    # a plain loop that computed something else is caught: one box moved by 2 px
    moved = [dict(p) for p in plains]
    i = next(k for k, p in enumerate(moved) if len(p["boxes"]))
    moved[i]["boxes"] = moved[i]["boxes"] + np.float32(2.0)
    assert not bench._agreement(segs, moved)[1]

    files = []
    for k, img in enumerate(images):
        files.append(tmp_path / f"scene_{k}.png")
        cv2.imwrite(str(files[-1]), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    bench.plain_files(loop, files, tmp_path / "out")
    records = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(records) == sum(len(s) for s in segs)
    assert all(("segmentation" in r) == ("masks" in plains[0]) for r in records)
    assert all(("mask_iou" in r) == (model_id == "shapes_msrcnn") for r in records)
    assert (tmp_path / "out" / "scene_0_overlay.png").is_file()
