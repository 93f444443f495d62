"""A small COCO person-keypoints set written to a folder (``images/people.png`` and
``annotations/instances.json``, the layout the window finds ground truth in) and a keypoint model's
result on it, as Detections and as the COCO results pycocotools reads: the Metrics dock's and the
loader's keypoint tests share it."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from segviewer.adapters.registry import get_card
from segviewer.core.results import Detections

H, W = 240, 320
CARD = get_card("keypointrcnn_resnet50_fpn")  # categories ("no person", "person"), COCO's 17 keypoints
NAMES = CARD.keypoint_names
SKELETON_1 = [[a + 1, b + 1] for a, b in CARD.skeleton]  # COCO files count keypoints from 1
K = len(NAMES)


def _poly(x: float, y: float, w: float, h: float) -> list[list[float]]:
    return [[x, y, x + w, y, x + w, y + h, x + 0.3 * w, y + h]]


def _area(poly: list[list[float]]) -> float:
    """COCO's ``area`` of a polygon: its mask's pixel count (as the dataset tools compute it)."""
    return float(mask_utils.area(mask_utils.merge(mask_utils.frPyObjects(poly, H, W))))


def write_people(root: Path, seed: int = 3) -> tuple[Path, Path, Detections, list[dict]]:
    """``(image, instances.json, prediction, results)``: three people (17 keypoints, some hidden
    v = 1 or unlabelled v = 0) and a ball without keypoints; the prediction finds the people with
    growing keypoint error, plus a duplicate and a false positive."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    img = root / "images" / "people.png"
    pic = np.zeros((H, W, 3), np.uint8)
    pic[:] = (90, 120, 90)
    boxes = [(20, 30, 60, 150), (110, 50, 70, 170), (210, 20, 90, 200)]
    anns = []
    for i, (x, y, w, h) in enumerate(boxes):
        cv2.rectangle(pic, (x, y), (x + w, y + h), (200, 170, 140), -1)
        kp = []
        for k in range(K):
            v = 0 if (i == 1 and k >= 13) else 1 if k % 5 == 4 else 2
            kp += [float(x + rng.uniform(0, w)), float(y + rng.uniform(0, h)), v] if v else [0.0, 0.0, 0]
        poly = _poly(x, y, w, h)
        anns.append({"id": i + 1, "image_id": 1, "category_id": 1, "bbox": [x, y, w, h], "area": _area(poly),
                     "iscrowd": 0, "segmentation": poly, "keypoints": kp,
                     "num_keypoints": sum(1 for v in kp[2::3] if v > 0)})
    ball = _poly(150, 10, 30, 30)
    anns.append({"id": 4, "image_id": 1, "category_id": 2, "bbox": [150, 10, 30, 30], "area": _area(ball),
                 "iscrowd": 0, "segmentation": ball, "num_keypoints": 0})
    cv2.circle(pic, (165, 25), 15, (40, 40, 220), -1)
    cv2.imwrite(str(img), pic)
    gt = {"images": [{"id": 1, "file_name": "people.png", "height": H, "width": W}], "annotations": anns,
          "categories": [{"id": 1, "name": "person", "keypoints": list(NAMES), "skeleton": SKELETON_1},
                         {"id": 2, "name": "ball"}]}
    gt_path = root / "annotations" / "instances.json"
    gt_path.write_text(json.dumps(gt))

    pboxes, scores, kps = [], [], []
    for a, noise, score in zip(anns[:3], (1.5, 5.0, 12.0), (0.95, 0.85, 0.6)):
        x, y, w, h = a["bbox"]
        kp = np.asarray(a["keypoints"], np.float32).reshape(K, 3)
        kp[:, :2] += rng.normal(0, noise, (K, 2)).astype(np.float32)
        kp[:, 2] = rng.uniform(0, 5, K)  # a keypoint model's per-keypoint score
        pboxes.append([x, y, x + w, y + h])
        scores.append(score)
        kps.append(kp)
    kps.append(kps[0] + np.float32([3, -2, 0]))  # a duplicate of the first person, lower score
    pboxes.append(pboxes[0])
    scores.append(0.5)
    fp = np.column_stack([rng.uniform(120, 200, K), rng.uniform(150, 230, K), np.ones(K)]).astype(np.float32)
    kps.append(fp)  # a false positive between people
    pboxes.append([120, 150, 200, 230])
    scores.append(0.9)
    pred = Detections((H, W), np.asarray(pboxes, np.float32), np.asarray(scores, np.float32),
                      np.ones(len(scores), np.int32), CARD.categories, keypoints=np.stack(kps),
                      keypoint_names=NAMES, skeleton=CARD.skeleton)
    results = [{"image_id": 1, "category_id": 1, "score": float(s), "keypoints": [float(v) for v in k.ravel()]}
               for s, k in zip(pred.scores, pred.keypoints)]
    return img, gt_path, pred, results


def pycocotools_keypoint_stats(gt_path: Path, results: list[dict]) -> list[float]:
    """COCOeval(iouType="keypoints") run directly on the file and the results (the reference)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt_path))
        dt = coco.loadRes(json.loads(json.dumps(results)))
        ev = COCOeval(coco, dt, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]
