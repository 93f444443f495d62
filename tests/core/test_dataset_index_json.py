"""The dataset index reads annotation JSON with orjson when it is installed: the same index as
the stdlib reader, and what orjson refuses (NaN) still opens through the stdlib."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from segviewer.core.dataset_index import dataset_folder_of, open_dataset
from segviewer.core.errors import BadDatasetError

SCENES = Path(__file__).resolve().parents[2] / "assets" / "scenes"


def _same(a, b) -> None:
    assert a.paths == b.paths and a.categories == b.categories and a.gt_key == b.gt_key
    assert np.array_equal(a.class_counts, b.class_counts) and np.array_equal(a.sizes, b.sizes)


def test_orjson_and_stdlib_give_the_same_index(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("orjson")
    fast = open_dataset(SCENES / "annotations" / "instances.json")
    monkeypatch.setitem(sys.modules, "orjson", None)  # import orjson -> ImportError
    _same(fast, open_dataset(SCENES / "annotations" / "instances.json"))


def test_what_orjson_refuses_goes_to_the_stdlib(tmp_path: Path) -> None:
    data = json.loads((SCENES / "annotations" / "instances.json").read_text())
    data["info"] = {"score": float("nan")}  # json.dumps writes NaN, which orjson refuses
    ann = tmp_path / "annotations" / "instances.json"
    ann.parent.mkdir()
    ann.write_text(json.dumps(data))
    for im in data["images"]:
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "images" / im["file_name"]).write_bytes((SCENES / im["file_name"]).read_bytes())
    idx = open_dataset(ann)
    assert len(idx) == 6 and int(idx.gt_count.sum()) == sum(1 for a in data["annotations"] if not a.get("iscrowd"))
    ann.write_text("{not json")
    with pytest.raises(BadDatasetError, match="not a readable JSON"):
        open_dataset(ann)


def test_every_json_reader_goes_through_orjson_with_the_same_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    """``read_json_object`` (the panoptic, COCO and results readers): orjson's objects equal the
    stdlib's, and with orjson missing the stdlib reads the same file."""
    pytest.importorskip("orjson")
    from segviewer.core.fileio import read_json_object

    path = SCENES / "annotations" / "panoptic.json"
    calls: list[int] = []
    import orjson

    real = orjson.loads
    monkeypatch.setattr(orjson, "loads", lambda b: calls.append(1) or real(b))
    fast = read_json_object(path, "panoptic JSON")
    assert calls == [1] and fast == json.loads(path.read_text())
    monkeypatch.setitem(sys.modules, "orjson", None)
    assert read_json_object(path, "panoptic JSON") == fast


def test_dataset_folder_of_an_image_is_where_its_annotations_are(tmp_path: Path) -> None:
    plain = tmp_path / "photos" / "a.png"
    plain.parent.mkdir()
    assert dataset_folder_of(plain) == plain.parent  # a plain folder of images
    shapes = tmp_path / "ds" / "images" / "b.png"  # the shapes world / COCO layout: images/ beside annotations/
    shapes.parent.mkdir(parents=True)
    (tmp_path / "ds" / "annotations").mkdir()
    (tmp_path / "ds" / "annotations" / "panoptic.json").write_text("{}")
    assert dataset_folder_of(shapes) == tmp_path / "ds"
    (shapes.parent / "metadata.csv").write_text("image,mask\n")  # the nearest wins
    assert dataset_folder_of(shapes) == shapes.parent
    deep = tmp_path / "ds" / "x" / "y" / "z" / "c.png"  # three levels down: too far to be its dataset
    deep.parent.mkdir(parents=True)
    assert dataset_folder_of(deep) == deep.parent
