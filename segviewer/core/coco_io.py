"""COCO instances JSON: write with compressed RLE masks; read polygons and RLE (both kinds).

Category ids in files are whatever the file says; in memory a category is an index into the
tuple of names ordered by id (for shapes-world files, written with ``id = index + 1``, the index
is the ``CATEGORIES`` index). Boxes in files are ``[x, y, w, h]``; in memory ``xyxy`` float32.
Every failure on a bad file is a :class:`BadDatasetError` that names the file and the item.

Keypoints (COCO person keypoints): an annotation's ``keypoints`` (``[x, y, v] * K``, ``v`` 0 =
not labelled, 1 = labelled but hidden, 2 = visible) become the Detections' ``(N, K, 3)``
``keypoints`` with ``v`` as the third column (the layer draws ``v > 0``); names and ``skeleton``
(1-based pairs in the file, 0-based in memory) come from the first category that lists
``keypoints``. Annotations without keypoints in a file that has some get ``v = 0`` throughout.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from segviewer.core.errors import BadDatasetError
from segviewer.core.fileio import read_json_object, write_json_atomic
from segviewer.core.results import Detections, MaskSet

__all__ = [
    "encode_mask", "decode_segmentation", "mask_bbox", "category_entries", "instance_annotation",
    "image_entry", "write_instances", "read_instances", "CocoInstances", "check_annotated_images",
]


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """Compressed RLE of a boolean ``(H, W)`` mask, JSON-ready (``counts`` as str)."""
    m = np.asfortranarray(np.asarray(mask, dtype=np.uint8))
    if m.ndim != 2:
        raise ValueError(f"a mask must be (H, W), got {m.shape}")
    rle = mask_utils.encode(m)
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": rle["counts"].decode("ascii")}


def decode_segmentation(segm: Any, h: int, w: int, where: str = "annotation") -> np.ndarray:
    """``(h, w)`` bool mask from a COCO ``segmentation``: polygons, uncompressed or compressed RLE."""
    try:
        if isinstance(segm, list):  # polygons: [[x0, y0, x1, y1, ...], ...]
            polys = [[float(v) for v in p] for p in segm if len(p) >= 6]
            if not polys:
                return np.zeros((h, w), bool)
            rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
        elif isinstance(segm, Mapping) and "counts" in segm and "size" in segm:
            size = [int(v) for v in segm["size"]]
            if size != [h, w]:
                raise BadDatasetError(f"{where}: its mask is {size[1]}x{size[0]} but the image is {w}x{h}")
            counts = segm["counts"]
            if isinstance(counts, list):  # uncompressed RLE
                if sum(int(c) for c in counts) != h * w:
                    raise BadDatasetError(f"{where}: its RLE counts do not add up to {h}x{w} pixels")
                rle = mask_utils.frPyObjects({"size": size, "counts": [int(c) for c in counts]}, h, w)
            else:
                rle = {"size": size, "counts": counts.encode("ascii") if isinstance(counts, str) else bytes(counts)}
        else:
            raise BadDatasetError(f"{where}: 'segmentation' is neither polygons nor RLE")
        out = mask_utils.decode(rle)
    except BadDatasetError:
        raise
    except (TypeError, ValueError, UnicodeEncodeError, AttributeError) as err:
        raise BadDatasetError(f"{where}: its segmentation cannot be decoded ({err})") from None
    return np.ascontiguousarray(out, dtype=bool).reshape(h, w)


def mask_bbox(mask: np.ndarray) -> list[float]:
    """Tight COCO box ``[x, y, w, h]`` of a mask in pixel-edge coordinates (zeros if empty)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    cols = np.flatnonzero(mask.any(axis=0))
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1 - cols[0]), float(rows[-1] + 1 - rows[0])]


def category_entries(names: Sequence[str], isthing: Sequence[bool]) -> list[dict[str, Any]]:
    """COCO ``categories`` with ``id = index + 1`` and an ``isthing`` flag (panoptic style)."""
    return [
        {"id": i + 1, "name": str(n), "supercategory": "thing" if t else "stuff", "isthing": int(bool(t))}
        for i, (n, t) in enumerate(zip(names, isthing))
    ]


def image_entry(image_id: int, file_name: str, h: int, w: int) -> dict[str, Any]:
    return {"id": int(image_id), "file_name": str(file_name), "height": int(h), "width": int(w)}


def instance_annotation(ann_id: int, image_id: int, category_id: int, mask: np.ndarray) -> dict[str, Any]:
    """One COCO instance annotation with an RLE mask, pixel ``area`` and tight ``bbox``."""
    return {
        "id": int(ann_id), "image_id": int(image_id), "category_id": int(category_id),
        "segmentation": encode_mask(mask), "area": int(np.count_nonzero(mask)),
        "bbox": mask_bbox(mask), "iscrowd": 0,
    }


def write_instances(path: str | os.PathLike[str], images: Sequence[Mapping[str, Any]],
                    annotations: Sequence[Mapping[str, Any]], categories: Sequence[Mapping[str, Any]],
                    info: Mapping[str, Any] | None = None) -> None:
    """Write a COCO instances JSON atomically."""
    doc = {"info": dict(info or {}), "images": list(images), "annotations": list(annotations),
           "categories": list(categories)}
    write_json_atomic(path, doc)


def check_annotated_images(data: Mapping[str, Any], name: str) -> None:
    """Refuse a COCO file (instances or panoptic) whose annotations name image ids that its
    ``images`` list lacks: such annotations would be scored against nothing (a table of "-"),
    or silently dropped. The message names the missing ids."""
    images = data.get("images")
    anns = data.get("annotations")
    if not isinstance(images, list) or not isinstance(anns, list):
        return
    listed = {im.get("id") for im in images if isinstance(im, Mapping)}
    missing: dict[Any, int] = {}
    for a in anns:
        img = a.get("image_id") if isinstance(a, Mapping) else None
        if img not in listed:
            missing[img] = missing.get(img, 0) + 1
    if missing:
        ids = sorted(missing, key=str)
        shown = ", ".join(repr(i) if not isinstance(i, int) else str(i) for i in ids[:8])
        more = f" and {len(ids) - 8} more" if len(ids) > 8 else ""
        raise BadDatasetError(f"{name}: {sum(missing.values())} annotations refer to image ids its 'images' list "
                              f"lacks: {shown}{more}")


def _load_json(path: Path) -> dict[str, Any]:
    return read_json_object(path, "COCO JSON")


class CocoInstances:
    """A COCO instances file (ground truth or results with ``score``), indexed by image."""

    def __init__(self, data: Mapping[str, Any], name: str = "COCO JSON") -> None:
        self.name = name
        for key in ("images", "annotations", "categories"):
            if not isinstance(data.get(key), list):
                raise BadDatasetError(f"{name} has no '{key}' list, so it is not COCO instances JSON")
        try:
            cats = sorted(data["categories"], key=lambda c: int(c["id"]))
            self.category_ids: tuple[int, ...] = tuple(int(c["id"]) for c in cats)
            self.categories: tuple[str, ...] = tuple(str(c["name"]) for c in cats)
            self.isthing: tuple[bool, ...] = tuple(bool(c.get("isthing", 1)) for c in cats)
            self.images: dict[int, dict[str, Any]] = {int(im["id"]): dict(im) for im in data["images"]}
        except (KeyError, TypeError, ValueError) as err:
            raise BadDatasetError(f"{name} has a category or image entry without a valid {err}") from None
        self._index = {cid: i for i, cid in enumerate(self.category_ids)}
        self.keypoint_names, self.skeleton = _keypoint_schema(cats, name)
        check_annotated_images(data, name)
        self._anns: dict[int, list[dict[str, Any]]] = {i: [] for i in self.images}
        for k, ann in enumerate(data["annotations"]):
            img = ann.get("image_id") if isinstance(ann, Mapping) else None
            if img not in self._anns:
                raise BadDatasetError(f"{name}: annotation #{k} refers to unknown image {img!r}")
            if ann.get("category_id") not in self._index:
                raise BadDatasetError(f"{name}: annotation #{k} has unknown category {ann.get('category_id')!r}")
            self._anns[img].append(ann)
        self.num_keypoints = _keypoint_count(data["annotations"], len(self.keypoint_names), name)
        if self.num_keypoints and len(self.keypoint_names) != self.num_keypoints:
            self.keypoint_names = tuple(f"keypoint {i + 1}" for i in range(self.num_keypoints))
            self.skeleton = ()

    @property
    def image_ids(self) -> list[int]:
        return sorted(self.images)

    def image_id(self, file_name: str) -> int:
        """The id of the image whose ``file_name`` (or its base name) matches."""
        for i, im in self.images.items():
            if im.get("file_name") == file_name or Path(str(im.get("file_name"))).name == Path(file_name).name:
                return i
        raise BadDatasetError(f"{self.name} has no image named {file_name}")

    def annotations(self, image_id: int) -> list[dict[str, Any]]:
        return list(self._anns.get(int(image_id), []))

    def _size(self, image_id: int) -> tuple[int, int]:
        im = self.images.get(int(image_id))
        if im is None:
            raise BadDatasetError(f"{self.name} has no image with id {image_id}")
        try:
            return int(im["height"]), int(im["width"])
        except (KeyError, TypeError, ValueError):
            raise BadDatasetError(f"{self.name}: image {image_id} has no valid height/width") from None

    def masks(self, image_id: int) -> np.ndarray:
        """``(N, H, W)`` bool masks of the image's annotations, in file order."""
        h, w = self._size(image_id)
        anns = self._anns.get(int(image_id), [])
        out = np.zeros((len(anns), h, w), bool)
        for k, ann in enumerate(anns):
            out[k] = decode_segmentation(ann.get("segmentation"), h, w,
                                         f"{self.name} annotation {ann.get('id', k)}")
        return out

    def detections(self, image_id: int) -> Detections:
        """The image's annotations as :class:`Detections` (score 1 unless the file gives one)."""
        h, w = self._size(image_id)
        anns = self._anns.get(int(image_id), [])
        masks = self.masks(image_id)
        boxes = np.zeros((len(anns), 4), np.float32)
        for k, ann in enumerate(anns):
            bb = ann.get("bbox") or mask_bbox(masks[k])
            x, y, bw, bh = (float(v) for v in bb)
            boxes[k] = (x, y, x + bw, y + bh)
        return Detections(
            (h, w), boxes,
            np.array([float(a.get("score", 1.0)) for a in anns], np.float32),
            np.array([self._index[a["category_id"]] for a in anns], np.int32),
            self.categories, masks=MaskSet.from_full(masks), keypoints=self.keypoints(image_id),
            keypoint_names=self.keypoint_names if self.num_keypoints else (),
            skeleton=self.skeleton if self.num_keypoints else (),
        )

    def keypoints(self, image_id: int) -> np.ndarray | None:
        """``(N, K, 3)`` float32 ``(x, y, v)`` of the image's annotations in file order (``v = 0``
        for one without keypoints), or None when the file annotates no keypoints."""
        if not self.num_keypoints:
            return None
        anns = self._anns.get(int(image_id), [])
        out = np.zeros((len(anns), self.num_keypoints, 3), np.float32)
        for k, ann in enumerate(anns):
            if ann.get("keypoints"):
                try:
                    out[k] = np.asarray(ann["keypoints"], np.float32).reshape(-1, 3)
                except (TypeError, ValueError):
                    raise BadDatasetError(f"{self.name}: annotation {ann.get('id', k)}'s keypoints are not "
                                          "[x, y, v] numbers") from None
        return out


def _keypoint_schema(cats: Sequence[Mapping[str, Any]], name: str
                     ) -> tuple[tuple[str, ...], tuple[tuple[int, int], ...]]:
    """Keypoint names and 0-based skeleton of the first category that names keypoints."""
    for c in cats:
        kps = c.get("keypoints") if isinstance(c, Mapping) else None
        if not kps:
            continue
        names = tuple(str(k) for k in kps)
        try:
            skel = tuple((int(a) - 1, int(b) - 1) for a, b in (c.get("skeleton") or ()))
        except (TypeError, ValueError):
            raise BadDatasetError(f"{name}: category {c.get('name')!r} has a skeleton that is not "
                                  "a list of [a, b] keypoint pairs") from None
        if any(not (0 <= v < len(names)) for pair in skel for v in pair):
            raise BadDatasetError(f"{name}: category {c.get('name')!r} has a skeleton pair outside its "
                                  f"{len(names)} keypoints (pairs are 1-based)")
        return names, skel
    return (), ()


def _keypoint_count(anns: Sequence[Any], named: int, name: str) -> int:
    """K of the file's ``[x, y, v] * K`` keypoint lists (0 when none has keypoints); refuses
    lists of other lengths, since one result holds one K."""
    k = named
    seen = False
    for i, ann in enumerate(anns):
        kp = ann.get("keypoints")
        if not kp:
            continue
        if not isinstance(kp, list) or len(kp) % 3:  # the numbers are checked when an image is read
            raise BadDatasetError(f"{name}: annotation {ann.get('id', i)}'s keypoints are not [x, y, v] triplets")
        if seen and len(kp) // 3 != k:
            raise BadDatasetError(f"{name}: annotation {ann.get('id', i)} has {len(kp) // 3} keypoints, "
                                  f"others {k}")
        if not seen and named and len(kp) // 3 != named:
            raise BadDatasetError(f"{name}: annotation {ann.get('id', i)} has {len(kp) // 3} keypoints but its "
                                  f"category names {named}")
        k, seen = len(kp) // 3, True
    return k if seen else 0


def read_instances(path: str | os.PathLike[str]) -> CocoInstances:
    """Load a COCO instances JSON with a one-sentence error for anything unreadable."""
    p = Path(path)
    return CocoInstances(_load_json(p), p.name)
