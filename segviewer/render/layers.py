"""Result -> RGBA layer. One function, :func:`render_layer`, serves the canvas and the exporter.

A layer is an ``(h, w, 4)`` uint8 array with *straight* (non-premultiplied) alpha: the color
channels hold the color itself and alpha says how much of it covers the image. That is what a Qt
``ImageItem`` shows, and what :func:`segviewer.render.compose.compose` blends.

Any layer can be rendered for a *window* of the image resampled to an *output size*, so a UI can
show a downsampled overview of a 12000x9000 image or a full-resolution tile without rendering the
whole frame. Label images (masks, semantic maps) are sampled with nearest neighbour at output pixel
centres (:class:`Viewport`); boxes, text and keypoints are placed geometrically and keep their
line width and font size in output pixels.

Other modules add result types without editing this file: they call :func:`register_renderer`
at import time (``segviewer.render.panoptic`` does so for ``PanopticMap``; this module imports
it on first need).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from segviewer.core.results import Detections, SemanticMap
from segviewer.render.style import DEFAULT_STYLE, RenderStyle

__all__ = [
    "LayerKind",
    "RenderStyle",
    "Viewport",
    "Z_ORDER",
    "layer_kinds",
    "register_renderer",
    "render_layer",
]


class LayerKind(str, Enum):
    """What a layer shows; the value is the name used in settings and on the command line."""

    SEMANTIC = "semantic"
    PANOPTIC = "panoptic"  # rendered by segviewer.render.panoptic (registered there)
    FLOW = "flow"  # rendered by segviewer.render.flow (registered there)
    MASKS = "masks"
    BOXES = "boxes"
    LABELS = "labels"
    KEYPOINTS = "keypoints"


#: Bottom-to-top stacking of layer kinds, used by the canvas and by render_overlay alike.
Z_ORDER: tuple[LayerKind, ...] = (
    LayerKind.SEMANTIC, LayerKind.FLOW, LayerKind.PANOPTIC, LayerKind.MASKS,
    LayerKind.BOXES, LayerKind.KEYPOINTS, LayerKind.LABELS,
)


@dataclass(frozen=True)
class Viewport:
    """A window ``(x0, y0, x1, y1)`` of an ``(H, W)`` image shown at ``out_size = (h, w)``.

    Output pixel ``(r, c)`` shows image pixel ``(y0 + floor((r + .5) * (y1 - y0) / h),
    x0 + floor((c + .5) * (x1 - x0) / w))``: nearest neighbour at pixel centres, the same as
    ``cv2.resize(..., interpolation=cv2.INTER_NEAREST_EXACT)``. With ``out_size`` equal to the
    window's size it is the identity, and renderers take plain slices.
    """

    image_size: tuple[int, int]
    window: tuple[int, int, int, int]
    out_size: tuple[int, int]

    @classmethod
    def make(cls, image_size: tuple[int, int], window: tuple[int, int, int, int] | None = None,
             out_size: tuple[int, int] | None = None) -> Viewport:
        """Validate and fill the defaults (whole image, window's own size)."""
        ih, iw = (int(v) for v in image_size)
        x0, y0, x1, y1 = (0, 0, iw, ih) if window is None else (int(v) for v in window)
        if not (0 <= x0 < x1 <= iw and 0 <= y0 < y1 <= ih):
            raise ValueError(f"window {(x0, y0, x1, y1)} must be a non-empty part of the {iw}x{ih} image")
        oh, ow = (y1 - y0, x1 - x0) if out_size is None else (int(v) for v in out_size)
        if oh <= 0 or ow <= 0:
            raise ValueError(f"out_size must be positive, got {(oh, ow)}")
        return cls((ih, iw), (x0, y0, x1, y1), (oh, ow))

    @property
    def identity(self) -> bool:
        """Whether output pixels map one to one onto window pixels."""
        x0, y0, x1, y1 = self.window
        return self.out_size == (y1 - y0, x1 - x0)

    @property
    def scale(self) -> tuple[float, float]:
        """Output pixels per image pixel, ``(sx, sy)``."""
        x0, y0, x1, y1 = self.window
        return self.out_size[1] / (x1 - x0), self.out_size[0] / (y1 - y0)

    def sample_rows(self) -> np.ndarray:
        """Image row shown by each output row (int64, non-decreasing)."""
        _, y0, _, y1 = self.window
        return y0 + ((2 * np.arange(self.out_size[0], dtype=np.int64) + 1) * (y1 - y0)) // (2 * self.out_size[0])

    def sample_cols(self) -> np.ndarray:
        """Image column shown by each output column (int64, non-decreasing)."""
        x0, _, x1, _ = self.window
        return x0 + ((2 * np.arange(self.out_size[1], dtype=np.int64) + 1) * (x1 - x0)) // (2 * self.out_size[1])

    def sample(self, image: np.ndarray) -> np.ndarray:
        """Nearest-neighbour resample of a full-image array (label image, ids) to the output grid."""
        x0, y0, x1, y1 = self.window
        if self.identity:
            return image[y0:y1, x0:x1]
        return image[self.sample_rows()[:, None], self.sample_cols()[None, :]]

    def to_out(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Continuous image coordinates -> continuous output coordinates."""
        sx, sy = self.scale
        return (np.asarray(x, np.float64) - self.window[0]) * sx, (np.asarray(y, np.float64) - self.window[1]) * sy

    def blank(self) -> np.ndarray:
        """A fully transparent output layer."""
        return np.zeros((*self.out_size, 4), np.uint8)


Renderer = Callable[[Any, LayerKind, RenderStyle, Viewport], np.ndarray]
KindsFor = Sequence[LayerKind] | Callable[[Any], Sequence[LayerKind]]

_REGISTRY: dict[type, tuple[KindsFor, Renderer]] = {}
_REGISTRY_LOCK = threading.Lock()
_PLUGINS = ("segviewer.render.panoptic", "segviewer.render.error_layer", "segviewer.render.flow")
_plugins_loaded = False


def register_renderer(result_type: type, kinds: KindsFor, fn: Renderer) -> None:
    """Teach :func:`layer_kinds` and :func:`render_layer` a result type.

    ``kinds`` is the tuple of layer kinds the type offers, or a function of the result giving
    them; ``fn(result, kind, style, viewport)`` returns the ``(h, w, 4)`` uint8 straight-alpha
    layer for ``viewport.out_size`` (use :meth:`Viewport.sample` for label images). Registering a
    type again replaces the earlier renderer.
    """
    with _REGISTRY_LOCK:
        _REGISTRY[result_type] = (kinds, fn)


def _load_plugins() -> None:
    """Import the optional renderer modules once, so they register themselves."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for name in _PLUGINS:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:  # the module is not written yet; anything else is a bug
            if exc.name != name:
                raise


def _registered(result: object) -> tuple[KindsFor, Renderer] | None:
    _load_plugins()
    for t in type(result).__mro__:
        if t in _REGISTRY:
            return _REGISTRY[t]
    return None


def layer_kinds(result: object) -> tuple[LayerKind, ...]:
    """The layers a result offers, in :data:`Z_ORDER` (e.g. masks only when it has masks)."""
    if isinstance(result, Detections):
        kinds = [LayerKind.BOXES, LayerKind.LABELS]
        if result.masks is not None:
            kinds.append(LayerKind.MASKS)
        if result.keypoints is not None:
            kinds.append(LayerKind.KEYPOINTS)
    elif isinstance(result, SemanticMap):
        kinds = [LayerKind.SEMANTIC]
    else:
        reg = _registered(result)
        if reg is None:
            return ()
        kinds = list(reg[0](result) if callable(reg[0]) else reg[0])
    return tuple(k for k in Z_ORDER if k in kinds)


def render_layer(result: object, kind: LayerKind | str, style: RenderStyle = DEFAULT_STYLE, *,
                 window: tuple[int, int, int, int] | None = None,
                 out_size: tuple[int, int] | None = None) -> np.ndarray:
    """Render one layer of a result as ``(h, w, 4)`` uint8 RGBA with straight alpha.

    ``window = (x0, y0, x1, y1)`` picks the image region (default: all of it) and ``out_size =
    (h, w)`` the output size (default: the window's size). Raises ``ValueError`` for a kind the
    result does not offer (see :func:`layer_kinds`).
    """
    kind = LayerKind(kind)
    if kind not in layer_kinds(result):
        raise ValueError(f"{type(result).__name__} offers no {kind.value!r} layer "
                         f"(it offers {[k.value for k in layer_kinds(result)]})")
    vp = Viewport.make(result.image_size, window, out_size)  # type: ignore[attr-defined]
    # Imported here: the drawing modules import Viewport from this one.
    from segviewer.render import boxes, keypoints, labels, masks, semantic

    if isinstance(result, Detections):
        if kind is LayerKind.MASKS:
            return masks.masks_layer(result, style, vp)
        if kind is LayerKind.BOXES:
            return boxes.boxes_layer(result, style, vp)
        if kind is LayerKind.LABELS:
            return labels.labels_layer(result, style, vp)
        return keypoints.keypoints_layer(result, style, vp)
    if isinstance(result, SemanticMap):
        return semantic.semantic_layer(result, style, vp)
    reg = _registered(result)
    assert reg is not None  # layer_kinds said the type is known
    out = np.ascontiguousarray(reg[1](result, kind, style, vp), dtype=np.uint8)
    if out.shape != (*vp.out_size, 4):
        raise ValueError(f"the {kind.value} renderer returned {out.shape}, expected {(*vp.out_size, 4)}")
    return out
