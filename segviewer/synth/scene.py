"""The contract between the generator and everything that consumes scenes (writers, trainers, tests)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segviewer.synth.shapes import Pose


@dataclass(frozen=True, eq=False)
class SceneInstance:
    """One thing in a scene: its semantic class index and its *visible* mask (occlusion applied)."""

    category: int  # index into segviewer.synth.classes.CATEGORIES (always a thing)
    mask: np.ndarray  # (H, W) bool, visible pixels only
    instance_id: int  # unique within the scene (1, 2, ...); panoptic segment ids derive from it
    # Added fields (optional): the whole shape's pixel count, including parts hidden by other
    # things or outside the frame; its in-frame pixel count before occlusion (occluded iff
    # mask.sum() < inframe_area); and where it was drawn (centre, circumradius, angle).
    full_area: int = 0
    inframe_area: int = 0
    pose: Pose | None = None


@dataclass(frozen=True, eq=False)
class Scene:
    """A generated image with complete ground truth.

    ``semantic`` holds a CATEGORIES index per pixel (every pixel is stuff or thing; no void).
    ``instances`` are ordered back to front; their masks do not overlap.
    """

    image: np.ndarray  # (H, W, 3) uint8 RGB
    semantic: np.ndarray  # (H, W) uint8
    instances: tuple[SceneInstance, ...]
    seed: int
