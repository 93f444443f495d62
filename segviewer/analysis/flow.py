"""Flow geometry in numpy: the bilinear feature warp of Deep Feature Flow, end-point error, and
resizing a flow field onto a feature map.

Conventions (they bite when ignored):

* A flow ``(H, W, 2)`` holds ``(u, v) = (dx, dy)`` in pixels of the grid it lives on. The flow
  ``M_{i->k}`` used to warp is defined on frame ``i``: the content at pixel ``p`` of frame ``i``
  sits at ``p + M(p)`` in key frame ``k`` (OpenCV's ``calcOpticalFlow*(frame_i, frame_k)`` order).
* Sample positions are in *pixel-index* units: ``q = (x, y)`` is the integer grid point of column
  ``x`` and row ``y`` (the pixel centre), so an integer flow moves features by whole cells.
* The warp is the paper's formula, ``f_i(p) = sum_q G(q, p + dp) f_k(q)`` with
  ``G(a, b) = g(a_x, b_x) g(a_y, b_y)``, ``g(a, b) = max(0, 1 - |a - b|)``; cells ``q`` outside the
  map contribute nothing (zero padding), so a sample half outside fades towards zero.

Nothing here imports torch; ``segviewer.adapters.dff`` has the ``grid_sample`` twin.
"""

from __future__ import annotations

import numpy as np

from segviewer.core.errors import SegviewerError

__all__ = ["warp", "warp_image", "warp_loop", "endpoint_error", "resize_flow", "flow_magnitude"]


def _check_flow(flow: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    f = np.asarray(flow)
    if f.ndim != 3 or f.shape[2] != 2:
        raise SegviewerError(f"A flow field must have shape (H, W, 2); got {f.shape}.")
    if size is not None and f.shape[:2] != tuple(size):
        raise SegviewerError(f"The flow is {f.shape[1]}x{f.shape[0]} but the map to warp is {size[1]}x{size[0]}.")
    return f


def warp(features: np.ndarray, flow: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """Warp ``(C, H, W)`` or ``(H, W)`` features of the key frame by ``flow`` (``(H, W, 2)``).

    Only the four grid points around ``p + dp`` have a non-zero kernel, so the sum over all ``q``
    is a bilinear gather; points outside the map count as zero. ``scale`` (``(C, H, W)``,
    ``(1, H, W)`` or ``(H, W)``) multiplies the result, as the paper's scale field S does.
    Computed in float64 and returned in the features' float dtype (float32 for integer input).
    """
    f = np.asarray(features)
    squeeze = f.ndim == 2
    if squeeze:
        f = f[None]
    if f.ndim != 3:
        raise SegviewerError(f"Features to warp must be (C, H, W) or (H, W); got shape {np.shape(features)}.")
    c, h, w = f.shape
    fl = _check_flow(flow, (h, w)).astype(np.float64)
    if not np.all(np.isfinite(fl)):
        raise SegviewerError("The flow contains NaN or infinite vectors.")
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    sx, sy = xs + fl[..., 0], ys + fl[..., 1]
    x0, y0 = np.floor(sx), np.floor(sy)
    ax, ay = sx - x0, sy - y0  # weights of the +1 neighbours
    x0i, y0i = x0.astype(np.int64), y0.astype(np.int64)
    src = f.astype(np.float64, copy=False).reshape(c, h * w)
    out = np.zeros((c, h * w), np.float64)
    for dy, wy in ((0, 1.0 - ay), (1, ay)):
        for dx, wx in ((0, 1.0 - ax), (1, ax)):
            xi, yi = x0i + dx, y0i + dy
            ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            wgt = np.where(ok, wx * wy, 0.0).ravel()
            idx = np.where(ok, yi * w + xi, 0).ravel()
            out += src[:, idx] * wgt
    out = out.reshape(c, h, w)
    if scale is not None:
        s = np.asarray(scale, np.float64)
        s = s[None] if s.ndim == 2 else s
        if s.ndim != 3 or s.shape[1:] != (h, w) or s.shape[0] not in (1, c):
            raise SegviewerError(f"The scale field must be (C, H, W), (1, H, W) or (H, W); got {np.shape(scale)}.")
        out = out * s
    dtype = f.dtype if np.issubdtype(f.dtype, np.floating) else np.float32
    out = out.astype(dtype)
    return out[0] if squeeze else out


def warp_image(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Warp an ``(H, W, C)`` or ``(H, W)`` image (channels last) by ``flow``; float32 result."""
    img = np.asarray(image)
    if img.ndim == 2:
        return warp(img.astype(np.float32), flow)
    return np.moveaxis(warp(np.moveaxis(img.astype(np.float32), -1, 0), flow), 0, -1)


def warp_loop(features: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """The paper's formula written as plain loops over every ``p`` and every ``q`` (float64).

    O(H^2 W^2 C): a reference for tests on tiny maps, never for real use.
    """
    f = np.asarray(features, np.float64)
    f = f[None] if f.ndim == 2 else f
    c, h, w = f.shape
    fl = np.asarray(flow, np.float64)
    out = np.zeros((c, h, w), np.float64)
    for py in range(h):
        for px in range(w):
            bx, by = px + fl[py, px, 0], py + fl[py, px, 1]
            for qy in range(h):
                gy = max(0.0, 1.0 - abs(qy - by))
                if gy == 0.0:
                    continue
                for qx in range(w):
                    g = max(0.0, 1.0 - abs(qx - bx)) * gy
                    if g:
                        out[:, py, px] += g * f[:, qy, qx]
    return out


def flow_magnitude(flow: np.ndarray) -> np.ndarray:
    """Per-pixel vector length ``(H, W)`` float32."""
    f = _check_flow(flow).astype(np.float32, copy=False)
    return np.sqrt(f[..., 0] ** 2 + f[..., 1] ** 2)


def endpoint_error(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean end-point error ``mean ||pred - gt||_2`` over the (optionally masked) pixels."""
    p, g = _check_flow(pred), _check_flow(gt)
    if p.shape != g.shape:
        raise SegviewerError(f"Flow shapes differ: {p.shape} vs {g.shape}.")
    d = p.astype(np.float64) - g.astype(np.float64)
    e = np.sqrt(d[..., 0] ** 2 + d[..., 1] ** 2)
    if valid is not None:
        v = np.asarray(valid, bool)
        if v.shape != e.shape:
            raise SegviewerError(f"The valid mask is {v.shape}, the flow {e.shape}.")
        if not v.any():
            raise SegviewerError("The valid mask selects no pixel.")
        e = e[v]
    return float(e.mean())


def resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an image-resolution flow to a feature map of ``size = (h, w)``.

    The field is resampled bilinearly (area-averaged when shrinking, so a stride-8 map gets the
    mean motion of its 8x8 block) and each component is divided by the stride along its axis
    (``W / w`` for u, ``H / h`` for v): a 16-pixel motion is 2 cells at stride 8.
    """
    import cv2

    f = _check_flow(flow).astype(np.float32)
    h, w = int(size[0]), int(size[1])
    if h <= 0 or w <= 0:
        raise SegviewerError(f"The target size must be positive; got {size}.")
    hh, ww = f.shape[:2]
    interp = cv2.INTER_AREA if (h < hh and w < ww) else cv2.INTER_LINEAR
    out = cv2.resize(f, (w, h), interpolation=interp) if (h, w) != (hh, ww) else f.copy()
    out = out.reshape(h, w, 2)
    out[..., 0] *= w / ww
    out[..., 1] *= h / hh
    return out
