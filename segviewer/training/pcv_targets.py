"""Pixel Consensus Voting geometry (numpy only, so ``segviewer.analysis`` can import it too).

The voting lookup table is a 9 x 9 grid of *units* centred on the voting pixel; one unit is
``cell_size`` feature pixels. The inner 3 x 3 units are cells 0..8 (one unit each), the outer
ring is cut into eight 3 x 3 blocks, cells 9..16. Class 17 (``ABSTAIN``) is for stuff pixels.
For a thing pixel the target is the cell that contains its instance's centroid relative to the
pixel; a centroid outside the table gets :data:`IGNORE` (it votes for nothing and is not trained).

Offsets are ``(dy, dx) = centroid - pixel`` in table units; table row = 4 + round(dy), column =
4 + round(dx), so the table is read exactly as printed in REFERENCE.md (row 0 is "up").
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "LOOKUP_TABLE", "NUM_CELLS", "ABSTAIN", "NUM_VOTE_CLASSES", "IGNORE", "TABLE_RADIUS",
    "cell_extents", "cell_of_offset", "vote_targets", "query_table",
]

LOOKUP_TABLE: np.ndarray = np.array(
    [
        [10, 10, 10, 9, 9, 9, 16, 16, 16],
        [10, 10, 10, 9, 9, 9, 16, 16, 16],
        [10, 10, 10, 9, 9, 9, 16, 16, 16],
        [11, 11, 11, 2, 1, 8, 15, 15, 15],
        [11, 11, 11, 3, 0, 7, 15, 15, 15],
        [11, 11, 11, 4, 5, 6, 15, 15, 15],
        [12, 12, 12, 13, 13, 13, 14, 14, 14],
        [12, 12, 12, 13, 13, 13, 14, 14, 14],
        [12, 12, 12, 13, 13, 13, 14, 14, 14],
    ],
    dtype=np.int64,
)
LOOKUP_TABLE.setflags(write=False)
NUM_CELLS = 17
ABSTAIN = 17
NUM_VOTE_CLASSES = NUM_CELLS + 1
IGNORE = 255
TABLE_RADIUS = 4  # units from the centre to the outermost row/column centre


def cell_extents() -> np.ndarray:
    """``(17, 4)`` int array: each cell's ``(row0, col0, row1, col1)`` in table units, end exclusive,
    relative to the table's top-left corner (the voting pixel sits at unit (4, 4))."""
    out = np.zeros((NUM_CELLS, 4), np.int64)
    for k in range(NUM_CELLS):
        rows, cols = np.nonzero(np.equal(LOOKUP_TABLE, k))
        out[k] = (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1)
    return out


def cell_of_offset(dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Cell index for offsets in table units (arrays of any shape); :data:`IGNORE` outside the table."""
    r = np.floor(np.asarray(dy, np.float64) + 0.5).astype(np.int64) + TABLE_RADIUS
    c = np.floor(np.asarray(dx, np.float64) + 0.5).astype(np.int64) + TABLE_RADIUS
    inside = (r >= 0) & (r < 9) & (c >= 0) & (c < 9)
    out = np.full(np.shape(r), IGNORE, np.int64)
    out[inside] = LOOKUP_TABLE[r[inside], c[inside]]
    return out


def vote_targets(instance_masks: list[np.ndarray] | np.ndarray, image_size: tuple[int, int],
                 stride: int, cell_size: float) -> np.ndarray:
    """Voting targets ``(H / stride, W / stride)`` uint8 for a scene's (non-overlapping) instance masks.

    Feature pixel ``(i, j)`` covers image pixels ``[i*s, (i+1)*s)``; its centre is at image
    ``((i + 0.5) s, (j + 0.5) s)``. It belongs to the instance holding most of its image pixels
    (ties and stuff-majority cells abstain). Centroids are means of the image-pixel centres.
    """
    h, w = image_size
    fh, fw = h // stride, w // stride
    target = np.full((fh, fw), ABSTAIN, np.uint8)
    best = np.zeros((fh, fw), np.float64)
    for m in instance_masks:
        m = np.asarray(m, bool)
        ys, xs = np.nonzero(m)
        if ys.size == 0:
            continue
        cy, cx = ys.mean() + 0.5, xs.mean() + 0.5
        frac = m[: fh * stride, : fw * stride].reshape(fh, stride, fw, stride).mean(axis=(1, 3))
        take = frac > np.maximum(best, 0.5)
        if not take.any():
            continue
        ii, jj = np.nonzero(take)
        py, px = (ii + 0.5) * stride, (jj + 0.5) * stride
        unit = stride * cell_size
        cells = cell_of_offset((cy - py) / unit, (cx - px) / unit)
        target[ii, jj] = cells.astype(np.uint8)
        best[take] = frac[take]
    return target


def query_table() -> np.ndarray:
    """The back-projection filter: the lookup table flipped in both axes (a pixel at offset -d
    from a peak votes for the cell at +d)."""
    return LOOKUP_TABLE[::-1, ::-1].copy()
