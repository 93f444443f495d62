"""``segviewer eval --per-image`` and ``--errors``: rows equal the dock's per-image numbers, TIDE
equals analysis.tide over the same pairs (issue #14)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from segviewer.analysis.dataset_eval import evaluate_image
from segviewer.analysis.tide import tide_evaluate
from segviewer.cli import main
from segviewer.core.coco_results import detections_to_coco
from segviewer.core.dataset_index import open_dataset
from segviewer.synth.predictions import perturb_detections

SCENES = Path(__file__).resolve().parents[2] / "assets" / "scenes"


@pytest.fixture()
def results(tmp_path: Path) -> tuple[Path, list]:
    index = open_dataset(SCENES / "annotations" / "instances.json")
    pairs, recs = [], []
    for i in range(len(index)):
        gt = index.ground_truth(i).instances
        pred = perturb_detections(gt, 40 + i)
        pairs.append((pred, gt))
        recs += detections_to_coco(pred, int(index.image_ids[i]), [1 + k for k in range(len(gt.categories))])
    out = tmp_path / "results.json"
    out.write_text(json.dumps(recs))
    return out, pairs


def test_per_image_csv_and_errors_json(tmp_path: Path, results, capsys) -> None:
    res_path, pairs = results
    csv_path, js = tmp_path / "rows.csv", tmp_path / "out.json"
    assert main(["eval", "--task", "instance", "--gt", str(SCENES / "annotations" / "instances.json"),
                 "--pred", str(res_path), "--per-image", str(csv_path), "--errors", "--json", str(js)]) == 0
    printed = capsys.readouterr().out
    assert "TIDE" in printed and "Dupe" in printed
    rows = list(csv.DictReader(csv_path.read_text().splitlines()))
    assert len(rows) == len(pairs)
    index = open_dataset(SCENES / "annotations" / "instances.json")
    for i, (pred, _) in enumerate(pairs):
        _, want = evaluate_image(pred, index.ground_truth(i))
        row = rows[i]
        assert row["file_name"] == index.paths[i].name
        for k in ("mask_ap", "box_ap50", "tp", "fp", "fn", "mask_loc", "box_miss"):
            assert (float(row[k]) if row[k] else None) == pytest.approx(want.get(k), abs=1e-6), k
    errors = json.loads(js.read_text())["errors"]
    for mode in ("bbox", "segm"):
        ref = tide_evaluate(pairs, mode)
        assert errors[mode]["counts"] == ref.counts
        assert errors[mode]["dAP"] == pytest.approx(ref.dap)
        assert errors[mode]["ap50"] == pytest.approx(ref.ap)


def test_errors_refused_for_semantic(tmp_path: Path) -> None:
    pred = tmp_path / "pred"
    shutil.copytree(SCENES / "masks", pred)
    assert main(["eval", "--task", "semantic", "--gt", str(SCENES / "metadata.csv"), "--pred", str(pred),
                 "--errors"]) == 2


def test_semantic_per_image(tmp_path: Path) -> None:
    pred = tmp_path / "pred"
    shutil.copytree(SCENES / "masks", pred)
    out = tmp_path / "sem.csv"
    assert main(["eval", "--task", "semantic", "--gt", str(SCENES / "metadata.csv"), "--pred", str(pred),
                 "--per-image", str(out)]) == 0
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert len(rows) == 6 and all(float(r["miou"]) == 1.0 for r in rows)


def test_panoptic_per_image(tmp_path: Path) -> None:
    gt = SCENES / "annotations" / "panoptic.json"
    out = tmp_path / "pan.csv"
    assert main(["eval", "--task", "panoptic", "--gt", str(gt), "--pred", str(gt), "--per-image", str(out)]) == 0
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert len(rows) == 6 and all(float(r["pq"]) == 1.0 and r["fp"] == "0" for r in rows)
