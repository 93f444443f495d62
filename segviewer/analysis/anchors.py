"""Anchor boxes as torchvision's ``AnchorGenerator`` makes them, to draw the ones at a clicked spot.

Why recompute rather than read the model's tensor: the view needs the anchors of *one* location
and level, their indices into the RPN's flattened outputs (to look up objectness and deltas),
and it must work from a model card without running torch. The numbers match torchvision's:

* base anchors per level: for aspect ratio ``r = h / w`` and size ``s``, ``h = s sqrt(r)``,
  ``w = s / sqrt(r)``, box ``(-w, -h, w, h) / 2`` rounded half-to-even, in float32, ordered
  ratio-major then size (``ws = w_ratios[:, None] * sizes[None, :]``);
* stride per level = padded image size // feature size (integer division, per axis);
* the anchors of feature cell ``(row, col)`` are centred on ``(col * stride, row * stride)``:
  the cell's top-left corner, not its centre (torchvision's half-stride offset, kept on purpose);
* flattened order: level, then row, then column, then base anchor, exactly the order of the
  RPN's ``concat_box_prediction_layers``, so ``flat_index`` addresses objectness directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segviewer.analysis.roi_align import NothingHereError
from segviewer.core.errors import SegviewerError

__all__ = [
    "DEFAULT_FPN_SIZES", "DEFAULT_ASPECT_RATIOS", "cell_anchors", "level_strides", "grid_anchors",
    "AnchorsAt", "anchors_at", "anchor_counts",
]

_F32 = np.float32
#: torchvision's Faster/Mask R-CNN FPN defaults: one size per level, three ratios everywhere.
DEFAULT_FPN_SIZES: tuple[tuple[int, ...], ...] = ((32,), (64,), (128,), (256,), (512,))
DEFAULT_ASPECT_RATIOS: tuple[tuple[float, ...], ...] = ((0.5, 1.0, 2.0),) * 5


def cell_anchors(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> np.ndarray:
    """``(len(ratios) * len(sizes), 4)`` float32 base anchors centred on (0, 0)."""
    s = np.asarray(sizes, _F32).reshape(-1)
    r = np.asarray(aspect_ratios, _F32).reshape(-1)
    if s.size == 0 or r.size == 0 or np.any(s <= 0) or np.any(r <= 0):
        raise SegviewerError("Anchor sizes and aspect ratios must be positive and non-empty.")
    h_ratios = np.sqrt(r).astype(_F32)
    w_ratios = (_F32(1) / h_ratios).astype(_F32)
    ws = (w_ratios[:, None] * s[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * s[None, :]).reshape(-1)
    return np.round(np.stack([-ws, -hs, ws, hs], 1) / _F32(2)).astype(_F32)


def level_strides(padded_size: tuple[int, int], grid_sizes: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """``(stride_y, stride_x)`` per level: padded image size // grid size, as torchvision."""
    ph, pw = (int(v) for v in padded_size)
    return [(ph // int(g[0]), pw // int(g[1])) for g in grid_sizes]


def grid_anchors(grid_size: tuple[int, int], stride: tuple[int, int], base: np.ndarray) -> np.ndarray:
    """All ``(H * W * A, 4)`` float32 anchors of one level, in the RPN's flattened order."""
    gh, gw = (int(v) for v in grid_size)
    sy, sx = (int(v) for v in stride)
    shift_y, shift_x = np.meshgrid(np.arange(gh) * sy, np.arange(gw) * sx, indexing="ij")
    shifts = np.stack([shift_x.ravel(), shift_y.ravel(), shift_x.ravel(), shift_y.ravel()], 1).astype(_F32)
    return (shifts[:, None, :] + np.asarray(base, _F32)[None]).reshape(-1, 4)


def anchor_counts(grid_sizes: Sequence[tuple[int, int]], per_location: Sequence[int]) -> np.ndarray:
    """Anchors per level (``H * W * A``), the split sizes of the RPN's flattened outputs."""
    return np.array([int(g[0]) * int(g[1]) * int(a) for g, a in zip(grid_sizes, per_location)], np.int64)


@dataclass(frozen=True, eq=False)
class AnchorsAt:
    """The anchors of one feature cell on one level.

    ``boxes`` is ``(A, 4)`` float32 in the model's (padded) image coordinates; ``flat_index`` their
    rows in the all-level flattened anchor list (what the RPN's objectness is indexed by);
    ``level_index`` their rows within the level.
    """

    level: int
    row: int
    col: int
    center: tuple[float, float]  # (x, y) image coordinates
    stride: tuple[int, int]
    boxes: np.ndarray
    sizes: tuple[float, ...]
    aspect_ratios: tuple[float, ...]
    level_index: np.ndarray
    flat_index: np.ndarray

    def labels(self) -> list[str]:
        """A short label per anchor, e.g. ``"64 px 1:2"`` (ratio = h : w as torchvision)."""
        out = []
        for r in self.aspect_ratios:
            for s in self.sizes:
                out.append(f"{s:g} px h/w {r:g}")
        return out


def anchors_at(x: float, y: float, level: int, grid_sizes: Sequence[tuple[int, int]],
               padded_size: tuple[int, int],
               sizes: Sequence[Sequence[float]] = DEFAULT_FPN_SIZES,
               aspect_ratios: Sequence[Sequence[float]] = DEFAULT_ASPECT_RATIOS) -> AnchorsAt:
    """The anchors of the feature cell that holds image point (x, y) on ``level`` (0 = finest).

    The cell is the one whose footprint ``[col * s, (col + 1) * s)`` contains x; a point outside
    the feature grid raises :class:`NothingHereError` (a click on empty space).
    """
    if not 0 <= level < len(grid_sizes):
        raise SegviewerError(f"Level {level} does not exist; the model has {len(grid_sizes)} levels.")
    if len(sizes) != len(grid_sizes) or len(aspect_ratios) != len(grid_sizes):
        raise SegviewerError(f"{len(grid_sizes)} feature levels but {len(sizes)} anchor sizes and "
                             f"{len(aspect_ratios)} aspect-ratio sets.")
    strides = level_strides(padded_size, grid_sizes)
    gh, gw = (int(v) for v in grid_sizes[level])
    sy, sx = strides[level]
    if not (np.isfinite(x) and np.isfinite(y)):
        raise NothingHereError("The click position is not a number.")
    col, row = int(np.floor(x / sx)), int(np.floor(y / sy))
    if not (0 <= row < gh and 0 <= col < gw):
        raise NothingHereError(f"({x:.0f}, {y:.0f}) lies outside level {level}'s {gw}x{gh} anchor grid; "
                               "click on the image.")
    base = cell_anchors(sizes[level], aspect_ratios[level])
    a = len(base)
    boxes = base + np.array([col * sx, row * sy, col * sx, row * sy], _F32)
    per_loc = [len(s) * len(r) for s, r in zip(sizes, aspect_ratios)]
    offset = int(anchor_counts(grid_sizes[:level], per_loc[:level]).sum())
    level_index = (row * gw + col) * a + np.arange(a, dtype=np.int64)
    return AnchorsAt(level, row, col, (float(col * sx), float(row * sy)), (sy, sx), boxes.astype(_F32),
                     tuple(float(v) for v in sizes[level]), tuple(float(v) for v in aspect_ratios[level]),
                     level_index, level_index + offset)
