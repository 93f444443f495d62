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


def write_coco(path: Path, detections: Mapping[str, Any], image_id: int = 0) -> str:
    """COCO results records of every model's (filtered) detections; a ``model`` key when several."""
    from segviewer.core.coco_results import detections_to_coco
    from segviewer.core.fileio import write_json_atomic

    records: list[dict] = []
    for model_id, d in detections.items():
        for rec in detections_to_coco(d, image_id=image_id):
            if len(detections) > 1:
                rec["model"] = model_id
            records.append(rec)
    write_json_atomic(path, records)
    return str(path)
