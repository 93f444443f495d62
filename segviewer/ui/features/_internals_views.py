"""Drawing for the Internals dock: our own pyqtgraph items on the canvas, and the small pure
helpers behind each view (NMS trace at a chosen threshold, PCV votes, FCN stage scores).

Everything here runs on cached numpy data; a view update is geometry from
``segviewer.analysis`` turned into segments (one ``PlotCurveItem(connect='pairs')`` per style)
or an RGBA image at the image's resolution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt

from segviewer.core.errors import SegviewerError
from segviewer.render.heatmap import heatmap_rgba
from segviewer.render.roi_grid import (
    box_segments,
    cross_segments,
    roi_align_segments,
    roi_pool_segments,
    scale_segments,
    to_pairs,
)

FCN_LAYER = "FCN stage"
Z = 5000.0  # above every layer the window stacks (layers use z < 1000)

# name -> (RGB, width, z offset, dashed)
_STYLES: dict[str, tuple[tuple[int, int, int], float, float, bool]] = {
    "box": ((255, 255, 255), 2.0, 0.0, False),
    "bins": ((255, 220, 0), 1.0, 1.0, False),
    "pool": ((255, 80, 220), 1.0, 0.5, True),
    "region": ((255, 80, 220), 2.0, 0.6, False),
    "cells": ((0, 200, 255), 1.0, 0.2, False),
    "links": ((0, 200, 255), 1.0, 0.3, False),
    "points": ((255, 60, 60), 1.5, 2.0, False),
    "hover_cells": ((0, 255, 120), 2.0, 3.0, False),
    "hover_points": ((0, 255, 120), 2.0, 3.1, False),
    "anchors": ((255, 220, 0), 2.0, 1.0, False),
    "anchors_other": ((200, 200, 200), 1.0, 0.5, True),
    "pending": ((170, 170, 170), 1.0, 0.1, True),
    "kept": ((40, 230, 90), 2.0, 1.0, False),
    "suppressed": ((255, 60, 60), 1.0, 0.8, True),
    "current": ((255, 255, 255), 3.0, 1.5, False),
    "victims": ((255, 140, 0), 2.0, 1.4, False),
    "peaks": ((255, 255, 255), 2.0, 1.0, False),
}


OBJECTNESS_MAX_PX = 2048  # the RPN objectness raster's long side at most (a big photo's full size costs ~0.1 s, 48 MB)


class Overlays:
    """The feature's canvas items: line sets by style name and one heatmap image."""

    def __init__(self, vb: pg.ViewBox) -> None:
        self.vb = vb
        self.curves: dict[str, pg.PlotCurveItem] = {}
        for name, (rgb, width, dz, dashed) in _STYLES.items():
            pen = pg.mkPen(rgb, width=width, cosmetic=True,
                           style=Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine)
            item = pg.PlotCurveItem(connect="pairs", pen=pen, antialias=False)
            item.setZValue(Z + dz)
            self.curves[name] = item
        self.heat = pg.ImageItem(axisOrder="row-major")
        self.heat.setZValue(Z - 1)
        self.attached = False
        self.segments: dict[str, np.ndarray] = {}
        self.mask_choices: Any = None  # the mask head's two readings last drawn (MaskHeadChoices)
        self.mask_galleries: dict[str, np.ndarray] | None = None  # their gallery pictures and tile rects
        self._mask_channels: tuple[str, int] | None = None  # (model, classes) the channel picker lists
        self._heat_src: np.ndarray | None = None  # what the heat item holds (re-showing it is free)
        self._objectness: dict[tuple[int, int], np.ndarray] = {}  # (id(internals), level) -> RGBA

    def items(self) -> list[Any]:
        return [self.heat, *self.curves.values()]

    def attach(self) -> None:
        if not self.attached:
            for item in self.items():
                self.vb.addItem(item)
            self.attached = True

    def detach(self) -> None:
        if self.attached:
            for item in self.items():
                self.vb.removeItem(item)
            self.attached = False

    def clear(self) -> None:
        for name in self.curves:
            self.set(name, None)
        self.heat.setVisible(False)

    def set(self, name: str, segments: np.ndarray | None) -> None:
        """Show ``(N, 2, 2)`` segments in style ``name`` (None or empty hides it)."""
        item = self.curves[name]
        if segments is None or len(segments) == 0:
            self.segments.pop(name, None)
            item.setData([], [])
            item.setVisible(False)
            return
        seg = np.asarray(segments, np.float32).reshape(-1, 2, 2)
        self.segments[name] = seg
        x, y = to_pairs(seg)
        item.setData(x, y, connect="pairs")
        item.setVisible(True)

    def screen_px(self, n: float) -> float:
        """``n`` screen pixels in image pixels at the current zoom: a marker (a keypoint, a vote peak,
        the clicked unit) stays ``n`` px on screen, legible on a 4000 x 3000 photo and not a cross
        over the whole of an 8 x 8 one (a size in image pixels was 0.7 px and 340 px there)."""
        try:
            s = float(max(abs(v) for v in self.vb.viewPixelSize()))
        except Exception:  # noqa: BLE001 - no geometry yet (never shown): image pixels
            return float(n)
        return float(n) * s if np.isfinite(s) and s > 0 else float(n)

    def count(self, name: str) -> int:
        """Number of segments drawn in style ``name``."""
        return len(self.segments.get(name, ()))

    def image(self, rgba: np.ndarray | None, rect: tuple[float, float, float, float] | None = None) -> None:
        """An RGBA image over ``rect = (x, y, w, h)`` image pixels (default: its own size at 0, 0)."""
        if rgba is None or rgba.size == 0:
            self.heat.setVisible(False)
            return
        h, w = rgba.shape[:2]
        if rgba is not self._heat_src:  # a step of the NMS stepper re-shows the same heatmap for free
            self._heat_src = rgba
            self.heat.setImage(np.ascontiguousarray(rgba), levels=None)
        self.heat.setRect(QRectF(*(rect or (0, 0, w, h))))
        self.heat.setVisible(True)

    # ---- RoI --------------------------------------------------------------------------------------
    def draw_roi(self, it: Any, index: int | None, tab: Any) -> Any:
        """RoIAlign (and RoIPool) of detection ``index``; fills the tab; returns the grid."""
        if index is None:
            tab.clear()  # not the previous image's bins
            return None
        scale = it.scale
        head = tab.head_name()
        name, grid = it.roi_align(index, head, tab.aligned.isChecked())
        seg = roi_align_segments(grid, scale)
        self.set("box", seg["box"])
        self.set("bins", seg["bins"])
        self.set("points", seg["crosses"])
        self.set("cells", seg["cells"])
        if tab.show_links.isChecked():
            self.set("links", seg["links"][seg["link_weights"] > 0])
        feat = it.features[name]
        tab.channel.blockSignals(True)
        tab.channel.setRange(0, feat.shape[0] - 1)
        tab.channel.blockSignals(False)
        ch = tab.channel.value()
        vals = grid.pooled(feat[ch])[0]
        tab.align_map.set_rgba(_block(heatmap_rgba(vals, cmap="viridis", alpha=255), 8))
        det = it.detections
        cls = int(det.groups[index])
        label = it.categories[cls] if 0 <= cls < len(it.categories) else str(cls)
        ph, pw = grid.output_size
        gh, gw = grid.sampling
        lines = [f"Detection #{index}: {label} {float(det.scores[index]):.2f}",
                 f"FPN level {name}, stride {grid.stride:g} px (model frame); {ph} x {pw} bins, "
                 f"{gh} x {gw} bilinear samples per bin ({int(grid.valid.sum())} inside the map), "
                 f"aligned={'on' if grid.aligned else 'off'}.",
                 f"Channel {ch}: RoIAlign values {vals.min():.3g} .. {vals.max():.3g}."]
        if tab.show_pool.isChecked():
            pname, pgrid = it.roi_pool(index)
            pseg = roi_pool_segments(pgrid, scale)
            self.set("pool", pseg["bins"])
            self.set("region", pseg["region"])
            diff = pgrid.difference()
            px2 = scale[0] * scale[1]  # model pixels^2 -> image pixels^2
            pvals = pgrid.pooled(it.features[pname][ch])[0]
            tab.pool_map.set_rgba(_block(heatmap_rgba(pvals, cmap="viridis", alpha=255), 8))
            c0, r0, c1, r1 = pgrid.roi_cells
            lines.append(f"RoIPool ({pname}, 7 x 7): snapped to cells x {c0}..{c1}, y {r0}..{r1}; "
                         f"difference {diff.difference * px2:.0f} px² (lost {diff.lost * px2:.0f}, "
                         f"gained {diff.gained * px2:.0f}) of a {diff.box_area * px2:.0f} px² box.")
        else:
            tab.pool_map.set_rgba(None)
        tab.info.setText("\n".join(lines))
        return grid

    def hover_bin(self, grid: Any, scale: tuple[float, float], pos: tuple[float, float] | None) -> str:
        """Highlight the sample points and feature cells of the bin under ``pos``; its description."""
        self.set("hover_cells", None)
        self.set("hover_points", None)
        if pos is None:
            return ""
        xs, ys = grid.bin_edges_image()
        mx, my = pos[0] / scale[0], pos[1] / scale[1]
        c = int(np.searchsorted(xs, mx, side="right")) - 1
        r = int(np.searchsorted(ys, my, side="right")) - 1
        ph, pw = grid.output_size
        if not (0 <= r < ph and 0 <= c < pw):
            return ""
        ok = grid.valid[r, c]
        pts = grid.points_image()[r, c][ok].reshape(-1, 2) * np.asarray(scale)
        cells = grid.cells[r, c][ok].reshape(-1, 2)
        w = grid.weights[r, c][ok].reshape(-1)
        cells = np.unique(cells[w > 0], axis=0) if cells.size else cells
        s = grid.stride
        boxes = np.stack([cells[:, 1] * s, cells[:, 0] * s, (cells[:, 1] + 1) * s, (cells[:, 0] + 1) * s], 1) \
            if len(cells) else np.zeros((0, 4))
        self.set("hover_cells", scale_segments(box_segments(boxes), scale))
        self.set("hover_points", cross_segments(pts, 3.0))
        return (f"Bin ({r}, {c}): {len(pts)} sample points reading {len(cells)} feature cells "
                f"(rows {', '.join(str(v) for v in sorted(set(cells[:, 0].tolist())))}; "
                f"cols {', '.join(str(v) for v in sorted(set(cells[:, 1].tolist())))}).")

    # ---- RPN & NMS --------------------------------------------------------------------------------
    def draw_rpn(self, it: Any, tab: Any, point: tuple[float, float] | None, trace: Any,
                 image: np.ndarray | None) -> None:
        level = max(tab.level.currentIndex(), 0)
        h, w = it.image_size
        if tab.objectness.isChecked():
            key = (id(it), level)
            if key not in self._objectness:
                # this bundle's levels only: on a 4000 x 3000 photo each full-size RGBA was 48 MB
                self._objectness = {k: v for k, v in self._objectness.items() if k[0] == id(it)}
                m = it.objectness_map(level)
                # at most OBJECTNESS_MAX_PX on the long side, stretched over the image: still several
                # screen pixels a cell (a level has at most a quarter of the model frame's pixels)
                f = min(1.0, OBJECTNESS_MAX_PX / max(h, w))
                size = (max(1, round(h * f)), max(1, round(w * f)))
                self._objectness[key] = heatmap_rgba(m, 0.0, 1.0, "magma", alpha=200, out_size=size,
                                                     extent=it.heatmap_extent(m.shape), alpha_by_value=True)
            self.image(self._objectness[key], (0.0, 0.0, float(w), float(h)))
        scale = it.scale
        if point is not None:
            at = it.anchors_at(point[0], point[1], level)
            probs = it.anchor_objectness(at)
            self.set("anchors", scale_segments(box_segments(at.boxes), scale))
            others = [it.anchors_at(point[0], point[1], k).boxes for k in range(len(it.objectness)) if k != level]
            self.set("anchors_other", scale_segments(box_segments(np.concatenate(others)), scale) if others else None)
            rows = ", ".join(f"{lab}: {p:.2f}" for lab, p in zip(at.labels(), probs))
            tab.anchors.setText(f"Cell (row {at.row}, col {at.col}) of level {level}, stride {at.stride[0]} px; "
                                f"{len(at.boxes)} anchors (yellow; other levels dashed), objectness {rows}.")
        self._draw_nms(it, tab, trace)

    def _draw_nms(self, it: Any, tab: Any, trace: Any) -> None:
        if trace is None:
            tab.nms_info.setText("No RPN boxes reached this NMS." if tab.nms_stage() == "rpn"
                                 else "No class boxes reached the box head's NMS.")
            return
        n = tab.n_steps
        state = trace.state_after(n)
        boxes = it.to_image(trace.boxes)
        self.set("pending", box_segments(boxes[state == 0]))
        self.set("kept", box_segments(boxes[state == 1]))
        self.set("suppressed", box_segments(boxes[state == -1]))
        head = (f"{len(trace.boxes)} candidates, {len(trace)} kept at IoU {trace.iou_threshold:.2f}; "
                f"step {n} of {len(trace)}.")
        if n == 0:
            tab.nms_info.setText(head + " Press Step: the best-scoring box survives and removes the "
                                 "boxes overlapping it by more than the threshold.")
            return
        st = trace.step(n - 1)
        self.set("current", box_segments(boxes[[st.kept]]))
        self.set("victims", box_segments(boxes[st.suppressed]))
        pairs = [f"{float(s):.2f}@{v:.2f}" for s, v in zip(trace.scores[st.suppressed], st.ious)]
        ious = ", ".join(pairs[:8]) + (f", … {len(pairs) - 8} more" if len(pairs) > 8 else "")  # the RPN's can be many
        tab.nms_info.setText(head + f"\nStep {n}: keeps box {st.kept} (score {st.score:.2f}, white) and "
                             f"suppresses {len(st.suppressed)} (orange; score@IoU: {ious or 'none'}).")

    # ---- mask head --------------------------------------------------------------------------------
    def draw_mask(self, it: Any, index: int | None, tab: Any) -> Any:
        """The clicked detection's mask head: its class's logits, the mask pasted on the image
        (per-class sigmoid, or softmax across classes), every class's channel both ways as two
        galleries. Returns the :class:`~segviewer.analysis.mask_head.MaskHeadChoices` drawn."""
        from segviewer.analysis.mask_head import mask_head_choices
        from segviewer.render.mask_gallery import gallery_rgba

        self.mask_choices = self.mask_galleries = None
        if it.mask_logits is None:
            raise SegviewerError(f"{it.model_name} has no mask head (a Faster R-CNN); pick a Mask R-CNN.")
        if index is None:
            tab.clear()  # not the previous image's (or detection's) logits and galleries
            return None
        thr = tab.value()
        cls = int(it.detections.groups[index])
        everything = getattr(it, "mask_logits_all", None)
        choices = None if everything is None else mask_head_choices(everything[index], cls, thr)
        ch = cls
        if choices is not None:
            c = choices.logits.shape[0]
            if self._mask_channels != (it.model_name, c):  # the channel picker lists this model's classes
                self._mask_channels = (it.model_name, c)
                tab.set_channels([(_class_name(it, k), k) for k in range(choices.foreground, c)])
            picked = tab.channel_class()
            ch = picked if picked is not None and choices.foreground <= picked < c else cls
        logits = it.mask_logits[index] if ch == cls else choices.logits[ch]
        tab.logits.set_rgba(_block(heatmap_rgba(logits, cmap="diverging", alpha=255, symmetric=True), 6))
        tab.logits_title.setText("Raw logits of the predicted class (blue < 0 < red)" if ch == cls else
                                 f"Raw logits of the {_class_name(it, ch)} channel; the box head says "
                                 f"{_class_name(it, cls)} (blue < 0 < red)")
        rule = tab.rule_name() if choices is not None else "sigmoid"
        if rule == "softmax":
            probs, (x0, y0) = it.paste_probs(index, choices.softmax[ch])
        elif ch == cls:
            probs, (x0, y0) = it.mask_probs(index)  # the model's own mask
        else:
            probs, (x0, y0) = it.paste_probs(index, choices.sigmoid[ch])
        self.set("box", box_segments(it.to_image(it.detections.boxes[[index]])))
        self._mask_galleries(it, choices, tab, gallery_rgba, ch)
        if probs.size == 0:
            tab.info.setText("The mask's box lies outside the image.")
            return choices
        rgba = np.zeros((*probs.shape, 4), np.uint8)
        inside = probs > thr
        rgba[..., :3] = (0, 200, 255)
        rgba[..., 3] = np.where(inside, 150, np.round(probs * 60)).astype(np.uint8)
        self.image(rgba, (x0, y0, probs.shape[1], probs.shape[0]))
        m = logits.shape[0]
        how = "per-class sigmoid" if rule == "sigmoid" else "softmax across classes"
        if ch != cls:
            how += f" of the {_class_name(it, ch)} channel"
        tab.info.setText(f"{m} x {m} logits {logits.min():.2f} .. {logits.max():.2f}; pasted ({how}) into the box "
                         f"(padded by one cell, bilinear) as {probs.shape[1]} x {probs.shape[0]} px; "
                         f"{int(inside.sum())} px above {thr:.2f}.")
        return choices

    def _mask_galleries(self, it: Any, choices: Any, tab: Any, gallery_rgba: Any, channel: int) -> None:
        if choices is None:
            tab.sigmoid_gallery.set_rgba(None)
            tab.softmax_gallery.set_rgba(None)
            tab.choices.setText("This capture kept only the predicted class's channel.")
            return
        fg, c = choices.foreground, choices.logits.shape[0]
        names = [_class_name(it, k) for k in range(fg, c)]
        zoom = 3 if c - fg <= 9 else 2
        hi = choices.predicted - fg
        other = channel - fg if channel != choices.predicted else None  # the picked channel, framed white
        sig, rects = gallery_rgba(choices.sigmoid[fg:], names, hi, zoom=zoom, picked=other)
        soft, _ = gallery_rgba(choices.softmax[fg:], names, hi, zoom=zoom, picked=other)
        tab.sigmoid_gallery.set_rgba(sig)
        tab.softmax_gallery.set_rgba(soft)
        self.mask_choices, self.mask_galleries = choices, {"sigmoid": sig, "softmax": soft, "rects": rects}
        a, b = choices.sigmoid_mask, choices.softmax_mask
        m = a.shape[0]
        label = names[hi]
        f16 = " (kept as float16: many classes)" if it.mask_logits_all.dtype == np.float16 else ""
        tab.choices.setText(
            f"{label}: {int(a.sum())} of {m * m} cells above {choices.threshold:.2f} with its own sigmoid, "
            f"{int(b.sum())} with a softmax across the {c - fg} classes; IoU of the two {m} x {m} masks "
            f"{choices.iou():.2f}. {choices.other_class_cells()} cells of the sigmoid mask have another class's "
            f"logit higher: a softmax hands them over.\nMask R-CNN trains only the box class's channel, with a "
            f"per-pixel sigmoid, so classes never compete for a pixel; the paper's ablation (a softmax trained as "
            f"such) drops COCO mask AP from 30.3 to 24.8. Here the softmax reads the same sigmoid-trained "
            f"logits{f16}; channel 0 (background, never a mask target) is left out.")

def _class_name(it: Any, k: int) -> str:
    return str(it.categories[k]) if 0 <= k < len(it.categories) else f"class {k}"


def _block(rgba: np.ndarray, k: int) -> np.ndarray:
    """Nearest-neighbour enlargement so a 7 x 7 map is crisp in a small view."""
    return np.ascontiguousarray(np.repeat(np.repeat(rgba, k, 0), k, 1))


def nms_trace_for(it: Any, stage: str, group: int, iou_threshold: float) -> Any:
    """One group of an NMS replayed at ``iou_threshold`` with the full call's group offsets (so at
    the model's threshold it is exactly the model's NMS): ``stage`` "box" is the box head's
    per-class NMS (``group`` a class), "rpn" the RPN's per-level NMS (``group`` an FPN level)."""
    if stage == "rpn":
        return it.rpn_nms(int(group), float(iou_threshold))
    if stage != "box":
        raise SegviewerError(f"Unknown NMS stage {stage!r}; use 'box' or 'rpn'.")
    return it.box_nms(int(group), float(iou_threshold))


class NmsTraceView:
    """For a view whose tab steps a class-wise NMS (the NmsStepping controls) over its bundle's
    ``nms(class_id, iou)``: a new class or IoU threshold restarts the trace at step 0."""

    it: Any
    tab: Any
    feature: Any
    trace: Any

    def _new_trace(self, redraw: bool = True) -> None:
        t = self.tab
        self.trace = None
        if self.it is not None and t.nms_class.count():
            self.trace = self.it.nms(int(t.nms_class.currentData()), t.iou_threshold())
        t.max_steps = 0 if self.trace is None else len(self.trace)
        t.n_steps = -1
        t.go(0)
        if redraw:
            self.feature.update_view()


def table_legend_rgba(k: int = 14) -> np.ndarray:
    """The 9 x 9 PCV table as a colored picture: one color per cell, the voting pixel white."""
    import cv2

    from segviewer.analysis.voting import LOOKUP_TABLE
    from segviewer.render.heatmap import colormap_lut

    lut = colormap_lut("turbo")[np.linspace(20, 235, int(LOOKUP_TABLE.max()) + 1).astype(int)]
    rgb = _block(lut[LOOKUP_TABLE], k)[..., :3].copy()
    c = 4 * k
    rgb[c: c + k, c: c + k] = 255
    for r in range(9):
        for q in range(9):
            if r in (0, 3, 6) and q in (0, 3, 6) or 3 <= r <= 5 and 3 <= q <= 5:
                cv2.putText(rgb, str(int(LOOKUP_TABLE[r, q])), (q * k + 1, r * k + k - 3),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 0, 0), 1, cv2.LINE_AA)
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])


PCV_SOURCE = "pcv"  # the votes tab's source key for the PCV net (others are instance model ids)


class VotesState:
    """Votes on a grid, the accumulator, its peaks and back-projected instances, one picked peak.

    Two sources: the PCV net's own soft votes (``from_pcv``: an ``(18, h, w)`` stride-4 grid, one
    table unit = ``cell_size`` grid pixels) and pseudo-votes from an instance result's masks
    (``from_results``: one-hot, at pixel resolution). ``scale = (sx, sy)`` maps grid pixels to
    image pixels; everything drawn is placed with it."""

    def __init__(self, source: str, kind: str, cells: np.ndarray, acc: np.ndarray, peaks: Any, geometry: Any,
                 image_size: tuple[int, int], scale: tuple[float, float] = (1.0, 1.0),
                 probs: np.ndarray | None = None, keep: np.ndarray | None = None) -> None:
        self.source, self.kind, self.cells, self.acc, self.peaks = source, kind, cells, acc, peaks
        self.geometry, self.image_size, self.scale, self.probs, self.keep = geometry, image_size, scale, probs, keep
        self.picked: int | None = None
        self.mask: np.ndarray | None = None  # the picked peak's voters on the grid
        self.rgba = heatmap_rgba(acc, cmap="inferno", alpha=220, alpha_by_value=True)  # drawn once
        self.picked_rgba: np.ndarray | None = None
        self._labels: np.ndarray | None = None
        self._instances_rgba: np.ndarray | None = None
        self.origin: Any = None  # what the votes were built from (a Detections, a VotePrediction)

    # ---- building -----------------------------------------------------------------------------
    @classmethod
    def from_results(cls, results: dict[str, Any], derived: set[str], unit: int, threshold: float,
                     min_score: float = 0.0, max_instances: int = 50, source: str | None = None) -> VotesState:
        """Pseudo-votes: every mask pixel of ``source`` (default: the first instance result with
        masks) votes for its mask's centroid; ``unit`` pixels per table unit."""
        from segviewer.analysis.voting import (
            VoteGeometry,
            accumulate,
            find_peaks,
            one_hot_votes,
            pseudo_votes,
        )
        from segviewer.core.results import Detections

        names = instance_sources(results, derived)
        name = source if source in names else (names[0] if names else None)
        if name is None:
            raise SegviewerError("Pseudo-votes need an instance result with masks; select an instance "
                                 "model such as shapes_maskrcnn, or pick the PCV model as the source.")
        det: Detections = results[name]
        keep = np.flatnonzero(det.scores >= min_score)[:max_instances]
        if keep.size == 0:
            raise SegviewerError(f"{name} has no instance at or above the score threshold {min_score:.2f}.")
        geom = VoteGeometry(unit=int(unit))
        full = det.masks.select(keep).to_full()
        cells = pseudo_votes(full, geom)
        acc = accumulate(one_hot_votes(cells, geom, channel_axis=0), geom, channel_axis=0)
        state = cls(name, "pseudo", cells, acc, find_peaks(acc, threshold), geom, tuple(full.shape[1:]))
        state.origin = det
        return state

    @classmethod
    def from_pcv(cls, model_id: str, vp: Any, threshold: float, isthing: tuple[bool, ...] = ()) -> VotesState:
        """The PCV net's votes (``adapters.shapes.VotePrediction``): accumulated on its own grid with
        the table at ``cell_size`` grid pixels per unit; the back-projected instances are kept to
        the pixels its semantic head calls a thing (``isthing`` per class, when known)."""
        from segviewer.analysis.voting import VoteGeometry, accumulate, find_peaks

        unit = float(vp.cell_size)
        if abs(unit - round(unit)) > 1e-6 or unit < 1:
            raise SegviewerError(f"{model_id}'s table unit is {unit:g} grid pixels; the accumulator needs a "
                                 "whole number.")
        probs = np.asarray(vp.votes, np.float32)
        geom = VoteGeometry(unit=int(round(unit)))
        acc = accumulate(probs, geom, channel_axis=0)
        sem = vp.semantic
        keep = None
        if isthing and len(isthing) == len(sem.categories) and any(isthing):
            keep = np.asarray(isthing, bool)[sem.labels]
        state = cls(model_id, "pcv", probs.argmax(0), acc, find_peaks(acc, threshold), geom,
                    tuple(sem.labels.shape[:2]), (float(vp.scale_x), float(vp.scale_y)), probs, keep)
        state.origin = vp
        return state

    # ---- derived ------------------------------------------------------------------------------
    @property
    def rect(self) -> tuple[float, float, float, float]:
        """Where the grid lies on the image: ``(x, y, w, h)`` in image pixels."""
        gh, gw = self.acc.shape
        return 0.0, 0.0, gw * self.scale[0], gh * self.scale[1]

    def grid_labels(self) -> np.ndarray:
        """``(h, w)`` int32 on the grid: ``i + 1`` where peak ``i`` back-projects (stronger wins)."""
        from segviewer.analysis.voting import backproject

        if self._labels is None:
            out = np.zeros(self.cells.shape, np.int32)
            for i in range(len(self.peaks) - 1, -1, -1):
                out[backproject(self.cells, tuple(self.peaks.positions[i]), self.geometry)] = i + 1
            self._labels = out
        return self._labels

    def image_instances(self) -> np.ndarray:
        """``(H, W)`` int32 instance ids at image resolution (0 = none): the grid's back-projected
        instances, kept to thing pixels for the PCV net."""
        from segviewer.analysis.voting import image_instances

        return image_instances(self.grid_labels(), self.image_size, self.scale, self.keep)

    def instances_rgba(self) -> np.ndarray:
        """Every back-projected instance in its own color at image resolution (computed once)."""
        if self._instances_rgba is None:
            from segviewer.core.colors import category_palette

            lab = self.image_instances()
            n = len(self.peaks)
            lut = np.zeros((n + 1, 4), np.uint8)
            if n:
                lut[1:, :3] = category_palette(n + 1)[1:, :3]
                lut[1:, 3] = 170
            self._instances_rgba = lut[lab]
        return self._instances_rgba

    def describe(self) -> str:
        a, gh, gw = self.acc, *self.acc.shape
        if self.kind == "pcv":
            text = (f"The PCV model {self.source}'s votes on its {gw} x {gh} grid (one grid pixel = "
                    f"{self.scale[0]:.1f} x {self.scale[1]:.1f} image px; one table unit = {self.geometry.unit} grid px)")
        else:
            text = f"Pseudo-votes from {self.source}'s masks (each pixel votes for its mask's centroid)"
        text += (f"; accumulator max {a.max():.2f}, {len(self.peaks)} peaks above {self.peaks.threshold:g}. "
                 "Click a peak to back-project its instance; hover for a pixel's votes.")
        if self.picked is not None and self.mask is not None:
            text += f"\nPeak {self.picked}: {int(self.mask.sum())} grid pixels vote for it."
        return text

    # ---- interaction --------------------------------------------------------------------------
    def pick(self, x: float, y: float) -> None:
        from segviewer.analysis.voting import backproject

        i = self.peaks.at(x / self.scale[0], y / self.scale[1])
        self.picked = i
        self.mask = backproject(self.cells, tuple(self.peaks.positions[i]), self.geometry)
        self.picked_rgba = self.rgba.copy()
        self.picked_rgba[self.mask] = (0, 255, 160, 170)

    def hover(self, x: float, y: float) -> tuple[str, np.ndarray | None]:
        """The vote distribution of the grid pixel under image point (x, y): one line and the
        table painted with it (None off the grid)."""
        from segviewer.analysis.voting import distribution_table, image_to_grid

        rc = image_to_grid(x, y, self.scale, self.cells.shape)
        if rc is None:
            return "", None
        r, c = rc
        k = self.geometry.num_cells
        if self.probs is not None:
            p = self.probs[:, r, c].astype(np.float64)
        else:
            p = np.zeros(k + 1)
            p[int(self.cells[r, c])] = 1.0
        top = np.argsort(-p, kind="stable")[:3]
        parts = [f"{'abstain' if i == k else f'cell {i}'} {p[i]:.2f}" for i in top if p[i] > 0.005]
        where = f"grid ({r}, {c})" if self.kind == "pcv" else f"pixel ({c}, {r})"
        text = f"Votes of {where}: " + ", ".join(parts)
        table = distribution_table(p[:k], self.geometry)
        rgba = _block(heatmap_rgba(table, 0.0, max(float(table.max()), 1e-6), "viridis", alpha=255), 14)
        return text, rgba

    def draw(self, overlays: Overlays, instances: bool = False) -> None:
        if instances:
            h, w = self.image_size
            overlays.image(self.instances_rgba(), (0, 0, w, h))
        else:
            overlays.image(self.rgba if self.picked_rgba is None else self.picked_rgba, self.rect)
        pos = (self.peaks.positions[:, ::-1].astype(np.float64) + 0.5) * np.asarray(self.scale)
        overlays.set("peaks", cross_segments(pos, overlays.screen_px(5.0)) if len(pos) else None)


def instance_sources(results: dict[str, Any], derived: set[str]) -> list[str]:
    """The results that can give pseudo-votes: instance results with masks, models first."""
    from segviewer.core.results import Detections

    names = [k for k, v in results.items() if isinstance(v, Detections) and v.masks is not None]
    return [k for k in names if k not in derived] + [k for k in names if k in derived]


def fcn_stage_report(stages: dict[str, Any], path: Path | None, size: tuple[int, int]) -> str:
    """Each stage's mean IoU against the ground truth beside the image, when there is one."""
    from segviewer.analysis.metrics import semantic_metrics
    from segviewer.core.groundtruth import find_ground_truth

    if path is None:
        return "Stages ready (no file, so no ground truth)."
    try:
        gt = find_ground_truth(path, image_size=size)
    except SegviewerError as err:
        return f"Stages ready; the ground truth is unusable: {err}"
    sem = gt.semantic
    first = next(iter(stages.values()))
    if sem is None:
        return f"Stages ready; no semantic ground truth beside {Path(path).name}."
    if tuple(sem.categories) != tuple(first.categories):
        return "Stages ready; the ground truth's classes differ from the FCN's, so no mean IoU."
    n = len(first.categories)
    parts = [f"FCN-{s} mIoU {100 * semantic_metrics(sem.labels, m.labels, n)['mean_iou']:.1f}%"
             for s, m in stages.items()]
    return "Against the ground truth: " + ", ".join(parts) + "."
