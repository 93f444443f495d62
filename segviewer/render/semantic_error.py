"""The error layer of a semantic prediction, colored: ``CORRECT`` green, ``WRONG`` red, ``MISSED``
blue, ``SPURIOUS`` orange, ``IGNORED`` faint grey, ``BACKGROUND`` not drawn.

Which pixel is which (and why the counts equal confusion-matrix cells) is
:mod:`segviewer.analysis.semantic_error_map`'s; only the colours are here.
"""

from __future__ import annotations

import numpy as np

from segviewer.analysis.semantic_error_map import (  # noqa: F401 - re-exported: the layer's names
    BACKGROUND_NAMES,
    BACKGROUND_OK,
    CORRECT,
    IGNORED,
    MISSED,
    SEM_STATUS_NAMES,
    SPURIOUS,
    VOID_NAME,
    WRONG,
    SemanticErrorMap,
    semantic_errors,
)
from segviewer.render.error_layer import status_lut
from segviewer.render.layers import LayerKind, Viewport, register_renderer
from segviewer.render.style import RenderStyle

__all__ = ["SemanticErrorMap", "semantic_errors", "SEM_STATUS_NAMES", "SEM_STATUS_RGB", "BACKGROUND_NAMES",
           "semantic_error_layer"]

SEM_STATUS_RGB = np.array([(0, 0, 0), (44, 160, 44), (214, 39, 40), (31, 119, 180), (255, 127, 14),
                           (127, 127, 127)], np.uint8)


def semantic_error_lut(style: RenderStyle) -> np.ndarray:
    return status_lut(np.asarray(SEM_STATUS_RGB), style, IGNORED, BACKGROUND_OK)


def semantic_error_layer(em: SemanticErrorMap, style: RenderStyle, vp: Viewport) -> np.ndarray:
    """The RGBA layer of a semantic error map for a viewport (nearest sampling)."""
    return semantic_error_lut(style)[vp.sample(em.status)]


def _render(result: SemanticErrorMap, kind: LayerKind, style: RenderStyle, vp: Viewport) -> np.ndarray:
    return semantic_error_layer(result, style, vp)


register_renderer(SemanticErrorMap, (LayerKind.MASKS,), _render)
