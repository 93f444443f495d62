"""Scalar maps (objectness, FPN activations, mask logits, vote accumulators) as RGBA heatmaps.

Why a module of its own: every internals view is "a grid of numbers at some stride, shown over
the image with a colormap and a legend", and the canvas and the exporter must agree on the
colors. A map is placed on the image by an *extent*: the rectangle of the value grid, in grid
cells (continuous, cell ``(r, c)`` covers ``[c, c + 1) x [r, r + 1)``), that the output covers.
For a feature map at stride ``s`` in a model that resized the image by ``(kx, ky)``, the displayed
image covers the grid rectangle ``(0, 0, W_img * kx / s, H_img * ky / s)``.
NaN values are transparent. Colormaps come from OpenCV (BGR there, RGB here) plus a diverging
blue-white-red one for signed values such as logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from segviewer.core.errors import SegviewerError

__all__ = [
    "COLORMAPS", "colormap_lut", "normalize", "resample_grid", "heatmap_rgba", "nice_ticks",
    "HeatmapLegend", "make_legend", "legend_rgba",
]

COLORMAPS: tuple[str, ...] = ("viridis", "magma", "inferno", "plasma", "turbo", "jet", "hot", "gray", "diverging")


@cache
def _lut(name: str) -> np.ndarray:
    import cv2

    if name == "gray":
        g = np.arange(256, dtype=np.uint8)
        return np.stack([g, g, g], 1)
    if name == "diverging":  # blue (negative) - white (zero) - red (positive)
        t = np.linspace(-1, 1, 256)
        lo, hi = np.clip(-t, 0, 1), np.clip(t, 0, 1)
        r = 255 * (1 - lo * 0.8)
        g = 255 * (1 - np.maximum(lo, hi) * 0.8)
        b = 255 * (1 - hi * 0.8)
        return np.round(np.stack([r, g, b], 1)).astype(np.uint8)
    code = {"viridis": cv2.COLORMAP_VIRIDIS, "magma": cv2.COLORMAP_MAGMA, "inferno": cv2.COLORMAP_INFERNO,
            "plasma": cv2.COLORMAP_PLASMA, "turbo": cv2.COLORMAP_TURBO, "jet": cv2.COLORMAP_JET,
            "hot": cv2.COLORMAP_HOT}[name]
    bgr = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], code)[:, 0]
    return np.ascontiguousarray(bgr[:, ::-1])


def colormap_lut(name: str = "viridis") -> np.ndarray:
    """``(256, 3)`` uint8 RGB lookup table of a named colormap."""
    if name not in COLORMAPS:
        raise SegviewerError(f"Unknown colormap {name!r}; choose one of {', '.join(COLORMAPS)}.")
    lut = _lut(name).copy()
    return lut


def normalize(values: np.ndarray, vmin: float | None = None, vmax: float | None = None,
              symmetric: bool = False) -> tuple[np.ndarray, float, float]:
    """Values scaled to [0, 1] (NaN kept) and the ``(vmin, vmax)`` used; ``symmetric`` centres 0."""
    v = np.asarray(values, np.float32)
    finite = v[np.isfinite(v)]
    if vmin is None:
        vmin = float(finite.min()) if finite.size else 0.0
    if vmax is None:
        vmax = float(finite.max()) if finite.size else 1.0
    if symmetric:
        m = max(abs(vmin), abs(vmax))
        vmin, vmax = -m, m
    if not (np.isfinite(vmin) and np.isfinite(vmax)):
        raise SegviewerError(f"The heatmap range must be finite; got {vmin}..{vmax}.")
    if vmax <= vmin:
        vmax = vmin + 1.0  # a constant map shows the lowest color rather than failing
    return np.clip((v - vmin) / (vmax - vmin), 0, 1), float(vmin), float(vmax)


def _nearest_index(shape: tuple[int, ...], out_size: tuple[int, int],
                   extent: tuple[float, float, float, float]) -> tuple[np.ndarray, ...]:
    """Per output row/column, the grid cell holding its centre (clipped) and whether it is inside."""
    oh, ow = out_size
    x0, y0, x1, y1 = extent
    cols = np.floor(x0 + (np.arange(ow) + 0.5) * ((x1 - x0) / ow)).astype(np.int64)
    rows = np.floor(y0 + (np.arange(oh) + 0.5) * ((y1 - y0) / oh)).astype(np.int64)
    okc, okr = (cols >= 0) & (cols < shape[1]), (rows >= 0) & (rows < shape[0])
    return np.clip(rows, 0, shape[0] - 1), np.clip(cols, 0, shape[1] - 1), okr, okc


def _check_frame(out_size: tuple[int, int], extent: tuple[float, float, float, float] | None) -> tuple[int, int]:
    """``(oh, ow)`` after checking the output size is positive and the extent is not empty."""
    oh, ow = (int(s) for s in out_size)
    if oh <= 0 or ow <= 0:
        raise SegviewerError(f"The output size must be positive; got {oh}x{ow}.")
    if extent is not None:
        x0, y0, x1, y1 = (float(e) for e in extent)
        if not (x1 > x0 and y1 > y0):
            raise SegviewerError(f"The heatmap extent {extent} is empty.")
    return oh, ow


def resample_grid(values: np.ndarray, out_size: tuple[int, int],
                  extent: tuple[float, float, float, float] | None = None,
                  interpolation: str = "nearest") -> np.ndarray:
    """Sample a ``(h, w)`` grid onto ``out_size`` output pixels whose rectangle in grid cells is
    ``extent = (x0, y0, x1, y1)`` (default: the whole grid). Outside the grid gives NaN.

    ``nearest`` shows the cells as blocks (what the network has); ``linear`` is bilinear between
    cell centres.
    """
    import cv2

    v = np.asarray(values, np.float32)
    if v.ndim != 2 or v.size == 0:
        raise SegviewerError(f"A heatmap needs a non-empty 2-D grid; got shape {v.shape}.")
    oh, ow = _check_frame(out_size, extent)
    x0, y0, x1, y1 = (0.0, 0.0, float(v.shape[1]), float(v.shape[0])) if extent is None else (float(e) for e in extent)
    sx, sy = (x1 - x0) / ow, (y1 - y0) / oh
    if interpolation == "nearest":
        rows, cols, okr, okc = _nearest_index(v.shape, (oh, ow), (x0, y0, x1, y1))
        out = v[rows[:, None], cols[None, :]]
        return np.where(okr[:, None] & okc[None, :], out, np.nan).astype(np.float32)
    if interpolation != "linear":
        raise SegviewerError(f"Unknown interpolation {interpolation!r}; use 'nearest' or 'linear'.")
    m = np.array([[sx, 0, x0 + 0.5 * sx - 0.5], [0, sy, y0 + 0.5 * sy - 0.5]], np.float64)
    out = cv2.warpAffine(v, m, (ow, oh), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    gx, gy = x0 + (np.arange(ow) + 0.5) * sx, y0 + (np.arange(oh) + 0.5) * sy
    inside = ((gy >= 0) & (gy < v.shape[0]))[:, None] & ((gx >= 0) & (gx < v.shape[1]))[None, :]
    return np.where(inside, out, np.nan).astype(np.float32)


def heatmap_rgba(values: np.ndarray, vmin: float | None = None, vmax: float | None = None,
                 cmap: str = "viridis", alpha: int = 180, out_size: tuple[int, int] | None = None,
                 extent: tuple[float, float, float, float] | None = None, interpolation: str = "nearest",
                 symmetric: bool = False, alpha_by_value: bool = False) -> np.ndarray:
    """A straight-alpha RGBA uint8 heatmap; NaN (and values outside the grid) are transparent.

    ``alpha_by_value`` fades low values out (alpha proportional to the normalised value), which
    keeps the image readable under sparse maps such as objectness.
    """
    v = np.asarray(values, np.float32)
    if v.ndim != 2 or v.size == 0:
        raise SegviewerError(f"A heatmap needs a non-empty 2-D grid; got shape {v.shape}.")
    if out_size is None and extent is not None:
        raise SegviewerError("An extent needs an out_size to resample to.")
    if out_size is not None and interpolation == "nearest":
        # color the (small) grid once, then gather whole RGBA pixels: the fast path for big outputs
        _check_frame(out_size, extent)  # (resampling a 1x1 grid to validate cost ~0.4 s at 4000x3000)
        cells = heatmap_rgba(v, vmin, vmax, cmap, alpha, symmetric=symmetric, alpha_by_value=alpha_by_value)
        ext = (0.0, 0.0, float(v.shape[1]), float(v.shape[0])) if extent is None else tuple(float(e) for e in extent)
        rows, cols, okr, okc = _nearest_index(v.shape, tuple(int(o) for o in out_size), ext)
        px = cells.view(np.uint32)[..., 0][rows[:, None], cols[None, :]]
        if not (okr.all() and okc.all()):
            px = np.where(okr[:, None] & okc[None, :], px, np.uint32(0))
        return np.ascontiguousarray(px).view(np.uint8).reshape(*px.shape, 4)
    if out_size is not None:
        v = resample_grid(v, out_size, extent, interpolation)
    t, _, _ = normalize(v, vmin, vmax, symmetric)
    nan = ~np.isfinite(t)
    idx = np.round(np.nan_to_num(t, nan=0.0) * 255).astype(np.uint8)
    out = np.empty((*v.shape, 4), np.uint8)
    out[..., :3] = colormap_lut(cmap)[idx]
    a = int(np.clip(alpha, 0, 255))
    out[..., 3] = np.round(np.nan_to_num(t, nan=0.0) * a).astype(np.uint8) if alpha_by_value else a
    out[nan] = 0  # transparent black, the same as outside the grid
    return out


def nice_ticks(vmin: float, vmax: float, n: int = 5) -> np.ndarray:
    """About ``n`` round tick values (1, 2, 2.5, 5 x 10^k steps) within ``[vmin, vmax]``."""
    if not (np.isfinite(vmin) and np.isfinite(vmax)) or n < 2:
        raise SegviewerError("Ticks need a finite range and at least two ticks.")
    if vmax <= vmin:
        return np.array([vmin], np.float64)
    raw = (vmax - vmin) / (n - 1)
    mag = 10.0 ** np.floor(np.log10(raw))
    step = mag * min((m for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10)
    first = np.ceil(vmin / step - 1e-9) * step
    ticks = np.arange(first, vmax + step * 1e-6, step)
    return np.round(ticks, 10) + 0.0  # + 0.0 turns -0 into 0


@dataclass(frozen=True)
class HeatmapLegend:
    """What a legend shows: the colormap, its range and the ticks (value and label)."""

    cmap: str
    vmin: float
    vmax: float
    ticks: tuple[float, ...]
    labels: tuple[str, ...]
    title: str = ""

    def lut(self) -> np.ndarray:
        return colormap_lut(self.cmap)

    def position(self, value: float) -> float:
        """Where ``value`` sits along the bar, 0 (vmin) .. 1 (vmax)."""
        return float(np.clip((value - self.vmin) / (self.vmax - self.vmin), 0, 1)) if self.vmax > self.vmin else 0.0


def make_legend(vmin: float, vmax: float, cmap: str = "viridis", title: str = "", n_ticks: int = 5) -> HeatmapLegend:
    """A legend for a heatmap drawn with the same ``(vmin, vmax, cmap)``."""
    colormap_lut(cmap)  # validates the name
    ticks = nice_ticks(vmin, vmax, n_ticks)
    return HeatmapLegend(cmap, float(vmin), float(vmax), tuple(float(t) for t in ticks),
                         tuple(f"{t:g}" for t in ticks), title)


def legend_rgba(legend: HeatmapLegend, size: tuple[int, int] = (200, 70)) -> np.ndarray:
    """The legend as an opaque-ish RGBA image ``size = (H, W)``: a vertical bar (vmax on top),
    tick marks and labels, and the title above, for exports."""
    import cv2

    h, w = (int(v) for v in size)
    if h < 40 or w < 30:
        raise SegviewerError(f"A legend needs at least 40x30 pixels; got {h}x{w}.")
    out = np.zeros((h, w, 4), np.uint8)
    out[..., :3], out[..., 3] = 32, 200
    top, bottom, bar = 18 if legend.title else 6, h - 6, min(14, w // 3)
    n = bottom - top
    t = np.linspace(1, 0, n)  # top of the bar is vmax
    out[top:bottom, 4:4 + bar, :3] = legend.lut()[np.round(t * 255).astype(int)][:, None, :]
    out[top:bottom, 4:4 + bar, 3] = 255
    canvas = np.ascontiguousarray(out[..., :3])
    for value, text in zip(legend.ticks, legend.labels):
        y = int(round(top + (1 - legend.position(value)) * (n - 1)))
        cv2.line(canvas, (4 + bar, y), (4 + bar + 3, y), (255, 255, 255), 1)
        cv2.putText(canvas, text, (4 + bar + 5, min(max(y + 4, 8), h - 2)), cv2.FONT_HERSHEY_SIMPLEX, 0.33,
                    (255, 255, 255), 1, cv2.LINE_AA)
    if legend.title:
        cv2.putText(canvas, legend.title, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    out[..., :3] = canvas
    return out
