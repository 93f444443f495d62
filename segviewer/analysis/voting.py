"""Pixel Consensus Voting: the lookup table, the vote accumulator, peaks and back-projection.

This module is the single source of truth for the PCV table (``segviewer.training.pcv_targets``
should import it from here). Every pixel spreads its probabilities over the K = 17 cells of a
9 x 9 table of *units* centred on itself (plus an abstain class for stuff); the accumulator sums
all votes per pixel, its peaks are instances, and back-projection through the query filter (the
table flipped) recovers each instance's pixels.

Conventions, shared with the training targets:

* An offset ``(dy, dx) = centroid - pixel`` in pixels falls in table row ``4 + floor(dy / u + 1/2)``
  and column ``4 + floor(dx / u + 1/2)`` with ``u`` = :attr:`VoteGeometry.unit` pixels per table
  unit; row 0 is "up". Offsets outside the table vote for nothing.
* Votes are ``(H, W, K + 1)`` probabilities, channel ``K`` (= :data:`ABSTAIN`) abstains.
* A vote for cell ``k`` is spread evenly over the pixels of that cell: the accumulator is the
  transposed convolution of each channel with a one-hot kernel at the cell's corner (inner
  cells: 3 x 3 kernels, stride 1; outer cells: the same kernel dilated by 3 when ``u = 1``)
  followed by an average pool the size of the cell. We do the one-hot transposed convolutions as
  shifted adds and the pool as a separable box sum; :func:`accumulate_loop` is the plain
  per-pixel loop the tests compare against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from segviewer.core.errors import SegviewerError

__all__ = [
    "LOOKUP_TABLE", "NUM_CELLS", "ABSTAIN", "NUM_VOTE_CLASSES", "IGNORE", "TABLE_RADIUS",
    "cell_extents", "cell_of_offset", "query_table", "VoteGeometry", "accumulate", "accumulate_loop",
    "Peaks", "find_peaks", "backproject", "instances_from_votes", "pseudo_votes", "one_hot_votes",
    "grid_to_image", "image_to_grid", "distribution_table", "PCV_THRESHOLD", "image_instances",
]

#: Default peak threshold for a trained PCV net's soft votes on its stride-4 grid (one unit = 4
#: grid pixels): a confident 16-pixel inner cell adds 1/16 per voter, so ~16 voters make 1.0.
#: On the bundled scenes 0.5..2.0 recover the same instances (see tests/adapters/test_internals_pcv.py).
PCV_THRESHOLD = 1.0

#: The table of REFERENCE.md, row 0 up; entry (4, 4) is the voting pixel itself.
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
ABSTAIN = 17  # the extra vote class used by stuff pixels
NUM_VOTE_CLASSES = NUM_CELLS + 1
IGNORE = 255  # a training target outside the table: not trained
TABLE_RADIUS = 4  # units from the centre to the outermost row/column


def cell_extents(table: np.ndarray = LOOKUP_TABLE) -> np.ndarray:
    """``(K, 4)`` ``(row0, col0, row1, col1)`` of each cell in table units, ends exclusive."""
    k = int(table.max()) + 1
    out = np.zeros((k, 4), np.int64)
    for c in range(k):
        rows, cols = np.nonzero(table == c)
        out[c] = (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1)
    return out


def cell_of_offset(dy: np.ndarray, dx: np.ndarray, table: np.ndarray = LOOKUP_TABLE) -> np.ndarray:
    """Cell of offsets given in *table units* (any shape, float); :data:`IGNORE` outside the table."""
    radius = table.shape[0] // 2
    r = np.floor(np.asarray(dy, np.float64) + 0.5).astype(np.int64) + radius
    c = np.floor(np.asarray(dx, np.float64) + 0.5).astype(np.int64) + radius
    inside = (r >= 0) & (r < table.shape[0]) & (c >= 0) & (c < table.shape[1])
    out = np.full(np.shape(r), IGNORE, np.int64)
    out[inside] = table[r[inside], c[inside]]
    return out


def query_table(table: np.ndarray = LOOKUP_TABLE) -> np.ndarray:
    """The back-projection (query) filter: the table flipped in both axes."""
    return np.asarray(table)[::-1, ::-1].copy()


@dataclass(frozen=True, eq=False)
class VoteGeometry:
    """The table at pixel resolution: ``unit`` pixels per table unit (an integer >= 1).

    ``pixel_table[i, j]`` is the cell of pixel offset ``(d_min + i, d_min + j)``; each cell is a
    set of offsets and, for the standard table, an axis-aligned rectangle (``rects``).
    """

    table: np.ndarray = field(default_factory=lambda: LOOKUP_TABLE)
    unit: int = 1

    def __post_init__(self) -> None:
        t = np.asarray(self.table, np.int64)
        if t.ndim != 2 or t.shape[0] != t.shape[1] or t.shape[0] % 2 == 0:
            raise SegviewerError(f"A voting table must be square with an odd side; got shape {t.shape}.")
        k = int(t.max()) + 1
        if t.min() < 0 or set(np.unique(t).tolist()) != set(range(k)):
            raise SegviewerError(f"Voting table cells must be numbered 0..{k - 1} without gaps.")
        if int(self.unit) != self.unit or self.unit < 1:
            raise SegviewerError(f"The voting unit must be a whole number of pixels >= 1; got {self.unit}.")
        t = t.copy()
        t.setflags(write=False)
        object.__setattr__(self, "table", t)
        object.__setattr__(self, "unit", int(self.unit))
        u, radius = int(self.unit), t.shape[0] // 2
        d = np.arange(-u * (radius + 1), u * (radius + 1) + 1)  # generous; trimmed to the table below
        idx = (2 * d + u) // (2 * u) + radius  # floor(d / u + 1/2) + radius, exactly
        keep = (idx >= 0) & (idx < t.shape[0])
        d, idx = d[keep], idx[keep]
        pix = t[np.ix_(idx, idx)]
        pix.setflags(write=False)
        object.__setattr__(self, "_d_min", int(d[0]))
        object.__setattr__(self, "_pixel_table", pix)

    @property
    def num_cells(self) -> int:
        return int(self.table.max()) + 1

    @property
    def abstain(self) -> int:
        return self.num_cells

    @property
    def d_min(self) -> int:
        """The smallest pixel offset the table reaches (negative); rows/cols of ``pixel_table`` start here."""
        return self._d_min  # type: ignore[attr-defined]

    @property
    def pixel_table(self) -> np.ndarray:
        return self._pixel_table  # type: ignore[attr-defined]

    def cell_sizes(self) -> np.ndarray:
        """Pixels per cell: a vote for cell k adds ``p / size[k]`` to each of them."""
        return np.bincount(self.pixel_table.ravel(), minlength=self.num_cells)

    def cell_offsets(self, k: int) -> np.ndarray:
        """``(M, 2)`` pixel offsets ``(dy, dx)`` of cell ``k``, relative to the voting pixel."""
        r, c = np.nonzero(self.pixel_table == k)
        return np.stack([r + self.d_min, c + self.d_min], 1)

    def rects(self) -> list[tuple[int, int, int, int, int]]:
        """``(k, dy0, dx0, height, width)`` rectangles covering every cell exactly (1x1 pieces
        for cells that are not rectangles)."""
        out = []
        for k in range(self.num_cells):
            off = self.cell_offsets(k)
            r0, c0 = off.min(0)
            r1, c1 = off.max(0) + 1
            if (r1 - r0) * (c1 - c0) == len(off):
                out.append((k, int(r0), int(c0), int(r1 - r0), int(c1 - c0)))
            else:
                out.extend((k, int(dy), int(dx), 1, 1) for dy, dx in off)
        return out

    def query_filter(self) -> np.ndarray:
        """The pixel table flipped: centred on a peak, it names the cell a pixel must vote for."""
        return self.pixel_table[::-1, ::-1]

    def cell_of_pixel_offset(self, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
        """Cell of integer pixel offsets (arrays); ``abstain`` where the offset leaves the table."""
        n = self.pixel_table.shape[0]
        r, c = np.asarray(dy, np.int64) - self.d_min, np.asarray(dx, np.int64) - self.d_min
        inside = (r >= 0) & (r < n) & (c >= 0) & (c < n)
        out = np.full(np.shape(r), self.abstain, np.int64)
        out[inside] = self.pixel_table[r[inside], c[inside]]
        return out


DEFAULT_GEOMETRY = VoteGeometry()


def _votes(votes: np.ndarray, geometry: VoteGeometry, channel_axis: int = -1) -> np.ndarray:
    """Votes as ``(H, W, C)``, or ``(C, H, W)`` when ``channel_axis == 0`` (no copy either way)."""
    v = np.asarray(votes)
    chw = channel_axis == 0
    if channel_axis not in (0, -1, 2):
        raise SegviewerError(f"channel_axis must be 0 (C, H, W) or -1 (H, W, C); got {channel_axis}.")
    if v.ndim != 3 or v.shape[0 if chw else 2] < geometry.num_cells:
        want = f"({geometry.num_cells + 1}, H, W)" if chw else f"(H, W, {geometry.num_cells + 1})"
        raise SegviewerError(f"Votes must be {want} probabilities; got shape {v.shape}.")
    if not np.issubdtype(v.dtype, np.floating):
        v = v.astype(np.float32)
    return v


def accumulate(votes: np.ndarray, geometry: VoteGeometry = DEFAULT_GEOMETRY,
               dtype: type = np.float32, channel_axis: int = -1) -> np.ndarray:
    """The ``(H, W)`` vote accumulator (transposed one-hot convolutions + average pooling).

    Votes landing outside the image are dropped, as in the plain loop. ``channel_axis=0`` takes
    ``(C, H, W)`` votes (torch's layout), about 4x faster than strided ``(H, W, C)`` reads.
    """
    v = _votes(votes, geometry, channel_axis)
    chw = channel_axis == 0
    h, w = v.shape[1:] if chw else v.shape[:2]
    pad = max(-geometry.d_min, geometry.pixel_table.shape[0] - 1 + geometry.d_min)
    sizes = geometry.cell_sizes()
    groups: dict[tuple[int, int], np.ndarray] = {}
    for k, dy, dx, rh, rw in geometry.rects():
        canvas = groups.setdefault((rh, rw), np.zeros((h + 2 * pad, w + 2 * pad), dtype))
        # one-hot transposed convolution: channel k lands at the rectangle's top-left corner
        canvas[pad + dy: pad + dy + h, pad + dx: pad + dx + w] += (v[k] if chw else v[:, :, k]) / dtype(sizes[k])
    acc = np.zeros((h + 2 * pad, w + 2 * pad), dtype)
    for (rh, rw), canvas in groups.items():
        acc += _box_sum(canvas, rh, rw)  # the average pool (already divided by the cell size)
    return acc[pad: pad + h, pad: pad + w]


def _box_sum(a: np.ndarray, rh: int, rw: int) -> np.ndarray:
    """``out[y, x] = sum(a[y - i, x - j] for i < rh, j < rw)``: spreads a corner deposit over its cell
    (an unnormalised box filter anchored at its bottom-right corner; zeros beyond the canvas)."""
    import cv2

    if rh == 1 and rw == 1:
        return a
    return cv2.boxFilter(a, -1, (rw, rh), anchor=(rw - 1, rh - 1), normalize=False, borderType=cv2.BORDER_CONSTANT)


def accumulate_loop(votes: np.ndarray, geometry: VoteGeometry = DEFAULT_GEOMETRY) -> np.ndarray:
    """Reference accumulator: every pixel adds ``p_k / |cell k|`` to every pixel of cell k (float64;
    ``(H, W, C)`` votes)."""
    v = _votes(votes, geometry).astype(np.float64)
    h, w = v.shape[:2]
    acc = np.zeros((h, w), np.float64)
    cells = [geometry.cell_offsets(k) for k in range(geometry.num_cells)]
    for y in range(h):
        for x in range(w):
            for k, off in enumerate(cells):
                p = v[y, x, k]
                if p == 0:
                    continue
                for dy, dx in off:
                    ty, tx = y + dy, x + dx
                    if 0 <= ty < h and 0 <= tx < w:
                        acc[ty, tx] += p / len(off)
    return acc


@dataclass(frozen=True, eq=False)
class Peaks:
    """Accumulator peaks, strongest first: ``positions`` ``(N, 2)`` (row, col) of each component's
    maximum, its ``values`` and ``areas``; ``labels`` ``(H, W)`` int32 component ids (0 = none,
    ``i + 1`` = peak ``i``)."""

    positions: np.ndarray
    values: np.ndarray
    areas: np.ndarray
    labels: np.ndarray
    threshold: float

    def __len__(self) -> int:
        return len(self.positions)

    def at(self, x: float, y: float) -> int:
        """The peak whose component holds image point (x, y); raises on empty space."""
        from segviewer.analysis.roi_align import NothingHereError

        r, c = int(np.floor(y)), int(np.floor(x))
        h, w = self.labels.shape
        lab = int(self.labels[r, c]) if 0 <= r < h and 0 <= c < w else 0
        if lab == 0:
            raise NothingHereError(f"No vote peak at ({x:.0f}, {y:.0f}); click on a bright blob of the heatmap.")
        return lab - 1


def find_peaks(acc: np.ndarray, threshold: float, min_area: int = 1) -> Peaks:
    """Threshold the accumulator and take 8-connected components; each one is an instance."""
    import cv2

    a = np.asarray(acc)
    if a.ndim != 2:
        raise SegviewerError(f"The accumulator must be a 2-D map; got shape {a.shape}.")
    n, lab = cv2.connectedComponents((a > threshold).astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    ys, xs = np.nonzero(lab)
    comp = lab[ys, xs]
    vals = a[ys, xs]
    order = np.lexsort((-vals, comp))  # per component, the highest value first
    ys, xs, comp, vals = ys[order], xs[order], comp[order], vals[order]
    first = np.flatnonzero(np.r_[True, comp[1:] != comp[:-1]]) if comp.size else np.zeros(0, np.int64)
    areas = np.bincount(lab.ravel(), minlength=n)[1:]
    ids = comp[first]
    keep = areas[ids - 1] >= min_area
    first, ids = first[keep], ids[keep]
    pos = np.stack([ys[first], xs[first]], 1) if first.size else np.zeros((0, 2), np.int64)
    pv = vals[first]
    rank = np.argsort(-pv, kind="stable")
    remap = np.zeros(n, np.int32)
    remap[ids[rank]] = np.arange(1, len(rank) + 1, dtype=np.int32)
    return Peaks(pos[rank].astype(np.int64), pv[rank].astype(np.float64), areas[ids[rank] - 1].astype(np.int64),
                 remap[lab], float(threshold))


def backproject(cells: np.ndarray, peak: tuple[int, int], geometry: VoteGeometry = DEFAULT_GEOMETRY) -> np.ndarray:
    """``(H, W)`` bool: the pixels whose argmax vote names the cell in which ``peak`` (row, col) lies.

    ``cells`` is the per-pixel argmax of the votes (abstain = ``geometry.abstain``). Pixel ``p``
    belongs when ``query_filter`` centred on the peak equals ``cells[p]``.
    """
    c = np.asarray(cells)
    if c.ndim != 2:
        raise SegviewerError(f"Vote cells must be an (H, W) map; got shape {c.shape}.")
    h, w = c.shape
    q = geometry.query_filter()
    n = q.shape[0]
    d_max = geometry.d_min + n - 1
    r0, c0 = int(peak[0]) - d_max, int(peak[1]) - d_max  # window top-left in the image
    out = np.zeros((h, w), bool)
    y0, x0, y1, x1 = max(r0, 0), max(c0, 0), min(r0 + n, h), min(c0 + n, w)
    if y1 <= y0 or x1 <= x0:
        return out
    out[y0:y1, x0:x1] = c[y0:y1, x0:x1] == q[y0 - r0: y1 - r0, x0 - c0: x1 - c0]
    return out


def instances_from_votes(votes: np.ndarray, threshold: float, geometry: VoteGeometry = DEFAULT_GEOMETRY,
                         min_area: int = 1, channel_axis: int = -1) -> tuple[np.ndarray, Peaks, np.ndarray]:
    """Accumulate, find peaks, back-project: ``(instance_labels, peaks, accumulator)``.

    ``instance_labels`` is ``(H, W)`` int32, ``i + 1`` for peak ``i``; a pixel claimed by two
    peaks goes to the stronger one.
    """
    v = _votes(votes, geometry, channel_axis)
    acc = accumulate(v, geometry, channel_axis=channel_axis)
    peaks = find_peaks(acc, threshold, min_area)
    cells = v.argmax(axis=0 if channel_axis == 0 else 2)
    out = np.zeros(acc.shape, np.int32)
    for i in range(len(peaks) - 1, -1, -1):  # weakest first, so stronger peaks overwrite
        out[backproject(cells, tuple(peaks.positions[i]), geometry)] = i + 1
    return out, peaks, acc


def pseudo_votes(masks: np.ndarray | list[np.ndarray], geometry: VoteGeometry = DEFAULT_GEOMETRY) -> np.ndarray:
    """``(H, W)`` int64 argmax votes from an instance segmentation: each mask pixel names the cell
    holding its mask's centroid (rounded to a pixel); other pixels, and pixels whose centroid is
    outside the table, abstain. Overlapping masks: later masks win."""
    m = np.asarray(masks, bool) if not isinstance(masks, list) else np.stack([np.asarray(x, bool) for x in masks])
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise SegviewerError(f"Instance masks must be (N, H, W); got shape {m.shape}.")
    out = np.full(m.shape[1:], geometry.abstain, np.int64)
    for mi in m:
        ys, xs = np.nonzero(mi)
        if ys.size == 0:
            continue
        cy, cx = int(np.floor(ys.mean() + 0.5)), int(np.floor(xs.mean() + 0.5))
        out[ys, xs] = geometry.cell_of_pixel_offset(cy - ys, cx - xs)
    return out


def one_hot_votes(cells: np.ndarray, geometry: VoteGeometry = DEFAULT_GEOMETRY, channel_axis: int = -1) -> np.ndarray:
    """``(H, W, K + 1)`` (or ``(K + 1, H, W)`` with ``channel_axis=0``) float32 probabilities that
    put all mass on ``cells``."""
    c = np.asarray(cells, np.int64)
    if c.min(initial=0) < 0 or c.max(initial=0) > geometry.abstain:
        raise SegviewerError(f"Vote cells must lie in 0..{geometry.abstain}.")
    if channel_axis == 0:
        return (c[None] == np.arange(geometry.num_cells + 1)[:, None, None]).astype(np.float32)
    return np.eye(geometry.num_cells + 1, dtype=np.float32)[c]


def grid_to_image(grid: np.ndarray, image_size: tuple[int, int], scale: tuple[float, float]) -> np.ndarray:
    """A map on a vote grid (labels, a mask) at image resolution, nearest: image pixel ``(y, x)``
    takes grid cell ``(floor(y / sy), floor(x / sx))`` (clipped), ``scale = (sx, sy)`` image pixels
    per grid pixel. The PCV net votes on a stride-4 grid; its instances are drawn on the image."""
    g = np.asarray(grid)
    if g.ndim != 2 or g.size == 0:
        raise SegviewerError(f"A vote grid map must be a non-empty 2-D array; got shape {g.shape}.")
    sx, sy = (float(v) for v in scale)
    if not (sx > 0 and sy > 0):
        raise SegviewerError(f"The grid's scale must be positive; got {scale}.")
    h, w = (int(v) for v in image_size)
    ys = np.minimum((np.arange(h) / sy).astype(np.int64), g.shape[0] - 1)
    xs = np.minimum((np.arange(w) / sx).astype(np.int64), g.shape[1] - 1)
    return g[ys[:, None], xs[None, :]]


def image_instances(grid_labels: np.ndarray, image_size: tuple[int, int], scale: tuple[float, float],
                    keep: np.ndarray | None = None) -> np.ndarray:
    """Back-projected instances (``(h, w)`` ids on the vote grid) at image resolution, kept to the
    ``keep`` pixels (``(H, W)`` bool, e.g. where the PCV net's semantic head sees a thing): the
    votes place an instance at the grid's coarse step, the semantic map gives its outline."""
    lab = grid_to_image(np.asarray(grid_labels, np.int32), image_size, scale)
    if keep is None:
        return lab
    k = np.asarray(keep, bool)
    if k.shape != lab.shape:
        raise SegviewerError(f"The keep mask is {k.shape}; the image is {lab.shape}.")
    return np.where(k, lab, 0).astype(np.int32)


def image_to_grid(x: float, y: float, scale: tuple[float, float], grid_shape: tuple[int, int]) -> tuple[int, int] | None:
    """The grid cell ``(row, col)`` under image point ``(x, y)``; None outside the grid."""
    r, c = int(np.floor(y / scale[1])), int(np.floor(x / scale[0]))
    if 0 <= r < grid_shape[0] and 0 <= c < grid_shape[1]:
        return r, c
    return None


def distribution_table(probs: np.ndarray, geometry: VoteGeometry = DEFAULT_GEOMETRY) -> np.ndarray:
    """One pixel's vote distribution painted on the table (in table units): entry ``(i, j)`` is
    the probability of the cell there, divided by the cell's size in units, so the picture's mass
    is where the votes land (an outer 3 x 3 cell's 0.9 shows as 0.1 per unit, as the pooling
    spreads it). The abstain probability is not on the table."""
    p = np.asarray(probs, np.float64).reshape(-1)
    if p.size < geometry.num_cells:
        raise SegviewerError(f"A vote distribution needs {geometry.num_cells} cell probabilities; got {p.size}.")
    t = geometry.table
    units = np.bincount(t.ravel(), minlength=geometry.num_cells)
    return (p[t] / units[t]).astype(np.float32)
