"""The canvas on a large image: a downsampled overview when zoomed out, a full-resolution render of
the visible window (photo and layers) when zoomed in, back to the overview when zoomed out."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QRectF

from segviewer.core.results import SemanticMap
from segviewer.render.layers import render_layer
from segviewer.render.style import RenderStyle
from segviewer.ui.canvas import tiling
from segviewer.ui.canvas.render_thread import LayerSpec
from segviewer.ui.canvas.view import DEBOUNCE_MS, ImageCanvas

TIMEOUT = 60_000
H, W = 300, 4400  # wider than FULL_RES_LIMIT, small enough for a quick test


def _image() -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = (np.arange(W) % 251)[None, :]
    img[..., 1] = (np.arange(H) % 241)[:, None]
    img[..., 2] = 90
    return img


@pytest.fixture
def canvas(qtbot):
    c = ImageCanvas()
    qtbot.addWidget(c)
    yield c
    c.renderer.stop()


def test_large_image_overview_detail_and_back(qtbot, canvas: ImageCanvas) -> None:
    img = _image()
    canvas.resize(800, 400)
    canvas.show()
    qtbot.waitExposed(canvas)
    with qtbot.waitSignal(canvas.layersApplied, timeout=TIMEOUT):
        canvas.set_image(img)
    overview = canvas.overview  # rendered at the view's resolution, not the image's
    assert overview == tiling.view_overview_size(H, W, canvas.viewport().height(), canvas.viewport().width())
    assert overview[1] <= canvas.viewport().width() + 1 and overview[0] < tiling.overview_size(H, W)[0]
    assert canvas.base.image.shape[:2] == overview

    labels = ((np.arange(W)[None, :] // 100 + np.arange(H)[:, None] // 50) % 3).astype(np.uint8)
    sem = SemanticMap(labels, ("__background__", "a", "b"))
    layer = ("m", "semantic")
    style = RenderStyle()
    with qtbot.waitSignal(canvas.layersApplied, timeout=TIMEOUT):
        canvas.set_layers([LayerSpec(layer, sem, "semantic", style)], {layer: 10.0})
    ov = canvas.layer_item(layer)
    assert ov.image.shape == (*overview, 4) and ov.isVisible()

    # Zoom in on 200 x 100 image pixels: once the view settles, full-resolution renders take over.
    with qtbot.waitSignal(canvas.detailApplied, timeout=TIMEOUT):
        canvas.vb.setRange(QRectF(1000, 100, 200, 100), padding=0)
    assert canvas.screen_scale() > 1.0
    x0, y0, x1, y1 = canvas._detail_window
    assert x0 <= 1000 and y0 <= 100 and x1 >= 1200 and y1 >= 200 and (x1 - x0) < 1000
    assert canvas.base_detail.isVisible() and not ov.isVisible()
    np.testing.assert_array_equal(canvas.base_detail.image, img[y0:y1, x0:x1])
    detail = canvas._items[layer][1]
    assert detail.isVisible()
    np.testing.assert_array_equal(detail.image, render_layer(sem, "semantic", style, window=(x0, y0, x1, y1)))

    # Hiding the layer hides whichever level is showing; zooming out returns to the overview at once.
    canvas.set_layer_visible(layer, False)
    assert not detail.isVisible() and not ov.isVisible()
    canvas.set_layer_visible(layer, True)
    canvas.fit()
    assert not canvas.base_detail.isVisible() and ov.isVisible() and not detail.isVisible()


def _tag_rect(canvas: ImageCanvas, color: np.ndarray) -> tuple[int, int, int, int] | None:
    """Screen rectangle (x, y, w, h) of the pixels of a tag's fill colour (nothing else has it)."""
    from segviewer.ui.main_window import grab_rgb

    ys, xs = np.nonzero((grab_rgb(canvas) == color).all(axis=2))
    if not len(xs):
        return None
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def test_labels_keep_their_screen_size_at_any_zoom(qtbot) -> None:
    """Issue #10: a tag is the export's tag at 100% on screen, whatever the zoom (4x in, and out)."""
    from segviewer.core.results import Detections
    from segviewer.render.labels import label_texts, tag_patch
    from segviewer.render.style import detection_colors
    from segviewer.ui.canvas.render_thread import LayerRenderer

    c = ImageCanvas(LayerRenderer(synchronous=True))
    qtbot.addWidget(c)
    c.resize(600, 400)
    c.show()
    qtbot.waitExposed(c)
    try:
        c.set_image(np.full((200, 300, 3), 128, np.uint8))
        d = Detections((200, 300), np.array([[100, 80, 160, 140]], np.float32), np.array([0.9], np.float32),
                       np.array([1], np.int32), ("__background__", "circle"))
        style = RenderStyle()
        layer = ("m", "labels")
        c.set_layers([LayerSpec(layer, d, "labels", style)], {layer: 70.0})
        color = detection_colors(d, style)[0]
        th, tw = tag_patch(label_texts(d, style)[0], tuple(color.tolist()), (0, 0, 0), style).shape[:2]
        sizes = []
        for zoom in (1.0, 0.25, 8.0):  # fitted (about 1.9 screen px per image px), 4x in, then 2x out of that
            c.vb.scaleBy((zoom, zoom), center=(130, 100))
            qtbot.wait(10)
            rect = _tag_rect(c, color)
            assert rect is not None, f"the tag is on screen at scale {c.screen_scale():.2f}"
            sizes.append((rect[2], rect[3], round(c.screen_scale(), 2)))
        assert len({s[2] for s in sizes}) == 3, "the view really zoomed"
        for w, h, _scale in sizes:
            assert abs(w - tw) <= 1 and abs(h - th) <= 1, (sizes, (tw, th))
        assert c.layer_item(layer).isVisible()
        c.set_layer_visible(layer, False)
        assert _tag_rect(c, color) is None
    finally:
        c.renderer.stop()


def _edge_coverage(canvas: ImageCanvas, shot: np.ndarray, box: np.ndarray, color: np.ndarray) -> float:
    """Share of points along the box's four edges with the box colour within 1 screen px."""
    x0, y0, x1, y1 = (float(v) for v in box)
    hit = np.all(shot == color, axis=2)
    hit = hit | np.roll(hit, 1, 0) | np.roll(hit, -1, 0) | np.roll(hit, 1, 1) | np.roll(hit, -1, 1)
    ok = []
    for t in np.linspace(0.1, 0.9, 25):
        for x, y in ((x0 + t * (x1 - x0), y0 + 1), (x0 + t * (x1 - x0), y1 - 1),
                     (x0 + 1, y0 + t * (y1 - y0)), (x1 - 1, y0 + t * (y1 - y0))):
            p = canvas.image_to_widget(x, y)
            ok.append(bool(hit[int(round(p.y())), int(round(p.x()))]))
    return float(np.mean(ok))


def test_box_outlines_stay_on_screen_when_a_huge_photo_is_fitted(qtbot) -> None:
    """A 3200 x 2400 photo fitted at ~0.2 zoom: its layers are rendered at the view's resolution
    (not the photo's), so each 2 px outline is 2 screen px and none aliases away (at full resolution
    a nearest-neighbour downscale dropped most edges), and the render is small."""
    from segviewer.core.results import Detections
    from segviewer.render.style import detection_colors
    from segviewer.ui.canvas.render_thread import LayerRenderer
    from segviewer.ui.main_window import grab_rgb

    hh, ww = 2400, 3200
    c = ImageCanvas(LayerRenderer(synchronous=True))
    qtbot.addWidget(c)
    c.resize(640, 480)
    c.show()
    qtbot.waitExposed(c)
    try:
        c.set_image(np.full((hh, ww, 3), 128, np.uint8))
        # The photo itself (under FULL_RES_LIMIT) is shown at once, as before: video frames never blink.
        assert c.base.image is not None and c.base.image.shape[:2] == (hh, ww)
        rng = np.random.default_rng(3)
        xy = rng.uniform([0, 0], [ww - 700, hh - 700], (6, 2))
        boxes = np.hstack([xy, xy + rng.uniform(300, 690, (6, 2))]).astype(np.float32)
        d = Detections((hh, ww), boxes, np.linspace(0.6, 0.95, 6).astype(np.float32),
                       np.ones(6, np.int32), ("__background__", "thing"))
        style = RenderStyle()
        layer = ("m", "boxes")
        c.set_layers([LayerSpec(layer, d, "boxes", style)], {layer: 40.0})
        qtbot.wait(DEBOUNCE_MS + 100)  # settled: the fitted view needs no detail render
        assert not c._detail_active
        assert c.screen_scale() < 0.25
        oh, ow = c.overview
        assert max(oh, ow) <= max(c.viewport().width(), c.viewport().height()) + 1
        assert c.layer_item(layer).image.shape == (oh, ow, 4)
        shot = grab_rgb(c)
        colors = detection_colors(d, style)
        cover = [_edge_coverage(c, shot, d.boxes[i], colors[i][:3]) for i in range(len(d))]
        assert min(cover) >= 0.9, cover

        # A bigger window shows the photo larger than the overview holds: a resize asks for a
        # screen-resolution render as a zoom does, and the outlines stay whole.
        with qtbot.waitSignal(c.detailApplied, timeout=5000):  # synchronous renderer: debounce + render
            c.resize(1280, 960)
        assert c.screen_scale() > 1.2 * ow / ww and c._items[layer][1].isVisible()
        shot = grab_rgb(c)
        cover = [_edge_coverage(c, shot, d.boxes[i], colors[i][:3]) for i in range(len(d))]
        assert min(cover) >= 0.9, cover
    finally:
        c.renderer.stop()
