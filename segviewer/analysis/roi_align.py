"""The geometry of torchvision's RoIAlign and RoIPool, recomputed in numpy so it can be drawn.

Why this exists: the internals view draws, for one box, the FPN level it is pooled from, the
output bins, every bilinear sample point and the four feature cells each point reads, and it
must be *exactly* what ``torchvision.ops.roi_align`` computes. So the sample positions follow the
CPU kernel's float32 arithmetic step by step (same operation order), and :meth:`RoIAlignGrid.pooled`
recomputes the pooled values from the drawn points; the tests compare it with torchvision.

Coordinate conventions (they bite):

* Boxes are ``xyxy`` in the *model's* image coordinates (pixel ``(r, c)`` covers
  ``[c, c + 1) x [r, r + 1)``). ``spatial_scale`` = 1 / stride maps them onto the feature map.
* Feature coordinates: with ``aligned=False`` (torchvision's default, used by the detectors) a
  box coordinate ``x`` maps to ``x * scale`` and the integer feature coordinate ``j`` is read as
  cell ``j``'s value, although cell ``j`` covers image ``[j s, (j + 1) s)``, whose centre is at
  feature coordinate ``j + 0.5``: the legacy half-cell misalignment. ``aligned=True`` subtracts
  0.5 so that feature coordinate ``j`` sits at the cell's centre.
* Sample points are reported in feature coordinates and, via :meth:`RoIAlignGrid.points_image`,
  in image coordinates where they lie inside the box's bins: ``(p + offset) / scale``.
* RoIPool snaps the box to whole cells (``round``, half away from zero, as C++ ``std::round``)
  with an *inclusive* end cell, splits it into bins by floor/ceil and max-pools each bin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segviewer.core.errors import SegviewerError

__all__ = [
    "BadBoxError", "NothingHereError", "check_box", "box_at", "fpn_levels", "RoIAlignGrid",
    "roi_align_grid", "roi_align_numpy", "RoIPoolGrid", "roi_pool_grid", "roi_pool_numpy",
    "RegionDifference", "rect_difference", "fpn_roi_align_grid",
]

_F32 = np.float32


class BadBoxError(SegviewerError):
    """A box has zero or negative size, or is not finite."""


class NothingHereError(SegviewerError):
    """A click landed where there is nothing to show (no detection, anchor or peak)."""


def check_box(box: np.ndarray | tuple[float, ...]) -> np.ndarray:
    """A validated ``(4,)`` float64 xyxy box; zero width/height is refused with a clear message."""
    b = np.asarray(box, np.float64).reshape(-1)
    if b.size != 4:
        raise BadBoxError(f"A box needs 4 numbers (x0, y0, x1, y1); got {b.size}.")
    if not np.all(np.isfinite(b)):
        raise BadBoxError("The box has a NaN or infinite coordinate.")
    w, h = b[2] - b[0], b[3] - b[1]
    if w <= 0 or h <= 0:
        raise BadBoxError(f"The box {tuple(round(float(v), 2) for v in b)} has zero or negative "
                          f"{'width' if w <= 0 else 'height'}; RoI geometry needs a box with area.")
    return b


def box_at(boxes: np.ndarray, x: float, y: float) -> int:
    """Index of the smallest box containing the point (x, y); a click on empty space raises
    :class:`NothingHereError`, so the UI shows a message rather than a stale grid."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    inside = (b[:, 0] <= x) & (x <= b[:, 2]) & (b[:, 1] <= y) & (y <= b[:, 3])
    if not inside.any():
        raise NothingHereError(f"No box contains the point ({x:.0f}, {y:.0f}); click inside a detection.")
    idx = np.flatnonzero(inside)
    area = (b[idx, 2] - b[idx, 0]) * (b[idx, 3] - b[idx, 1])
    return int(idx[np.argmin(area)])


def fpn_levels(boxes: np.ndarray, k_min: int = 2, k_max: int = 5, canonical_scale: int = 224,
               canonical_level: int = 4, eps: float = 1e-6) -> np.ndarray:
    """FPN level ``k`` per box exactly as torchvision's ``LevelMapper`` (float32 arithmetic):
    ``k = floor(k0 + log2(sqrt(w h) / 224) + eps)`` clamped to ``[k_min, k_max]``.

    Returns absolute levels (2 = stride 4 ... 5 = stride 32); ``k - k_min`` indexes the list of
    pooled feature maps. Zero-area boxes map to ``k_min`` as in torchvision.
    """
    b = np.asarray(boxes, _F32).reshape(-1, 4)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.sqrt(area)
        k = np.floor(_F32(canonical_level) + np.log2(s / _F32(canonical_scale)) + _F32(eps))
    k = np.clip(np.nan_to_num(k, nan=k_min, neginf=k_min, posinf=k_max), k_min, k_max)
    return k.astype(np.int64)


@dataclass(frozen=True, eq=False)
class RoIAlignGrid:
    """Everything RoIAlign does for one box on one feature map, ready to draw or re-pool.

    ``points`` is ``(PH, PW, GH, GW, 2)`` of ``(x, y)`` feature coordinates as the kernel computes
    them (before clamping); ``valid`` marks points inside ``[-1, H] x [-1, W]`` (others contribute
    zero); ``cells`` is ``(PH, PW, GH, GW, 4, 2)`` integer ``(row, col)`` of the four cells read,
    in the kernel's order (low-low, low-high, high-low, high-high), ``weights`` their bilinear
    weights (zero for invalid points). Each bin's value is ``sum(w * f[cell]) / count``.
    """

    box: np.ndarray
    feature_size: tuple[int, int]
    spatial_scale: float
    output_size: tuple[int, int]
    sampling: tuple[int, int]
    aligned: bool
    roi_start: tuple[float, float]  # (x, y) feature coordinates
    bin_size: tuple[float, float]  # (w, h) in feature units
    count: int
    points: np.ndarray
    valid: np.ndarray
    cells: np.ndarray
    weights: np.ndarray

    @property
    def stride(self) -> float:
        return 1.0 / self.spatial_scale

    @property
    def offset(self) -> float:
        return 0.5 if self.aligned else 0.0

    def points_image(self) -> np.ndarray:
        """Sample points in image coordinates (where they sit inside the box's bins)."""
        return (self.points.astype(np.float64) + self.offset) / self.spatial_scale

    def bin_edges_image(self) -> tuple[np.ndarray, np.ndarray]:
        """``(xs, ys)``: the PW + 1 vertical and PH + 1 horizontal bin lines in image coordinates."""
        (x0, y0), (bw, bh) = self.roi_start, self.bin_size
        ph, pw = self.output_size
        xs = (x0 + np.arange(pw + 1) * bw + self.offset) / self.spatial_scale
        ys = (y0 + np.arange(ph + 1) * bh + self.offset) / self.spatial_scale
        return xs, ys

    def cell_boxes_image(self) -> np.ndarray:
        """``(M, 4)`` image-space footprints (xyxy) of the distinct feature cells read with weight > 0."""
        cells = self.cells[self.weights > 0].reshape(-1, 2)
        if cells.size == 0:
            return np.zeros((0, 4))
        cells = np.unique(cells, axis=0)
        s = self.stride
        return np.stack([cells[:, 1] * s, cells[:, 0] * s, (cells[:, 1] + 1) * s, (cells[:, 0] + 1) * s], 1)

    def pooled(self, feature: np.ndarray) -> np.ndarray:
        """``(C, PH, PW)`` float64 RoIAlign output recomputed from the drawn points and weights."""
        f = np.asarray(feature)
        if f.ndim == 2:
            f = f[None]
        if f.shape[1:] != self.feature_size:
            raise SegviewerError(f"The feature map is {f.shape[1:]} but the grid was built for {self.feature_size}.")
        vals = f[:, self.cells[..., 0], self.cells[..., 1]].astype(np.float64)  # (C, PH, PW, GH, GW, 4)
        return (vals * self.weights[None]).sum(axis=(3, 4, 5)) / self.count

    def weight_map(self) -> np.ndarray:
        """``(H, W)`` total weight each feature cell gets over the whole RoI (for a heatmap)."""
        out = np.zeros(self.feature_size, np.float64)
        np.add.at(out, (self.cells[..., 0].ravel(), self.cells[..., 1].ravel()), self.weights.ravel())
        return out / self.count


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def _check_feature_size(feature_size: tuple[int, int]) -> tuple[int, int]:
    h, w = (int(v) for v in feature_size)
    if h <= 0 or w <= 0:
        raise SegviewerError(f"The feature map must have a positive size; got {h}x{w}.")
    return h, w


def roi_align_grid(box: np.ndarray | tuple[float, ...], feature_size: tuple[int, int], spatial_scale: float,
                   output_size: int | tuple[int, int] = 7, sampling_ratio: int = 2,
                   aligned: bool = False) -> RoIAlignGrid:
    """Sample points, cells and weights of ``torchvision.ops.roi_align`` for one box.

    ``sampling_ratio <= 0`` is torchvision's adaptive mode: ``ceil(roi_size / bins)`` points per
    bin along each axis (so the grid may differ between height and width).
    """
    b = check_box(box)
    height, width = _check_feature_size(feature_size)
    ph, pw = _pair(output_size)
    if ph <= 0 or pw <= 0:
        raise SegviewerError(f"RoIAlign needs at least one output bin; got {ph}x{pw}.")
    scale, off = _F32(spatial_scale), _F32(0.5 if aligned else 0.0)
    bx = b.astype(_F32)
    x0, y0 = bx[0] * scale - off, bx[1] * scale - off
    x1, y1 = bx[2] * scale - off, bx[3] * scale - off
    roi_w, roi_h = _F32(x1 - x0), _F32(y1 - y0)
    if not aligned:  # the legacy mode forces malformed RoIs to at least 1x1
        roi_w, roi_h = max(roi_w, _F32(1.0)), max(roi_h, _F32(1.0))
    bin_h, bin_w = _F32(roi_h / _F32(ph)), _F32(roi_w / _F32(pw))
    gh = int(sampling_ratio) if sampling_ratio > 0 else int(np.ceil(_F32(roi_h / _F32(ph))))
    gw = int(sampling_ratio) if sampling_ratio > 0 else int(np.ceil(_F32(roi_w / _F32(pw))))
    count = max(gh * gw, 1)
    # y = roi_start_h + ph * bin_size_h + (iy + .5) * bin_size_h / grid_h, in the kernel's order
    ys = (y0 + np.arange(ph, dtype=_F32)[:, None] * bin_h) + \
        (np.arange(gh, dtype=_F32)[None, :] + _F32(0.5)) * bin_h / _F32(max(gh, 1))
    xs = (x0 + np.arange(pw, dtype=_F32)[:, None] * bin_w) + \
        (np.arange(gw, dtype=_F32)[None, :] + _F32(0.5)) * bin_w / _F32(max(gw, 1))
    ys, xs = ys.astype(_F32), xs.astype(_F32)  # (PH, GH), (PW, GW)

    def axis(v: np.ndarray, size: int) -> tuple[np.ndarray, ...]:
        ok = (v >= -1.0) & (v <= size)
        c = np.where(v <= 0, _F32(0), v)
        low = c.astype(np.int64)
        top = low >= size - 1
        low = np.where(top, size - 1, low)
        high = np.where(top, size - 1, low + 1)
        c = np.where(top, low.astype(_F32), c)
        lo_w = (c - low.astype(_F32)).astype(_F32)  # weight of the high cell
        return ok, low, high, (_F32(1) - lo_w).astype(_F32), lo_w

    oky, yl, yh, hy, ly = axis(ys, height)
    okx, xl, xh, hx, lx = axis(xs, width)
    e = np.newaxis
    # broadcast to (PH, PW, GH, GW)
    Y = lambda a: a[:, e, :, e]  # noqa: E731
    X = lambda a: a[e, :, e, :]  # noqa: E731
    valid = Y(oky) & X(okx)
    shape = valid.shape
    cells = np.empty((*shape, 4, 2), np.int64)
    for i, (r, c) in enumerate(((yl, xl), (yl, xh), (yh, xl), (yh, xh))):
        cells[..., i, 0] = np.broadcast_to(Y(r), shape)
        cells[..., i, 1] = np.broadcast_to(X(c), shape)
    w = np.stack([Y(hy) * X(hx), Y(hy) * X(lx), Y(ly) * X(hx), Y(ly) * X(lx)], -1).astype(np.float64)
    w *= valid[..., None]
    cells *= valid[..., None, None]  # the kernel reads cell (0, 0) with weight 0 for invalid points
    pts = np.empty((*shape, 2), np.float64)
    pts[..., 0] = np.broadcast_to(X(xs), shape)
    pts[..., 1] = np.broadcast_to(Y(ys), shape)
    return RoIAlignGrid(
        box=b, feature_size=(height, width), spatial_scale=float(spatial_scale), output_size=(ph, pw),
        sampling=(gh, gw), aligned=bool(aligned), roi_start=(float(x0), float(y0)),
        bin_size=(float(bin_w), float(bin_h)), count=count, points=pts, valid=valid, cells=cells, weights=w,
    )


def roi_align_numpy(feature: np.ndarray, boxes: np.ndarray, spatial_scale: float,
                    output_size: int | tuple[int, int] = 7, sampling_ratio: int = 2,
                    aligned: bool = False) -> np.ndarray:
    """``(K, C, PH, PW)`` RoIAlign of ``(C, H, W)`` features for K boxes, via :func:`roi_align_grid`."""
    f = np.asarray(feature)
    size = f.shape[-2:]
    return np.stack([roi_align_grid(b, size, spatial_scale, output_size, sampling_ratio, aligned).pooled(f)
                     for b in np.asarray(boxes).reshape(-1, 4)])


def _cround(v: np.ndarray | float) -> np.ndarray:
    """C++ ``std::round``: halves away from zero (numpy rounds halves to even)."""
    v = np.asarray(v, _F32)
    return (np.sign(v) * np.floor(np.abs(v) + _F32(0.5))).astype(np.int64)


@dataclass(frozen=True)
class RegionDifference:
    """How a quantised region differs from the exact box, in squared image pixels."""

    box_area: float
    region_area: float
    overlap: float
    lost: float  # box area the region misses
    gained: float  # region area outside the box

    @property
    def difference(self) -> float:
        """Area of the symmetric difference (lost + gained)."""
        return self.lost + self.gained


def rect_difference(box: np.ndarray, region: np.ndarray) -> RegionDifference:
    """Areas of two xyxy rectangles and of their symmetric difference."""
    a, r = np.asarray(box, np.float64), np.asarray(region, np.float64)
    area = lambda q: max(q[2] - q[0], 0.0) * max(q[3] - q[1], 0.0)  # noqa: E731
    inter = max(min(a[2], r[2]) - max(a[0], r[0]), 0.0) * max(min(a[3], r[3]) - max(a[1], r[1]), 0.0)
    ab, ar = area(a), area(r)
    return RegionDifference(ab, ar, inter, ab - inter, ar - inter)


@dataclass(frozen=True, eq=False)
class RoIPoolGrid:
    """RoIPool's quantised grid for one box: the snapped cell range and each bin's cell range.

    ``roi_cells = (col0, row0, col1, row1)`` inclusive feature cells after rounding; ``bins`` is
    ``(PH, PW, 4)`` of ``(col0, row0, col1, row1)`` with exclusive ends, clipped to the map
    (an empty bin pools to 0, as in torchvision).
    """

    box: np.ndarray
    feature_size: tuple[int, int]
    spatial_scale: float
    output_size: tuple[int, int]
    roi_cells: tuple[int, int, int, int]
    bins: np.ndarray

    @property
    def stride(self) -> float:
        return 1.0 / self.spatial_scale

    def region_image(self) -> np.ndarray:
        """The image area actually pooled (the union of the clipped bins), xyxy."""
        h, w = self.feature_size
        c0, r0, c1, r1 = self.roi_cells
        s = self.stride
        x0, y0 = min(max(c0, 0), w) * s, min(max(r0, 0), h) * s
        x1, y1 = min(max(c1 + 1, 0), w) * s, min(max(r1 + 1, 0), h) * s
        return np.array([x0, y0, max(x1, x0), max(y1, y0)], np.float64)

    def bins_image(self) -> np.ndarray:
        """``(PH, PW, 4)`` bins in image coordinates (xyxy); bins overlap where floor/ceil round out."""
        return self.bins.astype(np.float64) * self.stride

    def difference(self) -> RegionDifference:
        """Pixels the two quantisations lose and gain against the exact box."""
        return rect_difference(self.box, self.region_image())

    def pooled(self, feature: np.ndarray) -> np.ndarray:
        """``(C, PH, PW)`` max-pooled values; also see :meth:`argmax` for the winning cells."""
        return self._pool(feature)[0]

    def argmax(self, feature: np.ndarray) -> np.ndarray:
        """``(C, PH, PW, 2)`` (row, col) of the cell that won each bin (-1 for empty bins)."""
        return self._pool(feature)[1]

    def _pool(self, feature: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = np.asarray(feature)
        if f.ndim == 2:
            f = f[None]
        if f.shape[1:] != self.feature_size:
            raise SegviewerError(f"The feature map is {f.shape[1:]} but the grid was built for {self.feature_size}.")
        c = f.shape[0]
        ph, pw = self.output_size
        out = np.zeros((c, ph, pw), np.float64)
        arg = np.full((c, ph, pw, 2), -1, np.int64)
        for i in range(ph):
            for j in range(pw):
                x0, y0, x1, y1 = (int(v) for v in self.bins[i, j])
                if x1 <= x0 or y1 <= y0:
                    continue
                patch = f[:, y0:y1, x0:x1].reshape(c, -1)
                k = patch.argmax(axis=1)  # first maximum in row-major order, like the kernel's '>'
                out[:, i, j] = patch[np.arange(c), k]
                arg[:, i, j, 0] = y0 + k // (x1 - x0)
                arg[:, i, j, 1] = x0 + k % (x1 - x0)
        return out, arg


def roi_pool_grid(box: np.ndarray | tuple[float, ...], feature_size: tuple[int, int], spatial_scale: float,
                  output_size: int | tuple[int, int] = 7) -> RoIPoolGrid:
    """The quantised bins of ``torchvision.ops.roi_pool`` for one box (float32 as the kernel)."""
    b = check_box(box)
    height, width = _check_feature_size(feature_size)
    ph, pw = _pair(output_size)
    if ph <= 0 or pw <= 0:
        raise SegviewerError(f"RoIPool needs at least one output bin; got {ph}x{pw}.")
    scale = _F32(spatial_scale)
    c0, r0, c1, r1 = (int(v) for v in _cround(b.astype(_F32) * scale))
    roi_w, roi_h = max(c1 - c0 + 1, 1), max(r1 - r0 + 1, 1)
    bin_h, bin_w = _F32(_F32(roi_h) / _F32(ph)), _F32(_F32(roi_w) / _F32(pw))
    hs = np.floor(np.arange(ph, dtype=_F32) * bin_h).astype(np.int64)
    he = np.ceil(np.arange(1, ph + 1, dtype=_F32) * bin_h).astype(np.int64)
    ws = np.floor(np.arange(pw, dtype=_F32) * bin_w).astype(np.int64)
    we = np.ceil(np.arange(1, pw + 1, dtype=_F32) * bin_w).astype(np.int64)
    hs, he = np.clip(hs + r0, 0, height), np.clip(he + r0, 0, height)
    ws, we = np.clip(ws + c0, 0, width), np.clip(we + c0, 0, width)
    bins = np.empty((ph, pw, 4), np.int64)
    bins[..., 0], bins[..., 2] = ws[None, :], we[None, :]
    bins[..., 1], bins[..., 3] = hs[:, None], he[:, None]
    return RoIPoolGrid(b, (height, width), float(spatial_scale), (ph, pw), (c0, r0, c1, r1), bins)


def roi_pool_numpy(feature: np.ndarray, boxes: np.ndarray, spatial_scale: float,
                   output_size: int | tuple[int, int] = 7) -> np.ndarray:
    """``(K, C, PH, PW)`` RoIPool of ``(C, H, W)`` features for K boxes, via :func:`roi_pool_grid`."""
    f = np.asarray(feature)
    return np.stack([roi_pool_grid(b, f.shape[-2:], spatial_scale, output_size).pooled(f)
                     for b in np.asarray(boxes).reshape(-1, 4)])


def fpn_roi_align_grid(box: np.ndarray | tuple[float, ...], feature_sizes: list[tuple[int, int]],
                       k_min: int = 2, output_size: int | tuple[int, int] = 7, sampling_ratio: int = 2,
                       aligned: bool = False) -> tuple[int, RoIAlignGrid]:
    """The level a detector's ``MultiScaleRoIAlign`` picks for ``box`` and that level's grid.

    ``feature_sizes`` are the pooled maps' sizes, finest first (strides ``2**k_min`` upward);
    box heads use ``output_size=7``, mask heads 14; both use ``sampling_ratio=2``, aligned off.
    Returns ``(level_index, grid)`` where ``level_index`` indexes ``feature_sizes``.
    """
    b = check_box(box)
    k_max = k_min + len(feature_sizes) - 1
    lvl = int(fpn_levels(b[None], k_min, k_max)[0]) - k_min
    grid = roi_align_grid(b, feature_sizes[lvl], 2.0 ** -(k_min + lvl), output_size, sampling_ratio, aligned)
    return lvl, grid
