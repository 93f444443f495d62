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

# One source of truth for the table and its geometry: the voting analysis the internals views use.
from segviewer.analysis.voting import (  # noqa: E402
    ABSTAIN,
    IGNORE,
    LOOKUP_TABLE,
    NUM_CELLS,
    NUM_VOTE_CLASSES,
    TABLE_RADIUS,
    cell_extents,
    cell_of_offset,
    query_table,
)


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
