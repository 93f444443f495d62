"""Export jobs (run on the thread pool, see :mod:`segviewer.ui.jobs`): what the screen shows as a PNG,
and the detections as COCO results JSON. Both write atomically, so a failure leaves no half file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.ui.canvas.render_thread import LayerSpec


def write_overlay(path: Path, image: np.ndarray, layers: Sequence[tuple[LayerSpec, float]]) -> str:
    """Compose full-resolution renders of ``layers`` (bottom to top, with their opacities) over ``image``.

    Uses the same ``render_layer`` output and the same source-over math as the canvas's ImageItems
    (``render.compose.compose``), so the file equals the screen at 100% zoom.
    """
    from segviewer.core.fileio import write_image_atomic
    from segviewer.render.compose import compose
    from segviewer.render.layers import LayerKind, render_layer

    rgba = [(render_layer(s.result, LayerKind(s.kind), s.style), op) for s, op in layers]
    write_image_atomic(path, compose(image, rgba))
    return str(path)


def dataset_ids_for(image_path: Path | None) -> tuple[Any, int | None]:
    """``(DatasetIds, image id)`` of the COCO dataset beside ``image_path`` that lists it (its
    ``annotations/instances.json``, else ``panoptic.json``: where the window finds ground truth),
    or ``(None, None)``."""
    from segviewer.core.coco_results import DatasetIds
    from segviewer.core.errors import SegviewerError
    from segviewer.core.groundtruth import annotation_files_beside

    if image_path is None:
        return None, None
    for name in ("instances.json", "panoptic.json"):
        for f in annotation_files_beside(image_path, name):
            try:
                ds = DatasetIds.read(f)
                image_id = ds.image_id(image_path)
            except SegviewerError:
                continue  # a broken file: the window reports it; the export keeps our own ids
            if image_id is not None:
                return ds, image_id
    return None, None


def write_coco(path: Path, detections: Mapping[str, Any], image_path: Path | None = None) -> str:
    """COCO results records of every model's (filtered) detections; a ``model`` key when several.

    When the image belongs to a COCO dataset beside it (the ground truth the window loads), records
    carry the dataset's image id and category ids (by class name; classes it lacks are left out),
    so the file scores against that dataset as it is. Otherwise image id 0 and the model's class ids.
    """
    from segviewer.core.coco_results import detections_to_coco
    from segviewer.core.fileio import write_json_atomic

    dataset, image_id = dataset_ids_for(Path(image_path) if image_path is not None else None)
    records: list[dict] = []
    for model_id, d in detections.items():
        cat_ids = dataset.category_ids(d.categories) if dataset is not None else None
        for rec in detections_to_coco(d, image_id=image_id if image_id is not None else 0, category_ids=cat_ids):
            if len(detections) > 1:
                rec["model"] = model_id
            records.append(rec)
    write_json_atomic(path, records)
    return str(path)
