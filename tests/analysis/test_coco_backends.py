"""faster-coco-eval gives pycocotools' twelve numbers (pycocotools is the reference), on a
generated dataset and on the awkward cases: images without detections or ground truth, crowd
ground truth, box-only results, empty size ranges (-1). "Exactly" means to the last bits of a
double: the two sum the precision/recall arrays in another order, which moves the 16th digit
(seen: 5.6e-17); the tolerance below is 1e-12, far under any printed digit."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from segviewer.analysis.instance_eval import coco_evaluate
from segviewer.core.coco_results import detections_to_coco
from segviewer.core.dataset_index import open_dataset

pytest.importorskip("faster_coco_eval")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list]:
    import json

    from segviewer.synth.dataset import write_dataset
    from segviewer.synth.predictions import perturb_detections

    root = tmp_path_factory.mktemp("ds")
    write_dataset(root, 24, seed=4, size=(96, 120))
    index = open_dataset(root)
    recs = []
    for i in range(len(index)):
        if i == 3:
            continue  # an image without detections
        pred = perturb_detections(index.ground_truth(i).instances, 500 + i)
        recs += detections_to_coco(pred, int(index.image_ids[i]), list(index._instances.category_ids))
    gt = json.loads((root / "annotations" / "instances.json").read_text())
    return gt, recs


def _both(gt: dict, recs: list, types=None) -> tuple[dict, dict]:
    ref = coco_evaluate(copy.deepcopy(gt), copy.deepcopy(recs), types, backend="pycocotools")
    fast = coco_evaluate(copy.deepcopy(gt), copy.deepcopy(recs), types, backend="faster")
    assert ref.keys() == fast.keys()
    for t in ref:
        assert ref[t].keys() == fast[t].keys()
        for k in ref[t]:
            assert abs(ref[t][k] - fast[t][k]) <= 1e-12, (t, k, ref[t][k], fast[t][k])
    return ref, fast


def test_generated_dataset_exactly(data) -> None:
    ref, _ = _both(*data)
    assert 0 < ref["segm"]["AP"] < 1 and ref["bbox"]["APs"] != ref["bbox"]["APl"]


def test_crowd_empty_images_and_box_only(data) -> None:
    gt, recs = copy.deepcopy(data[0]), data[1]
    gt["annotations"][0]["iscrowd"] = 1  # crowd ground truth (RLE)
    gt["images"].append({"id": 9999, "file_name": "empty.png", "height": 96, "width": 120})  # no GT, no dets
    _both(gt, recs)
    boxes = [{k: v for k, v in r.items() if k != "segmentation"} for r in recs]
    _both(gt, boxes, ["bbox"])


def test_minus_one_kept_for_empty_area_ranges() -> None:
    gt = {"images": [{"id": 1, "height": 100, "width": 100, "file_name": "a.png"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 50], "area": 2500.0,
                           "iscrowd": 0}],
          "categories": [{"id": 1, "name": "a"}]}
    recs = [{"image_id": 1, "category_id": 1, "bbox": [12, 10, 50, 50], "score": 0.9}]
    ref, fast = _both(gt, recs, ["bbox"])
    assert ref["bbox"]["APs"] == fast["bbox"]["APs"] == -1 and np.isclose(ref["bbox"]["APm"], 0.9)  # IoU 0.92: 9 of 10 thresholds


def test_the_dock_uses_the_reference() -> None:
    import inspect

    from segviewer.analysis.instance_eval import evaluate_detections

    assert inspect.signature(evaluate_detections).parameters["backend"].default == "pycocotools"


@pytest.mark.parametrize("backend", ["pycocotools", "faster"])
def test_evaluation_leaves_the_callers_data_unchanged(data, backend: str) -> None:
    import json

    gt, recs = data
    before = json.dumps([gt, recs], sort_keys=True)
    coco_evaluate(gt, recs, backend=backend)
    assert json.dumps([gt, recs], sort_keys=True) == before
