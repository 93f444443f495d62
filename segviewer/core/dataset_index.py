"""A dataset opened as a list of images plus per-image ground-truth counts, never every image.

:func:`open_dataset` takes

* a COCO instances JSON (``annotations`` with ``bbox``/``segmentation``) or a COCO panoptic JSON
  (``annotations`` with ``segments_info``, PNGs in the folder named like the JSON), images found
  beside it (``<root>/images``, ``<root>``, or the JSON's folder, where ``root`` is the JSON's
  folder's parent, as COCO lays them out);
* a ``metadata.csv`` (``Image,Mask`` rows: a semantic dataset);
* a folder: its ``annotations/instances.json``, ``annotations/panoptic.json`` and
  ``metadata.csv`` together when present (the shapes world writes all three), else its images
  (a Cityscapes tree: the ``leftImg8bit`` images below it), each image's ground truth then found
  beside it as the window finds it (``core.groundtruth.find_ground_truth``: Cityscapes ``gtFine``).

Opening reads the annotation files once (a 20 MB COCO file in well under a second) and builds
per-image count arrays for the table (``gt_count``, ``class_counts``); an image's ground truth is
decoded only when asked for (:meth:`DatasetIndex.ground_truth`). Semantic datasets have no such
counts in a file: :func:`semantic_presence` decodes every label PNG once (a background job of the
dataset view) to say which classes each image shows. No Qt, no torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.core.errors import BadDatasetError, SegviewerError
from segviewer.core.groundtruth import GroundTruth

__all__ = ["DatasetIndex", "open_dataset", "IMAGE_SUFFIXES", "semantic_presence"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class DatasetIndex:
    """Images of a dataset and what is known of them without decoding any.

    ``paths[i]`` is image i; ``image_ids[i]`` its COCO id (-1 without one); ``class_counts[i, c]``
    its ground-truth instances (or panoptic segments) of ``categories[c]``; ``gt_key`` hashes the
    annotation files (the store's ground-truth key)."""

    root: Path
    kind: str  # "coco" | "panoptic" | "semantic" | "folder" (or "coco+panoptic+semantic")
    paths: list[Path]
    image_ids: np.ndarray
    categories: tuple[str, ...]
    class_counts: np.ndarray  # (N, C) int32
    sizes: np.ndarray  # (N, 2) int32 (H, W), 0 where unknown
    gt_key: str = ""
    sources: dict[str, Path] = field(default_factory=dict)
    _instances: Any = None  # CocoInstances
    _panoptic: Any = None  # PanopticDataset
    _masks: dict[str, Path] = field(default_factory=dict)  # image path -> semantic mask path
    semantic_categories: tuple[str, ...] = ()  # the label PNGs' class names (may differ from categories)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.paths]

    @property
    def gt_count(self) -> np.ndarray:
        return self.class_counts.sum(axis=1) if self.class_counts.size else np.zeros(len(self), np.int64)

    def ground_truth(self, i: int) -> GroundTruth:
        """Image i's ground truth, decoded now."""
        gt = GroundTruth()
        iid = int(self.image_ids[i])
        if self._instances is not None and iid in self._instances.images:
            gt.instances, gt.sources["instances"] = self._instances.detections(iid), self.sources["instances"]
        if self._panoptic is not None and iid in self._panoptic.images:
            try:
                gt.panoptic, gt.sources["panoptic"] = self._panoptic.panoptic(iid), self.sources["panoptic"]
            except BadDatasetError:
                if iid in self._panoptic.image_ids:
                    raise
        if self.kind == "folder":  # ground truth beside each image, as the window finds it (Cityscapes too)
            from segviewer.core.groundtruth import find_ground_truth

            return find_ground_truth(self.paths[i])
        mask = self._masks.get(str(self.paths[i]))
        if mask is not None:
            from segviewer.core.groundtruth import semantic_from_png

            gt.semantic, gt.sources["semantic"] = semantic_from_png(mask, self.semantic_categories or None), mask
        return gt


def _read_json(p: Path) -> dict[str, Any]:
    """The annotation JSON (orjson when installed: see :func:`~segviewer.core.fileio.read_json_object`)."""
    from segviewer.core.fileio import read_json_object

    return read_json_object(p, "annotation JSON")


def _image_folder(json_path: Path, first: str | None) -> Path:
    """Where the images of a COCO file lie: the first candidate holding its first image."""
    root = json_path.parent.parent
    cands = [root / "images", root, json_path.parent, json_path.parent / "images"]
    if first:
        for c in cands:
            if (c / first).is_file():
                return c
        for c in cands:  # COCO's val2017/ beside annotations/
            for sub in sorted(c.iterdir()) if c.is_dir() else []:
                if sub.is_dir() and (sub / first).is_file():
                    return sub
    return next((c for c in cands if c.is_dir()), json_path.parent)


def _hash_files(paths: list[Path]) -> str:
    from segviewer.core.result_store import file_hash

    return "-".join(file_hash(p)[:16] for p in paths)


def _from_coco(data: dict[str, Any], path: Path, idx: DatasetIndex | None) -> DatasetIndex:
    from segviewer.core.coco_io import CocoInstances

    coco = CocoInstances(data, path.name)
    ids = coco.image_ids
    files = [str(coco.images[i].get("file_name", "")) for i in ids]
    folder = _image_folder(path, files[0] if files else None)
    cat_pos = {cid: k for k, cid in enumerate(coco.category_ids)}
    row_of = {iid: r for r, iid in enumerate(ids)}
    counts = np.zeros((len(ids), len(coco.categories)), np.int32)
    for a in data["annotations"]:
        if not a.get("iscrowd", 0):
            counts[row_of[a["image_id"]], cat_pos[a["category_id"]]] += 1
    sizes = np.array([(int(coco.images[i].get("height", 0)), int(coco.images[i].get("width", 0))) for i in ids],
                     np.int32).reshape(-1, 2)
    out = DatasetIndex(folder, "coco", [folder / f for f in files], np.array(ids, np.int64), coco.categories,
                       counts, sizes, sources={"instances": path}, _instances=coco)
    return out


def _from_panoptic(data: dict[str, Any], path: Path) -> DatasetIndex:
    from segviewer.core.panoptic_io import PanopticDataset

    ds = PanopticDataset(data, path.with_suffix(""), path.name)
    ids = sorted(ds.images) if ds.images else ds.image_ids
    files = [str(ds.images.get(i, {}).get("file_name", "")) for i in ids]
    folder = _image_folder(path, files[0] if files else None)
    cat_pos = {cid: k for k, cid in enumerate(ds.category_ids)}
    counts = np.zeros((len(ids), len(ds.categories)), np.int32)
    for r, iid in enumerate(ids):
        for s in ds._anns.get(iid, {}).get("segments_info", []):  # noqa: SLF001 - read-only, same package
            if s.get("category_id") in cat_pos and not s.get("iscrowd", 0):
                counts[r, cat_pos[s["category_id"]]] += 1
    sizes = np.array([(int(ds.images.get(i, {}).get("height", 0)), int(ds.images.get(i, {}).get("width", 0)))
                      for i in ids], np.int32).reshape(-1, 2)
    return DatasetIndex(folder, "panoptic", [folder / f for f in files], np.array(ids, np.int64), ds.categories,
                        counts, sizes, sources={"panoptic": path}, _panoptic=ds)


def _from_metadata(csv_path: Path) -> DatasetIndex:
    from segviewer.core.groundtruth import dataset_categories, metadata_pairs

    pairs = metadata_pairs(csv_path)
    cats = dataset_categories(csv_path.parent) or ()
    paths = [im for im, _ in pairs]
    return DatasetIndex(csv_path.parent, "semantic", paths, np.full(len(paths), -1, np.int64), cats,
                        np.zeros((len(paths), len(cats)), np.int32), np.zeros((len(paths), 2), np.int32),
                        sources={"semantic": csv_path}, _masks={str(im): m for im, m in pairs},
                        semantic_categories=cats)


def _from_folder(folder: Path) -> DatasetIndex:
    """A plain folder of images, or a Cityscapes tree (``leftImg8bit/<split>/<city>/*_leftImg8bit.png``,
    found below ``folder``); their ground truth is found beside each image when asked for."""
    city = folder / "leftImg8bit" if (folder / "leftImg8bit").is_dir() else folder if folder.name == "leftImg8bit" else None
    if city is not None:
        paths = sorted(city.rglob("*_leftImg8bit.png"))
    else:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise SegviewerError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return DatasetIndex(folder, "folder", paths, np.full(len(paths), -1, np.int64), (),
                        np.zeros((len(paths), 0), np.int32), np.zeros((len(paths), 2), np.int32))


def _open_json(p: Path) -> DatasetIndex:
    data = _read_json(p)
    anns = data.get("annotations")
    if not isinstance(anns, list):
        raise BadDatasetError(f"{p.name} has no 'annotations' list: not a COCO instances or panoptic JSON")
    if anns and isinstance(anns[0], dict) and "segments_info" in anns[0]:
        return _from_panoptic(data, p)
    return _from_coco(data, p, None)


_ROOT_MARKERS = ("annotations/instances.json", "annotations/panoptic.json", "metadata.csv")


def dataset_folder_of(image: str | os.PathLike[str]) -> Path:
    """The folder :func:`open_dataset` should open for an image: the nearest of its own folder
    and the two above it that holds annotations (``annotations/instances.json``,
    ``annotations/panoptic.json`` or ``metadata.csv``; the shapes world and COCO-style layouts keep
    ``images/`` beside ``annotations/``), else its own folder (a plain folder of images)."""
    own = Path(image).absolute().parent
    for folder in (own, own.parent, own.parent.parent):
        if any((folder / m).is_file() for m in _ROOT_MARKERS):
            return folder
    return own


def open_dataset(path: str | os.PathLike[str]) -> DatasetIndex:
    """Open a dataset (see the module docstring); raises SegviewerError with one sentence."""
    p = Path(path)
    if not p.exists():
        raise SegviewerError(f"{p} does not exist")
    if p.is_file() and p.suffix.lower() == ".json":
        idx = _open_json(p)
    elif p.is_file() and p.suffix.lower() == ".csv":
        idx = _from_metadata(p)
    elif p.is_dir():
        inst, pan, meta = p / "annotations" / "instances.json", p / "annotations" / "panoptic.json", p / "metadata.csv"
        if inst.is_file():
            idx = _open_json(inst)
            if pan.is_file():  # the shapes world: the same images in both files
                pidx = _open_json(pan)
                if pidx.kind == "panoptic":
                    idx._panoptic, idx.sources["panoptic"] = pidx._panoptic, pan  # noqa: SLF001
                    idx.kind += "+panoptic"
        elif pan.is_file():
            idx = _open_json(pan)
        elif meta.is_file():
            idx = _from_metadata(meta)
        else:
            idx = _from_folder(p)
        if idx.kind not in ("semantic", "folder") and meta.is_file():
            sem = _from_metadata(meta)
            by_name = {q.name: m for q, m in zip(sem.paths, sem._masks.values())}  # noqa: SLF001
            idx._masks = {str(q): by_name[q.name] for q in idx.paths if q.name in by_name}  # noqa: SLF001
            if idx._masks:  # noqa: SLF001
                idx.sources["semantic"], idx.semantic_categories = meta, sem.semantic_categories
                idx.kind += "+semantic"
    else:
        raise SegviewerError(f"{p} is neither a COCO JSON, a metadata.csv nor a folder")
    files = sorted(set(idx.sources.values()))
    idx.gt_key = _hash_files(files) if files else "none"
    return idx


def semantic_presence(index: DatasetIndex, should_stop: Any = None
                      ) -> tuple[tuple[str, ...], np.ndarray] | None:
    """``(categories, (N, C) int32)``: 1 where image i's semantic ground truth shows class c (its
    ignore label left out), for datasets whose files give no per-image counts (``metadata.csv``,
    a Cityscapes tree); every label PNG is decoded once. None when no image has semantic ground
    truth, when the images disagree on the class list, or when ``should_stop()`` says so."""
    cats: tuple[str, ...] | None = None
    rows: list[np.ndarray | None] = []
    for i in range(len(index)):
        if should_stop is not None and should_stop():
            return None
        sem = index.ground_truth(i).semantic
        if sem is None:
            rows.append(None)
            continue
        if cats is None:
            cats = tuple(sem.categories)
        elif tuple(sem.categories) != cats:
            return None
        lab = sem.labels.ravel()
        if sem.ignore_index is not None:
            lab = lab[lab != sem.ignore_index]
        rows.append(np.bincount(lab.astype(np.int64), minlength=len(cats))[: len(cats)] > 0)
    if cats is None:
        return None
    out = np.zeros((len(index), len(cats)), np.int32)
    for i, r in enumerate(rows):
        if r is not None:
            out[i] = r
    return cats, out
