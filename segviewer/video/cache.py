"""Per-frame results of a video kept compactly, in an LRU bounded in bytes.

A 10-minute 1280x720 video at 30 fps has 18,000 frames; raw label maps alone would take 16 GB.
Each result is therefore stored in a compact, lossless-where-it-matters encoding:

* :class:`SemanticMap`: the uint8 (or int32) label map, deflated (label maps are long runs).
  Per-class probabilities are dropped: they are for the inspector on the current frame only.
* :class:`Detections`: boxes, scores, classes as small arrays; each instance mask as a COCO RLE
  (pycocotools) of its crop, with its offset.
* :class:`PanopticMap`: the segment-id map deflated, the segment table as is.
* :class:`FlowField`: vectors quantised to 1/64 pixel in int16 (the KITTI convention's precision;
  range +-512 px, clipped beyond), deflated. This one is lossy, by at most 1/128 px.

:class:`FrameResultCache` keys entries by ``(frame index, model key)`` in the render engineer's
:class:`segviewer.core.cache.ByteLRU`; past the byte bound the least recently used frames go.
"""

from __future__ import annotations

import zlib
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from segviewer.core.cache import ByteLRU
from segviewer.core.errors import SegviewerError
from segviewer.core.results import Detections, FlowField, MaskSet, PanopticMap, SemanticMap

__all__ = ["CompactResult", "encode_result", "decode_result", "FrameResultCache", "DEFAULT_BUDGET",
           "FLOW_QUANTUM"]

DEFAULT_BUDGET = 2 * 1024**3
FLOW_QUANTUM = 1.0 / 64.0
_ZLEVEL = 1  # fast; label maps still shrink 20-100x


@dataclass(frozen=True, eq=False)
class CompactResult:
    """One encoded result: its kind, the arrays/bytes needed to rebuild it, and its size in bytes."""

    kind: str
    payload: dict[str, Any]
    nbytes: int


def _deflate(a: np.ndarray) -> tuple[bytes, str, tuple[int, ...]]:
    a = np.ascontiguousarray(a)
    return zlib.compress(a.tobytes(), _ZLEVEL), a.dtype.str, a.shape


def _inflate(blob: tuple[bytes, str, tuple[int, ...]]) -> np.ndarray:
    data, dtype, shape = blob
    return np.frombuffer(zlib.decompress(data), np.dtype(dtype)).reshape(shape).copy()


def _rle_crops(masks: MaskSet) -> list[dict[str, Any]]:
    from pycocotools import mask as mask_utils

    out = []
    for crop in masks.crops:
        if crop.size == 0:
            out.append({"size": [0, 0], "counts": b""})
            continue
        rle = mask_utils.encode(np.asfortranarray(crop.astype(np.uint8)))
        out.append({"size": list(rle["size"]), "counts": rle["counts"]})
    return out


def _unrle_crops(rles: list[dict[str, Any]]) -> list[np.ndarray]:
    from pycocotools import mask as mask_utils

    return [np.zeros((0, 0), bool) if r["size"] == [0, 0] else mask_utils.decode(r).astype(bool) for r in rles]


def encode_result(result: object) -> CompactResult:
    """Encode a result for the cache; raises :class:`SegviewerError` for a type it does not know."""
    if isinstance(result, SemanticMap):
        blob = _deflate(result.labels)
        return CompactResult("semantic", {"labels": blob, "categories": result.categories,
                                          "ignore_index": result.ignore_index}, len(blob[0]) + 64)
    if isinstance(result, PanopticMap):
        blob = _deflate(result.segment_ids)
        return CompactResult("panoptic", {"ids": blob, "segments": result.segments, "categories": result.categories,
                                          "isthing": result.isthing}, len(blob[0]) + 64 + 48 * len(result.segments))
    if isinstance(result, Detections):
        p: dict[str, Any] = {
            "image_size": result.image_size, "boxes": result.boxes, "scores": result.scores,
            "class_ids": result.class_ids, "categories": result.categories, "keypoints": result.keypoints,
            "keypoint_names": result.keypoint_names, "skeleton": result.skeleton, "masks": None,
            "instance_ids": result.instance_ids,
        }
        n = result.boxes.nbytes + result.scores.nbytes + result.class_ids.nbytes + 64
        n += 0 if result.keypoints is None else result.keypoints.nbytes
        n += 0 if result.instance_ids is None else result.instance_ids.nbytes
        if result.masks is not None:
            rles = _rle_crops(result.masks)
            p["masks"] = (rles, result.masks.offsets)
            n += sum(len(r["counts"]) + 16 for r in rles) + result.masks.offsets.nbytes
        return CompactResult("detections", p, int(n))
    if isinstance(result, FlowField):
        q = np.clip(np.rint(result.uv / FLOW_QUANTUM), -32767, 32767).astype(np.int16)
        blob = _deflate(q)
        return CompactResult("flow", {"uv": blob}, len(blob[0]) + 64)
    raise SegviewerError(f"The video cache cannot store a {type(result).__name__}.")


def decode_result(c: CompactResult) -> object:
    """Rebuild the result (semantic probabilities are gone; flow is rounded to 1/64 px)."""
    p = c.payload
    if c.kind == "semantic":
        return SemanticMap(_inflate(p["labels"]), p["categories"], None, p["ignore_index"])
    if c.kind == "panoptic":
        return PanopticMap(_inflate(p["ids"]), p["segments"], p["categories"], p["isthing"])
    if c.kind == "detections":
        masks = None
        if p["masks"] is not None:
            rles, offs = p["masks"]
            masks = MaskSet(p["image_size"], tuple(_unrle_crops(rles)), offs)
        return Detections(p["image_size"], p["boxes"], p["scores"], p["class_ids"], p["categories"], masks=masks,
                          keypoints=p["keypoints"], keypoint_names=p["keypoint_names"], skeleton=p["skeleton"],
                          instance_ids=p.get("instance_ids"))
    if c.kind == "flow":
        return FlowField(_inflate(p["uv"]).astype(np.float32) * FLOW_QUANTUM)
    raise SegviewerError(f"Unknown cached result kind {c.kind!r}.")


class FrameResultCache:
    """Compact results per ``(frame, model key)``; the oldest (least recently used) drop past ``max_bytes``."""

    def __init__(self, max_bytes: int = DEFAULT_BUDGET) -> None:
        if max_bytes <= 0:
            raise SegviewerError(f"The video cache budget must be positive; got {max_bytes} bytes.")
        self.max_bytes = int(max_bytes)
        self._lru = ByteLRU(self.max_bytes)

    def put(self, frame: int, key: Hashable, result: object) -> int:
        """Store ``result`` for ``frame`` under ``key`` (model id + params); returns its compact size."""
        c = encode_result(result)
        self._lru.put((int(frame), key), c, c.nbytes)
        return c.nbytes

    def get(self, frame: int, key: Hashable) -> object | None:
        c = self._lru.get((int(frame), key))
        return None if c is None else decode_result(c)

    def __contains__(self, item: tuple[int, Hashable]) -> bool:
        return (int(item[0]), item[1]) in self._lru

    def __len__(self) -> int:
        return len(self._lru)

    @property
    def nbytes(self) -> int:
        return int(self._lru.total_bytes)

    def frames(self, key: Hashable) -> list[int]:
        """Frames cached under ``key``, in playback order (for the timeline's "computed" marks)."""
        return sorted(f for f, k in self._lru if k == key)

    def clear(self) -> None:
        self._lru.clear()
