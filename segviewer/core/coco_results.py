"""Detections <-> COCO results format (the list of dicts ``COCO.loadRes`` and the evaluators read).

Each detection becomes ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``, plus
``"segmentation"`` (compressed RLE with ``counts`` as a str, so it survives ``json.dump``) when
the detections carry masks and ``"keypoints"`` (flat ``[x, y, score] * K``) when they carry
keypoints. COCO's pixel coordinates are ours: the top-left corner of the image is (0, 0) and
pixel (row, col) covers [col, col + 1) x [row, row + 1), so boxes need no half-pixel shift.

COCO category ids are not our class ids: ``category_ids[class_id]`` gives the COCO id (for the
shapes world that is ``index + 1``); without it the class id is written as is.

Results scored against a dataset must carry *its* ids: :class:`DatasetIds` reads a COCO
instances or panoptic JSON and gives the image id of an image file (matched by its path's last
components against ``file_name``) and the category id of a class name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from segviewer.core.errors import BadDatasetError
from segviewer.core.results import Detections, MaskSet

__all__ = ["detections_to_coco", "coco_to_detections", "encode_mask", "decode_segmentation", "DatasetIds"]


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """Compressed COCO RLE of an ``(H, W)`` mask, with ``counts`` as an ASCII str."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def decode_segmentation(seg: Any, image_size: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` bool mask from an RLE (compressed or not) or a list of polygons."""
    h, w = image_size
    if isinstance(seg, list):  # polygons
        rles = mask_utils.frPyObjects(seg, h, w)
        rle = mask_utils.merge(rles) if rles else mask_utils.encode(np.zeros((h, w), np.uint8, order="F"))
    elif isinstance(seg, Mapping) and "counts" in seg:
        size = [int(v) for v in seg["size"]]
        if size != [h, w]:
            raise BadDatasetError(f"a segmentation is {size[1]}x{size[0]} but the image is {w}x{h}.")
        counts = seg["counts"]
        if isinstance(counts, list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(dict(seg), h, w)
        else:
            rle = {"size": size, "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    else:
        raise BadDatasetError(f"a segmentation is neither RLE nor polygons (got {type(seg).__name__}).")
    return mask_utils.decode(rle).astype(bool)


def detections_to_coco(dets: Detections, image_id: int,
                       category_ids: Sequence[int | None] | None = None) -> list[dict[str, Any]]:
    """COCO result records of one image's detections (see the module docstring).

    A class whose ``category_ids`` entry is ``None`` has no category in the target dataset: its
    detections are left out (a record with a made-up id would only be refused by the evaluator).
    """
    if category_ids is not None and len(dets) and int(dets.class_ids.max()) >= len(category_ids):
        raise ValueError(f"class id {int(dets.class_ids.max())} has no entry in category_ids "
                         f"({len(category_ids)} given)")
    out: list[dict[str, Any]] = []
    for i in range(len(dets)):
        x0, y0, x1, y1 = (float(v) for v in dets.boxes[i])
        cls = int(dets.class_ids[i])
        cid = category_ids[cls] if category_ids is not None else cls
        if cid is None:
            continue
        rec: dict[str, Any] = {
            "image_id": int(image_id),
            "category_id": int(cid),
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "score": float(dets.scores[i]),
        }
        if dets.masks is not None:
            rec["segmentation"] = encode_mask(dets.masks.full(i))
        if dets.keypoints is not None:
            rec["keypoints"] = [float(v) for v in dets.keypoints[i].ravel()]
        out.append(rec)
    return out


def _crop(mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return np.zeros((0, 0), bool), (0, 0)
    cols = np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return mask[y0:y1, x0:x1].copy(), (x0, y0)


def coco_to_detections(records: Sequence[Mapping[str, Any]], image_size: tuple[int, int],
                       categories: Sequence[str], category_ids: Sequence[int] | None = None) -> Detections:
    """Detections from the COCO records of one image (results or ground-truth annotations).

    ``categories`` are our class names; ``category_ids`` (as in :func:`detections_to_coco`) maps
    them to the records' COCO ids, default identity. Missing scores (ground truth) read as 1.
    Masks are kept compact; records without a segmentation get an empty mask when others have one.
    Raises :class:`BadDatasetError` for unknown categories and mis-sized segmentations.
    """
    h, w = (int(v) for v in image_size)
    to_class = ({int(c): k for k, c in enumerate(category_ids)} if category_ids is not None
                else {k: k for k in range(len(categories))})
    boxes, scores, cls, crops, offs, kps = [], [], [], [], [], []
    has_seg = any(r.get("segmentation") is not None for r in records)
    has_kp = any(r.get("keypoints") for r in records)
    n_kp = max((len(r.get("keypoints") or ()) // 3 for r in records), default=0)
    for r in records:
        cid = int(r["category_id"])
        if cid not in to_class:
            raise BadDatasetError(f"category id {cid} of image {r.get('image_id')} is not one of the "
                                  f"{len(categories)} known categories.")
        seg = r.get("segmentation")
        mask = decode_segmentation(seg, (h, w)) if seg is not None else None
        if "bbox" in r:
            x, y, bw, bh = (float(v) for v in r["bbox"])
        elif mask is not None:
            x, y, bw, bh = (float(v) for v in mask_utils.toBbox(mask_utils.encode(np.asfortranarray(mask, np.uint8))))
        else:
            raise BadDatasetError(f"a record of image {r.get('image_id')} has neither bbox nor segmentation.")
        boxes.append((x, y, x + bw, y + bh))
        scores.append(float(r.get("score", 1.0)))
        cls.append(to_class[cid])
        if has_seg:
            c, o = _crop(mask) if mask is not None else (np.zeros((0, 0), bool), (0, 0))
            crops.append(c)
            offs.append(o)
        if has_kp:
            k = np.zeros((n_kp, 3), np.float32)
            flat = np.asarray(r.get("keypoints") or [], np.float32).reshape(-1, 3)
            k[: len(flat)] = flat
            kps.append(k)
    masks = MaskSet((h, w), tuple(crops), np.array(offs, np.int32).reshape(-1, 2)) if has_seg else None
    return Detections(
        (h, w), np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32),
        np.array(cls, np.int32), tuple(categories), masks=masks,
        keypoints=np.stack(kps) if has_kp else None,
    )


def _parts(name: str) -> tuple[str, ...]:
    """Path components of a ``file_name`` as datasets write them (``/`` or ``\\``, no ``.``)."""
    return tuple(p for p in PurePosixPath(str(name).replace("\\", "/")).parts if p not in ("", ".", "/"))


@dataclass(frozen=True)
class DatasetIds:
    """The ids a COCO dataset gives its images and categories, so that predictions written with
    them are read by ``COCO.loadRes`` / ``pq_compute`` against that dataset as they are.

    ``images`` maps image id -> ``file_name``; ``categories`` maps category name -> id.
    """

    source: Path
    images: Mapping[int, str]
    categories: Mapping[str, int]

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> DatasetIds:
        """From a COCO instances or panoptic JSON (both list ``images`` and ``categories``)."""
        from segviewer.core.fileio import read_json_object

        p = Path(path)
        data = read_json_object(p, "COCO JSON")
        for key in ("images", "categories"):
            if not isinstance(data.get(key), list):
                raise BadDatasetError(f"{p.name} has no '{key}' list, so it is not a COCO dataset JSON")
        try:
            images = {int(im["id"]): str(im["file_name"]) for im in data["images"]}
            cats: dict[str, int] = {}
            for c in sorted(data["categories"], key=lambda c: int(c["id"])):
                cats.setdefault(str(c["name"]), int(c["id"]))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise BadDatasetError(f"{p.name} has an image or category entry without a valid {err}") from None
        return cls(p, images, cats)

    def image_id(self, image_path: str | os.PathLike[str]) -> int | None:
        """The id of the listed image whose ``file_name`` is the end of the image file's path
        (the most components wins: ``images/a.png`` beats ``a.png``); ``None`` when none is. Two
        listed images that match equally well are ambiguous: :class:`BadDatasetError`."""
        return self._match(Path(os.path.abspath(image_path)).parts, both_ways=False)

    def image_id_for_name(self, file_name: str) -> int | None:
        """As :meth:`image_id` for a relative name (another run's ``file_name``): either name may
        be the end of the other (``a.png`` matches ``images/a.png`` and the reverse)."""
        return self._match(_parts(file_name), both_ways=True)

    def _match(self, want: tuple[str, ...], both_ways: bool) -> int | None:
        best: list[int] = []
        best_len = 0
        for img_id, name in self.images.items():
            parts = _parts(name)
            k = min(len(parts), len(want))
            if not k or (len(parts) > len(want) and not both_ways) or parts[-k:] != want[-k:]:
                continue
            if k > best_len:
                best, best_len = [img_id], k
            elif k == best_len:
                best.append(img_id)
        if len(best) > 1:
            raise BadDatasetError(f"{self.source.name} lists {len(best)} images named "
                                  f"{'/'.join(want[-best_len:])} (ids {', '.join(map(str, sorted(best)[:4]))})")
        return best[0] if best else None

    def category_ids(self, names: Sequence[str]) -> list[int | None]:
        """The dataset's id of each class name (``None`` where the dataset has no such name)."""
        return [self.categories.get(str(n)) for n in names]
