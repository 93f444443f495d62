"""Ground-truth loaders for the common formats, and finding an image's ground truth beside it.

Formats:

* COCO instances JSON (polygons or RLE) -> :class:`Detections` (via :mod:`segviewer.core.coco_io`),
  with COCO person keypoints (``keypoints`` ``[x, y, v] * K``, the category's names and
  ``skeleton``) as the Detections' keypoints when the file has them (keypoint AP, the GT layer);
* COCO panoptic JSON + PNG folder -> :class:`PanopticMap` (via :mod:`segviewer.core.panoptic_io`);
* label PNGs: plain ids (8- or 16-bit grayscale) or a VOC-style palette PNG. A palette PNG is read
  as its palette *indices* with Pillow: OpenCV would convert it to BGR colors;
* Cityscapes ``*_gtFine_labelIds.png`` (semantic) and ``*_gtFine_instanceIds.png`` (instance id
  = class * 1000 + k for things; a thing class below 1000 is a crowd region);
* the flood-area layout: ``images/``, ``masks/`` and a ``metadata.csv`` of ``Image,Mask`` rows,
  plus the shapes world's ``annotations/instances.json`` and ``annotations/panoptic.json``.

:func:`find_ground_truth` looks for all of these around an image path and loads what it finds.
Bad files raise :class:`BadDatasetError` naming the file.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from segviewer.core.errors import BadDatasetError, SegviewerError
from segviewer.core.results import Detections, PanopticMap, PanopticSegment, SemanticMap

__all__ = [
    "GroundTruth", "read_label_png", "semantic_from_png", "cityscapes_semantic", "cityscapes_panoptic",
    "coco_instances_for", "coco_panoptic_for", "metadata_pairs", "find_ground_truth",
    "VOC_CLASSES", "voc_palette", "CITYSCAPES_LABELS", "dataset_categories", "LabelImage",
    "annotation_files_beside",
]

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)

#: Cityscapes labelIds 0..33: (name, has instances, ignored in evaluation), from the dataset's labels.py.
CITYSCAPES_LABELS: tuple[tuple[str, bool, bool], ...] = (
    ("unlabeled", False, True), ("ego vehicle", False, True), ("rectification border", False, True),
    ("out of roi", False, True), ("static", False, True), ("dynamic", False, True), ("ground", False, True),
    ("road", False, False), ("sidewalk", False, False), ("parking", False, True), ("rail track", False, True),
    ("building", False, False), ("wall", False, False), ("fence", False, False), ("guard rail", False, True),
    ("bridge", False, True), ("tunnel", False, True), ("pole", False, False), ("polegroup", False, True),
    ("traffic light", False, False), ("traffic sign", False, False), ("vegetation", False, False),
    ("terrain", False, False), ("sky", False, False), ("person", True, False), ("rider", True, False),
    ("car", True, False), ("truck", True, False), ("bus", True, False), ("caravan", True, True),
    ("trailer", True, True), ("train", True, False), ("motorcycle", True, False), ("bicycle", True, False),
)


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC color map ``(n, 3)`` uint8 (bits of the index spread over R, G, B)."""
    pal = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


@dataclass(frozen=True)
class LabelImage:
    """A label PNG's values and, for palette PNGs, the palette (``(K, 3)`` RGB) it carried."""

    labels: np.ndarray  # (H, W) uint8 or uint16
    palette: np.ndarray | None = None


def read_label_png(path: str | os.PathLike[str]) -> LabelImage:
    """Label values of a PNG: gray ids as stored (8 or 16 bit); palette PNGs as their indices.

    An RGB PNG whose three channels are equal is read as gray; any other RGB PNG is refused,
    because its colors are not class ids.
    """
    p = Path(path)
    if not p.is_file():
        raise BadDatasetError(f"label image {p} is missing")
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with torchvision
        Image = None
    if Image is not None:
        try:
            with Image.open(p) as im:
                if im.mode == "P":
                    pal = np.array(im.getpalette() or [], np.uint8).reshape(-1, 3)
                    return LabelImage(np.array(im, dtype=np.uint8), pal)
        except OSError as err:
            raise BadDatasetError(f"{p.name} is not a readable image ({err})") from None
    arr = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise BadDatasetError(f"{p.name} is not a readable image")
    if arr.ndim == 3:
        if arr.shape[2] == 4:
            arr = arr[..., :3]
        if not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
            raise BadDatasetError(f"{p.name} is a color image, not a label PNG of class ids or palette indices")
        arr = arr[..., 0]
    if arr.dtype not in (np.uint8, np.uint16):
        raise BadDatasetError(f"{p.name} has {arr.dtype} pixels; label PNGs hold 8- or 16-bit ids")
    return LabelImage(np.ascontiguousarray(arr))


def semantic_from_png(path: str | os.PathLike[str], categories: tuple[str, ...] | None = None,
                      ignore_index: int | None = 255) -> SemanticMap:
    """A :class:`SemanticMap` from a label PNG. Without ``categories``: VOC names for a VOC palette,
    else ``"0"``, ``"1"``, ... up to the largest label."""
    li = read_label_png(path)
    lab = li.labels
    valid = lab if ignore_index is None else lab[lab != ignore_index]
    top = int(valid.max()) if valid.size else 0
    if categories is None:
        pal = li.palette
        if pal is not None and len(pal) >= 21 and np.array_equal(pal[:21], voc_palette(21)) and top < 21:
            categories = VOC_CLASSES
        else:
            categories = tuple(str(i) for i in range(top + 1))
    if top >= len(categories):
        raise BadDatasetError(f"{Path(path).name} has label {top} but only {len(categories)} classes are known")
    return SemanticMap(lab, categories, ignore_index=ignore_index)


def cityscapes_semantic(label_ids_png: str | os.PathLike[str]) -> SemanticMap:
    """Cityscapes ``*_labelIds.png``: labelIds with the dataset's names; classes ignored in
    evaluation become 255 (the ignore label)."""
    lab = read_label_png(label_ids_png).labels
    if lab.size and int(lab.max()) >= len(CITYSCAPES_LABELS):
        raise BadDatasetError(f"{Path(label_ids_png).name} has label {int(lab.max())}, not a Cityscapes labelId")
    lut = np.array([255 if ign else i for i, (_, _, ign) in enumerate(CITYSCAPES_LABELS)] + [255] * 222, np.uint8)
    return SemanticMap(lut[lab.astype(np.int64)], tuple(n for n, _, _ in CITYSCAPES_LABELS), ignore_index=255)


def cityscapes_panoptic(instance_ids_png: str | os.PathLike[str]) -> PanopticMap:
    """Cityscapes ``*_instanceIds.png`` as a :class:`PanopticMap` (as ``createPanopticImgs`` does).

    Values >= 1000 are thing instances (``class * 1000 + k``); values below 1000 are a class id:
    stuff, or for a thing class a crowd region. Classes ignored in evaluation are void. Segment
    ids are the file's values; categories are the 34 labelIds.
    """
    p = Path(instance_ids_png)
    raw = read_label_png(p).labels.astype(np.int32)
    vals, counts = np.unique(raw, return_counts=True)
    names = tuple(n for n, _, _ in CITYSCAPES_LABELS)
    isthing = tuple(t for _, t, _ in CITYSCAPES_LABELS)
    ids = raw.copy()
    segs = []
    for v, n in zip(vals.tolist(), counts.tolist()):
        cls = v // 1000 if v >= 1000 else v
        if cls >= len(CITYSCAPES_LABELS):
            raise BadDatasetError(f"{p.name} has value {v}, whose class {cls} is not a Cityscapes labelId")
        if CITYSCAPES_LABELS[cls][2] or v == 0:
            ids[raw == v] = 0
            continue
        thing = CITYSCAPES_LABELS[cls][1]
        segs.append(PanopticSegment(int(v), cls, thing, int(n), iscrowd=thing and v < 1000))
    return PanopticMap(ids, tuple(segs), names, isthing)


def _image_id(images: dict[int, dict], anns: list[dict] | None, image_path: Path) -> int | None:
    name, stem = image_path.name, image_path.stem
    for i, im in images.items():
        fn = Path(str(im.get("file_name", "")))
        if fn.name == name or fn.stem == stem:
            return i
    for a in anns or []:
        if Path(str(a.get("file_name", ""))).stem == stem:
            return int(a["image_id"])
    return None


def coco_instances_for(json_path: str | os.PathLike[str], image_path: str | os.PathLike[str]) -> Detections:
    """The ground-truth instances of one image (matched by file name) from a COCO instances JSON;
    keypoints ``(N, K, 3)`` with COCO's visibility ``v`` as the third column when it annotates them."""
    from segviewer.core.coco_io import read_instances

    coco = read_instances(json_path)
    img_id = _image_id(coco.images, None, Path(image_path))
    if img_id is None:
        raise BadDatasetError(f"{Path(json_path).name} has no image named {Path(image_path).name}")
    return coco.detections(img_id)


def coco_panoptic_for(json_path: str | os.PathLike[str], image_path: str | os.PathLike[str],
                      png_dir: str | os.PathLike[str] | None = None) -> PanopticMap:
    """The ground-truth panoptic map of one image (matched by file name) from a COCO panoptic JSON."""
    from segviewer.core.panoptic_io import read_panoptic

    ds = read_panoptic(json_path, png_dir)
    anns = [ds.annotation(i) for i in ds.image_ids]
    img_id = _image_id(ds.images, anns, Path(image_path))
    if img_id is None:
        raise BadDatasetError(f"{Path(json_path).name} has no image named {Path(image_path).name}")
    return ds.panoptic(img_id)


def metadata_pairs(csv_path: str | os.PathLike[str]) -> list[tuple[Path, Path]]:
    """``(image, mask)`` paths from a ``metadata.csv`` with ``Image,Mask`` columns (relative to it)."""
    p = Path(csv_path)
    try:
        with p.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError as err:
        raise BadDatasetError(f"{p.name} cannot be read ({err})") from None
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["image", "mask"]:
        raise BadDatasetError(f"{p.name} does not start with an 'Image,Mask' header")
    out = []
    for k, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) < 2:
            raise BadDatasetError(f"{p.name} line {k} has no mask column")
        out.append(((p.parent / row[0].strip()), (p.parent / row[1].strip())))
    return out


@dataclass
class GroundTruth:
    """What was found for one image; any part may be missing. ``sources`` names the files used."""

    semantic: SemanticMap | None = None
    instances: Detections | None = None
    panoptic: PanopticMap | None = None
    sources: dict[str, Path] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.semantic, self.instances, self.panoptic))


def dataset_categories(root: Path) -> tuple[str, ...] | None:
    """Category names of a shapes-world style dataset (``id = index + 1`` in its JSON files)."""
    import json

    for name in ("panoptic.json", "instances.json"):
        p = root / "annotations" / name
        if p.is_file():
            try:
                cats = json.loads(p.read_text(encoding="utf-8")).get("categories", [])
                ordered = sorted(cats, key=lambda c: int(c["id"]))
                if [int(c["id"]) for c in ordered] == list(range(1, len(ordered) + 1)):
                    return tuple(str(c["name"]) for c in ordered)
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                return None
    return None


def _dataset_roots(image: Path) -> list[Path]:
    """Folders that may hold an image's dataset files: the image folder's parent (``images/``
    layouts), then the image folder itself (images at the top)."""
    return [image.parent.parent, image.parent]


def annotation_files_beside(image_path: str | os.PathLike[str], name: str) -> list[Path]:
    """The ``annotations/<name>`` files (e.g. ``instances.json``) where :func:`find_ground_truth`
    looks for an image's ground truth, in the order it tries them; only those that exist."""
    return [p for p in (r / "annotations" / name for r in _dataset_roots(Path(image_path))) if p.is_file()]


def _mask_candidates(image: Path) -> list[Path]:
    stem, parent = image.stem, image.parent
    out = []
    for sub in ("masks", "labels", "SegmentationClass", "annotations"):
        for suffix in (".png", image.suffix):
            out.append(parent.parent / sub / f"{stem}{suffix}")
            out.append(parent / sub / f"{stem}{suffix}")
    for tag in ("_mask", "_label", "_labels", "_gt", "_seg"):
        out.append(parent / f"{stem}{tag}.png")
    return out


def find_ground_truth(image_path: str | os.PathLike[str], categories: tuple[str, ...] | None = None,
                      ignore_index: int | None = 255, image_size: tuple[int, int] | None = None) -> GroundTruth:
    """Look for ground truth around an image and load what is there (see the module docstring).

    Never raises for *missing* ground truth (the result is then empty); a ground-truth file that
    is found but broken, or whose size differs from ``image_size`` ``(H, W)``, raises
    :class:`BadDatasetError`.
    """
    gt = _find(Path(image_path), categories, ignore_index)
    if image_size is not None:
        want = tuple(int(v) for v in image_size)
        for kind in ("semantic", "instances", "panoptic"):
            part = getattr(gt, kind)
            if part is not None and tuple(part.image_size) != want:
                h, w = part.image_size
                raise BadDatasetError(f"{gt.sources[kind].name} is {w}x{h} but {Path(image_path).name} "
                                      f"is {want[1]}x{want[0]}")
    return gt


def _find(img: Path, categories: tuple[str, ...] | None, ignore_index: int | None) -> GroundTruth:
    gt = GroundTruth()
    # Cityscapes: leftImg8bit/<split>/<city>/<x>_leftImg8bit.png -> gtFine/<split>/<city>/<x>_gtFine_*.png
    if img.stem.endswith("_leftImg8bit"):
        base = img.stem[: -len("_leftImg8bit")]
        dirs = [img.parent]
        parts = list(img.parent.parts)
        if "leftImg8bit" in parts:
            k = len(parts) - 1 - parts[::-1].index("leftImg8bit")
            dirs.insert(0, Path(*parts[:k], "gtFine", *parts[k + 1:]))
        for d in dirs:
            lab, inst = d / f"{base}_gtFine_labelIds.png", d / f"{base}_gtFine_instanceIds.png"
            if lab.is_file() and gt.semantic is None:
                gt.semantic, gt.sources["semantic"] = cityscapes_semantic(lab), lab
            if inst.is_file() and gt.panoptic is None:
                gt.panoptic, gt.sources["panoptic"] = cityscapes_panoptic(inst), inst
        if gt:
            return gt
    roots = _dataset_roots(img)
    cats = categories
    for root in roots:
        meta = root / "metadata.csv"
        if gt.semantic is None and meta.is_file():
            try:
                pairs = metadata_pairs(meta)
            except SegviewerError:
                pairs = []
            for im, mask in pairs:
                if im.resolve() == img.resolve() or im.name == img.name:
                    cats = cats or dataset_categories(root)
                    gt.semantic, gt.sources["semantic"] = semantic_from_png(mask, cats, ignore_index), mask
                    break
        inst_json = root / "annotations" / "instances.json"
        if gt.instances is None and inst_json.is_file():
            try:
                gt.instances, gt.sources["instances"] = coco_instances_for(inst_json, img), inst_json
            except BadDatasetError as err:
                if "has no image named" not in str(err):
                    raise
        pan_json = root / "annotations" / "panoptic.json"
        if gt.panoptic is None and pan_json.is_file():
            try:
                gt.panoptic, gt.sources["panoptic"] = coco_panoptic_for(pan_json, img), pan_json
            except BadDatasetError as err:
                if "has no image named" not in str(err):
                    raise
    if gt.semantic is None:
        for cand in _mask_candidates(img):
            if cand.is_file() and cand.resolve() != img.resolve():
                cats = cats or dataset_categories(img.parent.parent)
                gt.semantic, gt.sources["semantic"] = semantic_from_png(cand, cats, ignore_index), cand
                break
    return gt
