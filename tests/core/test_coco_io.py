"""COCO instances JSON: RLE written by us reads back identically, via pycocotools and via our reader;
polygons and uncompressed RLE (the other two encodings in the wild) decode correctly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segviewer.core.coco_io import (
    category_entries,
    decode_segmentation,
    image_entry,
    instance_annotation,
    read_instances,
    write_instances,
)
from segviewer.core.errors import BadDatasetError


def _masks(h: int = 40, w: int = 50) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([
        (xx - 12) ** 2 + (yy - 15) ** 2 < 64,
        (xx >= 30) & (xx < 47) & (yy >= 3) & (yy < 9),
        ((xx + yy) % 7 == 0) & (yy > 20),  # many runs
    ])


def _column_major_runs(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE written out by hand: runs of 0s then 1s, column-major."""
    flat = mask.T.ravel().astype(np.int8)
    runs, cur, n = [], 0, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    return runs


def _write(tmp_path, masks):
    h, w = masks.shape[1:]
    anns = [instance_annotation(k + 1, 7, 5 + k, m) for k, m in enumerate(masks)]
    path = tmp_path / "inst.json"
    write_instances(path, [image_entry(7, "a.png", h, w)], anns,
                    category_entries(["sky", "x", "y", "z", "circle", "square", "ring"], [0, 0, 0, 0, 1, 1, 1]))
    return path


def test_rle_round_trip_through_pycocotools_and_our_reader(tmp_path) -> None:
    from pycocotools.coco import COCO

    masks = _masks()
    path = _write(tmp_path, masks)
    doc = json.loads(path.read_text())
    assert [c["isthing"] for c in doc["categories"]] == [0, 0, 0, 0, 1, 1, 1]
    assert [c["id"] for c in doc["categories"]] == list(range(1, 8))
    coco = COCO(str(path))
    for k, ann in enumerate(coco.loadAnns(coco.getAnnIds(imgIds=[7]))):
        assert np.array_equal(coco.annToMask(ann).astype(bool), masks[k])
        assert ann["area"] == int(masks[k].sum())
    ours = read_instances(path)
    assert np.array_equal(ours.masks(7), masks)
    det = ours.detections(7)
    assert det.names == ("circle", "square", "ring")
    assert np.array_equal(det.masks.to_full(), masks)
    # boxes are tight, xyxy, in pixel-edge coordinates
    assert det.boxes[1].tolist() == [30.0, 3.0, 47.0, 9.0]


def test_polygons_and_uncompressed_rle_decode(tmp_path) -> None:
    from pycocotools.coco import COCO

    h, w = 20, 30
    poly = [[5, 4, 15, 4, 15, 10, 5, 10], [20, 2, 27, 2, 23.5, 9]]
    m = _masks(h, w)[2]
    unc = {"size": [h, w], "counts": _column_major_runs(m)}
    doc = {"images": [image_entry(1, "p.png", h, w)],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": poly, "area": 0,
                            "bbox": [5, 2, 22, 8], "iscrowd": 0},
                           {"id": 2, "image_id": 1, "category_id": 1, "segmentation": unc, "area": 0,
                            "bbox": [0, 0, 1, 1], "iscrowd": 0}],
           "categories": category_entries(["circle"], [True])}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    ours = read_instances(path).masks(1)
    coco = COCO(str(path))
    assert np.array_equal(ours[0], coco.annToMask(coco.loadAnns([1])[0]).astype(bool))
    # the rectangle covers its interior, nothing far outside; the triangle is a separate part
    assert ours[0][5:10, 6:15].all() and not ours[0][12:].any() and ours[0][4, 23]
    assert np.array_equal(ours[1], m)
    assert np.array_equal(decode_segmentation(unc, h, w), m)


def test_bad_files_raise_dataset_errors(tmp_path) -> None:
    with pytest.raises(BadDatasetError, match="missing"):
        read_instances(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(BadDatasetError, match="not a readable JSON"):
        read_instances(tmp_path / "bad.json")
    (tmp_path / "b2.json").write_text(json.dumps({"images": []}))
    with pytest.raises(BadDatasetError, match="'annotations'"):
        read_instances(tmp_path / "b2.json")
    with pytest.raises(BadDatasetError, match="do not add up"):
        decode_segmentation({"size": [4, 4], "counts": [3, 2]}, 4, 4)
    with pytest.raises(BadDatasetError, match="is 5x4 but the image is 4x4"):
        decode_segmentation({"size": [4, 5], "counts": "0"}, 4, 4)
    path = _write(tmp_path, _masks())
    doc = json.loads(path.read_text())
    doc["annotations"][0]["category_id"] = 99
    path.write_text(json.dumps(doc))
    with pytest.raises(BadDatasetError, match="unknown category 99"):
        read_instances(path)
