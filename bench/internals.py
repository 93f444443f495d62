"""Internals views: update time of each view after ONE cached forward pass, on a 1280x720 image.

The forward passes run as the app's worker runs them: ``predict_with_internals`` through the
adapter (Mask R-CNN R50-FPN with random weights and torchvision's default 800/1333 resize; the
bundled PCV net for real votes), i.e. the adapter's own ``predict`` with hooks attached, giving
the layers' result and the internals at once. The plain ``predict`` is timed beside it (what the
hooks and the replay cost). Then every view the UI offers is timed as it would be on a click or a
slider move: compute (numpy geometry / replay) + produce what the canvas draws (segments) or an
RGBA layer. Target: each view under 100 ms on this CPU.

    nice -n 10 python bench/internals.py [--repeats 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, pin_threads, table, time_ms  # noqa: E402

TARGET_MS = 100.0


def _image(h: int = 720, w: int = 1280) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(0)
    img = np.full((h, w, 3), 90, np.uint8)
    for _ in range(25):
        c = tuple(int(v) for v in rng.integers(0, 255, 3))
        x, y = (int(v) for v in rng.integers(0, (w, h)))
        cv2.circle(img, (x, y), int(rng.integers(15, 120)), c, -1)
    return img


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    pin_threads(args.threads)

    from segviewer.adapters.base import PredictParams
    from segviewer.adapters.one_pass import predict_with_internals
    from segviewer.adapters.registry import create_adapter
    from segviewer.analysis.voting import (
        PCV_THRESHOLD,
        VoteGeometry,
        accumulate,
        backproject,
        distribution_table,
        find_peaks,
        image_instances,
        instances_from_votes,
        one_hot_votes,
        pseudo_votes,
    )
    from segviewer.render.heatmap import heatmap_rgba, make_legend
    from segviewer.render.roi_grid import (
        box_segments,
        rasterize_segments,
        roi_align_segments,
        roi_pool_segments,
        scale_segments,
    )
    from segviewer.ui.model_host import random_init_factory

    adapter = random_init_factory(args.threads)("maskrcnn_resnet50_fpn")
    adapter.load("cpu")
    img = _image()
    h, w = img.shape[:2]
    params = PredictParams(min_score=0.0)
    t0 = time.perf_counter()
    adapter.predict(img, params)
    plain_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    dets, it = predict_with_internals(adapter, img, params)
    forward_ms = (time.perf_counter() - t0) * 1000
    print(f"# {machine_line()} · torch threads {args.threads}")
    print(f"# plain predict (what the layers need): {plain_ms:.0f} ms; the same pass with hooks, giving the "
          f"result AND the internals: {forward_ms:.0f} ms ({it.timings.summary()}); "
          f"{len(dets)} detections; model frame {it.model_size}, padded {it.padded_size}; replay matches: "
          f"{it.replay_matches}; internals {it.nbytes() / 2**20:.0f} MiB")
    print("# counts: " + ", ".join(f"{k} {v}" for k, v in it.counts.items()))

    b = it.to_image(it.detections.boxes)
    areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    pick = int(np.argmax(areas))  # the largest detection: the most sample points to draw
    cx, cy = float(b[pick, 0] + b[pick, 2]) / 2, float(b[pick, 1] + b[pick, 3]) / 2
    scale = it.scale

    def roi_box() -> None:
        i = it.detection_at(cx, cy)
        _, grid = it.roi_align(i, "box")
        roi_align_segments(grid, scale)

    def roi_mask() -> None:
        _, grid = it.roi_align(it.detection_at(cx, cy), "mask")
        roi_align_segments(grid, scale)

    def roi_pool() -> None:
        _, grid = it.roi_pool(it.detection_at(cx, cy))
        grid.difference()
        roi_pool_segments(grid, scale)

    def anchors() -> None:
        for level in range(len(it.objectness)):
            at = it.anchors_at(cx, cy, level)
            it.anchor_objectness(at)
            scale_segments(box_segments(at.boxes), scale)

    def objectness() -> None:
        m = it.objectness_map(0)
        heatmap_rgba(m, 0, 1, "magma", out_size=(h, w), extent=it.heatmap_extent(m.shape), alpha_by_value=True)
        make_legend(0, 1, "magma", "objectness")

    def fpn_energy() -> None:
        e = it.feature_energy("0")
        heatmap_rgba(e, out_size=(h, w), extent=it.heatmap_extent(e.shape))

    cls = int(it.detections.groups[pick])
    n_cls = int((it.det_candidates.groups == cls).sum())
    n_lvl = int((it.rpn_candidates.groups == 0).sum())

    def rpn_nms_level() -> None:  # the stepper's RPN mode at a new threshold
        it.rpn_nms(0, 0.5).step(0)

    def rpn_nms_all() -> None:
        it.rpn_nms().step(0)

    def box_nms_class() -> None:
        it.box_nms(cls).step(0)

    def mask_one() -> None:
        p, _ = it.mask_probs(it.detection_at(cx, cy))
        _ = p > 0.5

    def masks_all() -> None:
        it.masks(0.5)

    def export_grid() -> None:
        _, grid = it.roi_align(pick, "box")
        seg = roi_align_segments(grid, scale)
        rasterize_segments(seg["bins"], (h, w))
        rasterize_segments(seg["links"], (h, w), weights=seg["link_weights"])

    # PCV on the full frame: pseudo-votes from the detections' masks (the top 30), unit 4 px
    geom = VoteGeometry(unit=4)
    masks = it.masks(0.5)
    full = masks.select(np.arange(min(30, len(masks)))).to_full()
    cells = pseudo_votes(full, geom)
    votes = one_hot_votes(cells, geom, channel_axis=0)  # (C, H, W): the network's layout
    acc = accumulate(votes, geom, channel_axis=0)
    small = one_hot_votes(cells[2::4, 2::4], VoteGeometry(unit=1), channel_axis=0)  # stride-4 output

    def pcv_accumulate() -> None:
        accumulate(votes, geom, channel_axis=0)

    def pcv_accumulate_stride4() -> None:
        accumulate(small, VoteGeometry(unit=1), channel_axis=0)

    def pcv_peaks_backproject() -> None:
        peaks = find_peaks(acc, 2.0)
        for i in range(min(len(peaks), 30)):
            backproject(cells, tuple(peaks.positions[i]), geom)

    def pcv_heatmap() -> None:
        heatmap_rgba(acc, cmap="inferno", alpha_by_value=True)

    # the bundled PCV net's real votes: one pass (cached by the worker), then the Votes tab's views
    pcv = create_adapter("shapes_pcv")
    pcv.load("cpu")
    t0 = time.perf_counter()
    sem, vp = predict_with_internals(pcv, img)
    pcv_ms = (time.perf_counter() - t0) * 1000
    pgeom = VoteGeometry(unit=round(vp.cell_size))
    pacc = accumulate(vp.votes, pgeom, channel_axis=0)
    pcells = vp.votes.argmax(0)
    thing = np.asarray(pcv.card.isthing, bool)[sem.labels]
    ppeaks = find_peaks(pacc, PCV_THRESHOLD)
    print(f"# PCV net (bundled shapes_pcv) one pass with its votes: {pcv_ms:.0f} ms; vote grid "
          f"{vp.votes.shape[2]}x{vp.votes.shape[1]}, {len(ppeaks)} peaks above {PCV_THRESHOLD:g}")

    def pcv_model_votes() -> None:  # a threshold change: accumulator, peaks, instances on the image
        grid, _, _ = instances_from_votes(vp.votes, PCV_THRESHOLD, pgeom, channel_axis=0)
        image_instances(grid, (h, w), (vp.scale_x, vp.scale_y), thing)

    def pcv_model_heatmap() -> None:
        heatmap_rgba(pacc, cmap="inferno", alpha=220, alpha_by_value=True)

    def pcv_model_pick() -> None:  # a click on a peak
        if len(ppeaks):
            r, c = ppeaks.positions[0]
            ppeaks.at(c + 0.5, r + 0.5)
            backproject(pcells, (int(r), int(c)), pgeom)

    def pcv_model_hover() -> None:  # a pixel's vote distribution on the table
        r, c = (s // 2 for s in pcells.shape)
        t = distribution_table(vp.votes[:, r, c], pgeom)
        heatmap_rgba(t, 0.0, float(t.max()) or 1.0, "viridis")

    views = {
        "RoIAlign grid 7x7 (box head) + segments": roi_box,
        "RoIAlign grid 14x14 (mask head) + segments": roi_mask,
        "RoIPool grid + area difference + segments": roi_pool,
        "anchors at click, all 5 levels + objectness": anchors,
        "RPN objectness heatmap (level 0) -> RGBA 1280x720": objectness,
        "FPN energy heatmap (P2) -> RGBA 1280x720": fpn_energy,
        f"RPN NMS stepper, level P2 ({n_lvl} boxes)": rpn_nms_level,
        f"box-head NMS stepper, one class ({n_cls} boxes)": box_nms_class,
        "mask logits pasted, one detection": mask_one,
        f"mask logits pasted, all {len(it.detections)} detections": masks_all,
        "export: RoIAlign grid + links rasterised 1280x720": export_grid,
        "PCV accumulate 1280x720x18 (unit 4 px, full res)": pcv_accumulate,
        "PCV accumulate 320x180x18 (stride-4 output, unit 1)": pcv_accumulate_stride4,
        "PCV peaks + back-projection (30 peaks)": pcv_peaks_backproject,
        "PCV accumulator heatmap -> RGBA": pcv_heatmap,
        "PCV model votes: accumulate + peaks + instances 1280x720": pcv_model_votes,
        "PCV model votes: accumulator heatmap -> RGBA": pcv_model_heatmap,
        "PCV model votes: click a peak (back-projection)": pcv_model_pick,
        "PCV model votes: hover, a pixel's distribution": pcv_model_hover,
    }
    t0 = time.perf_counter()
    it.feature_energy("0")
    print(f"# first FPN energy map (P2, then cached): {(time.perf_counter() - t0) * 1000:.0f} ms")
    t0 = time.perf_counter()
    rpn_nms_all()
    print(f"# (not a view) RPN NMS trace over all {it.counts['rpn_candidates']} candidates, 5 levels: "
          f"{(time.perf_counter() - t0) * 1000:.0f} ms")
    t0 = time.perf_counter()
    it.box_nms()
    print(f"# (not a view) full box-head NMS trace over all {it.counts['det_candidates']} class boxes: "
          f"{(time.perf_counter() - t0) * 1000:.0f} ms; a view steps one class at a time")
    views.update(_dense_views(args.threads, img))
    views.update(_upsampling_views(img))
    views.update(_yolo_views(img))
    views.update(_query_views(args.threads, img))
    views.update(_centernet_views(img))
    views.update(_yolact_views(img))
    rows = []
    for name, fn in views.items():
        ms = float(np.median(time_ms(fn, repeats=args.repeats, warmup=1)))
        rows.append((name, ms, "ok" if ms <= TARGET_MS else "OVER"))
    print(table(rows, ["view (after a cached forward pass)", "median ms", f"<= {TARGET_MS:.0f} ms"]))
    return 0 if all(r[2] == "ok" for r in rows) else 1


def _dense_views(threads: int, img: np.ndarray) -> dict:
    """The dense-heads tab's views on a random-init RetinaNet (torchvision's default resize): one
    hooked pass, then the score map, anchors at a click, a decoded candidate, the class NMS stepper,
    the assignment map and a gamma move of the focal-loss shares (issue #15)."""
    from segviewer.adapters.base import PredictParams
    from segviewer.adapters.one_pass import predict_with_internals
    from segviewer.analysis import dense, focal
    from segviewer.render.dense import assignment_rgba, location_codes
    from segviewer.render.heatmap import heatmap_rgba
    from segviewer.render.roi_grid import box_segments, scale_segments
    from segviewer.ui.model_host import random_init_factory

    adapter = random_init_factory(threads)("retinanet_resnet50_fpn")
    adapter.load("cpu")
    h, w = img.shape[:2]
    t0 = time.perf_counter()
    _, it = predict_with_internals(adapter, img, PredictParams(min_score=0.0))
    ms = (time.perf_counter() - t0) * 1000
    cx, cy = w / 2, h / 2
    gt = np.array([[w * 0.3, h * 0.3, w * 0.6, h * 0.8], [50, 60, 170, 200]], np.float32)
    sx, sy = it.scale
    m = focal.assign_anchors(it.anchors, gt / np.array([sx, sy, sx, sy], np.float32))
    tgt = focal.one_hot_targets(m, np.array([1, 3]), it.cls_logits.shape[1])
    t0 = time.perf_counter()
    fi = focal.FocalImage(it.cls_logits, tgt, m != focal.BETWEEN)
    prep_ms = (time.perf_counter() - t0) * 1000
    print(f"# RetinaNet (random init) one hooked pass {ms:.0f} ms; {len(it.anchors)} anchors x "
          f"{it.cls_logits.shape[1]} classes; replay matches {it.replay_matches}; focal preparation "
          f"(once per image and ground truth) {prep_ms:.0f} ms")
    cls = int(it.detections.groups[0])
    gammas = iter(np.linspace(0.1, 5.0, 1000))

    def score_map() -> None:
        s = it.scores()[it.level_slices()[0]]  # a new level or class: the map recomputed, not a cache hit
        mp = dense.score_map(s, it.grids[0], it.per_location[0])
        heatmap_rgba(mp, 0, 1, "magma", alpha=200, out_size=(h, w), extent=it.heatmap_extent(0), alpha_by_value=True)

    def anchors_click() -> None:
        for level in range(len(it.grids)):
            at = it.anchors_at(cx, cy, level)
            scale_segments(box_segments(at.boxes), it.scale)
            it.decode(at.flat_index)

    def assignment() -> None:
        codes = location_codes(m[it.level_slices()[0]], it.grids[0], it.per_location[0])
        assignment_rgba(codes, (h, w), it.heatmap_extent(0))

    return {
        "dense: RetinaNet score map level 0 -> RGBA 1280x720": score_map,
        "dense: anchors at a click, 5 levels x 9 + decode": anchors_click,
        f"dense: class NMS stepper ({int((it.candidates.groups == cls).sum())} boxes)": lambda: it.nms(cls).step(0),
        "dense: assignment map level 0 -> RGBA 1280x720": assignment,
        f"dense: focal shares, a gamma move ({fi.ce.size} terms)": lambda: fi.shares(float(next(gammas)), 0.25),
    }


def _upsampling_views(img: np.ndarray) -> dict:
    """The Upsampling and Receptive-field tabs (issue #11) on the bundled FCN (short side 256, as the
    app runs it) and the bundled PCV net: one hooked pass each, then what a class change or a click
    redraws -- the five 2x upsamplings and their six panels, the comparison numbers, one method over
    the image, a clicked cell; a unit's theoretical box and effective field (numpy backward through
    the pass's ReLU masks and pool switches) as RGBA, for a shallow, a middle and the deepest layer;
    the PCV head's dilated taps."""
    from segviewer.adapters.base import PredictParams
    from segviewer.adapters.one_pass import predict_with_internals
    from segviewer.adapters.registry import create_adapter
    from segviewer.analysis import receptive as rf
    from segviewer.analysis.upsampling import METHODS
    from segviewer.core.colors import palette_for
    from segviewer.core.timing import Timings
    from segviewer.render.heatmap import heatmap_rgba
    from segviewer.render.roi_grid import box_segments, cross_segments
    from segviewer.ui.features._internals_upsampling import map_rgba

    fcn = create_adapter("shapes_fcn")
    fcn.load("cpu")
    h, w = img.shape[:2]
    fcn.predict_stages(img)  # warm-up
    t0 = time.perf_counter()
    fcn.predict_stages(img, PredictParams(), Timings())
    plain = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    _, bundle = predict_with_internals(fcn, img, PredictParams())
    hooked = (time.perf_counter() - t0) * 1000
    u, chain = bundle.upsampling, bundle.receptive
    (rh, rw) = u.valid
    sx, sy = w / rw, h / rh
    print(f"# shapes_fcn on {w}x{h} (frame {rw}x{rh}): plain predict_stages {plain:.0f} ms, with the upsampling and "
          f"receptive captures {hooked:.0f} ms (one pass); captures {(u.nbytes() + chain.nbytes()) / 1e6:.1f} MB")
    palette = palette_for(u.categories)

    def panels(cls: int | None = None) -> None:  # a new bundle or class: the five methods, six panels
        maps = {"coarse": u.scores, **u.all()}
        vmax = 1.0 if cls is None else max(float(np.abs(m[cls]).max()) for m in maps.values())
        for name, m in maps.items():
            s = 32 if name == "coarse" else 16
            map_rgba(m[:, :-(-rh // s), :-(-rw // s)], cls, palette, vmax)

    def compare() -> None:
        u.kernel_vs_bilinear()
        u.learned_vs_bilinear()

    def overlay() -> None:  # one method over the image (the model frame's resolution)
        cells = map_rgba(u.upsample("bilinear"), None, palette, 1.0, empty=(0, 0, 0, 0))
        np.repeat(np.repeat(cells, 16, 0), 16, 1)[:rh, :rw].copy()

    def click_cell() -> None:
        r, c = int(h / 2 / sy // 16), int(w / 3 / sx // 16)
        maps = u.all()
        [float(maps[m][0, r, c]) for m in METHODS]
        box_segments(np.array([[c * 16 * sx, r * 16 * sy, (c + 1) * 16 * sx, (r + 1) * 16 * sy]] * 3))

    points = iter([(float(x), float(y)) for x, y in np.random.default_rng(1).uniform((0, 0), (rw - 1, rh - 1), (10_000, 2))])

    def unit_click(layer: str):  # noqa: ANN202
        def run() -> None:  # a click at a new place: no cached field
            x, y = next(points)
            c, row, col = chain.pick(layer, x, y)
            y0, y1, x0, x1 = rf.field_box(chain.layers_upto(layer), row, col)
            box_segments(np.array([[x0 * sx, y0 * sy, (x1 + 1) * sx, (y1 + 1) * sy]]))
            erf, (oy, ox) = chain.effective_field(layer, c, row, col)
            rf.mass_side(erf, (oy, ox), ((y0 + y1) / 2, (x0 + x1) / 2))
            e = erf[:max(0, rh - oy), :max(0, rw - ox)]
            if e.any():
                heatmap_rgba(e, 0.0, float(np.percentile(e[e > 0], 99)), "inferno", alpha=230, alpha_by_value=True)
        return run

    pcv = create_adapter("shapes_pcv")
    pcv.load("cpu")
    _, vp = predict_with_internals(pcv, img, PredictParams())

    def taps() -> None:
        row, col = (s // 2 for s in vp.votes.shape[1:])
        ty, tx = rf.taps_1d(vp.head_layers, row), rf.taps_1d(vp.head_layers, col)
        pts = np.stack(np.meshgrid((tx + 0.5) * vp.scale_x, (ty + 0.5) * vp.scale_y), -1).reshape(-1, 2)
        cross_segments(pts, 2.5)

    views = {
        f"upsampling: 5 methods x2 of {u.scores.shape[0]}x{u.scores.shape[1]}x{u.scores.shape[2]} + 6 panels (labels)": panels,
        "upsampling: 6 panels, one class's scores": lambda: panels(1),
        "upsampling: learned vs bilinear (kernel, outputs)": compare,
        f"upsampling: a method over the image -> RGBA {rw}x{rh}": overlay,
        "upsampling: click -> each method's value + cells": click_cell,
        "receptive: PCV head's dilated taps at a click": taps,
    }
    for layer in ("conv2_1", "conv4_2", "pool5", "score_fr"):
        size = rf.field_size(chain.layers_upto(layer))
        views[f"receptive: click, {layer} unit (field {size} px): box + effective field RGBA"] = unit_click(layer)
    return views


def _yolo_views(img: np.ndarray) -> dict:
    """The YOLO grid tab's views on the bundled shapes_yolo (skipped when its card is missing): one
    pass with the grid, then what a click and a redraw compute -- the map under the grid as RGBA at
    the image's size (cold: the view caches it per map), the grid lines, the clicked cell's boxes,
    priors and readout, the cells responsible for ground-truth boxes, one class's NMS trace."""
    from segviewer.adapters.base import PredictParams
    from segviewer.adapters.one_pass import predict_with_internals
    from segviewer.adapters.registry import create_adapter, list_cards
    from segviewer.render.heatmap import heatmap_rgba
    from segviewer.render.roi_grid import box_segments, cross_segments
    from segviewer.ui.features._internals_yolo import grid_segments

    if "shapes_yolo" not in {c.id for c in list_cards()}:
        print("# YOLO grid tab: skipped (no models/shapes_yolo.toml)")
        return {}
    ad = create_adapter("shapes_yolo")
    ad.load("cpu")
    det, it = predict_with_internals(ad, img, PredictParams())
    h, w = it.image_size
    gt = np.array([[100, 80, 300, 260], [600, 300, 800, 520], [1000, 100, 1200, 400]], np.float32)
    cls = int(it.candidates.class_ids[it.keep[0]]) if len(it.keep) else 0
    s = it.grid.stride

    def score_map() -> None:
        heatmap_rgba(it.max_conf_map(), 0.0, 1.0, "magma", alpha=170, out_size=(h, w),
                     extent=(0.0, 0.0, it.model_size[1] / s, it.model_size[0] / s), alpha_by_value=True)

    def click() -> None:
        r, c = it.cell_at(w / 2, h / 2)
        cr = it.cell(r, c)
        box_segments(cr.boxes)
        box_segments(cr.rect[None])
        cross_segments((cr.boxes[:, :2] + cr.boxes[:, 2:]) / 2, 3.0)
        grid_segments(*it.grid_lines())

    def responsible() -> None:
        a = it.responsible(gt)
        box_segments(np.stack([it.cell_rect(int(r), int(c)) for r, c in zip(a.row, a.col)]))

    views = {
        f"yolo: score map {it.grid.shape[1]}x{it.grid.shape[0]} cells -> RGBA {w}x{h}": score_map,
        "yolo: click a cell (B boxes, priors, readout) + grid lines": click,
        "yolo: responsible cells of 3 ground-truth boxes": responsible,
    }
    if len(it.keep):
        n = int((it.candidates.class_ids == cls).sum())
        views[f"yolo: class NMS stepper ({n} boxes)"] = lambda: it.nms(cls).step(0)
    return views

def _centernet_views(img: np.ndarray) -> dict:
    """The CenterNet tab's views on the bundled shapes_centernet (skipped when its card is missing):
    one pass with the heads, then what a redraw and a click compute -- the class heatmap as RGBA
    (max over classes, cold: the view caches it per class), every local maximum, the kept peaks and
    their boxes as segments, and a click (the peak's heads, the decoded box, the offset link)."""
    from segviewer.adapters.base import PredictParams
    from segviewer.adapters.one_pass import predict_with_internals
    from segviewer.adapters.registry import create_adapter, list_cards
    from segviewer.render.heatmap import heatmap_rgba
    from segviewer.render.roi_grid import box_segments, cross_segments, scale_segments

    if "shapes_centernet" not in {c.id for c in list_cards()}:
        print("# CenterNet tab: skipped (no models/shapes_centernet.toml)")
        return {}
    ad = create_adapter("shapes_centernet")
    ad.load("cpu")
    t0 = time.perf_counter()
    det, it = predict_with_internals(ad, img, PredictParams())
    print(f"# shapes_centernet one pass with its heads: {(time.perf_counter() - t0) * 1000:.0f} ms; heatmaps "
          f"{'x'.join(map(str, it.heat.shape))}, {len(it.peaks.all_cyx)} local maxima, {len(det.boxes)} detections")
    (sx, sy), s = it.scale, it.stride

    def heatmap() -> None:
        m = it.class_map(None)
        heatmap_rgba(m, 0.0, max(float(m.max()), 0.05), "magma", alpha=210, alpha_by_value=True)

    def peaks() -> None:
        a, kept = it.peaks_of(None), it.kept(0.3)
        cross_segments(np.stack([(a[:, 2] + 0.5) * s * sx, (a[:, 1] + 0.5) * s * sy], 1), 3.0)
        cross_segments(np.stack([(it.peaks.xs[kept] + 0.5) * s * sx, (it.peaks.ys[kept] + 0.5) * s * sy], 1), 6.0)
        scale_segments(box_segments(it.boxes[kept]), (sx, sy))

    def click() -> None:
        p = it.at(img.shape[1] / 2, img.shape[0] / 2, None, 0.3)
        scale_segments(box_segments(p.box[None]), (sx, sy))

    return {f"centernet: class heatmap {it.heat.shape[2]}x{it.heat.shape[1]} -> RGBA (max over classes)": heatmap,
            f"centernet: all {len(it.peaks.all_cyx)} local maxima + kept peaks + boxes": peaks,
            "centernet: click a peak (heads, decoded box)": click}


def _yolact_views(img: np.ndarray) -> dict:
    """The YOLACT tab's views on the bundled shapes_yolact (skipped when its card is missing): one
    pass with the prototypes and coefficients, then what the tab computes -- the prototype gallery
    (on a new bundle or detection: the tiles carry the coefficients), and a click on the largest
    detection (the detection under the click, its assembly replayed and pictured: P c, sigmoid,
    crop, mask, the canvas layer and the mask's outline), cold: the view caches it per detection."""
    from segviewer.adapters.base import PredictParams
    from segviewer.adapters.one_pass import predict_with_internals
    from segviewer.adapters.registry import create_adapter, list_cards
    from segviewer.render.roi_grid import box_segments
    from segviewer.ui.features._internals_yolact import assembly_pictures, prototype_gallery

    if "shapes_yolact" not in {c.id for c in list_cards()}:
        print("# YOLACT tab: skipped (no models/shapes_yolact.toml)")
        return {}
    ad = create_adapter("shapes_yolact")
    ad.load("cpu")
    t0 = time.perf_counter()
    det, it = predict_with_internals(ad, img, PredictParams())
    print(f"# shapes_yolact one pass with its prototypes: {(time.perf_counter() - t0) * 1000:.0f} ms; prototypes "
          f"{'x'.join(map(str, it.proto.shape))}, {len(det)} detections")
    if not len(det):
        return {"yolact: prototype gallery": lambda: prototype_gallery(it.proto)}
    b = det.boxes
    pick = int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))  # the largest: the biggest crop
    cx, cy = float(b[pick, 0] + b[pick, 2]) / 2, float(b[pick, 1] + b[pick, 3]) / 2
    bw, bh = (int(v) for v in b[pick, 2:] - b[pick, :2])

    def click() -> None:
        i = it.detection_at(cx, cy)
        i = pick if i is None else i
        assembly_pictures(it, i)
        prototype_gallery(it.proto, it.coef[i])
        box_segments(np.delete(b, i, 0))

    return {f"yolact: prototype gallery ({it.proto.shape[0]} tiles)": lambda: prototype_gallery(it.proto),
            f"yolact: click a detection (assembly + 4 steps + outline, box {bw}x{bh} px)": click}


def _query_views(threads: int, img: np.ndarray) -> dict:
    """The Queries tab's views on random-init DETR R50, RT-DETR r50vd and Mask2Former Swin-T at
    their default sizes (the transformers extra; skipped without it): one pass each with the
    internals, then what a click redraws -- the query under the click, its attention (RT-DETR: also
    the sampling points) as the RGBA the canvas stretches over the image, its class bars, every
    query's box or mask outline before the selection (outlines traced once per pass, timed cold).
    Mask2Former's merge beside the heuristic and UPSNet merges is a background job once per pass:
    timed and printed, not a view."""
    import importlib.util

    if importlib.util.find_spec("transformers") is None:
        print("# Queries tab: skipped (the transformers extra is not installed)")
        return {}
    from segviewer.adapters.base import PredictParams
    from segviewer.adapters.one_pass import predict_with_internals
    from segviewer.analysis.queries import compare_merges, mask_outline_segments, query_at, query_fates
    from segviewer.render.heatmap import heatmap_rgba
    from segviewer.render.panoptic import panoptic_colors, segment_index
    from segviewer.render.roi_grid import box_segments
    from segviewer.ui.features._internals_queries import ATTENTION_CMAP, display_size, sampling_crosses
    from segviewer.ui.model_host import random_init_factory

    h, w = img.shape[:2]
    views: dict = {}
    for mid, short in (("detr_resnet50", "DETR"), ("rtdetr_r50vd", "RT-DETR"),
                       ("mask2former_swin_tiny_coco_panoptic", "Mask2Former")):
        adapter = random_init_factory(threads)(mid)
        adapter.load("cpu")
        t0 = time.perf_counter()
        result, it = predict_with_internals(adapter, img, PredictParams(min_score=0.0))
        ms = (time.perf_counter() - t0) * 1000
        print(f"# {short} (random init) one pass with the query internals {ms:.0f} ms; {it.num_queries} queries, "
              f"{len(it.class_names())} classes, bundle {it.nbytes() / 1e6:.1f} MB")
        q0 = int(np.argmax(it.scores()[1]))
        fates = query_fates(it)

        def click(it=it, q0=q0) -> None:  # the query under the click, its attention as RGBA, its bars
            q = query_at(it, w / 2, h / 2)
            q = q0 if q is None else q
            m = it.attention_map(q, None, display_size(it.image_size))
            heatmap_rgba(m, 0.0, float(m.max()), ATTENTION_CMAP, alpha=210, alpha_by_value=True)
            if it.sampling is not None:
                xy = it.sampling.locations[q].reshape(-1, 2) * np.array([w, h], np.float32)
                sampling_crosses(xy, it.sampling.weights[q].reshape(-1), 14.0)
            p = it.distribution(q)
            np.argsort(-p, kind="stable")[:8]

        views[f"queries: {short} click -> query, attention RGBA, class bars"] = click
        if it.boxes is not None:
            views[f"queries: {short} all {it.num_queries} boxes by fate"] = (
                lambda it=it, fates=fates: [box_segments(it.boxes[fates == f]) for f in range(4)])
        else:
            views[f"queries: {short} all {it.num_queries} mask outlines (cold, once per pass)"] = (
                lambda it=it: mask_outline_segments(it.mask_logits, it.image_size))
            isthing = tuple(result.isthing) or tuple(adapter.card.isthing)
            t0 = time.perf_counter()
            mc = compare_merges(it, isthing, result, threshold=it.merge.threshold)
            for pm in mc.maps.values():
                panoptic_colors(pm)[segment_index(pm, pm.segment_ids)]
            print(f"# (background job, once per pass) {short} merges: model {len(mc.maps['model'].segments)}, "
                  f"heuristic {len(mc.maps['heuristic'].segments)}, UPSNet "
                  f"{len(mc.maps['upsnet'].segments) if 'upsnet' in mc.maps else '-'} segments + thumbnails: "
                  f"{(time.perf_counter() - t0) * 1000:.0f} ms")
    return views


if __name__ == "__main__":
    raise SystemExit(main())
