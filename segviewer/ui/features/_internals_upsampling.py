"""The Internals dock's Upsampling and Receptive-field views (issue #11), on the current image.

Both draw from the bundled FCN's ONE hooked pass (the FCN tab's role "fcn": the worker returns
:class:`~segviewer.adapters.internals_upsample.FCNPass`, the three stage maps plus these
captures), and the receptive view's dilated taps from the PCV net's pass (role "pcv"). Each view
has ``key``, ``title``, ``kinds`` (empty: it picks its own model), ``on_bundle``, ``click`` and
``draw``; the controller installs them with :func:`install_views`.

* Upsampling: the stride-32 class scores and five 2x upsamplings of them side by side (numbers
  from :mod:`segviewer.analysis.upsampling`, each equal to its torch operator), the learned
  ``upscore2`` against the bilinear kernel it started as, and the values at a clicked pixel.
* Receptive field: a click picks the unit of the chosen FCN layer there (its strongest channel);
  the theoretical field (:mod:`segviewer.analysis.receptive`, from the layers' kernels, strides
  and dilations) as a box, the effective field (the numpy backward of that unit through the
  pass's ReLU masks and pool switches) as a heatmap, and the PCV voting head's dilated taps.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from segviewer.analysis import receptive as rf
from segviewer.analysis.upsampling import METHODS, bilinear_kernel
from segviewer.core.colors import palette_for
from segviewer.core.errors import SegviewerError
from segviewer.render.heatmap import heatmap_rgba
from segviewer.render.roi_grid import box_segments, cross_segments
from segviewer.ui.widgets.internals_upsampling_tab import COARSE, ReceptiveTab, UpsamplingTab

__all__ = ["UpsamplingView", "ReceptiveView", "install_views", "map_rgba"]

DEFAULT_LAYER = "conv4_2"


def install_views(feature: Any) -> dict[str, Any]:
    """Create both views (their tabs join the panel); ``{key: view}`` for the controller."""
    views = (UpsamplingView(feature), ReceptiveView(feature))
    return {v.key: v for v in views}


def map_rgba(values: np.ndarray, class_id: int | None, palette: np.ndarray, vmax: float,
             empty: tuple[int, int, int, int] = (90, 90, 90, 255)) -> np.ndarray:
    """A ``(C, h, w)`` score map as RGBA: the argmax class's colour (``empty`` where no value was
    written: every score exactly 0, as bed of nails and unpooling leave most cells), or one
    class's score on the blue-white-red scale ``[-vmax, vmax]``."""
    if class_id is None:
        rgba = np.zeros((*values.shape[1:], 4), np.uint8)
        rgba[..., :3] = palette[np.argmax(values, 0) % len(palette)]
        rgba[..., 3] = 255
        rgba[~np.any(values != 0, axis=0)] = empty
        return rgba
    return heatmap_rgba(values[class_id], -vmax, vmax, "diverging", alpha=255)


class _FCNPassView:
    """What both views share: the FCN pass bundle of the current image, asked for when drawn."""

    kinds: tuple[str, ...] = ()

    def __init__(self, feature: Any) -> None:
        self.feature = feature
        self.bundle: Any = None
        self.error = ""
        self._token: tuple | None = None
        self.point: tuple[float, float] | None = None

    def _now(self) -> tuple:
        s = self.feature.session
        return (s.gen, s.key)

    def on_bundle(self, role: str, bundle: Any, error: str = "") -> None:
        """The controller's ``_apply``: a bundle (or failure) for ``role`` on the current image."""
        if role == "pcv":  # the voting head's taps (receptive view) arrived
            if self.feature.active and self.feature.panel.tab_name() == self.key:
                self.feature.update_view()
            return
        if role != "fcn":
            return
        self.bundle, self.error, self._token, self.point = bundle, error, self._now(), None
        self.set_bundle(bundle)
        if self.feature.active and self.feature.panel.tab_name() == self.key:
            self.feature.update_view()

    def set_bundle(self, bundle: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def current(self) -> Any:
        """The bundle for the image on screen, or None after asking the worker for it."""
        if self._token != self._now():
            self.bundle, self.error, self.point = None, "", None
            self.set_bundle(None)
            self._token = None
            if self.feature.session.image is not None:
                self.feature.request_stages()
        return self.bundle

    def _waiting(self, what: str) -> str:
        if self.feature.session.image is None:
            return "Open an image to look inside the FCN."
        return f"Running the FCN once ({what})…"

    def _frame(self) -> tuple[tuple[int, int], tuple[int, int], tuple[float, float]]:
        """``(valid (rh, rw), image (H, W), (sx, sy))``: model frame pixel -> image pixel."""
        u = self.bundle.upsampling
        (rh, rw), (h, w) = u.valid, u.image_size
        return (rh, rw), (h, w), (w / rw, h / rh)


class UpsamplingView(_FCNPassView):
    """Five 2x upsamplings of the FCN's stride-32 scores, side by side, and the learned one vs bilinear."""

    key, title = "upsampling", "Upsampling"

    def __init__(self, feature: Any) -> None:
        super().__init__(feature)
        self.tab = UpsamplingTab(METHODS)
        feature.panel.add_view(self.key, self.title, self.tab, self.kinds)
        self.maps: dict[str, np.ndarray] = {}
        self.tab.changed.connect(feature.update_view)

    def set_bundle(self, bundle: Any) -> None:
        u = getattr(bundle, "upsampling", None)
        t = self.tab
        t.what.blockSignals(True)
        keep = t.what.currentData()
        t.what.clear()
        self.maps = {}
        if u is not None:
            t.what.addItem("argmax labels", -1)
            for k, name in enumerate(u.categories or [str(i) for i in range(u.scores.shape[0])]):
                t.what.addItem(f"class score: {name}", k)
            t.what.setCurrentIndex(max(t.what.findData(keep), 0) if keep is not None else 0)
            self.maps = {COARSE: u.scores, **u.all()}
            self._compare_text(u)
        t.what.blockSignals(False)

    def _compare_text(self, u: Any) -> None:
        k = u.kernel_vs_bilinear()
        vs_init, vs_interp = u.learned_vs_bilinear()
        own = float(np.abs(self.maps[METHODS[4]] - u.model_up).max())
        kk = u.weight.shape[2]
        self.tab.compare.setText(
            f"Learned {u.layer} ({u.weight.shape[0]}→{u.weight.shape[1]} classes, {kk}x{kk}, stride {u.stride}) vs the "
            f"bilinear kernel it was initialised as: max |Δw| {k.max_abs:.3f}, ‖Δw‖/‖w_bilinear‖ {k.rel_l2:.2f}, "
            f"{100 * k.off_diagonal_share:.1f}% of its energy mixes classes (bilinear: 0%), per-class kernels "
            f"correlate {k.diagonal_corr:.2f} with the tent.\n"
            f"Its output on these scores vs the bilinear transposed conv: mean |Δ| {vs_init.mean_abs:.3f}, "
            f"relative {vs_init.rel_l2:.2f}, same argmax on {100 * vs_init.label_agreement:.1f}% of cells; vs "
            f"interpolate(bilinear): relative {vs_interp.rel_l2:.2f}, same argmax {100 * vs_interp.label_agreement:.1f}%. "
            f"(The numpy transposed conv equals the layer's own output in the pass to {own:.1e}.)")

    def click(self, x: float, y: float) -> None:
        if self.current() is None or self.bundle.upsampling is None:
            raise SegviewerError(self._why())
        self.point = (x, y)

    def _why(self) -> str:
        if self.bundle is not None and getattr(self.bundle, "why", ""):
            return self.bundle.why
        return self.error or "The FCN's scores are still being computed."

    def draw(self, overlays: Any) -> None:
        t = self.tab
        if self.current() is None or self.bundle.upsampling is None:
            t.info.setText(self._why() if self.bundle is not None or self.error else self._waiting(
                "its scores, pool switches and upsampler"))
            for p in t.panels.values():
                p.set_rgba(None)
            t.compare.setText("")  # the last image's numbers (the kernels are the model's, they stay)
            t.point.setText("Click the image: the values of each method at that pixel.")
            return
        u = self.bundle.upsampling
        (rh, rw), (h, w), (sx, sy) = self._frame()
        cls = t.class_id()
        palette = palette_for(u.categories) if u.categories else palette_for([str(i) for i in range(u.scores.shape[0])])
        vmax = 1.0
        if cls is not None:
            vmax = max(float(np.abs(m[cls]).max()) for m in self.maps.values()) or 1.0
        for name, m in self.maps.items():
            s = 32 if name == COARSE else 32 // u.factor
            crop = m[:, :-(-rh // s), :-(-rw // s)]
            t.panels[name].set_rgba(map_rgba(crop, cls, palette, vmax))
        c, hh, ww = u.scores.shape
        t.info.setText(f"{c} class scores at stride 32 ({ww}x{hh} cells of the {rw}x{rh} model frame; score_fr) "
                       f"upsampled 2x five ways. Max-unpooling puts each score where pool5 found its maximum "
                       f"(the switch of the channel strongest there). "
                       + ("Colours: argmax class; grey: no value written." if cls is None else
                          f"Blue-white-red: score of {t.what.currentText()[13:]} in ±{vmax:.1f}."))
        self._draw_kernels(u, cls)
        name = t.overlay_name()
        if name is not None:
            s = 32 if name == COARSE else 32 // u.factor
            m = self.maps[name]
            cells = map_rgba(m, cls, palette, vmax, empty=(0, 0, 0, 0))  # no value: the image shows through
            frame = np.repeat(np.repeat(cells, s, 0), s, 1)[:rh, :rw].copy()
            frame[..., 3] = (frame[..., 3].astype(np.uint16) * 150 // 255).astype(np.uint8)
            overlays.image(frame, (0.0, 0.0, float(w), float(h)))
        if self.point is not None:
            self._draw_point(overlays, u, cls, (rh, rw), (sx, sy))

    def _draw_kernels(self, u: Any, cls: int | None) -> None:
        """The learned kernel from the shown class to itself beside the bilinear tent it started as."""
        k = 0 if cls is None else cls
        learned = u.weight[k, k]
        tent = bilinear_kernel(u.weight.shape[0], u.weight.shape[2])[k, k]
        vmax = float(max(np.abs(learned).max(), np.abs(tent).max())) or 1.0
        name = u.categories[k] if k < len(u.categories) else str(k)
        self.tab.kernel_caption.setText(
            f"{u.layer}'s {learned.shape[0]}x{learned.shape[1]} kernel {name} → {name} (blue-white-red in ±{vmax:.2f}); "
            f"largest weight from another class into {name}: {float(np.abs(np.delete(u.weight[:, k], k, axis=0)).max()):.3f}.")
        self.tab.kernels["learned"].set_rgba(heatmap_rgba(learned, -vmax, vmax, "diverging", alpha=255))
        self.tab.kernels["bilinear"].set_rgba(heatmap_rgba(tent, -vmax, vmax, "diverging", alpha=255))

    def _draw_point(self, overlays: Any, u: Any, cls: int | None, valid: tuple[int, int],
                    scale: tuple[float, float]) -> None:
        sx, sy = scale
        f, s = u.factor, 32 // u.factor
        xf = min(max(self.point[0] / sx, 0.0), valid[1] - 1)
        yf = min(max(self.point[1] / sy, 0.0), valid[0] - 1)
        r, c = int(yf // s), int(xf // s)
        r32, c32 = r // f, c // f
        k = cls if cls is not None else int(np.argmax(self.maps[METHODS[4]][:, r, c]))
        overlays.set("box", box_segments(np.array([[c32 * 32 * sx, r32 * 32 * sy, (c32 + 1) * 32 * sx, (r32 + 1) * 32 * sy]])))
        overlays.set("anchors", box_segments(np.array([[c * s * sx, r * s * sy, (c + 1) * s * sx, (r + 1) * s * sy]])))
        sw = int(u.switches[r32, c32])
        pw = u.pool_size[1]
        sr, sc = sw // pw, sw % pw
        overlays.set("kept", box_segments(np.array([[sc * s * sx, sr * s * sy, (sc + 1) * s * sx, (sr + 1) * s * sy]])))
        name = u.categories[k] if k < len(u.categories) else str(k)
        vals = ", ".join(f"{m} {float(self.maps[m][k, r, c]):+.2f}" for m in METHODS)
        self.tab.point.setText(
            f"Stride-16 cell (row {r}, col {c}; yellow) in stride-32 cell (row {r32}, col {c32}; white), class "
            f"{name}: coarse score {float(u.scores[k, r32, c32]):+.2f} → {vals}. pool5's switch for that coarse "
            f"cell is the stride-16 cell (row {sr}, col {sc}) (green): max-unpooling writes the score there only.")


class ReceptiveView(_FCNPassView):
    """The theoretical and effective receptive field of a clicked unit, and dilated taps."""

    key, title = "receptive", "Receptive field"

    def __init__(self, feature: Any) -> None:
        super().__init__(feature)
        self.tab = ReceptiveTab()
        feature.panel.add_view(self.key, self.title, self.tab, self.kinds)
        self._erf: tuple[tuple, Any] | None = None  # (unit key, (erf, origin, ms))
        self.last_ms = 0.0
        self.tab.changed.connect(feature.update_view)

    def set_bundle(self, bundle: Any) -> None:
        chain = getattr(bundle, "receptive", None)
        t = self.tab
        t.layer.blockSignals(True)
        keep = t.layer.currentData() or DEFAULT_LAYER
        t.layer.clear()
        self._erf = None
        if chain is not None:
            for name in chain.units:
                layers = chain.layers_upto(name)
                jump = int(np.prod([ly.stride for ly in layers]))
                t.layer.addItem(f"{name} (stride {jump}, field {rf.field_size(layers)} px)", name)
            t.layer.setCurrentIndex(max(t.layer.findData(keep), 0))
        t.layer.blockSignals(False)

    def click(self, x: float, y: float) -> None:
        if self.current() is None or self.bundle.receptive is None:
            raise SegviewerError(getattr(self.bundle, "why", "") or self.error or
                                 "The FCN's pass is still being captured.")
        self.point = (x, y)

    def unit(self) -> tuple[str, int, int, int, tuple[int, int, int, int]] | None:
        """``(layer, channel, row, col, box (y0, y1, x0, x1) in model-frame pixels)`` under the click."""
        if self.point is None or self.bundle is None or self.bundle.receptive is None:
            return None
        chain, name = self.bundle.receptive, self.tab.layer_name()
        if name is None:
            return None
        (rh, rw), _, (sx, sy) = self._frame()
        xf = min(max(self.point[0] / sx, 0.0), rw - 1.0)
        yf = min(max(self.point[1] / sy, 0.0), rh - 1.0)
        c, row, col = chain.pick(name, xf, yf)
        return name, c, row, col, rf.field_box(chain.layers_upto(name), row, col)

    def effective(self, name: str, c: int, row: int, col: int) -> tuple[np.ndarray, tuple[int, int], float]:
        """The unit's effective field, its origin and the ms it took (cached per unit)."""
        key = (id(self.bundle), name, c, row, col)
        if self._erf is None or self._erf[0] != key:
            t0 = time.perf_counter()
            erf, origin = self.bundle.receptive.effective_field(name, c, row, col)
            self._erf = (key, (erf, origin, 1000 * (time.perf_counter() - t0)))
        return self._erf[1]

    def draw(self, overlays: Any) -> None:
        t = self.tab
        if self.current() is None or self.bundle.receptive is None:
            t.info.setText(getattr(self.bundle, "why", "") or self.error or self._waiting("its masks and switches"))
            t.unit.setText("Click the image: the unit of the chosen layer there.")  # not the last image's unit
            self._draw_taps(overlays)
            return
        chain = self.bundle.receptive
        name = t.layer_name()
        layers = chain.layers_upto(name) if name else []
        jump = int(np.prod([ly.stride for ly in layers])) if layers else 1
        t.info.setText(
            f"{name}: {len(layers)} spatial layers from the input (kernels "
            f"{'-'.join(str(ly.kernel) for ly in layers)}), stride {jump}: theoretical field "
            f"{rf.field_size(layers)} px of the model frame (REFERENCE: each layer adds (k_eff − 1) × the strides before it).")
        got = self.unit()
        if got is None:
            t.unit.setText("Click the image: the unit of the chosen layer there.")
        else:
            self._draw_unit(overlays, *got)
        self._draw_taps(overlays)

    def _draw_unit(self, overlays: Any, name: str, c: int, row: int, col: int, box: tuple[int, int, int, int]) -> None:
        t = self.tab
        (rh, rw), _, (sx, sy) = self._frame()
        y0, y1, x0, x1 = box
        centre = ((y0 + y1) / 2, (x0 + x1) / 2)
        if t.theoretical.isChecked():
            overlays.set("region", box_segments(np.array([[x0 * sx, y0 * sy, (x1 + 1) * sx, (y1 + 1) * sy]])))
        overlays.set("points", cross_segments(np.array([[(centre[1] + 0.5) * sx, (centre[0] + 0.5) * sy]]),
                                              overlays.screen_px(8.0)))
        text = (f"Unit (channel {c}, the strongest there; row {row}, col {col}) of {name}: theoretical field rows "
                f"{y0}..{y1}, cols {x0}..{x1} of the {rw}x{rh} model frame ({y1 - y0 + 1} px side; magenta; "
                "outside the frame it reads padding).")
        if t.effective.isChecked():
            erf, (oy, ox), ms = self.effective(name, c, row, col)
            self.last_ms = ms
            side = rf.mass_side(erf, (oy, ox), centre)
            e = erf[:max(0, rh - oy), :max(0, rw - ox)]  # the padding below/right of the image is not shown
            if e.size and float(e.max()) > 0:
                # a few pixels carry huge gradients: the colour scale tops out at the 99th percentile
                top = float(np.percentile(e[e > 0], 99))
                rgba = heatmap_rgba(e, 0.0, top, "inferno", alpha=230, alpha_by_value=True)
                overlays.image(rgba, (ox * sx, oy * sy, e.shape[1] * sx, e.shape[0] * sy))
            nz = int(np.count_nonzero(erf))
            text += (f"\nEffective field (|∂unit/∂input| over RGB; numpy backward through this pass's ReLU masks and "
                     f"pool switches, {ms:.0f} ms; colours up to its 99th percentile): {nz} input pixels with a non-zero gradient, all inside the box; "
                     f"90% of its mass within a {side} px square, {100 * side / max(y1 - y0 + 1, 1):.0f}% of the "
                     "theoretical side." if nz else
                     "\nThe gradient is zero everywhere: this unit's ReLU is off (or every path through it is).")
        t.unit.setText(text)

    def _draw_taps(self, overlays: Any) -> None:
        t, f = self.tab, self.feature
        if not t.taps.isChecked():
            t.taps_info.setText("")
            return
        vp = f.pcv
        model = f.pcv_model()
        if vp is None:
            if model is None:
                t.taps_info.setText("No PCV model: its voting head is where the dilated convolutions are.")
            elif "pcv" in f._applied and (f._wanted.get("pcv") or (None,) * 3)[2] == model:
                t.taps_info.setText(f"{model} gave no votes for this image: {f.message or 'see the Votes tab'}")
            elif f.session.image is not None:
                t.taps_info.setText(f"Running {model} once (its voting head)…")
                f._capture("pcv", model)
            return
        layers = tuple(getattr(vp, "head_layers", ()))
        if not layers:
            t.taps_info.setText(f"{model}'s pass did not name its voting head's layers.")
            return
        if self.point is None:
            t.taps_info.setText("Click the image: the taps the PCV voting head reads for that pixel.")
            return
        stride = int(getattr(vp, "stride", 4))
        gh, gw = vp.votes.shape[1:]
        row = int(np.clip(self.point[1] // vp.scale_y, 0, gh - 1))
        col = int(np.clip(self.point[0] // vp.scale_x, 0, gw - 1))
        ty, tx = rf.taps_1d(layers, row), rf.taps_1d(layers, col)
        pts = np.stack(np.meshgrid((tx + 0.5) * vp.scale_x, (ty + 0.5) * vp.scale_y), -1).reshape(-1, 2)
        overlays.set("peaks", cross_segments(pts, 2.5))
        dil = [i for i, ly in enumerate(layers) if ly.dilation > 1]
        last = dil[-1] if dil else 0
        ly = layers[last]
        oy = rf.taps_1d(layers[last + 1:], row)
        ox = rf.taps_1d(layers[last + 1:], col)
        own_y = np.unique(oy[:, None] * ly.stride - ly.padding + ly.dilation * np.arange(ly.kernel)[None, :])
        own_x = np.unique(ox[:, None] * ly.stride - ly.padding + ly.dilation * np.arange(ly.kernel)[None, :])
        own = np.stack(np.meshgrid((own_x + 0.5) * vp.scale_x, (own_y + 0.5) * vp.scale_y), -1).reshape(-1, 2)
        overlays.set("anchors", cross_segments(own, 5.0))
        lo_y, hi_y = rf.unit_interval(layers, row)
        lo_x, hi_x = rf.unit_interval(layers, col)
        overlays.set("victims", box_segments(np.array([[lo_x * vp.scale_x, lo_y * vp.scale_y,
                                                         (hi_x + 1) * vp.scale_x, (hi_y + 1) * vp.scale_y]])))
        desc = " → ".join(f"{q.kernel}x{q.kernel} d{q.dilation}" for q in layers)
        span = rf.field_size(layers)
        t.taps_info.setText(
            f"{model}'s voting head ({desc}) on its stride-{stride} features: feature cell (row {row}, col {col}) "
            f"reads {len(ty) * len(tx)} cells (white) spread over {span}x{span} cells ({span * vp.scale_x:.0f} px, "
            f"orange), not the {span * span} a dense stack would; yellow: the last dilated conv's own {ly.kernel}x"
            f"{ly.kernel} taps, {ly.dilation} cells apart. (The U-Net body before the head widens the field further.)")
