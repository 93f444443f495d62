"""DatasetIds: the image and category ids a COCO dataset gives, for results that score against it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segviewer.core.coco_io import check_annotated_images
from segviewer.core.coco_results import DatasetIds
from segviewer.core.errors import BadDatasetError


def _ds(tmp_path: Path, names: list[str], cats: list[tuple[int, str]]) -> DatasetIds:
    p = tmp_path / "instances.json"
    p.write_text(json.dumps({"images": [{"id": 10 + k, "file_name": n} for k, n in enumerate(names)],
                             "annotations": [], "categories": [{"id": i, "name": n} for i, n in cats]}))
    return DatasetIds.read(p)


def test_images_match_by_the_end_of_their_path_most_components_first(tmp_path: Path) -> None:
    ds = _ds(tmp_path, ["a.png", "images/b.png", "x/c.png", "y/c.png", "val\\d.png"], [])
    assert ds.image_id(tmp_path / "a.png") == 10
    assert ds.image_id(tmp_path / "ds" / "images" / "b.png") == 11
    assert ds.image_id(tmp_path / "b.png") is None  # the dataset's b.png is in images/
    assert ds.image_id(tmp_path / "x" / "c.png") == 12 and ds.image_id(tmp_path / "y" / "c.png") == 13
    assert ds.image_id(tmp_path / "z" / "c.png") is None
    assert ds.image_id(tmp_path / "val" / "d.png") == 14  # Windows separators in file_name
    assert ds.image_id_for_name("b.png") == 11 and ds.image_id_for_name("q/images/b.png") == 11
    with pytest.raises(BadDatasetError, match="2 images named c.png"):
        ds.image_id_for_name("c.png")


def test_categories_by_name(tmp_path: Path) -> None:
    ds = _ds(tmp_path, [], [(5, "circle"), (1, "sky"), (9, "ring")])
    assert ds.category_ids(["__background__", "circle", "ring", "blob"]) == [None, 5, 9, None]


def test_annotations_of_unlisted_images_name_the_ids() -> None:
    doc = {"images": [{"id": 1}], "annotations": [{"image_id": 1}, {"image_id": 7}, {"image_id": 7}, {"image_id": 3}]}
    with pytest.raises(BadDatasetError, match=r"gt.json: 3 annotations refer to image ids .* lacks: 3, 7$"):
        check_annotated_images(doc, "gt.json")
    check_annotated_images({"images": [{"id": 1}], "annotations": [{"image_id": 1}]}, "ok.json")
