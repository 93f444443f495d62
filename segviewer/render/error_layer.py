"""The error layer: true positives, false positives and false negatives of a prediction, colored.

Which segment or pixel is which (:class:`ErrorMap`, ``panoptic_errors``, ``instance_errors``)
is decided in :mod:`segviewer.analysis.error_map`, with no drawing; here are only the colours:

* ``TP`` green, ``FP`` red, ``FN`` blue, ``FP_FN`` (both at once) purple, ``IGNORED`` grey, faint.

``ErrorMap`` registers a ``masks`` layer (there is no dedicated layer kind yet). Semantic label
maps have no segments to match: their per-pixel error layer is :mod:`segviewer.render.semantic_error`.
The names below are re-exported so that ``render.error_layer`` keeps its public surface.
"""

from __future__ import annotations

import numpy as np

from segviewer.analysis.error_map import (  # noqa: F401 - re-exported (moved to analysis)
    FN,
    FP,
    FP_FN,
    IGNORED,
    NONE,
    STATUS_NAMES,
    TP,
    ErrorMap,
    instance_errors,
    panoptic_errors,
)
from segviewer.render.layers import LayerKind, Viewport, register_renderer
from segviewer.render.style import RenderStyle

__all__ = ["ErrorMap", "STATUS_NAMES", "STATUS_RGB", "panoptic_errors", "instance_errors", "error_layer"]

STATUS_RGB = np.array([(0, 0, 0), (44, 160, 44), (214, 39, 40), (31, 119, 180), (148, 60, 189),
                       (127, 127, 127)], np.uint8)


def status_lut(rgb: np.ndarray, style: RenderStyle, half: int, clear: int) -> np.ndarray:
    """RGBA per status: the mask opacity, half of it for ``half`` (ignored), none for ``clear``.
    Shared by the instance/panoptic and the semantic error layers, so they look alike."""
    lut = np.zeros((len(rgb), 4), np.uint8)
    lut[:, :3] = rgb
    lut[:, 3] = max(style.mask_alpha_u8, 1)
    lut[half, 3] = max(style.mask_alpha_u8 // 2, 1)
    lut[clear, 3] = 0
    return lut


def error_lut(style: RenderStyle) -> np.ndarray:
    return status_lut(STATUS_RGB, style, IGNORED, NONE)


def error_layer(em: ErrorMap, style: RenderStyle, vp: Viewport) -> np.ndarray:
    """The RGBA layer of an error map for a viewport (nearest sampling)."""
    return error_lut(style)[vp.sample(em.status)]


def _render(result: ErrorMap, kind: LayerKind, style: RenderStyle, vp: Viewport) -> np.ndarray:
    return error_layer(result, style, vp)


register_renderer(ErrorMap, (LayerKind.MASKS,), _render)

# The semantic (per-pixel) error layer lives beside this one; importing it registers its renderer
# whenever the layer plugins load (render.layers imports this module on first need).
from segviewer.render import semantic_error as _semantic_error  # noqa: E402,F401
