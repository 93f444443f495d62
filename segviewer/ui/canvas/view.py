"""The image canvas: a pyqtgraph ViewBox with the photo and one ImageItem per layer.

Each layer is an RGBA uint8 C-contiguous array from ``render_layer`` shown with ``levels=None``
(pyqtgraph's fast path) and ``setOpacity`` = the layer's opacity, stacked by z-order, so what
is on screen equals ``render.compose.compose`` of the same layers (the export path).

Large images (see :mod:`.tiling`) keep two items per layer: the overview and a detail render of
the visible window. Panning or zooming shows the overview at once and asks for a detail render
after the view has been still for ``DEBOUNCE_MS``; the render runs in :class:`LayerRenderer`'s
thread, so the UI never waits for it. Layers of a photo much larger than the view (see
:func:`.tiling.view_overview_size`) use an overview at the view's resolution; a resize, like a
zoom, asks for a detail render when that overview becomes too coarse.

Label layers are the exception: their tags keep a constant size on screen at any zoom, so they
are not rasters but one :class:`~segviewer.ui.canvas.labels_item.LabelsItem` per layer, painted
in screen pixels (an export still draws them into the image at 100%).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QTimer, Signal
from PySide6.QtWidgets import QWidget

from segviewer.ui.canvas import tiling
from segviewer.ui.canvas.labels_item import LabelsItem
from segviewer.ui.canvas.render_thread import LayerRenderer, LayerSpec, RenderJob, RenderOutput
from segviewer.ui.display import LayerId

pg.setConfigOptions(imageAxisOrder="row-major")

DEBOUNCE_MS = 120
SCREEN_KINDS = ("labels",)  # layers drawn at screen size by an item, not rendered as rasters
BACKGROUND = (38, 38, 42)


def _rgba_item(z: float) -> pg.ImageItem:
    item = pg.ImageItem(axisOrder="row-major")
    item.setZValue(z)
    item.setAutoDownsample(False)
    return item


class ImageCanvas(pg.GraphicsView):
    """Shows the photo and its layers; emits ``hovered((x, y) | None)`` in image coordinates."""

    hovered = Signal(object)
    layersApplied = Signal(float)  # render seconds of the overview just applied
    detailApplied = Signal(float)
    renderFailed = Signal(str)

    def __init__(self, renderer: LayerRenderer | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent, background=BACKGROUND)
        self.renderer = renderer or LayerRenderer(parent=self)
        self.renderer.rendered.connect(self._on_rendered)
        self.vb = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.vb.setDefaultPadding(0.02)
        self.setCentralItem(self.vb)
        self.base = _rgba_item(0.0)
        self.base_detail = _rgba_item(1.0)
        self.base_detail.setVisible(False)
        self.vb.addItem(self.base)
        self.vb.addItem(self.base_detail)
        self.image: np.ndarray | None = None
        self._specs: tuple[LayerSpec, ...] = ()
        self._z: dict[LayerId, float] = {}
        self._items: dict[LayerId, tuple[pg.ImageItem, pg.ImageItem]] = {}
        self._labels: dict[LayerId, tuple[LabelsItem, object, object]] = {}  # item, its result, style
        self._visible: dict[LayerId, bool] = {}
        self._opacity: dict[LayerId, float] = {}
        self._seq = 0
        self._latest = {"overview": 0, "detail": 0}
        self._base_ready = False
        self._base_full = True  # the photo itself is shown at its own resolution (no detail photo)
        self._overview: tuple[int, int] = (0, 0)  # (h, w) of the overview level of this image
        self._detail_window: tiling.Window | None = None
        self._detail_layers: set[LayerId] = set()
        self._detail_active = False
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._request_detail)
        self.vb.sigRangeChanged.connect(self._on_range_changed)
        # A bigger window shows the same range at a larger scale: the view-sized overview may now
        # be too coarse, so a resize asks for a detail render like a zoom does.
        self.vb.sigResized.connect(self._on_range_changed)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)

    # ---- image and layers ------------------------------------------------------------------
    @property
    def large(self) -> bool:
        """Whether the photo is shown as an overview (not at its own resolution) when zoomed out."""
        return self.image is not None and self._overview != self.image.shape[:2]

    @property
    def overview(self) -> tuple[int, int]:
        """(h, w) of the overview level the photo and its layers are rendered at when zoomed out."""
        return self._overview

    def _view_device_size(self) -> tuple[int, int]:
        vp = self.viewport()
        dpr = vp.devicePixelRatioF()
        return round(vp.height() * dpr), round(vp.width() * dpr)

    def set_image(self, image: np.ndarray | None, fit: bool = True) -> None:
        """Show a new photo (RGB uint8); its layers are cleared until :meth:`set_layers`."""
        self.image = image
        self._specs = ()
        self._sync_items()
        self._deactivate_detail()
        self.base_detail.clear()
        if image is None:
            self.base.clear()
            return
        h, w = image.shape[:2]
        self._overview = tiling.view_overview_size(h, w, *self._view_device_size())
        # The photo keeps its own resolution up to FULL_RES_LIMIT (set here at once, so video
        # frames never blink); only the layers follow the view-sized overview.
        self._base_full = self._base_ready = tiling.overview_size(h, w) == (h, w)
        if self._base_full:
            self.base.setImage(np.ascontiguousarray(image), levels=None)
        else:
            self.base.clear()
            self._submit_overview()
        self.base.setRect(QRectF(0, 0, w, h))
        if fit:
            self.fit()

    def set_layers(self, specs: Sequence[LayerSpec], z: dict[LayerId, float]) -> None:
        """Replace the layers (results, kinds and styles); rendering happens in the background."""
        self._specs = tuple(specs)
        self._z = dict(z)
        self._sync_items()
        self._refresh_visibility()  # the tag items show now; rasters when their render arrives
        self._next_seq("detail")  # a detail render in flight shows the old layers: ignore it
        if self.image is None:
            return
        self._deactivate_detail()
        self._submit_overview()
        if self.large:
            self._debounce.start()

    def layer_ids(self) -> list[LayerId]:
        return [s.layer for s in self._specs]

    def set_layer_visible(self, layer: LayerId, on: bool) -> None:
        self._visible[layer] = on
        self._refresh_visibility()

    def set_layer_opacity(self, layer: LayerId, value: float) -> None:
        self._opacity[layer] = value
        self._refresh_visibility()

    def layer_item(self, layer: LayerId) -> pg.ImageItem | LabelsItem | None:
        """The item showing ``layer`` (its overview raster; the tag item of a labels layer)."""
        if layer in self._labels:
            return self._labels[layer][0]
        items = self._items.get(layer)
        return None if items is None else items[0]

    # ---- view ---------------------------------------------------------------------------------
    def fit(self) -> None:
        """Fit the whole image in the view."""
        if self.image is None:
            return
        h, w = self.image.shape[:2]
        self.vb.setRange(QRectF(0, 0, w, h), padding=0.02)

    def zoom_100(self) -> None:
        """One image pixel per screen pixel, keeping the view centre."""
        if self.image is None:
            return
        (x0, x1), (y0, y1) = self.vb.viewRange()
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        r = self.vb.boundingRect()
        self.vb.setRange(xRange=(cx - r.width() / 2, cx + r.width() / 2),
                         yRange=(cy - r.height() / 2, cy + r.height() / 2), padding=0)

    def visible_rect(self) -> tuple[float, float, float, float]:
        (x0, x1), (y0, y1) = self.vb.viewRange()
        return x0, y0, x1, y1

    def screen_scale(self) -> float:
        """Screen pixels per image pixel."""
        px = self.vb.viewPixelSize()[0]
        return 1.0 / px if px > 0 else 1.0

    def image_to_widget(self, x: float, y: float) -> QPointF:
        """Widget coordinates of image point (x, y) (for tests and overlays)."""
        return self.mapFromScene(self.vb.mapViewToScene(QPointF(x, y)))

    # ---- internals ------------------------------------------------------------------------------
    def _raster_specs(self) -> tuple[LayerSpec, ...]:
        return tuple(s for s in self._specs if s.kind not in SCREEN_KINDS)

    def _sync_items(self) -> None:
        want = {s.layer for s in self._specs}
        for layer in list(self._items):
            if layer not in want:
                for item in self._items.pop(layer):
                    self.vb.removeItem(item)
        for layer in list(self._labels):
            if layer not in want:
                self.vb.removeItem(self._labels.pop(layer)[0])
        for s in self._specs:
            z = self._z.get(s.layer, 10.0)
            if s.kind in SCREEN_KINDS:
                self._sync_labels(s, z)
                continue
            if s.layer not in self._items:
                pair = (_rgba_item(z), _rgba_item(z + 0.05))
                for item in pair:
                    item.setVisible(False)
                    self.vb.addItem(item)
                self._items[s.layer] = pair
            else:
                self._items[s.layer][0].setZValue(z)
                self._items[s.layer][1].setZValue(z + 0.05)

    def _sync_labels(self, s: LayerSpec, z: float) -> None:
        from segviewer.render.labels import label_tags

        item, result, style = self._labels.get(s.layer, (None, None, None))
        if item is None:
            item = LabelsItem()
            item.setVisible(False)
            self.vb.addItem(item)
        item.setZValue(z)
        if result is not s.result or style != s.style:  # a new result or filter: new tags
            item.set_tags(label_tags(s.result, s.style), s.style, tuple(s.result.image_size))
        self._labels[s.layer] = (item, s.result, s.style)

    def _refresh_visibility(self) -> None:
        self.base_detail.setVisible(self._detail_active and not self._base_full)
        for layer, (item, _r, _s) in self._labels.items():
            item.setOpacity(self._opacity.get(layer, 1.0))
            item.setVisible(self._visible.get(layer, True) and self.image is not None)
        for layer, (ov, det) in self._items.items():
            on = self._visible.get(layer, True)
            use_detail = self._detail_active and layer in self._detail_layers
            op = self._opacity.get(layer, 1.0)
            ov.setOpacity(op)
            det.setOpacity(op)
            ov.setVisible(on and not use_detail and ov.image is not None)
            det.setVisible(on and use_detail)

    def _next_seq(self, level: str) -> int:
        self._seq += 1
        self._latest[level] = self._seq
        return self._seq

    def _submit_overview(self) -> None:
        assert self.image is not None
        h, w = self.image.shape[:2]
        out = self._overview
        job = RenderJob(self._next_seq("overview"), "overview", self.image, self._raster_specs(),
                        window=None if out == (h, w) else (0, 0, w, h),
                        out_size=None if out == (h, w) else out, base=not self._base_ready)
        self.renderer.submit(job)

    def _request_detail(self) -> None:
        if self.image is None or not self.large:
            return
        h, w = self.image.shape[:2]
        scale = self.screen_scale()
        if not tiling.needs_detail(h, w, scale, self._overview):
            return
        req = tiling.detail_request(h, w, tiling.clip_visible(h, w, self.visible_rect()), scale)
        if req is None:
            return
        window, out = req
        self.renderer.submit(RenderJob(self._next_seq("detail"), "detail", self.image, self._raster_specs(),
                                       window=window, out_size=out, base=not self._base_full))

    def _deactivate_detail(self) -> None:
        if self._detail_active:
            self._detail_active = False
            self._refresh_visibility()

    def _on_range_changed(self, *_: object) -> None:
        if not self.large or self.image is None:
            return
        h, w = self.image.shape[:2]
        vis = tiling.clip_visible(h, w, self.visible_rect())
        if self._detail_active and (
            not tiling.needs_detail(h, w, self.screen_scale(), self._overview)
            or self._detail_window is None
            or not tiling.window_covers(self._detail_window, vis)
        ):
            self._deactivate_detail()
        self._debounce.start()

    def _on_rendered(self, out: RenderOutput) -> None:
        job = out.job
        if job.image is not self.image or job.seq != self._latest[job.level]:
            return  # out of date: a newer image, layer set or view was requested since
        for msg in out.errors:
            self.renderFailed.emit(msg)
        if job.level == "overview":
            h, w = job.image.shape[:2]
            if out.base is not None:
                self.base.setImage(out.base, levels=None)
                self.base.setRect(QRectF(0, 0, w, h))
                self._base_ready = True
            for layer, (ov, _det) in self._items.items():
                rgba = out.layers.get(layer)
                if rgba is None:
                    ov.clear()
                else:
                    ov.setImage(rgba, levels=None)
                    ov.setRect(QRectF(0, 0, w, h))
            self._refresh_visibility()
            self.layersApplied.emit(out.seconds)
            return
        x0, y0, x1, y1 = job.window  # type: ignore[misc]
        rect = QRectF(x0, y0, x1 - x0, y1 - y0)
        if out.base is not None:
            self.base_detail.setImage(out.base, levels=None)
            self.base_detail.setRect(rect)
        self._detail_layers = set()
        for layer, (_ov, det) in self._items.items():
            rgba = out.layers.get(layer)
            if rgba is not None:
                det.setImage(rgba, levels=None)
                det.setRect(rect)
                self._detail_layers.add(layer)
        self._detail_window = job.window
        self._detail_active = True
        self._refresh_visibility()
        self.detailApplied.emit(out.seconds)

    def _on_mouse_moved(self, pos: QPointF) -> None:
        if self.image is None or not self.vb.sceneBoundingRect().contains(pos):
            self.hovered.emit(None)
            return
        p = self.vb.mapSceneToView(pos)
        h, w = self.image.shape[:2]
        self.hovered.emit((p.x(), p.y()) if 0 <= p.x() < w and 0 <= p.y() < h else None)
