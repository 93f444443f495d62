"""Mask Scoring R-CNN from the command line: ``predict`` writes both scoring rules' inputs
(``box_score``, ``mask_iou``) beside ``score``; ``eval`` prints mask AP under each rule, equal to
pycocotools run on the results rescored that way; other results' output is unchanged."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from segviewer.analysis.mask_scoring import has_rule_scores, rescore
from segviewer.cli import main
from segviewer.commands.predict import predict_image
from segviewer.core.results import Detections, MaskSet
from segviewer.core.timing import Timings

pytestmark = pytest.mark.usefixtures("offline_one_thread")  # tests/commands/conftest.py


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ms") / "scenes"
    assert main(["synth", "scenes", "--out", str(root), "--n", "3", "--seed", "5", "--size", "128x160"]) == 0
    return root


def _segm_stats(gt: Path, results: list[dict]) -> list[float]:
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt))
        ev = COCOeval(coco_gt, coco_gt.loadRes(json.loads(json.dumps(results))), "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]


def _real_ious(gt: Path, records: list[dict]) -> np.ndarray:
    from pycocotools import mask as mask_utils

    doc = json.loads(gt.read_text())
    out = []
    for r in records:
        same = [a for a in doc["annotations"] if a["image_id"] == r["image_id"]
                and a["category_id"] == r["category_id"]]
        seg = dict(r["segmentation"], counts=r["segmentation"]["counts"].encode("ascii"))
        gts = [dict(a["segmentation"], counts=a["segmentation"]["counts"].encode("ascii")) for a in same]
        out.append(float(np.max(mask_utils.iou([seg], gts, [0] * len(gts)))) if gts else 0.0)
    return np.asarray(out)


def test_predict_writes_both_rules_and_eval_scores_each(scenes: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    gt = scenes / "annotations" / "instances.json"
    runs = {}
    for rule in ("mask", "box"):
        out = tmp_path / rule
        assert main(["predict", "--model", "shapes_msrcnn", "--device", "cpu", "--gt", str(gt), "--out", str(out),
                     "--set", f"scoring={rule}", str(scenes / "images")]) == 0
        runs[rule] = json.loads((out / "results.json").read_text())
    mask, box = runs["mask"], runs["box"]
    assert mask and has_rule_scores(mask) and len(box) == len(mask)
    for m, b in zip(mask, box):  # one pass gives both rules: only `score` differs between the runs
        assert m["box_score"] == b["box_score"] == b["score"] and m["mask_iou"] == b["mask_iou"]
        assert m["score"] == float(np.float32(m["box_score"]) * np.float32(m["mask_iou"]))
        assert 0.0 <= m["mask_iou"] <= 1.0
    assert rescore(box, "mask") == mask and rescore(mask, "box") == box  # bit for bit

    capsys.readouterr()
    js = tmp_path / "eval.json"
    assert main(["eval", "--task", "instance", "--gt", str(gt), "--pred", str(tmp_path / "mask"),
                 "--json", str(js)]) == 0
    printed = capsys.readouterr().out
    res = json.loads(js.read_text())
    for rule, records in (("box", box), ("mask", mask)):
        want = _segm_stats(gt, records)  # pycocotools on the run that scored by this rule
        assert list(res["mask_scoring"][rule].values()) == pytest.approx(want, abs=1e-9)
        title = "box score" if rule == "box" else "box x mask IoU"
        line = next(ln for ln in printed.splitlines() if ln.startswith(title))
        assert line.split()[-12] == f"{100 * want[0]:.1f}"
    assert res["mask_scoring"]["mask"] == pytest.approx(res["segm"])  # the run's own rule is its segm AP
    real = _real_ious(gt, mask)  # pycocotools' mask IoU, best ground truth of the same category
    r = res["mask_scoring"]["pearson_real_iou"]
    assert r["detections"] == len(mask) and 0.0 < real.max() <= 1.0
    for key, scores in (("box", [m["box_score"] for m in mask]), ("mask", [m["score"] for m in mask]),
                        ("mask_iou", [m["mask_iou"] for m in mask])):
        assert r[key] == pytest.approx(float(np.corrcoef(scores, real)[0, 1]), abs=1e-5)
    assert f"box x mask IoU {r['mask']:.3f}" in printed
    print(f"3 scenes: mask AP box rule {res['mask_scoring']['box']['AP']:.4f}, "
          f"Mask Scoring rule {res['mask_scoring']['mask']['AP']:.4f}")

    # without the fields (any other instance model's results) eval prints and writes what it did
    plain = [{k: v for k, v in r.items() if k not in ("box_score", "mask_iou")} for r in mask]
    (tmp_path / "plain.json").write_text(json.dumps(plain))
    assert main(["eval", "--task", "instance", "--gt", str(gt), "--pred", str(tmp_path / "plain.json"),
                 "--json", str(tmp_path / "plain_eval.json")]) == 0
    assert "scoring rule" not in capsys.readouterr().out
    assert set(json.loads((tmp_path / "plain_eval.json").read_text())) == {"bbox", "segm"}


class _Scored:
    """An adapter with ``predict_scored`` (as ShapesMaskScoring) and three classes."""

    def predict_scored(self, image, params, tm):  # noqa: ANN001, ANN201
        n = 3
        masks = np.zeros((n, 16, 16), bool)
        masks[:, 2:9, 2:9] = True
        det = Detections((16, 16), np.tile(np.float32([2, 2, 9, 9]), (n, 1)), np.float32([0.9, 0.8, 0.7]),
                         np.int32([1, 2, 1]), ("__background__", "a", "b"), masks=MaskSet.from_full(masks))
        rules = SimpleNamespace(box_scores=np.float32([0.95, 0.85, 0.75]), mask_iou=np.float32([0.1, 0.2, 0.3]))
        return det, rules


def test_rule_fields_follow_their_detection_when_a_class_is_left_out() -> None:
    """A class the dataset lacks is left out of results.json: the fields stay with their detection."""
    out = predict_image(_Scored(), np.zeros((16, 16, 3), np.uint8), 7, None, 0.5, [None, 4, None], Timings())
    assert [(r["score"], r["box_score"], r["mask_iou"]) for r in out.records] == [
        (pytest.approx(0.9), pytest.approx(0.95), pytest.approx(0.1)),
        (pytest.approx(0.7), pytest.approx(0.75), pytest.approx(0.3))]
    assert not has_rule_scores([{k: v for k, v in r.items() if k != "mask_iou"} for r in out.records])
