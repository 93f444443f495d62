"""How layers look: one frozen style object shared by the screen and the exporter.

Sizes (line width, font scale, keypoint radius) are in *output* pixels, so text stays readable on
a downsampled overview; the mask border is in *image* pixels, so it is part of the mask's shape
and a full render resized equals a windowed render (see :func:`segviewer.render.layers.render_layer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from segviewer.core.colors import color_indices, instance_color
from segviewer.core.results import Detections

__all__ = ["DEFAULT_STYLE", "RenderStyle", "detection_colors"]


@dataclass(frozen=True)
class RenderStyle:
    """Rendering parameters; the defaults match what the canvas shows on start-up."""

    line_width: int = 2
    """Box outline and skeleton line width in output pixels; box outlines are drawn inside the box."""
    font_scale: float = 0.5
    """OpenCV Hershey font scale of the label text."""
    font_thickness: int = 1
    show_scores: bool = True
    """Label text is ``"name 0.93"`` when on, ``"name"`` when off."""
    mask_border: int = 1
    """Width in image pixels of the opaque border drawn inside each mask; 0 disables it."""
    mask_alpha: float = 0.5
    """Alpha of a mask's interior in the layer (its border is opaque); the layer opacity multiplies it."""
    instance_jitter: float = 0.5
    """Strength passed to :func:`segviewer.core.colors.instance_color`; 0 gives plain category colors."""
    transparent_classes: frozenset[str] = frozenset({"__background__"})
    """Semantic classes left unpainted (alpha 0)."""
    keypoint_radius: int = 3
    keypoint_min_score: float = 0.0
    """Keypoints with a score (or COCO visibility) not above this are hidden."""
    label_padding: int = 2
    """Pixels between the label text and the edge of its filled tag."""

    def __post_init__(self) -> None:
        if self.line_width < 1:
            raise ValueError(f"line_width must be >= 1, got {self.line_width}")
        if self.font_scale <= 0 or self.font_thickness < 1:
            raise ValueError("font_scale must be > 0 and font_thickness >= 1")
        if self.mask_border < 0:
            raise ValueError(f"mask_border must be >= 0, got {self.mask_border}")
        if not 0.0 <= self.mask_alpha <= 1.0:
            raise ValueError(f"mask_alpha must lie in [0, 1], got {self.mask_alpha}")
        if self.keypoint_radius < 0 or self.label_padding < 0:
            raise ValueError("keypoint_radius and label_padding must be >= 0")
        object.__setattr__(self, "transparent_classes", frozenset(self.transparent_classes))

    @property
    def mask_alpha_u8(self) -> int:
        """The interior alpha as stored in an RGBA layer (the fast path uses the same quantised value)."""
        return int(round(self.mask_alpha * 255))


DEFAULT_STYLE = RenderStyle()
"""The default style, shared (it is immutable)."""


@lru_cache(maxsize=65536)
def _instance_rgb(category: int, instance: int, strength: float) -> tuple[int, int, int]:
    return instance_color(category, instance, strength)


def detection_colors(dets: Detections, style: RenderStyle) -> np.ndarray:
    """``(N, 3)`` uint8 color of each detection: its class color jittered by its instance id (a
    video track id) when it has one, else by its index.

    Masks, boxes, tags and skeletons of one detection share this color. Cached per (class,
    instance id) or (class, index) without ids, because the palette's hash is Python code and a
    frame is redrawn often.
    """
    cls = color_indices(dets.categories)[dets.class_ids]  # one color per class *name* across models
    s = float(style.instance_jitter)
    ids = range(len(cls)) if dets.instance_ids is None else dets.instance_ids.tolist()
    return np.array([_instance_rgb(int(c), int(i), s) for i, c in zip(ids, cls)], np.uint8).reshape(-1, 3)
