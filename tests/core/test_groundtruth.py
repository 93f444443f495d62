"""Ground-truth loaders and the search beside an image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from segviewer.core.errors import BadDatasetError
from segviewer.core.groundtruth import (
    VOC_CLASSES,
    cityscapes_panoptic,
    cityscapes_semantic,
    find_ground_truth,
    metadata_pairs,
    read_label_png,
    semantic_from_png,
    voc_palette,
)


def test_voc_palette_png_is_read_as_indices_not_colors(tmp_path):
    lab = np.zeros((6, 8), np.uint8)
    lab[1:3, 1:4] = 15  # person
    lab[4, :] = 255  # void border
    im = Image.frombytes("P", (lab.shape[1], lab.shape[0]), lab.tobytes())
    im.putpalette(voc_palette(256).ravel().tolist())
    p = tmp_path / "2007_000001.png"
    im.save(p)
    assert cv2.imread(str(p)).shape == (6, 8, 3)  # OpenCV would give colors
    li = read_label_png(p)
    assert np.array_equal(li.labels, lab) and li.palette is not None
    sem = semantic_from_png(p)
    assert sem.categories == VOC_CLASSES and sem.ignore_index == 255
    assert sem.categories[int(sem.labels[1, 1])] == "person"


def test_plain_gray_and_16bit_ids(tmp_path):
    lab = (np.arange(20).reshape(4, 5) % 3).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), lab)
    sem = semantic_from_png(tmp_path / "a.png", ("x", "y", "z"))
    assert np.array_equal(sem.labels, lab) and sem.categories == ("x", "y", "z")
    big = np.full((3, 3), 1000, np.uint16)
    cv2.imwrite(str(tmp_path / "b.png"), big)
    assert read_label_png(tmp_path / "b.png").labels.dtype == np.uint16


def test_color_png_is_refused(tmp_path):
    img = np.zeros((4, 4, 3), np.uint8)
    img[..., 0] = 200
    cv2.imwrite(str(tmp_path / "c.png"), img)
    with pytest.raises(BadDatasetError, match="c.png is a color image"):
        read_label_png(tmp_path / "c.png")
    with pytest.raises(BadDatasetError, match="label 2 but only 2 classes"):
        cv2.imwrite(str(tmp_path / "d.png"), np.full((2, 2), 2, np.uint8))
        semantic_from_png(tmp_path / "d.png", ("a", "b"))


def test_cityscapes_label_and_instance_ids(tmp_path):
    d = tmp_path / "gtFine" / "val" / "aachen"
    d.mkdir(parents=True)
    lab = np.full((10, 12), 7, np.uint8)  # road
    lab[:3] = 23  # sky
    lab[9] = 0  # unlabeled -> ignore
    inst = lab.astype(np.uint16)
    inst[4:7, 2:5] = 26000  # car #0
    inst[4:7, 7:10] = 26001  # car #1
    inst[8, 0:4] = 26  # a group of cars: crowd
    lab[4:7, 2:10] = 26
    cv2.imwrite(str(d / "aachen_000000_000019_gtFine_labelIds.png"), lab)
    cv2.imwrite(str(d / "aachen_000000_000019_gtFine_instanceIds.png"), inst)
    sem = cityscapes_semantic(d / "aachen_000000_000019_gtFine_labelIds.png")
    assert sem.categories[7] == "road" and sem.labels[9, 0] == 255
    pm = cityscapes_panoptic(d / "aachen_000000_000019_gtFine_instanceIds.png")
    by_id = {s.id: s for s in pm.segments}
    assert set(by_id) == {7, 23, 26000, 26001, 26}
    assert by_id[26000].isthing and not by_id[26000].iscrowd and by_id[26].iscrowd
    assert not by_id[7].isthing and pm.segment_ids[9, 5] == 0
    # found from the image path by the Cityscapes layout
    img_dir = tmp_path / "leftImg8bit" / "val" / "aachen"
    img_dir.mkdir(parents=True)
    img = img_dir / "aachen_000000_000019_leftImg8bit.png"
    cv2.imwrite(str(img), np.zeros((10, 12, 3), np.uint8))
    gt = find_ground_truth(img)
    assert gt.semantic is not None and gt.panoptic is not None and gt.instances is None


def test_shapes_world_dataset_layout(tmp_path):
    from segviewer.synth.dataset import write_dataset

    summary = write_dataset(tmp_path / "ds", 2, seed=3, size=(64, 80))
    img = tmp_path / "ds" / "images" / f"{summary.names[1]}.png"
    gt = find_ground_truth(img, image_size=(64, 80))
    assert gt.semantic is not None and gt.instances is not None and gt.panoptic is not None
    from segviewer.synth.classes import CATEGORIES

    assert gt.semantic.categories == CATEGORIES
    mask = cv2.imread(str(tmp_path / "ds" / "masks" / f"{summary.names[1]}.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(gt.semantic.labels, mask)
    # panoptic things agree with the instances
    things = [s for s in gt.panoptic.segments if s.isthing]
    assert len(things) == len(gt.instances)
    assert sorted(s.area for s in things) == sorted(gt.instances.masks.areas().tolist())
    assert len(metadata_pairs(tmp_path / "ds" / "metadata.csv")) == 2
    with pytest.raises(BadDatasetError, match="is 80x64 but"):
        find_ground_truth(img, image_size=(65, 80))


def test_nothing_found_is_empty_and_sibling_masks_are_found(tmp_path):
    img = tmp_path / "photo.jpg"
    cv2.imwrite(str(img), np.zeros((5, 5, 3), np.uint8))
    assert not find_ground_truth(img)
    cv2.imwrite(str(tmp_path / "photo_mask.png"), np.ones((5, 5), np.uint8))
    gt = find_ground_truth(img)
    assert gt.semantic is not None and gt.sources["semantic"].name == "photo_mask.png"


def test_bad_metadata_csv(tmp_path):
    (tmp_path / "metadata.csv").write_text("a,b\n")
    with pytest.raises(BadDatasetError, match="Image,Mask"):
        metadata_pairs(tmp_path / "metadata.csv")
