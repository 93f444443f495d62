"""The Internals dock's CenterNet view: objects as points, opened.

A view module in the dock's sense (:data:`KINDS`, ``set_bundle`` / ``click`` / ``draw``), drawing
from the bundle (:class:`~segviewer.adapters.centernet.CenterNetInternals`) of the one pass that
also gave the layers their boxes:

* the class heatmap at stride 4 (one class, or the max over classes) over the image;
* the 3 x 3 max-pool peak extraction: every local maximum it finds (small cyan crosses) vs the
  top-k kept above the score threshold (white crosses) and the boxes they decode (green);
* a click: the nearest kept peak (or the clicked cell), its offset head drawn as the link from the
  cell's corner to the sub-cell centre, its size head as the box around that centre, and the
  numbers of ``box = stride * (x + dx -+ w / 2, y + dy -+ h / 2)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segviewer.core.errors import SegviewerError
from segviewer.render.heatmap import heatmap_rgba
from segviewer.render.roi_grid import box_segments, cross_segments, scale_segments
from segviewer.ui.widgets.internals_centernet_tab import CenterNetTab

__all__ = ["KINDS", "CenterNetView"]

KINDS = ("centernet_heads",)


class CenterNetView:
    """The CenterNet tab and its drawing; the Internals controller routes bundles and clicks."""

    key, title, kinds = "centernet", "CenterNet", KINDS
    hint = "Click a peak (its offset and size heads)."

    def __init__(self, feature: Any) -> None:
        self.feature = feature
        self.tab = CenterNetTab()
        feature.panel.add_view(self.key, self.title, self.tab, self.kinds)
        self.it: Any = None
        self.point: tuple[float, float] | None = None
        self.picked: Any = None  # the PeakInfo drawn at the click
        self._maps: dict[int, np.ndarray] = {}
        self.tab.changed.connect(feature.update_view)

    def set_bundle(self, it: Any) -> None:
        """A new capture (or None): the class list and the counts."""
        self.it, self.point, self.picked = it, None, None
        self._maps.clear()
        combo = self.tab.cls
        combo.blockSignals(True)
        combo.clear()
        if it is not None:
            combo.addItem("max over classes", -1)
            for c in range(it.heat.shape[0]):
                name = it.categories[c + 1] if c + 1 < len(it.categories) else str(c)
                combo.addItem(name, c)
        combo.blockSignals(False)

    def status_text(self) -> str:
        it = self.it
        if it is None:
            return ""
        t = it.timings
        c, h, w = it.heat.shape
        return (f"{it.model_name}: one pass {1000 * sum(t.values()):.0f} ms (the layers' boxes and these heads), "
                f"heatmaps {c} x {h} x {w} at stride {it.stride}, {len(it.detections)} detections. {self.hint}")

    def click(self, x: float, y: float) -> None:
        if self.it is None:
            raise SegviewerError("No CenterNet internals yet.")
        self.it.at(x, y, self.tab.class_id(), self.tab.threshold())  # validates
        self.point = (x, y)

    # ---- drawing ----------------------------------------------------------------------------------
    def _heat_rgba(self, cls: int | None) -> np.ndarray:
        key = -1 if cls is None else int(cls)
        if key not in self._maps:
            m = self.it.class_map(cls)  # colours span 0 .. the map's max (at least 0.05): weak maps stay visible
            self._maps[key] = heatmap_rgba(m, 0.0, max(float(m.max()), 0.05), "magma", alpha=210, alpha_by_value=True)
        return self._maps[key]

    def draw(self, overlays: Any) -> None:
        it, t = self.it, self.tab
        if it is None:
            return
        cls, thr = t.class_id(), t.threshold()
        sx, sy = it.scale
        _, gh, gw = it.heat.shape
        s = it.stride
        overlays.image(self._heat_rgba(cls), (0.0, 0.0, gw * s * sx, gh * s * sy))
        maxima = it.peaks_of(cls)
        kept = it.kept(thr, cls)
        pk = it.peaks
        def centres(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
            return np.stack([(cols + 0.5) * s * sx, (rows + 0.5) * s * sy], 1).astype(np.float32)
        overlays.set("cells", cross_segments(centres(maxima[:, 1], maxima[:, 2]), 0.4 * s * sx)
                     if t.show_all.isChecked() and len(maxima) else None)
        overlays.set("peaks", cross_segments(centres(pk.ys[kept], pk.xs[kept]), 1.5 * s * sx)
                     if t.show_kept.isChecked() and len(kept) else None)
        overlays.set("kept", scale_segments(box_segments(it.boxes[kept]), (sx, sy))
                     if t.show_boxes.isChecked() and len(kept) else None)
        name = "max over classes" if cls is None else t.cls.currentText()
        t.counts.setText(
            f"Heatmap {name} (colours 0 .. {max(float(it.class_map(cls).max()), 0.05):.2f}): {len(maxima)} local maxima (points equal to their 3x3 max-pool; no NMS) → "
            f"top {len(pk.scores)} of all classes' {len(pk.all_cyx)} → {len(kept)} with score ≥ {thr:.2f} "
            f"(the layers show those ≥ {it.score_thresh:g}: {len(it.detections)}).")
        self._draw_click(overlays, cls, thr)

    def _draw_click(self, overlays: Any, cls: int | None, thr: float) -> None:
        it, t = self.it, self.tab
        for name in ("box", "links", "points", "anchors"):
            overlays.set(name, None)
        if self.point is None:
            self.picked = None
            t.peak.setText("Click a peak (or any cell): its offset and size heads and the box they decode.")
            return
        p = it.at(*self.point, cls, thr)
        self.picked = p
        s, (sx, sy) = it.stride, it.scale
        cell = np.array([[p.col * s, p.row * s, (p.col + 1) * s, (p.row + 1) * s]], np.float32)
        corner = np.array([p.col * s, p.row * s], np.float32)
        centre = np.array([(p.col + p.offset[0]) * s, (p.row + p.offset[1]) * s], np.float32)
        overlays.set("anchors", scale_segments(box_segments(cell), (sx, sy)))
        overlays.set("links", scale_segments(np.stack([corner, centre])[None], (sx, sy)))
        overlays.set("points", cross_segments(centre[None] * np.array([sx, sy], np.float32), 4.0))
        overlays.set("box", scale_segments(box_segments(p.box[None]), (sx, sy)))
        cname = it.categories[p.cls + 1] if p.cls + 1 < len(it.categories) else str(p.cls)
        kind = ("a local maximum" if p.is_peak else "not a local maximum") + (
            f", rank {p.rank + 1} of the top-k" if p.rank is not None else ", not in the top-k")
        b = p.box
        t.peak.setText(
            f"Cell (x {p.col}, y {p.row}), {cname}: score {p.score:.3f}, {kind}.\n"
            f"Offset head (dx, dy) = ({p.offset[0]:.3f}, {p.offset[1]:.3f}) cells (cyan, from the cell's corner); "
            f"size head (w, h) = ({p.size[0]:.2f}, {p.size[1]:.2f}) cells"
            + (f" (exp of its log w, log h = {np.log(p.size[0]):.3f}, {np.log(p.size[1]):.3f}).\n" if it.log_size else ".\n") +
            f"Box = {s} x (x + dx ∓ w/2, y + dy ∓ h/2) = ({b[0]:.1f}, {b[1]:.1f}, {b[2]:.1f}, {b[3]:.1f}) in the "
            f"model frame (white).")
