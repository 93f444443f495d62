"""COCO panoptic PNG + JSON: id packing, areas from pixels, and a full round trip to PanopticMap."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from segviewer.core.coco_io import category_entries, image_entry
from segviewer.core.errors import BadDatasetError
from segviewer.core.panoptic_io import (
    id2rgb,
    panoptic_annotation,
    read_panoptic,
    read_panoptic_png,
    rgb2id,
    write_panoptic_json,
    write_panoptic_png,
)
from segviewer.core.results import PanopticMap, PanopticSegment

CATS = ("sky", "grass", "circle", "ring")
ISTHING = (False, False, True, True)


def test_id_packing_matches_the_coco_formula() -> None:
    rgb = np.array([[[1, 2, 3], [255, 255, 255], [0, 0, 0]]], np.uint8)
    assert rgb2id(rgb).tolist() == [[1 + 256 * 2 + 65536 * 3, 256**3 - 1, 0]]
    ids = np.random.default_rng(1).integers(0, 256**3, (9, 13))
    assert np.array_equal(rgb2id(id2rgb(ids)), ids)
    with pytest.raises(ValueError):
        id2rgb(np.array([256**3]))


def _map() -> PanopticMap:
    ids = np.zeros((30, 40), np.int32)
    ids[:10] = 1  # sky
    ids[10:] = 2  # grass
    ids[12:20, 5:15] = 3001  # circle instance 1
    ids[22:28, 20:39] = 4002  # ring instance 2
    ids[0, 0] = 0  # a void pixel
    segs = (PanopticSegment(1, 0, False, 0), PanopticSegment(2, 1, False, 0),
            PanopticSegment(3001, 2, True, 0), PanopticSegment(4002, 3, True, 0),
            PanopticSegment(7, 1, False, 0))  # 7 has no pixels: left out of the file
    return PanopticMap(ids, segs, CATS, ISTHING)


def test_round_trip_areas_bboxes_and_isthing(tmp_path) -> None:
    pm = _map()
    write_panoptic_png(tmp_path / "pan" / "a.png", pm.segment_ids)
    ann = panoptic_annotation(5, "a.png", pm)
    write_panoptic_json(tmp_path / "pan.json", [image_entry(5, "a.jpg", 30, 40)], [ann],
                        category_entries(CATS, ISTHING))
    doc = json.loads((tmp_path / "pan.json").read_text())
    assert [c["isthing"] for c in doc["categories"]] == [0, 0, 1, 1]
    info = {s["id"]: s for s in doc["annotations"][0]["segments_info"]}
    assert set(info) == {1, 2, 3001, 4002}
    for sid, s in info.items():
        assert s["area"] == int((pm.segment_ids == sid).sum())
        assert s["iscrowd"] == 0
    assert info[3001]["bbox"] == [5, 12, 10, 8] and info[3001]["category_id"] == 3
    # the PNG on disk is RGB-packed ids (BGR in the file, as OpenCV writes it)
    bgr = cv2.imread(str(tmp_path / "pan" / "a.png"))
    assert rgb2id(bgr[..., ::-1])[15, 10] == 3001
    assert np.array_equal(read_panoptic_png(tmp_path / "pan" / "a.png"), pm.segment_ids)
    back = read_panoptic(tmp_path / "pan.json").panoptic(5)
    assert np.array_equal(back.segment_ids, pm.segment_ids)
    assert back.categories == CATS and back.isthing == ISTHING
    got = {s.id: (s.category_id, s.isthing, s.area) for s in back.segments}
    assert got[4002] == (3, True, int((pm.segment_ids == 4002).sum()))
    assert got[1][1] is False


def test_bad_panoptic_files(tmp_path) -> None:
    pm = _map()
    write_panoptic_png(tmp_path / "pan" / "a.png", pm.segment_ids)
    ann = panoptic_annotation(5, "a.png", pm)
    ann["segments_info"] = ann["segments_info"][:2]  # ids 3001, 4002 now have no info
    write_panoptic_json(tmp_path / "pan.json", [], [ann], category_entries(CATS, ISTHING))
    with pytest.raises(BadDatasetError, match="does not match its segments_info"):
        read_panoptic(tmp_path / "pan.json").panoptic(5)
    with pytest.raises(BadDatasetError, match="no annotation for image 9"):
        read_panoptic(tmp_path / "pan.json").panoptic(9)
    with pytest.raises(BadDatasetError, match="missing"):
        read_panoptic(tmp_path / "nope.json")
    (tmp_path / "g.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(BadDatasetError, match="not a readable PNG"):
        read_panoptic_png(tmp_path / "g.png")
    cv2.imwrite(str(tmp_path / "gray.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(BadDatasetError, match="8-bit RGB"):
        read_panoptic_png(tmp_path / "gray.png")
