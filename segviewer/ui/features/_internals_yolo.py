"""The Internals dock's "YOLO grid" view: the bundled YOLO-style detector opened.

A view module in the dock's sense (key, title, kinds, hint, set_bundle, click, draw), drawing from
the :class:`~segviewer.adapters.yolo.YoloInternals` that the one pass produced:

* the S_h x S_w grid over the image, with a map under it (best class-specific score per cell,
  best box confidence, or one class's ``Pr(class | object)``);
* a click on a cell: its B boxes decoded from the priors (``b = sigma(t) + c``, ``p e^t``), the
  priors themselves centred on the cell, each box's confidence and the cell's class distribution;
* with ground truth loaded, the cell and prior responsible for each object (the cell holding its
  centre, the prior of best shape IoU) and, for the clicked cell, which object it answers for;
* the class-wise NMS over the class-specific scores, stepped with the shared stepper.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segviewer.analysis.focal import ground_truth_boxes
from segviewer.core.errors import SegviewerError
from segviewer.core.geometry import box_iou
from segviewer.render.heatmap import heatmap_rgba
from segviewer.render.roi_grid import box_segments, cross_segments
from segviewer.ui.features._internals_views import NmsTraceView
from segviewer.ui.widgets.internals_yolo_tab import YoloTab

__all__ = ["KINDS", "YoloGridView", "GT_RESULT", "grid_segments"]

KINDS = ("yolo_grid",)
GT_RESULT = "ground truth"  # the derived layer the ground-truth feature shows


def grid_segments(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """``(len(xs) + len(ys), 2, 2)``: vertical lines at ``xs`` and horizontal lines at ``ys``."""
    x0, x1, y0, y1 = float(xs[0]), float(xs[-1]), float(ys[0]), float(ys[-1])
    v = [((x, y0), (x, y1)) for x in xs]
    h = [((x0, y), (x1, y)) for y in ys]
    return np.asarray(v + h, np.float32).reshape(-1, 2, 2)


class YoloGridView(NmsTraceView):
    """The YOLO tab and its drawing; the Internals controller routes bundles and clicks."""

    key, title, kinds = "yolo", "YOLO grid", KINDS
    hint = "Click a cell (its boxes, confidences and class distribution)."

    def __init__(self, feature: Any) -> None:
        self.feature = feature
        self.tab = YoloTab()
        feature.panel.add_view(self.key, self.title, self.tab, self.kinds)
        self.it: Any = None
        self.cell: tuple[int, int] | None = None
        self.trace: Any = None
        self._maps: dict[str, np.ndarray] = {}
        self._gt: tuple[Any, Any] | None = None  # (id of the gt result, (boxes, labels, Assignment) or message)
        t = self.tab
        t.changed.connect(feature.update_view)
        t.stepChanged.connect(feature.update_view)
        t.nmsChanged.connect(self._new_trace)

    # ---- bundle -----------------------------------------------------------------------------------
    def set_bundle(self, it: Any) -> None:
        """A new capture (or None): the map choices, the counts and the NMS classes."""
        self.it, self.cell, self.trace, self._gt = it, None, None, None
        self._maps.clear()
        t = self.tab
        t.nms_class.blockSignals(True)
        t.nms_class.clear()
        if it is not None:
            g = it.grid
            names = it.class_names
            t.set_classes(names)
            sh, sw = g.shape
            pri = ", ".join(f"{w:.0f}x{h:.0f}" for w, h in g.priors)
            t.counts.setText(
                f"{sw} x {sh} grid (stride {g.stride} px of the {it.model_size[1]}x{it.model_size[0]} model frame), "
                f"B = {g.num_priors} boxes per cell from the priors {pri} px, C = {len(names)} classes per cell: "
                f"{sh * sw * g.num_priors} boxes x {len(names)} classes. {len(it.candidates.boxes)} class-specific "
                f"scores ≥ {it.score_thresh:g} → NMS (IoU {it.nms_thresh:g}) → {len(it.detections.boxes)} detections.")
            ids = it.candidates.class_ids
            for k in np.unique(ids):
                t.nms_class.addItem(f"{names[int(k)]} ({int((ids == k).sum())} boxes)", int(k))
            t.set_iou(it.nms_thresh)
            if len(it.keep):  # start on the class of the best detection
                t.nms_class.setCurrentIndex(max(t.nms_class.findData(int(ids[it.keep[0]])), 0))
        t.nms_class.blockSignals(False)
        self._new_trace(redraw=False)

    # ---- input ------------------------------------------------------------------------------------
    def click(self, x: float, y: float) -> None:
        if self.it is None:
            raise SegviewerError("No YOLO grid yet.")
        self.cell = self.it.cell_at(x, y)

    # ---- drawing ----------------------------------------------------------------------------------
    def draw(self, overlays: Any) -> None:
        it, t = self.it, self.tab
        if it is None:
            return
        overlays.image(self._map(t.map_kind()))
        overlays.set("cells", grid_segments(*it.grid_lines()) if t.show_grid.isChecked() else None)
        gt = self._ground_truth()
        self._draw_responsible(overlays, gt if t.show_resp.isChecked() else None)
        self._draw_cell(overlays, gt)
        self._draw_nms(overlays)

    def _map(self, what: str) -> np.ndarray:
        it = self.it
        if what not in self._maps:
            g = it.grid
            if what == "conf":
                m = g.conf.max(axis=2)
            elif what.startswith("class:"):
                m = g.class_prob[:, :, int(what.split(":")[1])]
            else:
                m = it.max_conf_map()
            s = g.stride
            extent = (0.0, 0.0, it.model_size[1] / s, it.model_size[0] / s)
            self._maps[what] = heatmap_rgba(m, 0.0, 1.0, "magma", alpha=170, out_size=it.image_size,
                                            extent=extent, alpha_by_value=True)
        return self._maps[what]

    def _ground_truth(self) -> Any:
        """``(boxes, labels, Assignment)`` of the loaded ground truth in image pixels, or a message."""
        gt = self.feature.session.results.get(GT_RESULT)
        if self._gt is not None and self._gt[0] is gt:
            return self._gt[1]
        if gt is None:
            out: Any = "Load ground truth (Ground truth layer) to see which cell is responsible for each object."
        else:
            try:
                boxes, labels, _ = ground_truth_boxes(gt, self.it.categories)
                out = (boxes, labels, self.it.responsible(boxes)) if len(boxes) else "The ground truth has no objects."
            except SegviewerError as err:
                out = str(err)
        self._gt = (gt, out)
        return out

    def _draw_responsible(self, overlays: Any, gt: Any) -> None:
        it, t = self.it, self.tab
        if gt is None or isinstance(gt, str):
            overlays.set("hover_cells", None)
            overlays.set("hover_points", None)
            t.resp.setText(gt if isinstance(gt, str) and t.show_resp.isChecked() else "")
            return
        boxes, _, a = gt
        rects = np.stack([it.cell_rect(int(r), int(c)) for r, c in zip(a.row, a.col)])
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        overlays.set("hover_cells", box_segments(rects))
        overlays.set("hover_points", cross_segments(centres, 4.0))
        shared = int((a.taken_by >= 0).sum())
        t.resp.setText(f"{len(boxes)} objects: each is the job of the cell holding its centre (green, + at the "
                       f"centre) and of that cell's prior with the best shape IoU."
                       + (f" {shared} share a cell and prior with another object: only the first is trained." if shared
                          else ""))

    def _draw_cell(self, overlays: Any, gt: Any) -> None:
        it, t = self.it, self.tab
        if self.cell is None:
            for name in ("region", "anchors", "anchors_other", "box", "points"):
                overlays.set(name, None)
            t.set_cell_bars([], [])
            return
        r, c = self.cell
        cr = it.cell(r, c)
        g = it.grid
        best = int(np.argmax(cr.conf))
        overlays.set("region", box_segments(cr.rect[None]))
        others = np.delete(cr.boxes, best, axis=0)
        overlays.set("anchors", box_segments(others))
        overlays.set("box", box_segments(cr.boxes[best][None]))
        centre = (cr.rect[:2] + cr.rect[2:]) / 2
        sx, sy = it.scale
        pw, ph = g.priors[:, 0] * sx, g.priors[:, 1] * sy
        priors = np.stack([centre[0] - pw / 2, centre[1] - ph / 2, centre[0] + pw / 2, centre[1] + ph / 2], 1)
        overlays.set("anchors_other", box_segments(priors))
        overlays.set("points", cross_segments((cr.boxes[:, :2] + cr.boxes[:, 2:]) / 2, 3.0))
        names = it.class_names
        lines = [f"Cell (row {r}, col {c}): B = {len(cr.conf)} boxes (yellow, the most confident white; the priors "
                 "dashed, centred on the cell; + the predicted centres)."]
        for b in range(len(cr.conf)):
            tx, ty, tw, th, to = (float(v) for v in cr.t[b])
            bb = cr.boxes[b]
            lines.append(f"box {b} (prior {g.priors[b, 0]:.0f}x{g.priors[b, 1]:.0f}): σ(t_x) {1 / (1 + np.exp(-tx)):.2f}, "
                         f"σ(t_y) {1 / (1 + np.exp(-ty)):.2f}, e^t_w {np.exp(tw):.2f}, e^t_h {np.exp(th):.2f} → "
                         f"({bb[0]:.0f}, {bb[1]:.0f}, {bb[2]:.0f}, {bb[3]:.0f}); confidence σ(t_o) {cr.conf[b]:.3f}")
        order = np.argsort(-cr.class_prob)
        t.set_cell_bars([(f"box {b} ({g.priors[b, 0]:.0f}x{g.priors[b, 1]:.0f})", float(cr.conf[b]), b == best)
                         for b in range(len(cr.conf))],
                        [(names[k], float(cr.class_prob[k]), k == order[0]) for k in range(len(names))])
        lines.append("Pr(class | object) of the cell: " + ", ".join(f"{names[k]} {cr.class_prob[k]:.3f}" for k in order))
        k = int(order[0])
        lines.append(f"Best class-specific score: {names[k]} x box {best} = {cr.class_prob[k]:.3f} x {cr.conf[best]:.3f} "
                     f"= {cr.class_scores[best, k]:.3f}.")
        if not isinstance(gt, str) and gt is not None:
            boxes, labels, a = gt
            mine = np.flatnonzero((a.row == r) & (a.col == c))
            if len(mine) == 0:
                lines.append("No object's centre lies in this cell: every box here is trained towards confidence 0.")
            for i in mine:
                p = int(a.prior[i])
                lab = int(labels[i])
                nm = it.categories[lab] if 0 < lab < len(it.categories) else "?"
                iou = float(box_iou(cr.boxes[p][None], boxes[i][None])[0, 0])
                lines.append(f"Responsible for object {i} ({nm}) with box {p}: its IoU with the truth is {iou:.2f} "
                             f"(the confidence target Pr(object) x IoU)"
                             + (f"; object {int(a.taken_by[i])} took this predictor first." if a.taken_by[i] >= 0 else "."))
        t.cell.setText("\n".join(lines))

    def _draw_nms(self, overlays: Any) -> None:
        t, trace = self.tab, self.trace
        if trace is None:
            t.nms_info.setText("No candidates reached the NMS.")
            for name in ("pending", "kept", "suppressed", "current", "victims"):
                overlays.set(name, None)
            return
        n = t.n_steps
        state = trace.state_after(n)
        boxes = self.it.to_image(trace.boxes)
        overlays.set("pending", box_segments(boxes[state == 0]))
        overlays.set("kept", box_segments(boxes[state == 1]))
        overlays.set("suppressed", box_segments(boxes[state == -1]))
        head = (f"{len(trace.boxes)} candidates of this class, {len(trace)} kept at IoU {trace.iou_threshold:.2f}; "
                f"step {n} of {len(trace)}.")
        if n == 0:
            overlays.set("current", None)
            overlays.set("victims", None)
            t.nms_info.setText(head)
            return
        st = trace.step(n - 1)
        overlays.set("current", box_segments(boxes[[st.kept]]))
        overlays.set("victims", box_segments(boxes[st.suppressed]))
        cand = self.it.candidates
        j = int(trace.ids[st.kept])
        r, c = (int(v) for v in cand.cell[j])
        t.nms_info.setText(head + f"\nStep {n}: keeps the box {int(cand.prior[j])} of cell (row {r}, col {c}) "
                           f"(score {st.score:.3f}) and suppresses {len(st.suppressed)}.")
