"""Dataset writers: byte-identical reruns, and every format reads back to the generator's truth."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from segviewer.core.coco_io import read_instances
from segviewer.core.errors import SegviewerError
from segviewer.core.panoptic_io import read_panoptic, rgb2id
from segviewer.synth.classes import CATEGORIES, ISTHING
from segviewer.synth.dataset import ID_DIVISOR, scene_seed, write_dataset
from segviewer.synth.generate import generate_scene

SIZE = (72, 96)


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ds")
    write_dataset(root, 5, seed=11, size=SIZE)
    return root


def test_same_seed_same_bytes(ds: Path, tmp_path: Path) -> None:
    write_dataset(tmp_path / "again", 5, seed=11, size=SIZE)
    assert _hashes(ds) == _hashes(tmp_path / "again")
    write_dataset(tmp_path / "other", 5, seed=12, size=SIZE)
    assert _hashes(ds)["images/scene_000.png"] != _hashes(tmp_path / "other")["images/scene_000.png"]
    assert not [p for p in ds.rglob("*.part*")], "temporary files left behind"


def test_seeds_are_per_image_and_distinct() -> None:
    seeds = {scene_seed(s, i) for s in range(20) for i in range(50)}
    assert len(seeds) == 1000


def test_layout_and_metadata_csv(ds: Path) -> None:
    with open(ds / "metadata.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["Image", "Mask"]
    assert rows[1:] == [[f"images/scene_{i:03d}.png", f"masks/scene_{i:03d}.png"] for i in range(5)]
    for img, mask in rows[1:]:
        assert (ds / img).is_file() and (ds / mask).is_file()


def test_images_masks_and_coco_match_the_generator(ds: Path) -> None:
    from pycocotools.coco import COCO

    coco = COCO(str(ds / "annotations" / "instances.json"))
    ours = read_instances(ds / "annotations" / "instances.json")
    doc = json.loads((ds / "annotations" / "instances.json").read_text())
    assert [(c["id"], c["name"], bool(c["isthing"])) for c in doc["categories"]] == [
        (i + 1, n, t) for i, (n, t) in enumerate(zip(CATEGORIES, ISTHING))]
    for i in range(5):
        im = coco.loadImgs([i + 1])[0]
        scene = generate_scene(im["seed"], SIZE)
        rgb = cv2.imread(str(ds / "images" / im["file_name"]))[..., ::-1]
        assert np.array_equal(rgb, scene.image)
        sem = cv2.imread(str(ds / "masks" / im["file_name"]), cv2.IMREAD_UNCHANGED)
        assert sem.dtype == np.uint8 and np.array_equal(sem, scene.semantic)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[i + 1]))
        assert len(anns) == len(scene.instances)
        for ann, inst in zip(anns, scene.instances):
            assert ann["category_id"] == inst.category + 1 and ISTHING[ann["category_id"] - 1]
            assert np.array_equal(coco.annToMask(ann).astype(bool), inst.mask)
            assert ann["area"] == int(inst.mask.sum()) and ann["iscrowd"] == 0
        assert np.array_equal(ours.masks(i + 1), np.array([x.mask for x in scene.instances]).reshape(-1, *SIZE))


def test_panoptic_matches_pixels_and_semantics(ds: Path) -> None:
    doc = json.loads((ds / "annotations" / "panoptic.json").read_text())
    pan = read_panoptic(ds / "annotations" / "panoptic.json")
    for ann in doc["annotations"]:
        bgr = cv2.imread(str(ds / "annotations" / "panoptic" / ann["file_name"]))
        ids = rgb2id(bgr[..., ::-1])
        sem = cv2.imread(str(ds / "masks" / ann["file_name"]), cv2.IMREAD_UNCHANGED)
        assert not np.any(ids == 0), "shapes-world ground truth has no void"
        assert set(np.unique(ids).tolist()) == {s["id"] for s in ann["segments_info"]}
        stuff_seen = []
        for s in ann["segments_info"]:
            m = ids == s["id"]
            assert s["area"] == int(m.sum()) and s["iscrowd"] == 0
            cat = s["category_id"] - 1
            assert s["id"] // ID_DIVISOR == s["category_id"]
            assert np.all(sem[m] == cat)
            if not ISTHING[cat]:
                stuff_seen.append(cat)
            ys, xs = np.nonzero(m)
            assert s["bbox"] == [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                                 int(ys.max() - ys.min() + 1)]
        assert sorted(stuff_seen) == sorted(set(stuff_seen)), "one segment per stuff class"
        pm = pan.panoptic(ann["image_id"])
        assert np.array_equal(pm.segment_ids, ids)
        assert all(seg.isthing == ISTHING[seg.category_id] for seg in pm.segments)


def test_images_at_the_top(tmp_path: Path) -> None:
    write_dataset(tmp_path, 2, seed=3, size=(32, 32), images_dir=".")
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["scene_000.png", "scene_001.png"]
    assert (tmp_path / "metadata.csv").read_text().splitlines()[1] == "scene_000.png,masks/scene_000.png"
    with pytest.raises(SegviewerError, match="inside the dataset"):
        write_dataset(tmp_path, 1, seed=3, images_dir="../up")


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(SegviewerError, match="at least 1"):
        write_dataset(tmp_path / "x", 0, seed=1)
    (tmp_path / "file").write_text("x")
    with pytest.raises(SegviewerError, match="not a folder"):
        write_dataset(tmp_path / "file", 1, seed=1)
