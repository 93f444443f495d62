"""COCO keypoint ground truth read by the window's loader, and the Metrics dock's keypoint AP
(image and folder) equal to pycocotools' COCOeval(iouType="keypoints") run on the same file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segviewer.analysis.dataset_eval import dataset_instance_totals, evaluate_image
from segviewer.analysis.evaluation import FolderAccumulator, MergeParams, image_report, report_csv
from segviewer.analysis.keypoint_eval import KEYPOINT_STAT_NAMES
from segviewer.core.coco_io import CocoInstances
from segviewer.core.errors import BadDatasetError
from segviewer.core.groundtruth import coco_instances_for, find_ground_truth
from segviewer.core.result_store import pack_result, unpack_result
from tests.keypoint_coco import NAMES, SKELETON_1, K, pycocotools_keypoint_stats, write_people


def test_loader_reads_keypoints_names_and_skeleton(tmp_path: Path) -> None:
    img, gt_path, _, _ = write_people(tmp_path)
    doc = json.loads(gt_path.read_text())
    gt = find_ground_truth(img).instances
    assert gt is not None and gt.keypoints is not None and gt.keypoints.shape == (4, K, 3)
    for i, a in enumerate(doc["annotations"][:3]):
        assert np.array_equal(gt.keypoints[i].ravel(), np.asarray(a["keypoints"], np.float32))
        assert int((gt.keypoints[i, :, 2] > 0).sum()) == a["num_keypoints"]
    assert not gt.keypoints[3].any()  # the ball has no keypoints: v = 0 throughout
    assert set(gt.keypoints[:3, :, 2].ravel().tolist()) == {0.0, 1.0, 2.0}
    assert gt.keypoint_names == NAMES
    assert [[a + 1, b + 1] for a, b in gt.skeleton] == SKELETON_1
    assert gt.names == ("person", "person", "person", "ball")


def test_loader_without_keypoints_and_refusals(tmp_path: Path) -> None:
    img, gt_path, _, _ = write_people(tmp_path)
    doc = json.loads(gt_path.read_text())
    plain = {**doc, "annotations": [{k: v for k, v in a.items() if k != "keypoints"} for a in doc["annotations"]]}
    gt_path.write_text(json.dumps(plain))
    d = coco_instances_for(gt_path, img)
    assert d.keypoints is None and d.keypoint_names == () and d.skeleton == ()
    bad = json.loads(json.dumps(doc))
    bad["annotations"][1]["keypoints"] = bad["annotations"][1]["keypoints"][:-1]
    gt_path.write_text(json.dumps(bad))
    with pytest.raises(BadDatasetError, match="annotation 2's keypoints are not"):
        coco_instances_for(gt_path, img)
    bad = json.loads(json.dumps(doc))
    bad["annotations"][0]["keypoints"] = bad["annotations"][0]["keypoints"][:-3]
    gt_path.write_text(json.dumps(bad))
    with pytest.raises(BadDatasetError, match="has 16 keypoints but its category names 17"):
        coco_instances_for(gt_path, img)
    bad = json.loads(json.dumps(doc))
    bad["annotations"][2]["keypoints"][4] = "left"
    gt_path.write_text(json.dumps(bad))
    with pytest.raises(BadDatasetError, match="annotation 3's keypoints are not"):
        coco_instances_for(gt_path, img)
    bad = json.loads(json.dumps(doc))
    bad["categories"][0]["skeleton"] = [[0, 1]]
    gt_path.write_text(json.dumps(bad))
    with pytest.raises(BadDatasetError, match="skeleton pair outside"):
        coco_instances_for(gt_path, img)


def test_dock_keypoint_ap_equals_pycocotools(tmp_path: Path) -> None:
    img, gt_path, pred, results = write_people(tmp_path)
    want = pycocotools_keypoint_stats(gt_path, results)
    assert 0.2 < want[0] < 0.9  # neither trivial 0 nor 1: noise, a duplicate and a false positive
    ev = image_report(None, None, find_ground_truth(img), MergeParams(), "people.png", keypoints=pred)
    got = ev.metrics["keypoints"]
    assert list(got) == list(KEYPOINT_STAT_NAMES)
    assert list(got.values()) == pytest.approx(want, abs=1e-12)
    assert "keypoints,,AP," in report_csv(ev.metrics)
    assert not ev.notes

    # the folder: the same image twice, pooled as COCOeval pools a two-image file
    folder = FolderAccumulator().run(iter([ev, image_report(None, None, find_ground_truth(img), MergeParams(),
                                                            keypoints=pred, want_ap=False)]))
    doc = json.loads(gt_path.read_text())
    two = {**doc, "images": doc["images"] + [{**doc["images"][0], "id": 2}],
           "annotations": doc["annotations"] + [{**a, "id": a["id"] + 100, "image_id": 2} for a in doc["annotations"]]}
    (tmp_path / "two.json").write_text(json.dumps(two))
    want2 = pycocotools_keypoint_stats(tmp_path / "two.json", results + [{**r, "image_id": 2} for r in results])
    assert [folder["keypoints"][k] for k in KEYPOINT_STAT_NAMES] == pytest.approx(want2, abs=1e-12)
    assert folder["keypoints"]["images"] == 2


def test_dataset_view_scores_keypoints(tmp_path: Path) -> None:
    """A dataset run of a keypoint model: the stored prediction keeps its keypoints, the image's
    row carries keypoint AP / AP50, and the run's totals pool keypoint AP, all equal to pycocotools."""
    img, gt_path, pred, results = write_people(tmp_path)
    want = pycocotools_keypoint_stats(gt_path, results)
    back = unpack_result(*pack_result(pred))
    np.testing.assert_array_equal(back.keypoints, pred.keypoints)
    assert back.keypoint_names == pred.keypoint_names and back.skeleton == pred.skeleton
    gt = find_ground_truth(img)
    _, row = evaluate_image(back, gt)
    assert (row["kp_ap"], row["kp_ap50"]) == pytest.approx(want[:2], abs=1e-12)
    coco = CocoInstances(json.loads(gt_path.read_text()), gt_path.name)
    got = dataset_instance_totals([(1, back, gt)], coco, backend="pycocotools")
    assert got is not None and [got["keypoints"][k] for k in KEYPOINT_STAT_NAMES] == pytest.approx(want, abs=1e-12)
    plain = pred.select(np.arange(len(pred)))
    plain = type(plain)(plain.image_size, plain.boxes, plain.scores, plain.class_ids, plain.categories)
    assert "kp_ap" not in evaluate_image(plain, gt)[1]  # no keypoints predicted: no column value
    assert dataset_instance_totals([(1, plain, gt)], coco, backend="pycocotools")["keypoints"] is None


def test_dock_says_why_there_is_no_keypoint_ap(tmp_path: Path) -> None:
    img, gt_path, pred, _ = write_people(tmp_path)
    doc = json.loads(gt_path.read_text())
    gt_path.write_text(json.dumps({**doc, "annotations": [{k: v for k, v in a.items() if k != "keypoints"}
                                                          for a in doc["annotations"]]}))
    ev = image_report(None, None, find_ground_truth(img), MergeParams(), keypoints=pred)
    assert "keypoints" not in ev.metrics
    assert any("needs COCO keypoint ground truth" in n for n in ev.notes)
    img, gt_path, pred, _ = write_people(tmp_path / "empty")
    ev = image_report(None, None, find_ground_truth(img), MergeParams(), keypoints=pred.select(np.zeros(0, int)))
    assert ev.metrics["keypoints"]["AP"] == 0.0  # nothing detected where people are annotated


def test_eval_command_scores_a_file_whose_other_categories_have_no_keypoints(tmp_path: Path) -> None:
    """COCOeval reads ``num_keypoints`` and ``keypoints`` of every annotation of a scored image: a
    ball annotated without them is filled in (v = 0, ignored), so eval equals the dock."""
    from segviewer.analysis.keypoint_eval import keypoint_evaluate

    img, gt_path, pred, results = write_people(tmp_path)
    doc = json.loads(gt_path.read_text())
    doc["annotations"][3].pop("num_keypoints")
    got = keypoint_evaluate(doc, results)
    dock = image_report(None, None, find_ground_truth(img), MergeParams(), keypoints=pred).metrics["keypoints"]
    assert got == pytest.approx(dock, abs=1e-12)
    assert "num_keypoints" not in doc["annotations"][3]  # the caller's data is not changed
