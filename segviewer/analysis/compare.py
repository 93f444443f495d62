"""Two results for the same images compared: per-image metric deltas and where they disagree.

* :func:`row_deltas`: for every image both runs scored, ``d_<key> = B - A`` of each metric of the
  dataset table (:mod:`segviewer.analysis.dataset_eval`), so "images where B is worse than A" is
  one sort of ``d_mask_ap``.
* :func:`disagreement`: B scored against A as if A were the ground truth, by the very code that
  scores a model against ground truth (:func:`segviewer.analysis.evaluation.image_report`): for
  instances the error map's TP are instances both found (same class, IoU > 0.5), FP those only B
  has (or B's class differs), FN those only A has; for semantic maps the per-pixel map marks
  where the classes differ. Hover names each side's class (A in the "true" role, B predicted).

A model against ground truth is the same call with the ground truth as A. No Qt, no torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from segviewer.analysis.evaluation import ImageEval, MergeParams, image_report
from segviewer.core.results import Detections, SemanticMap

__all__ = ["row_deltas", "disagreement", "delta_key"]


def delta_key(key: str) -> str:
    return f"d_{key}"


def row_deltas(rows_a: Mapping[int, Mapping[str, Any]], rows_b: Mapping[int, Mapping[str, Any]],
               keys: Iterable[str]) -> dict[int, dict[str, float]]:
    """``{image: {"d_<key>": B - A}}`` for images and keys both rows define numerically."""
    keys = list(keys)
    out: dict[int, dict[str, float]] = {}
    for i in rows_a.keys() & rows_b.keys():
        a, b = rows_a[i], rows_b[i]
        d = {delta_key(k): float(b[k]) - float(a[k]) for k in keys
             if isinstance(a.get(k), (int, float)) and isinstance(b.get(k), (int, float))}
        if d:
            out[i] = d
    return out


def disagreement(a: Detections | SemanticMap, b: Detections | SemanticMap) -> ImageEval:
    """Where B differs from A on one image (see the module docstring); ``errors`` (instances) or
    ``semantic_errors`` (label maps) is the disagreement layer, ``metrics`` B's agreement with A."""
    from segviewer.core.groundtruth import GroundTruth

    if isinstance(a, Detections) and isinstance(b, Detections):
        ref = Detections(a.image_size, a.boxes, a.scores, a.class_ids, a.categories, masks=a.masks)
        return image_report(b, None, GroundTruth(instances=ref), MergeParams(), "A", want_ap=False)
    if isinstance(a, SemanticMap) and isinstance(b, SemanticMap):
        return image_report(None, b, GroundTruth(semantic=a), MergeParams(), "A", want_ap=False)
    raise TypeError(f"cannot compare a {type(a).__name__} with a {type(b).__name__}")
