"""``synth scenes`` -> ``predict`` -> ``eval`` round trips: what predict writes is scored against the
dataset as it is, by pycocotools directly and by ``segviewer eval`` alike (issue #10)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from segviewer.cli import main

pytestmark = pytest.mark.usefixtures("offline_one_thread")  # tests/commands/conftest.py


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four small scenes, images in images/ (the layout `synth scenes` writes by default)."""
    root = tmp_path_factory.mktemp("rt") / "scenes"
    assert main(["synth", "scenes", "--out", str(root), "--n", "4", "--seed", "3", "--size", "128x160"]) == 0
    return root


def _cocoeval(gt: Path, results: Path) -> dict[str, np.ndarray]:
    """AP straight from pycocotools, reading predict's file as it is."""
    out = {}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt))
        coco_dt = coco_gt.loadRes(str(results))
        for t in ("bbox", "segm"):
            ev = COCOeval(coco_gt, coco_dt, t)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            out[t] = ev.stats.copy()
    return out


def test_predict_with_gt_then_cocoeval_and_segviewer_eval_agree(scenes: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    gt = scenes / "annotations" / "instances.json"
    out = tmp_path / "pred"
    assert main(["predict", "--model", "shapes_maskrcnn", "--device", "cpu", "--gt", str(gt), "--out", str(out),
                 str(scenes / "images")]) == 0
    records = json.loads((out / "results.json").read_text())
    doc = json.loads(gt.read_text())
    by_name = {c["name"]: c["id"] for c in doc["categories"]}
    # the dataset's ids: circle is 5 there (1 in the model), images by file name
    assert {r["category_id"] for r in records} <= {by_name[n] for n in ("circle", "square", "triangle", "star", "ring")}
    images = json.loads((out / "images.json").read_text())
    gt_ids = {im["file_name"]: im["id"] for im in doc["images"]}
    assert {im["file_name"]: im["id"] for im in images} == gt_ids
    ref = _cocoeval(gt, out / "results.json")
    assert ref["segm"][0] > 0.3  # a real score, not the 0.0 of mismatched ids
    capsys.readouterr()
    js = tmp_path / "ap.json"
    assert main(["eval", "--task", "instance", "--gt", str(gt), "--pred", str(out / "results.json"),
                 "--json", str(js)]) == 0
    ours = json.loads(js.read_text())
    names = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
    for t in ("bbox", "segm"):
        assert np.allclose([ours[t][k] for k in names], ref[t], rtol=0, atol=1e-9), t
    # the output folder works as --pred too
    assert main(["eval", "--task", "instance", "--gt", str(gt), "--pred", str(out), "--json", str(js)]) == 0
    assert json.loads(js.read_text()) == ours


def test_ground_truth_beside_the_images_is_found_and_no_gt_keeps_model_ids(scenes: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    gt = scenes / "annotations" / "instances.json"
    auto, explicit, own = tmp_path / "auto", tmp_path / "explicit", tmp_path / "own"
    img = str(scenes / "images" / "scene_001.png")
    assert main(["predict", "--model", "shapes_maskrcnn", "--device", "cpu", "--out", str(auto), img]) == 0
    assert "ids from" in capsys.readouterr().err
    assert main(["predict", "--model", "shapes_maskrcnn", "--device", "cpu", "--gt", str(gt), "--out", str(explicit),
                 img]) == 0
    assert (auto / "results.json").read_text() == (explicit / "results.json").read_text()
    assert json.loads((auto / "images.json").read_text())[0]["id"] == 2  # scene_001 is image 2 of the dataset
    # --no-gt: run position and the model's own class ids, with the map beside them
    assert main(["predict", "--model", "shapes_maskrcnn", "--device", "cpu", "--no-gt", "--out", str(own), img]) == 0
    recs = json.loads((own / "results.json").read_text())
    assert {r["image_id"] for r in recs} == {1} and max(r["category_id"] for r in recs) <= 5
    assert json.loads((own / "images.json").read_text())[0] == {"id": 1, "file_name": "scene_001.png",
                                                                 "height": 128, "width": 160}
    assert json.loads((own / "categories.json").read_text())[1] == {"id": 1, "name": "circle"}


def test_eval_maps_categories_by_name_and_refuses_when_none_match(scenes: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Results in the model's ids (circle = 1, the dataset's sky) score the same as in the dataset's
    ids once eval reads categories.json; with no category in common eval refuses in one line."""
    gt = scenes / "annotations" / "instances.json"
    with_ids, own = tmp_path / "with", tmp_path / "own"
    src = tmp_path / "imgs"
    src.mkdir()
    for name in ("scene_000.png", "scene_001.png"):  # images 1 and 2: run positions equal the dataset's ids
        shutil.copy(scenes / "images" / name, src / name)
    assert main(["predict", "--model", "shapes_maskrcnn", "--device", "cpu", "--gt", str(gt), "--out", str(with_ids),
                 str(src)]) == 0
    assert main(["predict", "--model", "shapes_maskrcnn", "--device", "cpu", "--out", str(own), str(src)]) == 0
    capsys.readouterr()
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["eval", "--task", "instance", "--gt", str(gt), "--pred", str(with_ids), "--json", str(a)]) == 0
    assert main(["eval", "--task", "instance", "--gt", str(gt), "--pred", str(own), "--json", str(b)]) == 0
    assert "matched by name" in capsys.readouterr().err
    assert json.loads(a.read_text()) == json.loads(b.read_text())
    (own / "categories.json").write_text(json.dumps([{"id": i, "name": f"thing {i}"} for i in range(6)]))
    rc = main(["eval", "--task", "instance", "--gt", str(gt), "--pred", str(own)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no predicted category" in err[0] and "circle" in err[0]


def test_semantic_eval_reads_the_label_pngs_predict_writes(scenes: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from segviewer.analysis.metrics import ConfusionMatrix
    from segviewer.core.groundtruth import read_label_png

    out = tmp_path / "sem"
    assert main(["predict", "--model", "shapes_fcn", "--device", "cpu", "--out", str(out), str(scenes / "images")]) == 0
    capsys.readouterr()
    js = tmp_path / "miou.json"
    assert main(["eval", "--task", "semantic", "--gt", str(scenes), "--pred", str(out), "--json", str(js)]) == 0
    res = json.loads(js.read_text())
    cm = ConfusionMatrix(9, 255)
    for m in sorted((scenes / "masks").iterdir()):
        cm.update(read_label_png(m).labels, read_label_png(out / f"{m.stem}_labels.png").labels)
    assert res["images"] == 4 and res["mean_iou"] == pytest.approx(cm.scores()["mean_iou"], abs=1e-12)
    assert res["mean_iou"] > 0.5


def test_panoptic_output_takes_the_dataset_ids_too(scenes: Path, tmp_path: Path) -> None:
    out = tmp_path / "pan"
    assert main(["predict", "--panoptic", "--model", "shapes_maskrcnn", "--model", "shapes_fcn", "--device", "cpu",
                 "--stuff-min-area", "64", "--out", str(out), str(scenes / "images" / "scene_002.png")]) == 0
    doc = json.loads((out / "panoptic.json").read_text())
    gt = json.loads((scenes / "annotations" / "panoptic.json").read_text())
    assert [im["id"] for im in doc["images"]] == [a["image_id"] for a in doc["annotations"]] == [3]
    gt_ids = {c["name"]: c["id"] for c in gt["categories"]}
    assert all(gt_ids[c["name"]] == c["id"] for c in doc["categories"])


def test_images_the_dataset_beside_them_does_not_list_get_run_ids(scenes: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    shutil.copytree(scenes, data)
    shutil.copy(data / "images" / "scene_000.png", data / "images" / "extra.png")  # not in instances.json
    out = tmp_path / "o"
    assert main(["predict", "--model", "shapes_maskrcnn", "--device", "cpu", "--out", str(out),
                 str(data / "images" / "extra.png"), str(data / "images" / "scene_003.png")]) == 0
    note = capsys.readouterr().err
    assert "instances.json beside the images lists all 2 of them" in note and "positions in this run" in note
    assert [im["id"] for im in json.loads((out / "images.json").read_text())] == [1, 2]
    rc = main(["predict", "--model", "shapes_maskrcnn", "--device", "cpu", "--gt",
               str(data / "annotations" / "instances.json"), "--out", str(tmp_path / "o2"), str(data / "images")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "does not list 1 of the 5 images (extra.png)" in err[0]
    assert not (tmp_path / "o2").exists()
