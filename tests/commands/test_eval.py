"""``segviewer eval`` end to end on a small shapes-world dataset."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from segviewer.cli import main


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from segviewer.synth.dataset import write_dataset

    root = tmp_path_factory.mktemp("eval") / "ds"
    write_dataset(root, 3, seed=11, size=(64, 96))
    return root


def test_panoptic_perfect_and_damaged(dataset, tmp_path, capsys):
    gt = dataset / "annotations" / "panoptic.json"
    out = tmp_path / "pq.json"
    assert main(["eval", "--task", "panoptic", "--gt", str(gt), "--pred", str(gt), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    for k in ("all", "things", "stuff"):
        assert set(res[k]) == {"pq", "sq", "rq", "n"}
    assert res["all"]["pq"] == pytest.approx(1.0) and "per_class" in res
    assert "PQ" in capsys.readouterr().out
    # a prediction that lost one image's PNG: one clear line, exit 2, no JSON written
    pred_dir = tmp_path / "pred"
    shutil.copytree(gt.with_suffix(""), pred_dir)
    first = sorted(pred_dir.iterdir())[0]
    first.unlink()
    out2 = tmp_path / "bad.json"
    rc = main(["eval", "--task", "panoptic", "--gt", str(gt), "--pred", str(gt), "--pred-folder", str(pred_dir),
               "--json", str(out2)])
    err = capsys.readouterr().err
    assert rc == 2 and first.name in err and "missing" in err and err.count("\n") == 1
    assert not out2.exists()


def test_semantic_against_the_metrics_module(dataset, tmp_path, capsys):
    from segviewer.analysis.metrics import ConfusionMatrix

    pred = tmp_path / "pred"
    pred.mkdir()
    cm = ConfusionMatrix(9, 255)
    for m in sorted((dataset / "masks").iterdir()):
        g = cv2.imread(str(m), cv2.IMREAD_UNCHANGED)
        p = g.copy()
        p[:10] = 0  # some damage
        cv2.imwrite(str(pred / m.name), p)
        cm.update(g, p)
    out = tmp_path / "sem.json"
    assert main(["eval", "--task", "semantic", "--gt", str(dataset), "--pred", str(pred), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    ref = cm.scores()
    assert res["mean_iou"] == pytest.approx(ref["mean_iou"]) and res["images"] == 3
    assert "sky" in res["per_class"]  # names from the dataset's categories
    assert "mean IoU" in capsys.readouterr().out
    next(iter(pred.iterdir())).unlink()
    assert main(["eval", "--task", "semantic", "--gt", str(dataset), "--pred", str(pred)]) == 2
    assert "no prediction" in capsys.readouterr().err


def test_instance_ap_of_the_ground_truth_is_one(dataset, tmp_path, capsys):
    gt = dataset / "annotations" / "instances.json"
    anns = json.loads(gt.read_text())["annotations"]
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
                "segmentation": a["segmentation"], "score": 0.9} for a in anns]
    res_path = tmp_path / "res.json"
    res_path.write_text(json.dumps(results))
    out = tmp_path / "ap.json"
    assert main(["eval", "--task", "instance", "--gt", str(gt), "--pred", str(res_path), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["bbox"]["AP"] == pytest.approx(1.0) and res["segm"]["AP"] == pytest.approx(1.0)
    assert "AP50" in capsys.readouterr().out
    results[0]["category_id"] = 999
    res_path.write_text(json.dumps(results))
    assert main(["eval", "--task", "instance", "--gt", str(gt), "--pred", str(res_path)]) == 2
    assert "unknown category 999" in capsys.readouterr().err


def test_semantic_without_names_infers_classes(tmp_path):
    g, p = tmp_path / "g", tmp_path / "p"
    g.mkdir()
    p.mkdir()
    a = np.array([[0, 1], [2, 2]], np.uint8)
    cv2.imwrite(str(g / "x.png"), a)
    cv2.imwrite(str(p / "x.png"), a)
    out = tmp_path / "o.json"
    assert main(["eval", "--task", "semantic", "--gt", str(g), "--pred", str(p), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["num_classes"] == 3
