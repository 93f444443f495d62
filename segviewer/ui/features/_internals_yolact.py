"""The Internals dock's YOLACT view: a mask as a linear combination of prototypes, opened.

A view module in the dock's sense (key, title, kinds, hint, set_bundle, click, draw), drawing from
the :class:`~segviewer.adapters.yolact.YolactInternals` of the one pass that also gave the layers
their boxes and masks:

* the image's ``k`` prototypes (the protonet's output at stride 4 of the model frame) as one
  gallery, each tile under its index (and, for the picked detection, its coefficient);
* a detection, picked by a click on its mask (or box) or in the list: its ``k`` coefficients
  (tanh, in ``[-1, 1]``) as signed bars, bar ``i`` for prototype ``i``;
* the assembly step by step, from :meth:`YolactInternals.assembly` (the very function that made
  the layer's mask): ``P c`` (diverging colours, the box framed), ``sigma(P c)``, the sigmoid
  sampled inside the box at the input image's pixels, and the mask ``>= 0.5``, each with its size;
* on the canvas: the picked detection's box, its soft crop and mask, the mask's outline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from segviewer.core.errors import SegviewerError
from segviewer.render.heatmap import heatmap_rgba
from segviewer.render.roi_grid import box_segments
from segviewer.ui.widgets.internals_yolact_tab import STEP_KEYS, YolactTab

__all__ = ["KINDS", "YolactView", "AssemblyPictures", "assembly_pictures", "prototype_gallery", "mask_outline"]

KINDS = ("yolact",)
MASK_RGB = (0, 200, 255)


def prototype_gallery(proto: np.ndarray, coef: np.ndarray | None = None,
                      per_tile: bool = False) -> tuple[np.ndarray, np.ndarray, tuple[float | None, float | None]]:
    """The ``(k, h, w)`` prototypes as one gallery picture: tile ``j`` named ``j`` (with ``c_j``
    when ``coef`` is given, the largest ``|c_j|`` framed), on one colour scale ``0 .. max`` (the
    prototypes are ReLU outputs) or each on its own. Returns the picture, the ``(k, 4)`` tile
    rectangles and the scale ``(vmin, vmax)`` (None, None: per tile)."""
    from segviewer.render.mask_gallery import gallery_rgba

    p = np.asarray(proto, np.float32)
    k = p.shape[0]
    names = [str(j) if coef is None else f"{j}: {float(coef[j]):+.2f}" for j in range(k)]
    top = None if coef is None or not len(coef) else int(np.argmax(np.abs(coef)))
    rng: tuple[float | None, float | None] = (None, None) if per_tile else (0.0, max(float(p.max()), 1e-6))
    pic, rects = gallery_rgba(p, names, top, vmin=rng[0], vmax=rng[1], cmap="viridis", zoom=1,
                              columns=4 if k <= 24 else None)
    return pic, rects, rng


def mask_outline(mask: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    """``(N, 2, 2)`` segments around a boolean mask's regions, through its boundary pixels' centres,
    in image pixels (the mask's top-left pixel at ``offset``)."""
    import cv2

    m = np.ascontiguousarray(np.asarray(mask, bool).view(np.uint8))
    if m.size == 0 or not m.any():
        return np.zeros((0, 2, 2), np.float32)
    found, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    segs = []
    for c in found:
        pts = c.reshape(-1, 2).astype(np.float32) + np.asarray(offset, np.float32) + 0.5
        segs.append(np.stack([pts, np.roll(pts, -1, axis=0)], axis=1))
    return np.concatenate(segs).astype(np.float32)


@dataclass(frozen=True, eq=False)
class AssemblyPictures:
    """What the view draws for detection ``index``: the :class:`~segviewer.analysis.yolact.Assembly`,
    the four step pictures (``rgba[key]`` for the keys of ``STEP_KEYS``), the box in prototype
    cells (the frame on ``P c`` and the sigmoid), the linear map's colour range ``+-lin_abs``, and
    the canvas layer: the soft crop and mask as RGBA over ``rect`` (x, y, w, h image pixels) and
    the mask's outline."""

    index: int
    assembly: Any
    rgba: dict[str, np.ndarray]
    frame: tuple[float, float, float, float]
    lin_abs: float
    overlay: np.ndarray
    rect: tuple[float, float, float, float]
    outline: np.ndarray


def assembly_pictures(it: Any, index: int) -> AssemblyPictures:
    """Detection ``index``'s assembly, pictured (numpy; the bench times exactly this)."""
    a = it.assembly(index)
    lin_abs = max(float(np.abs(a.linear).max()), 1e-6)
    rgba = {
        "linear": heatmap_rgba(a.linear, -lin_abs, lin_abs, "diverging", alpha=255),
        "sigmoid": heatmap_rgba(a.sigmoid, 0.0, 1.0, "viridis", alpha=255),
    }
    if a.crop.size:
        rgba["crop"] = heatmap_rgba(a.crop, 0.0, 1.0, "viridis", alpha=255)
        rgba["mask"] = heatmap_rgba(a.mask.astype(np.float32), 0.0, 1.0, "gray", alpha=255)
    else:
        rgba["crop"] = rgba["mask"] = np.zeros((0, 0, 4), np.uint8)
    sx, sy = it.scale
    s = float(it.proto_stride)
    b = np.asarray(it.detections.boxes[index], np.float64)
    frame = (b[0] / sx / s, b[1] / sy / s, b[2] / sx / s, b[3] / sy / s)
    x0, y0 = a.offset
    h, w = a.crop.shape
    over = np.zeros((h, w, 4), np.uint8)
    over[..., :3] = MASK_RGB
    over[..., 3] = np.where(a.mask, 150, np.round(a.crop * 60)).astype(np.uint8)
    return AssemblyPictures(int(index), a, rgba, frame, lin_abs, over, (float(x0), float(y0), float(w), float(h)),
                            mask_outline(a.mask, a.offset))


class YolactView:
    """The YOLACT tab and its drawing; the Internals controller routes bundles and clicks."""

    key, title, kinds = "yolact", "YOLACT", KINDS
    hint = "Click a detection's mask (its coefficients and assembly)."

    def __init__(self, feature: Any) -> None:
        self.feature = feature
        self.tab = YolactTab()
        feature.panel.add_view(self.key, self.title, self.tab, self.kinds)
        self.it: Any = None
        self.index: int | None = None
        self.drawn: dict[str, Any] | None = None  # what the last draw showed (tests read it back)
        self._gallery: tuple[tuple, tuple] | None = None  # (key, (picture, rects, range))
        self._pictures: AssemblyPictures | None = None
        self.tab.changed.connect(feature.update_view)
        self.tab.detectionPicked.connect(self._on_picked)

    # ---- bundle -----------------------------------------------------------------------------------
    def set_bundle(self, it: Any) -> None:
        """A new capture (or None): the detection list, the best shown detection picked."""
        self.it, self.index, self.drawn, self._gallery, self._pictures = it, None, None, None, None
        t = self.tab
        if it is None:
            t.clear()
            return
        det = it.detections
        t.set_detections([(f"#{i} {self._name(i)} {float(det.scores[i]):.2f}", i) for i in range(len(det))], None)
        thr = self._score_threshold()
        shown = np.flatnonzero(det.scores >= thr)
        if shown.size:
            self.index = int(shown[np.argmax(det.scores[shown])])
            t.select(self.index)
        k, ph, pw = it.proto.shape
        mh, mw = it.model_size
        t.counts.setText(
            f"k = {k} prototypes of {pw} x {ph} (stride {it.proto_stride:g} of the {mw}x{mh} model frame), "
            f"computed once for the whole image; every box the YOLO grid predicts also gets k coefficients "
            f"(tanh). {len(det)} detections after NMS, each mask = threshold(crop(σ(P c))).")

    def status_text(self) -> str:
        it = self.it
        if it is None:
            return ""
        k, ph, pw = it.proto.shape
        ms = 1000 * sum(it.timings.values())
        return (f"{it.model_name}: one pass {ms:.0f} ms (the layers' boxes and masks and these prototypes), "
                f"k = {k} prototypes at {pw} x {ph} (stride {it.proto_stride:g}), {len(it.detections)} detections. "
                f"{self.hint}")

    def _score_threshold(self) -> float:
        """The window's score threshold: the detections below it have no box or mask on the canvas."""
        return float(getattr(getattr(self.feature.window, "state", None), "score_threshold", 0.0))

    def _name(self, i: int) -> str:
        it = self.it
        c = int(it.detections.class_ids[i])
        return it.categories[c] if 0 <= c < len(it.categories) else str(c)

    # ---- input ------------------------------------------------------------------------------------
    def click(self, x: float, y: float) -> None:
        if self.it is None:
            raise SegviewerError("No YOLACT internals yet.")
        i = self.it.detection_at(x, y)
        if i is None:
            raise SegviewerError("No detection's mask or box here; click inside one (or pick it in the list).")
        self.index = int(i)
        self.tab.select(self.index)

    def _on_picked(self, i: int) -> None:
        self.index = None if i < 0 else int(i)
        self.feature.show_message("")
        self.feature.update_view()

    # ---- drawing ----------------------------------------------------------------------------------
    def draw(self, overlays: Any) -> None:
        it, t = self.it, self.tab
        if it is None:
            return
        i = self.index
        coef = it.coef[i] if i is not None else None
        key = (i, t.per_tile.isChecked())
        if self._gallery is None or self._gallery[0] != key:
            self._gallery = (key, prototype_gallery(it.proto, coef, t.per_tile.isChecked()))
        pic, rects, rng = self._gallery[1]
        t.gallery.set_rgba(pic)
        k, ph, pw = it.proto.shape
        scale = "each tile its own range" if rng[0] is None else f"one scale {rng[0]:g} .. {rng[1]:.2f}"
        t.gallery_title.setText(f"<b>Prototypes P</b>: {k} maps of {pw} x {ph} ({scale})"
                                + ("; framed: the largest |c|" if coef is not None else ""))
        det = it.detections
        thr = self._score_threshold()
        others = np.flatnonzero(det.scores >= thr)  # the boxes the layers draw, not the hidden ones
        others = others[others != i] if i is not None else others
        overlays.set("pending", box_segments(det.boxes[others]) if t.show_others.isChecked() and len(others) else None)
        self.drawn = {"gallery": pic, "rects": rects, "range": rng, "proto": it.proto, "index": i}
        if i is None:
            self._pictures = None
            t.clear_detection()
            for name in ("box", "kept"):
                overlays.set(name, None)
            overlays.image(None)
            return
        if self._pictures is None or self._pictures.index != i:
            self._pictures = assembly_pictures(it, i)
        pics = self._pictures
        a = pics.assembly
        top = int(np.argmax(np.abs(a.coef)))
        t.bars_title.setText(f"<b>Coefficients c</b> of #{i} (tanh, −1 .. 1; bar j weighs prototype j)")
        t.bars.set_values(a.coef, top)
        t.bars.setVisible(True)
        for name, _stem in STEP_KEYS:
            t.steps[name].set_rgba(pics.rgba[name], pics.frame if name in ("linear", "sigmoid") else None,
                                   (0, 0, 0) if name == "linear" else (255, 255, 255))  # seen on white / viridis
        lh, lw = a.linear.shape
        ch, cw = a.crop.shape
        t.captions["linear"].setText(f"P c  {lw}x{lh}")
        t.captions["sigmoid"].setText(f"σ(P c)  {lw}x{lh}")
        t.captions["crop"].setText(f"crop  {cw}x{ch} px")
        t.captions["mask"].setText(f"≥ {it.mask_threshold:g}  {cw}x{ch} px")
        overlays.set("box", box_segments(det.boxes[[i]]))
        show = t.show_mask.isChecked() and a.crop.size > 0
        overlays.image(pics.overlay if show else None, pics.rect)
        overlays.set("kept", pics.outline if show and len(pics.outline) else None)
        layer = det.masks.crops[i] if det.masks is not None else None
        same = layer is not None and layer.shape == a.mask.shape and bool(np.array_equal(layer, a.mask))
        b = det.boxes[i]
        order = np.argsort(-np.abs(a.coef))[:3]
        x0, y0 = a.offset
        t.info.setText(
            f"#{i} {self._name(i)} {float(det.scores[i]):.2f}"
            + (f" (below the score threshold {thr:.2f}: the layers hide it)" if det.scores[i] < thr else "")
            + f", box ({b[0]:.0f}, {b[1]:.0f}, {b[2]:.0f}, {b[3]:.0f}) px.\n"
            f"P c = Σ c_j P_j at {lw} x {lh} prototype cells: {float(a.linear.min()):.2f} .. {float(a.linear.max()):.2f} "
            f"(blue < 0 < red; the box framed). Largest weights: "
            + ", ".join(f"c{j} {a.coef[j]:+.2f}" for j in order) + ".\n"
            f"σ(P c) sampled bilinearly at the centres of the {cw} x {ch} image pixels inside the box "
            f"(from ({x0}, {y0})); outside the box the mask is 0.\n"
            f"≥ {it.mask_threshold:g}: {int(a.mask.sum())} px"
            + (" — the very mask the layer shows." if same else
               " — differs from the layer's mask (another pass?)."))
        self.drawn.update({"coef": a.coef, "assembly": a, "steps": dict(pics.rgba), "mask": a.mask,
                           "offset": a.offset, "same_as_layer": same})
