"""``segviewer eval --task semantic --per-image`` on a Cityscapes tree (``leftImg8bit/`` +
``gtFine/``): rows equal the window's per-image numbers (ground truth found beside each image),
and the dataset numbers ignore what Cityscapes ignores, as the window does."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from segviewer.analysis.dataset_eval import evaluate_image
from segviewer.cli import main
from segviewer.core.dataset_index import open_dataset
from segviewer.core.groundtruth import semantic_from_png


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root, pred = tmp_path / "cs", tmp_path / "pred"
    img_dir, gt_dir = root / "leftImg8bit" / "val" / "ulm", root / "gtFine" / "val" / "ulm"
    for d in (img_dir, gt_dir, pred):
        d.mkdir(parents=True)
    for k in range(3):
        name = f"ulm_{k:06d}"
        cv2.imwrite(str(img_dir / f"{name}_leftImg8bit.png"), np.zeros((16, 24, 3), np.uint8))
        lab = np.full((16, 24), 7, np.uint8)  # road
        lab[:4] = 23  # sky
        lab[12:, :6] = 0  # "unlabeled": ignored by the Cityscapes evaluation
        lab[8:10, 4:4 + 4 * k] = 26  # a car, wider on each image
        cv2.imwrite(str(gt_dir / f"{name}_gtFine_labelIds.png"), lab)
        p = lab.copy()
        p[12:, :6] = 7  # the ignored pixels predicted as road: must not count
        p[8:10] = 7  # the car missed
        cv2.imwrite(str(pred / f"{name}_leftImg8bit_labels.png"), p)
    return root, pred


@pytest.mark.parametrize("where", [".", "gtFine/val", "leftImg8bit/val/ulm"])
def test_per_image_rows_equal_the_windows(tree, tmp_path: Path, where: str) -> None:
    root, pred = tree
    out, js = tmp_path / "rows.csv", tmp_path / "res.json"
    assert main(["eval", "--task", "semantic", "--gt", str(root / where), "--pred", str(pred),
                 "--per-image", str(out), "--json", str(js)]) == 0
    rows = list(csv.DictReader(out.read_text().splitlines()))
    index = open_dataset(root)  # the dataset view's index of the same tree
    assert index.kind == "folder" and [r["file_name"] for r in rows] == [p.name for p in index.paths]
    for i, r in enumerate(rows):
        gt = index.ground_truth(i)
        want = evaluate_image(semantic_from_png(pred / f"{index.paths[i].stem}_labels.png", gt.semantic.categories,
                                                None), gt)[1]
        assert float(r["miou"]) == pytest.approx(want["miou"], abs=1e-6)
        assert float(r["pixel_acc"]) == pytest.approx(want["pixel_acc"], abs=1e-6)
    assert float(rows[0]["pixel_acc"]) == 1.0  # image 0 has no car: right everywhere but the ignored corner
    assert float(rows[2]["pixel_acc"]) < 1.0
    res = json.loads(js.read_text())
    counted = 3 * (16 * 24 - 4 * 6)  # the "unlabeled" corner is not counted
    missed = 2 * 4 + 2 * 8  # car pixels of images 1 and 2
    assert res["pixel_accuracy"] == pytest.approx((counted - missed) / counted)
