"""Numpy-only renderers: a result becomes an RGBA layer; the same code makes exports.

Public API: :class:`LayerKind`, :class:`RenderStyle`, :func:`layer_kinds`, :func:`render_layer`,
:func:`register_renderer` (layers.py) and :func:`compose`, :func:`render_overlay` (compose.py).
"""

from segviewer.render.compose import compose, overlay_layers, render_overlay
from segviewer.render.layers import (
    Z_ORDER,
    LayerKind,
    Viewport,
    layer_kinds,
    register_renderer,
    render_layer,
)
from segviewer.render.style import RenderStyle

__all__ = [
    "LayerKind", "RenderStyle", "Viewport", "Z_ORDER", "compose", "layer_kinds", "overlay_layers",
    "register_renderer", "render_layer", "render_overlay",
]
