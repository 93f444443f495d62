"""Keypoint AP (OKS) equals pycocotools' COCOeval run directly on a small hand-made set, through
the module and through ``segviewer eval --task instance``."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from segviewer.analysis.keypoint_eval import (
    KEYPOINT_STAT_NAMES,
    has_keypoint_annotations,
    keypoint_evaluate,
    keypoint_results,
)
from segviewer.cli import main
from segviewer.core.errors import BadDatasetError

K = 17


def _person(rng: np.random.Generator, x: float, y: float, w: float, h: float, visible: int = K) -> list[float]:
    kp = []
    for i in range(K):
        v = 2 if i < visible else 0
        kp += [x + rng.uniform(0, w), y + rng.uniform(0, h), v] if v else [0.0, 0.0, 0]
    return kp


def _dataset() -> tuple[dict, list[dict]]:
    """Two images, four people (one with no visible keypoint, one crowd-free medium and large),
    detections near them with growing error, a duplicate and a false positive."""
    rng = np.random.default_rng(7)
    people = [(1, 20, 30, 60, 120, K), (1, 150, 40, 70, 140, 12), (2, 10, 10, 200, 220, K), (2, 250, 60, 40, 80, 0)]
    anns = []
    for i, (img, x, y, w, h, vis) in enumerate(people):
        anns.append({"id": i + 1, "image_id": img, "category_id": 1, "bbox": [x, y, w, h], "area": w * h * 0.6,
                     "iscrowd": 0, "keypoints": _person(rng, x, y, w, h, vis), "num_keypoints": vis})
    gt = {"images": [{"id": 1, "width": 320, "height": 240}, {"id": 2, "width": 320, "height": 240}],
          "annotations": anns, "categories": [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(K)],
                                               "skeleton": []}]}
    results = []
    for a, noise, score in zip(anns[:3], (1.0, 6.0, 15.0), (0.9, 0.8, 0.7)):
        kp = np.asarray(a["keypoints"], np.float64).reshape(K, 3)
        kp[:, :2] += rng.normal(0, noise, (K, 2))
        kp[:, 2] = rng.uniform(0, 1, K)  # our results carry each keypoint's score here
        results.append({"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": score,
                        "keypoints": kp.ravel().tolist()})
    dup = dict(results[0], score=0.5)
    fp_kp = np.column_stack([rng.uniform(200, 300, K), rng.uniform(150, 230, K), np.ones(K)]).ravel().tolist()
    results += [dup, {"image_id": 2, "category_id": 1, "bbox": [200, 150, 100, 80], "score": 0.95, "keypoints": fp_kp}]
    return gt, results


def _direct(gt: dict, results: list[dict]) -> list[float]:
    """COCOeval as its README runs it, on keypoint results without boxes."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = json.loads(json.dumps(gt))
        coco.createIndex()
        dt = coco.loadRes([{k: v for k, v in r.items() if k != "bbox"} for r in json.loads(json.dumps(results))])
        ev = COCOeval(coco, dt, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]


def test_keypoint_ap_equals_cocoeval() -> None:
    gt, results = _dataset()
    want = _direct(gt, results)
    got = keypoint_evaluate(gt, results)
    assert list(got) == list(KEYPOINT_STAT_NAMES)
    np.testing.assert_allclose([got[k] for k in KEYPOINT_STAT_NAMES], want, rtol=0, atol=1e-12)
    assert 0.0 < got["AP"] < 1.0 and got["AP50"] >= got["AP75"]  # a set that discriminates
    perfect = [dict(r, keypoints=a["keypoints"]) for r, a in zip(results[:3], gt["annotations"][:3])]
    assert keypoint_evaluate(gt, perfect)["AP"] == pytest.approx(1.0)
    assert gt["annotations"][0]["keypoints"][2] == 2 and "area" not in keypoint_results(results)[0]


def test_keypoint_eval_refuses_what_it_cannot_score() -> None:
    gt, results = _dataset()
    bare = dict(gt, annotations=[{k: v for k, v in a.items() if k != "keypoints"} for a in gt["annotations"]])
    assert has_keypoint_annotations(gt) and not has_keypoint_annotations(bare)
    with pytest.raises(BadDatasetError, match="annotates no keypoints"):
        keypoint_evaluate(bare, results)
    with pytest.raises(BadDatasetError, match="no result carries keypoints"):
        keypoint_evaluate(gt, [{k: v for k, v in r.items() if k != "keypoints"} for r in results])
    four = json.loads(json.dumps(gt))
    for a in four["annotations"]:
        a["keypoints"] = a["keypoints"][:12]
    short = [dict(r, keypoints=r["keypoints"][:12]) for r in results]
    with pytest.raises(BadDatasetError, match="one sigma per keypoint type"):
        keypoint_evaluate(four, short)
    assert keypoint_evaluate(four, short, sigmas=[0.05] * 4)["AP"] > 0


def test_eval_command_adds_keypoint_ap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt, results = _dataset()
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(results))
    out = tmp_path / "out.json"
    assert main(["eval", "--task", "instance", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "res.json"),
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    np.testing.assert_allclose([res["keypoints"][k] for k in KEYPOINT_STAT_NAMES], _direct(gt, results), atol=1e-12)
    assert "bbox" in res
    text = capsys.readouterr().out
    assert "keypoints" in text and "AR50" in text


def test_detections_records_as_predict_writes_them_are_scored() -> None:
    """Keypoint R-CNN's Detections (x, y, score per keypoint) through ``detections_to_coco``, the
    converter ``segviewer predict`` writes results.json with, score like the hand-made records."""
    from segviewer.core.coco_results import detections_to_coco
    from segviewer.core.results import Detections

    gt, results = _dataset()
    records = []
    for img in (1, 2):
        mine = [r for r in results if r["image_id"] == img]
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in mine)], np.float32)
        dets = Detections((240, 320), boxes, np.array([r["score"] for r in mine], np.float32),
                          np.ones(len(mine), np.int32), ("__background__", "person"),
                          keypoints=np.array([r["keypoints"] for r in mine], np.float32).reshape(-1, K, 3))
        records += detections_to_coco(dets, img, [None, 1])
    assert all(len(r["keypoints"]) == 3 * K for r in records)
    want = _direct(gt, [dict(r, keypoints=np.float32(r["keypoints"]).tolist()) for r in results])
    got = keypoint_evaluate(gt, records)
    np.testing.assert_allclose([got[k] for k in KEYPOINT_STAT_NAMES], want, atol=1e-12)
