"""The Internals dock's dense-heads view: one-stage detectors (RetinaNet, FCOS, SSD) opened.

A view module in the dock's sense: it declares the capture kinds it draws (:data:`KINDS`),
installs its tab into the panel, and draws from the cached bundle
(:class:`~segviewer.adapters.internals_dense.DenseInternals`) that the controller's one hooked
pass produced. Numbers come from :mod:`segviewer.analysis.dense` / :mod:`~segviewer.analysis.focal`
(through the bundle), pixels from :mod:`segviewer.render`:

* the score map of one level (max over classes, or one class), FCOS's centerness, or the anchor
  assignment against the image's ground truth (positive / ignored / negative per location);
* a click: the anchors (default boxes) of that location on every level, scored; FCOS's l, t, r, b
  as four arrows to the box they decode; the decoded box of the best anchor there;
* the per-level funnel (scores above the threshold, top-k) and the class-wise NMS stepper;
* focal loss: the share of the classification loss from easy negatives under CE and under FL at
  the chosen gamma / alpha, and at the clicked anchor p, CE, (1 - p_t)^gamma and FL.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segviewer.analysis import focal
from segviewer.core.errors import SegviewerError
from segviewer.render.dense import assignment_rgba, location_codes, ltrb_arrow_segments
from segviewer.render.heatmap import heatmap_rgba
from segviewer.render.roi_grid import box_segments, cross_segments, scale_segments
from segviewer.ui.features._internals_views import NmsTraceView
from segviewer.ui.jobs import run_background
from segviewer.ui.widgets.internals_dense_tab import ANCHORS_HINT, DenseTab

__all__ = ["KINDS", "DenseHeadsView", "GT_RESULT"]

KINDS = ("dense_levels", "anchor_grid")
GT_RESULT = "ground truth"  # the derived layer the ground-truth feature shows


class DenseHeadsView(NmsTraceView):
    """The dense-heads tab and its drawing; the Internals controller routes bundles and clicks."""

    key, title, kinds = "dense", "Dense heads", KINDS
    hint = "Click anywhere (anchors there)."

    def __init__(self, feature: Any) -> None:
        self.feature = feature
        self.tab = DenseTab()
        feature.panel.add_view(self.key, self.title, self.tab, self.kinds)
        self.it: Any = None
        self.point: tuple[float, float] | None = None
        self.trace: Any = None
        self._maps: dict[tuple, np.ndarray] = {}
        self._focal: tuple[Any, Any] | None = None  # (token, (FocalImage, matches, unmatched) or message)
        t = self.tab
        t.changed.connect(feature.update_view)
        t.stepChanged.connect(feature.update_view)
        t.nmsChanged.connect(self._new_trace)

    # ---- bundle -----------------------------------------------------------------------------------
    def set_bundle(self, it: Any) -> None:
        """A new capture (or None): fill the combos, the funnel and the NMS classes."""
        self.it, self.point, self.trace, self._focal = it, None, None, None
        self._maps.clear()
        t = self.tab
        for combo in (t.level, t.cls, t.nms_class):
            combo.blockSignals(True)
            combo.clear()
        if it is not None:
            t.set_focal_rule(it.kind)
            for i, (h, w) in enumerate(it.grids):
                sy, sx = it.stride(i)
                # torchvision spaces anchors by padded size // cells: on a top level that is not a
                # power of two and not the same across and down (1216x800 frame, P7 10x7: 121 x, 114 y)
                stride = f"{sx:.3g}" if abs(sx - sy) < 1e-6 else f"x {sx:.3g}, y {sy:.3g}"
                t.level.addItem(f"{i}: {w}x{h}, stride {stride}", i)
            t.cls.addItem("max over classes", -1)
            for k in range(it.foreground, len(it.categories)):
                t.cls.addItem(it.categories[k], k)
            counts = it.level_counts()
            rows = "; ".join(f"L{i}: {c.above}/{c.total} > {it.score_thresh:g} → {c.kept}" for i, c in enumerate(counts))
            t.counts.setText(f"{it.kind}: {len(it.anchors)} anchors x {it.cls_logits.shape[1]} classes. "
                             f"Per level (scores above the threshold → top-{it.topk}): {rows}. "
                             f"{len(it.candidates)} candidates → NMS (IoU {it.nms_thresh:g}) → {len(it.kept)} "
                             f"kept → {len(it.detections)} detections.")
            groups = it.candidates.groups
            for g in np.unique(groups):
                name = it.categories[g] if 0 <= g < len(it.categories) else str(g)
                t.nms_class.addItem(f"{name} ({int((groups == g).sum())} boxes)", int(g))
            t.set_iou(it.nms_thresh)
            if len(it.detections):  # start on the class of the best detection
                t.nms_class.setCurrentIndex(max(t.nms_class.findData(int(it.detections.groups[0])), 0))
        else:  # a new image being captured, another model: nothing of the last bundle stays
            t.counts.setText("")
            t.anchors.setText(ANCHORS_HINT)
            t.focal_info.setText("")
        for combo in (t.level, t.cls, t.nms_class):
            combo.blockSignals(False)
        self._new_trace(redraw=False)

    # ---- input ------------------------------------------------------------------------------------
    def click(self, x: float, y: float) -> None:
        if self.it is None:
            raise SegviewerError("No one-stage detector's internals yet.")
        self.it.anchors_at(x, y, max(self.tab.level.currentIndex(), 0))  # validates
        self.point = (x, y)

    # ---- drawing ----------------------------------------------------------------------------------
    def draw(self, overlays: Any) -> None:
        it, t = self.it, self.tab
        if it is None:
            return
        level = max(t.level.currentIndex(), 0)
        what = t.map_kind()
        h, w = it.image_size
        if what == "assignment":
            rgba, text = self._assignment_map(level)
            t.focal_info.setText(text)
        else:
            rgba = self._score_map(level, what, t.class_id())
        overlays.image(rgba)
        scale = it.scale
        if self.point is not None:
            self._draw_click(overlays, level, scale)
        if what != "assignment":  # the assignment map shows the anchors' roles, not the NMS's boxes
            self._draw_nms(overlays)
            self._focal_text()

    def _score_map(self, level: int, what: str, class_id: int | None) -> np.ndarray:
        it = self.it
        key = (level, what, class_id)
        if key not in self._maps:
            if len(self._maps) > 24:
                self._maps.clear()
            m = it.centerness_map(level) if what == "centerness" else it.score_map(level, class_id)
            self._maps[key] = heatmap_rgba(m, 0.0, max(float(m.max()), 1e-6), "magma", alpha=200,
                                           out_size=it.image_size, extent=it.heatmap_extent(level),
                                           alpha_by_value=True)
        return self._maps[key]

    def _draw_click(self, overlays: Any, level: int, scale: tuple[float, float]) -> None:
        it, t = self.it, self.tab
        at = it.anchors_at(*self.point, level)
        overlays.set("anchors", scale_segments(box_segments(at.boxes), scale))
        others = [it.anchors_at(*self.point, k).boxes for k in range(len(it.grids)) if k != level]
        overlays.set("anchors_other", scale_segments(box_segments(np.concatenate(others)), scale) if others else None)
        best = int(np.argmax(at.scores))
        i = int(at.flat_index[best])
        box = it.decode(i)[0]
        overlays.set("box", scale_segments(box_segments(box[None]), scale))
        cats = it.categories
        rows = ", ".join(f"{float(s):.3f} {cats[c] if c < len(cats) else c}" for s, c in zip(at.scores, at.labels))
        lines = [f"Location (row {at.row}, col {at.col}) of level {level}: {len(at.boxes)} anchors (yellow; "
                 f"other levels dashed), best class score each: {rows}.",
                 f"Anchor {i} decodes to ({box[0]:.0f}, {box[1]:.0f}, {box[2]:.0f}, {box[3]:.0f}) in the model "
                 f"frame (white)."]
        if it.kind == "fcos":
            a = it.anchors[i]
            c = ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2)
            ltrb = it.ltrb(i)
            arrows = ltrb_arrow_segments(c, ltrb)
            overlays.set("links", scale_segments(arrows, scale))
            overlays.set("points", cross_segments(np.array([c]) * np.asarray(scale), overlays.screen_px(6.0)))
            ctr = float(it.centerness_map(level)[at.row, at.col])
            lines.append(f"FCOS: l {ltrb[0]:.1f}, t {ltrb[1]:.1f}, r {ltrb[2]:.1f}, b {ltrb[3]:.1f} px (arrows), "
                         f"centerness {ctr:.3f}.")
        t.anchors.setText("\n".join(lines))

    def _draw_nms(self, overlays: Any) -> None:
        t, trace = self.tab, self.trace
        if trace is None:
            t.nms_info.setText("No candidates reached the NMS.")
            return
        n = t.n_steps
        state = trace.state_after(n)
        boxes = self.it.to_image(trace.boxes)
        overlays.set("pending", box_segments(boxes[state == 0]))
        overlays.set("kept", box_segments(boxes[state == 1]))
        overlays.set("suppressed", box_segments(boxes[state == -1]))
        head = f"{len(trace.boxes)} candidates, {len(trace)} kept at IoU {trace.iou_threshold:.2f}; step {n} of {len(trace)}."
        if n == 0:
            t.nms_info.setText(head)
            return
        st = trace.step(n - 1)
        overlays.set("current", box_segments(boxes[[st.kept]]))
        overlays.set("victims", box_segments(boxes[st.suppressed]))
        t.nms_info.setText(head + f"\nStep {n}: keeps box {st.kept} (score {st.score:.3f}) and suppresses "
                           f"{len(st.suppressed)}.")

    # ---- focal loss -------------------------------------------------------------------------------
    def _prepared(self) -> Any:
        """``(FocalImage, matches, unmatched, targets)`` for this bundle and ground truth, or a
        message. The first call per image and ground truth starts a background job (millions of
        anchor x class terms) and says so; its end redraws the view."""
        it = self.it
        gt = self.feature.session.results.get(GT_RESULT)
        token = (id(it), id(gt))
        if self._focal is not None and self._focal[0] == token:
            return self._focal[1]
        if gt is None:
            out: Any = "Load ground truth (Ground truth layer) to see the anchor assignment and focal loss."
        elif it.kind not in ("retinanet", "fcos"):
            out = (f"{it.model_name} is {it.kind}: it trains with softmax cross entropy and hard negative "
                   "mining, not focal loss (RetinaNet and FCOS do).")
        else:
            self._focal = (token, "Assigning anchors and preparing the focal-loss terms…")
            run_background(lambda: _prepare_focal(it, gt), lambda res: self._on_focal(token, res),
                           lambda msg: self._on_focal(token, msg), "Focal loss", owner=self.tab)
            return self._focal[1]
        self._focal = (token, out)
        return out

    def _on_focal(self, token: tuple, result: Any) -> None:
        if self._focal is None or self._focal[0] != token:
            return  # another image or ground truth by now
        self._focal = (token, result)
        self.feature.update_view()

    def _assignment_map(self, level: int) -> tuple[np.ndarray | None, str]:
        it = self.it
        prep = self._prepared()
        if isinstance(prep, str):
            return None, prep
        m = prep[1][it.level_slices()[level]]
        codes = location_codes(m, it.grids[level], it.per_location[level])
        rgba = assignment_rgba(codes, it.image_size, it.heatmap_extent(level))
        text = (f"Level {level}: {int((m >= 0).sum())} positive, {int((m == focal.BETWEEN).sum())} ignored, "
                f"{int((m == focal.BELOW_LOW).sum())} negative anchors (green / orange / grey). ")
        return rgba, text + self._shares_text(prep)

    def _shares_text(self, prep: Any) -> str:
        t = self.tab
        fi, _, unmatched, tgt = prep
        ce = fi.shares(0.0, -1.0)
        fl = fi.shares(t.gamma_value(), t.alpha.value())
        text = (f"Easy negatives (p_t > 0.9): {ce.n_easy_neg} of {ce.n_elements} anchor-class terms. Their share "
                f"of the loss: CE {100 * ce.ce_easy_neg:.1f}% vs FL(γ {fl.gamma:.1f}, α {fl.alpha:g}) "
                f"{100 * fl.fl_easy_neg:.1f}%. Totals: CE {ce.ce_total:.1f}, FL {fl.fl_total:.2f} "
                f"({fl.n_positive_anchors} positive anchors).")
        if unmatched:
            text += f" {unmatched} ground-truth classes the model lacks count as class 0."
        if self.point is not None:
            it = self.it
            at = it.anchors_at(*self.point, max(t.level.currentIndex(), 0))
            i = int(at.flat_index[int(np.argmax(at.scores))])
            k = int(np.argmax(tgt[i])) if tgt[i].any() else int(at.labels[int(np.argmax(at.scores))])
            terms = focal.focal_terms(it.cls_logits[i, k], tgt[i, k], t.gamma_value(), t.alpha.value())
            text += (f"\nClicked anchor {i}, class {it.categories[k]} (target {int(tgt[i, k])}): "
                     f"p {float(terms['p']):.4f}, CE {float(terms['ce']):.4f}, (1 - p_t)^γ "
                     f"{float(terms['modulating']):.2e}, FL {float(terms['fl']):.2e}.")
        return text

    def _focal_text(self) -> None:
        prep = self._prepared()
        self.tab.focal_info.setText(prep if isinstance(prep, str) else self._shares_text(prep))


def _prepare_focal(it: Any, gt: Any) -> Any:
    """The model's own assignment against ``gt`` (RetinaNet's IoU rule or FCOS's centre sampling) and
    the focal-loss terms (a background job)."""
    try:
        boxes, labels, unmatched = focal.ground_truth_boxes(gt, it.categories)
        sx, sy = it.scale
        boxes = boxes / np.array([sx, sy, sx, sy], np.float32)
        if it.kind == "fcos":  # centre sampling and per-level size ranges; nothing is ignored
            m = focal.assign_fcos(it.anchors, boxes, [s.stop - s.start for s in it.level_slices()])
        else:  # RetinaNet: IoU >= 0.5 positive, < 0.4 negative, between ignored
            m = focal.assign_anchors(it.anchors, boxes)
        tgt = focal.one_hot_targets(m, labels, it.cls_logits.shape[1])
        return focal.FocalImage(it.cls_logits, tgt, m != focal.BETWEEN), m, unmatched, tgt
    except SegviewerError as err:
        return str(err)
