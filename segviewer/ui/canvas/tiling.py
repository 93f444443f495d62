"""Which resolution to show where: an overview level for the whole image, a detail window when zoomed in.

GPU textures stop at 16384 px and a 12000 x 9000 RGBA layer is 430 MB, so an image whose longer
side exceeds ``FULL_RES_LIMIT`` is shown as a downsampled overview (longer side
``OVERVIEW_MAX``) and, once the screen shows more detail than the overview holds, as a
full-resolution render of the visible region (plus a margin) at screen resolution. Layers
follow the same scheme through ``render_layer(window=..., out_size=...)``. Pure functions, no Qt.

Layers of a photo much larger than the view go one step further (:func:`view_overview_size`):
their overview is rendered at the fitted view's size, so a 4000 x 3000 photo's layers take
~0.1 s instead of ~1.5 s (off the UI thread either way) and box outlines keep their width in
screen pixels instead of aliasing away. Exports still render at full resolution.
"""

from __future__ import annotations

import math

FULL_RES_LIMIT = 4096
OVERVIEW_MAX = 2048
DETAIL_MAX = 4096
#: Longer side above which the overview is rendered at the view's resolution, not the image's: a
#: 4000 x 3000 photo's layers take ~2 s at full size and their 2 px box outlines alias away when
#: shown at 0.2 zoom; at screen size they take a tenth of that and every outline is 2 screen px.
VIEW_RES_MIN = 2048
#: Between VIEW_RES_ANY and VIEW_RES_MIN px, only when fitted below this zoom: nearest-neighbour
#: display keeps every 2 px outline (the default line width) at 0.5 zoom or more, not below.
VIEW_RES_ANY = 1024
MIN_FULL_RES_ZOOM = 0.5
VIEW_OVERVIEW_FLOOR = 256  # longer side at least this (a canvas not laid out yet is tiny)
MARGIN = 0.25  # extra fraction of the visible size rendered around it, so small pans stay sharp

Window = tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels


def overview_size(h: int, w: int) -> tuple[int, int]:
    """(h, w) of the overview level: the image itself when small enough, else downsampled."""
    if max(h, w) <= FULL_RES_LIMIT:
        return h, w
    s = OVERVIEW_MAX / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def view_overview_size(h: int, w: int, view_h: int, view_w: int) -> tuple[int, int]:
    """(h, w) of the overview for a view of ``view_h`` x ``view_w`` device pixels.

    Images above ``VIEW_RES_MIN`` (and those above ``VIEW_RES_ANY`` fitted below
    ``MIN_FULL_RES_ZOOM``) are rendered at the size they have when fitted in the view (never above
    :func:`overview_size`), so what is drawn is what the screen shows; zooming in past it asks for
    a detail render as before. Others keep :func:`overview_size`.
    """
    base = overview_size(h, w)
    if max(h, w) <= VIEW_RES_ANY or view_h <= 0 or view_w <= 0:
        return base
    fit = min(view_w / w, view_h / h)
    if max(h, w) <= VIEW_RES_MIN and fit >= MIN_FULL_RES_ZOOM:
        return base
    s = max(fit, VIEW_OVERVIEW_FLOOR / max(h, w))
    if s * max(h, w) >= max(base):
        return base
    return max(1, math.ceil(h * s)), max(1, math.ceil(w * s))


def needs_detail(h: int, w: int, screen_px_per_image_px: float,
                 overview: tuple[int, int] | None = None) -> bool:
    """Whether the overview (default :func:`overview_size`) is too coarse for the current zoom
    (20% slack before switching)."""
    oh, ow = overview_size(h, w) if overview is None else overview
    if (oh, ow) == (h, w):
        return False
    return screen_px_per_image_px > 1.2 * (ow / w)


def detail_request(h: int, w: int, visible: tuple[float, float, float, float],
                   screen_px_per_image_px: float) -> tuple[Window, tuple[int, int]] | None:
    """The window to render and its output size (h, w), or None when nothing is visible.

    ``visible`` is the view's (x0, y0, x1, y1) in image coordinates; the output resolution is
    the screen's (never more than the image's own), so zooming in far renders few pixels.
    """
    vx0, vy0, vx1, vy1 = visible
    mx, my = (vx1 - vx0) * MARGIN, (vy1 - vy0) * MARGIN
    x0, y0 = max(0, math.floor(vx0 - mx)), max(0, math.floor(vy0 - my))
    x1, y1 = min(w, math.ceil(vx1 + mx)), min(h, math.ceil(vy1 + my))
    if x1 <= x0 or y1 <= y0:
        return None
    s = min(1.0, max(screen_px_per_image_px, 1e-6))
    ow, oh = max(1, math.ceil((x1 - x0) * s)), max(1, math.ceil((y1 - y0) * s))
    if max(ow, oh) > DETAIL_MAX:
        f = DETAIL_MAX / max(ow, oh)
        ow, oh = max(1, int(ow * f)), max(1, int(oh * f))
    return (x0, y0, x1, y1), (oh, ow)


def window_covers(outer: Window, inner: tuple[float, float, float, float]) -> bool:
    """Whether the rendered window ``outer`` contains the visible rectangle ``inner``."""
    return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]


def clip_visible(h: int, w: int, visible: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = visible
    return max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1)
