"""The error layer of a semantic prediction: every pixel right, wrong, or not counted, colored.

A label map has no segments to match, so its errors are per pixel, read off the same pairs of
(true class, predicted class) that fill the confusion matrix (classes matched by NAME, as
:class:`segviewer.analysis.evaluation.SemanticAccumulator` matches them). Status of a pixel:

* ``CORRECT`` (green): the predicted class is the true class (a class other than background);
* ``WRONG`` (red): another class was predicted, or void (the prediction's ignore label) on any
  counted pixel, background included: void is no class, so it is neither missed nor spurious;
* ``MISSED`` (blue): background predicted where the ground truth has a class;
* ``SPURIOUS`` (orange): a class predicted where the ground truth is background;
* ``BACKGROUND`` (not drawn): background predicted as background;
* ``IGNORED`` (grey, faint): the ground truth is void (its ignore label): not counted.

``MISSED`` and ``SPURIOUS`` exist only when the ground truth names a background class
(``__background__`` or ``background``, either spelling on either side: the prediction's takes
the ground truth's, as in the metrics); without one, all confusions are ``WRONG`` and all
agreements ``CORRECT``. So the counts are sums of confusion-matrix cells: ``CORRECT`` the diagonal
(background's cell apart), ``MISSED`` background's column, ``SPURIOUS`` its row but the
``(void)`` cell, ``WRONG`` the rest. :meth:`SemanticErrorMap.info_at` gives the classes under a
point and each one's IoU; a void prediction reads ``(void)``.
Which pixel is which is :mod:`segviewer.analysis.semantic_error_map`'s; the colours are here.
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
