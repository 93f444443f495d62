"""Optical flow drawn three ways: Middlebury color coding, arrows on a grid, magnitude heatmap.

The color coding follows Baker et al. (ICCV 2007) as torchvision's ``utils.flow_to_image`` does,
with one deliberate difference: the vectors are divided by a *given* ``max_magnitude`` instead of
each frame's own maximum, so the same motion has the same color on every frame of a video (no
flicker). Vectors longer than ``max_magnitude`` saturate at the wheel's rim. Pass
``max_magnitude=None`` for torchvision's per-frame normalisation.

Arrows are returned as line segments ``(N, 2, 2)`` of ``((x0, y0), (x1, y1))`` in continuous
image coordinates (pixel centres at ``+0.5``) so the canvas can draw them as one path with
``connect='pairs'``; :func:`rasterize_arrows` burns them into an RGBA layer for export.
"""

from __future__ import annotations

import numpy as np

from segviewer.core.errors import SegviewerError

__all__ = [
    "colorwheel",
    "flow_to_rgb",
    "flow_to_rgba",
    "wheel_legend",
    "flow_arrows",
    "arrow_heads",
    "rasterize_arrows",
    "magnitude_heatmap",
    "flow_layer",
    "register_flow_layer",
]


def colorwheel() -> np.ndarray:
    """The 55-entry Middlebury color wheel ``(55, 3)`` float64 in 0..255 (red, yellow, green, cyan, blue, magenta)."""
    segs = (("RY", 15), ("YG", 6), ("GC", 4), ("CB", 11), ("BM", 13), ("MR", 6))
    wheel = np.zeros((sum(n for _, n in segs), 3))
    col = 0
    for name, n in segs:
        ramp = np.floor(255 * np.arange(n) / n)
        block = wheel[col : col + n]
        if name == "RY":
            block[:, 0], block[:, 1] = 255, ramp
        elif name == "YG":
            block[:, 0], block[:, 1] = 255 - ramp, 255
        elif name == "GC":
            block[:, 1], block[:, 2] = 255, ramp
        elif name == "CB":
            block[:, 1], block[:, 2] = 255 - ramp, 255
        elif name == "BM":
            block[:, 2], block[:, 0] = 255, ramp
        else:  # MR
            block[:, 2], block[:, 0] = 255 - ramp, 255
        col += n
    return wheel


_WHEEL = colorwheel()


def _flow(flow: np.ndarray) -> np.ndarray:
    f = np.asarray(getattr(flow, "uv", flow))
    if f.ndim != 3 or f.shape[2] != 2:
        raise SegviewerError(f"A flow field must have shape (H, W, 2); got {f.shape}.")
    return f.astype(np.float64)


def _code(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Color-code normalised vectors (length 1 = rim): ``(..., 3)`` uint8."""
    n = len(_WHEEL)
    norm = np.minimum(np.sqrt(u * u + v * v), 1.0)
    a = np.arctan2(-v, -u) / np.pi
    fk = (a + 1) / 2 * (n - 1)
    k0 = np.floor(fk).astype(np.int64)
    k1 = np.where(k0 + 1 == n, 0, k0 + 1)
    f = (fk - k0)[..., None]
    col = ((1 - f) * _WHEEL[k0] + f * _WHEEL[k1]) / 255.0
    col = 1 - norm[..., None] * (1 - col)
    return np.floor(255 * col).astype(np.uint8)


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 Middlebury coding of a flow (array or FlowField).

    ``max_magnitude`` is the length that maps to the rim (fixed per video so colors are stable);
    ``None`` uses this frame's maximum, as torchvision does.
    """
    f = _flow(flow)
    if max_magnitude is None:
        m = float(np.sqrt((f**2).sum(-1)).max()) if f.size else 0.0
        max_magnitude = m + float(np.finfo(np.float32).eps)
    if not (np.isfinite(max_magnitude) and max_magnitude > 0):
        raise SegviewerError(f"The flow's maximum magnitude must be positive; got {max_magnitude}.")
    return _code(f[..., 0] / max_magnitude, f[..., 1] / max_magnitude)


def flow_to_rgba(flow: np.ndarray, max_magnitude: float | None = None, alpha: int = 255) -> np.ndarray:
    """The color coding as a C-contiguous RGBA layer for the canvas."""
    rgb = flow_to_rgb(flow, max_magnitude)
    out = np.empty((*rgb.shape[:2], 4), np.uint8)
    out[..., :3] = rgb
    out[..., 3] = int(np.clip(alpha, 0, 255))
    return out


def wheel_legend(size: int = 129, max_magnitude: float | None = None) -> np.ndarray:
    """The color key: a ``size x size`` RGBA disc whose rim is ``max_magnitude`` (transparent outside).

    Pixel ``(r, c)`` shows the color of the vector from the centre to that pixel, so a reader
    can look up direction and relative speed; the caller labels the rim with ``max_magnitude``.
    """
    if size < 3:
        raise SegviewerError(f"The legend needs at least 3 pixels; got {size}.")
    c = (size - 1) / 2.0
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    u, v = (xs - c) / c, (ys - c) / c
    out = np.zeros((size, size, 4), np.uint8)
    out[..., :3] = _code(u, v)
    out[..., 3] = np.where(u * u + v * v <= 1.0 + 1e-9, 255, 0).astype(np.uint8)
    return out


def flow_arrows(flow: np.ndarray, step: int = 16, scale: float = 1.0, min_magnitude: float = 0.0) -> np.ndarray:
    """Arrows on a grid every ``step`` pixels, as segments ``(N, 2, 2)`` float32.

    Each arrow starts at a grid pixel's centre and points along its vector times ``scale``;
    vectors shorter than ``min_magnitude`` are left out so still areas stay clean. ``step`` sets
    the density (8 = dense, 32 = sparse).
    """
    f = _flow(flow)
    if step < 1:
        raise SegviewerError(f"The arrow spacing must be at least 1 pixel; got {step}.")
    h, w = f.shape[:2]
    off = step // 2
    rows = np.arange(min(off, h - 1), h, step)
    cols = np.arange(min(off, w - 1), w, step)
    yy, xx = np.meshgrid(rows, cols, indexing="ij")
    vec = f[yy, xx]  # (gh, gw, 2)
    keep = np.sqrt((vec**2).sum(-1)) >= min_magnitude
    x0, y0 = xx[keep] + 0.5, yy[keep] + 0.5
    d = vec[keep] * scale
    seg = np.stack([np.stack([x0, y0], -1), np.stack([x0 + d[:, 0], y0 + d[:, 1]], -1)], 1)
    return seg.astype(np.float32).reshape(-1, 2, 2)


def arrow_heads(segments: np.ndarray, head: float = 0.3, max_head: float = 6.0) -> np.ndarray:
    """Two short barbs per arrow tip, as extra segments ``(2N, 2, 2)``, for drawing heads."""
    seg = np.asarray(segments, np.float64).reshape(-1, 2, 2)
    d = seg[:, 1] - seg[:, 0]
    length = np.sqrt((d**2).sum(-1, keepdims=True))
    unit = np.divide(d, length, out=np.zeros_like(d), where=length > 0)
    hl = np.minimum(length * head, max_head)
    out = []
    for ang in (np.pi * 5 / 6, -np.pi * 5 / 6):
        ca, sa = np.cos(ang), np.sin(ang)
        rot = np.stack([unit[:, 0] * ca - unit[:, 1] * sa, unit[:, 0] * sa + unit[:, 1] * ca], -1)
        out.append(np.stack([seg[:, 1], seg[:, 1] + rot * hl], 1))
    return np.concatenate(out, 0).astype(np.float32)


def rasterize_arrows(segments: np.ndarray, size: tuple[int, int], color: tuple[int, int, int] = (255, 255, 255),
                     thickness: int = 1, heads: bool = True) -> np.ndarray:
    """Burn arrow segments into a transparent ``(H, W, 4)`` RGBA layer (anti-aliased), for export."""
    import cv2

    h, w = int(size[0]), int(size[1])
    seg = np.asarray(segments, np.float64).reshape(-1, 2, 2)
    if heads and len(seg):
        seg = np.concatenate([seg, arrow_heads(seg)], 0)
    layer = np.zeros((h, w), np.uint8)
    shift = 4  # sub-pixel precision for cv2.line; centre coordinates -> index coordinates by -0.5
    pts = np.round((seg - 0.5) * (1 << shift)).astype(np.int64)
    lim = 1 << 28
    pts = np.clip(pts, -lim, lim)
    for (x0, y0), (x1, y1) in pts:
        cv2.line(layer, (int(x0), int(y0)), (int(x1), int(y1)), 255, int(thickness), cv2.LINE_AA, shift)
    out = np.zeros((h, w, 4), np.uint8)
    out[..., :3] = np.asarray(color, np.uint8)
    out[..., 3] = layer
    return out


def magnitude_heatmap(flow: np.ndarray, max_magnitude: float | None = None, colormap: int | None = None,
                      alpha: int = 255) -> np.ndarray:
    """Vector length as an RGBA heatmap (OpenCV's TURBO by default), scaled by ``max_magnitude``."""
    import cv2

    f = _flow(flow)
    mag = np.sqrt((f**2).sum(-1))
    if max_magnitude is None:
        max_magnitude = float(mag.max()) if mag.size and mag.max() > 0 else 1.0
    if not (np.isfinite(max_magnitude) and max_magnitude > 0):
        raise SegviewerError(f"The flow's maximum magnitude must be positive; got {max_magnitude}.")
    idx = np.clip(np.round(mag / max_magnitude * 255), 0, 255).astype(np.uint8)
    cmap = cv2.COLORMAP_TURBO if colormap is None else colormap
    bgr = cv2.applyColorMap(idx, cmap)  # OpenCV colormaps come out BGR
    out = np.empty((*idx.shape, 4), np.uint8)
    out[..., :3] = bgr[..., ::-1]
    out[..., 3] = int(np.clip(alpha, 0, 255))
    return out


def flow_layer(result: object, kind: object, style: object, viewport: object) -> np.ndarray:
    """Layer-registry renderer: the color coding of a FlowField sampled to ``viewport`` (nearest).

    The rim magnitude is ``style.flow_max_magnitude`` when the style has one (a video sets it once
    so colors hold still), else this frame's maximum.
    """
    uv = _flow(result)  # the rim is the whole frame's maximum, not the window's
    sampled = viewport.sample(uv) if viewport is not None else uv  # type: ignore[attr-defined]
    return flow_to_rgba(sampled, getattr(style, "flow_max_magnitude", None) or _max_or_one(uv))


def _max_or_one(uv: np.ndarray) -> float:
    m = float(np.sqrt((uv**2).sum(-1)).max()) if uv.size else 0.0
    return m + float(np.finfo(np.float32).eps) if m > 0 else 1.0  # as flow_to_rgb(max_magnitude=None)


def register_flow_layer() -> bool:
    """Teach :func:`segviewer.render.layers.render_layer` to draw FlowField, once the layer registry
    has a ``LayerKind.FLOW``; returns whether it did."""
    from segviewer.core.results import FlowField
    from segviewer.render import layers

    kind = getattr(layers.LayerKind, "FLOW", None)
    if kind is None:
        return False
    layers.register_renderer(FlowField, (kind,), flow_layer)
    return True


register_flow_layer()
