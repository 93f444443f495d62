"""The Internals dock's queries view: set prediction (DETR, RT-DETR, Mask2Former, OneFormer) opened.

A view module in the dock's sense: it declares the capture kinds it draws (:data:`KINDS`), installs
its tab into the panel and draws from the cached bundle
(:class:`~segviewer.analysis.queries.QueryInternals`) of the one pass that also gave the layers'
result. These models have no proposals and no NMS: a fixed set of queries each predicts a class
distribution and a box or mask, and the confident ones are kept. The view shows

* for a clicked detection or segment (or a query picked from the list): its cross-attention over
  the image from the last decoder layer (heads averaged or one head), or for RT-DETR its deformable
  sampling points (crosses sized by weight) and their splat; its box or mask outline;
* that query's class distribution as a bar list, "no object" included where the model has it;
* every query's box or mask before the selection (a toggle), coloured by its fate;
* Mask2Former / OneFormer: the panoptic merge as a step (how many queries were "no object", below
  the threshold, lost to overlapping queries, kept) and the model's merge beside our heuristic and
  UPSNet merges of the same queries (:func:`~segviewer.analysis.queries.compare_merges`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segviewer.analysis.queries import (
    BELOW_THRESHOLD,
    DROPPED_OVERLAP,
    FATE_NAMES,
    KEPT,
    NO_OBJECT,
    QUERY_ATTENTION,
    QUERY_CLASSES,
    compare_merges,
    mask_outline_segments,
    query_at,
    query_fates,
)
from segviewer.core.errors import SegviewerError
from segviewer.core.results import PanopticMap
from segviewer.render.heatmap import heatmap_rgba
from segviewer.render.panoptic import panoptic_colors, segment_index
from segviewer.render.roi_grid import box_segments
from segviewer.ui.jobs import run_background
from segviewer.ui.widgets.internals_queries_tab import MERGE_TITLES, QueriesTab

__all__ = ["KINDS", "QueriesView", "FATE_STYLES", "TOP_CLASSES", "QUERY_FAMILIES", "ATTENTION_CMAP"]

KINDS = (QUERY_CLASSES, QUERY_ATTENTION)
#: fate -> the Overlays line style its boxes or outlines get in the all-queries view
FATE_STYLES = {KEPT: "kept", BELOW_THRESHOLD: "suppressed", DROPPED_OVERLAP: "victims", NO_OBJECT: "pending"}
TOP_CLASSES = 8  # bars shown besides "no object"
ATTENTION_CMAP = "turbo"  # stands out on photos (magma's pinks and yellows read as a sunset sky)
VOID_RGBA = (60, 60, 60, 255)  # void in the merge thumbnails
DISPLAY_SIDE = 384  # the attention map is drawn on a grid this long (stretched over the image by the canvas)


def display_size(image_size: tuple[int, int], max_side: int = DISPLAY_SIDE) -> tuple[int, int]:
    """The grid an attention map is drawn on: the image's aspect, at most ``max_side`` pixels long
    (the map comes from a feature map of tens of cells, so a full-size one shows nothing more)."""
    h, w = image_size
    s = min(1.0, max_side / max(h, w, 1))
    return max(1, round(h * s)), max(1, round(w * s))
FAMILY_NAMES = {"detr": "DETR", "rt_detr": "RT-DETR", "rt_detr_v2": "RT-DETRv2", "mask2former": "Mask2Former",
                "oneformer": "OneFormer"}
QUERY_FAMILIES = tuple(FAMILY_NAMES)  # card.extra["hf_family"] of the models this view opens


def sampling_crosses(xy: np.ndarray, weights: np.ndarray, max_half: float) -> np.ndarray:
    """``(2N, 2, 2)`` segments: a ``+`` at each point, its half-length growing with the square root
    of its weight (the heaviest ``max_half`` pixels, the lightest 1.5)."""
    p = np.asarray(xy, np.float32).reshape(-1, 2)
    wt = np.asarray(weights, np.float32).reshape(-1)
    r = 1.5 + (max_half - 1.5) * np.sqrt(wt / max(float(wt.max(initial=0.0)), 1e-12))
    dx = np.stack([r, np.zeros_like(r)], 1)
    dy = np.stack([np.zeros_like(r), r], 1)
    return np.concatenate([np.stack([p - dx, p + dx], 1), np.stack([p - dy, p + dy], 1)]).astype(np.float32)


class QueriesView:
    """The queries tab and its drawing; the Internals controller routes bundles and clicks."""

    key, title, kinds = "queries", "Queries", KINDS

    def __init__(self, feature: Any) -> None:
        self.feature = feature
        self.tab = QueriesTab()
        feature.panel.add_view(self.key, self.title, self.tab, self.kinds)
        self.it: Any = None
        self.query: int | None = None
        self.fates: np.ndarray | None = None
        self._heat: dict[tuple, np.ndarray] = {}
        self._outlines: list[np.ndarray] | None = None
        self._merges: tuple[Any, Any] | None = None  # (token, MergeComparison or message)
        self.tab.changed.connect(feature.update_view)
        self.tab.queryPicked.connect(self._on_picked)

    # ---- bundle -----------------------------------------------------------------------------------
    def set_bundle(self, it: Any) -> None:
        """A new capture (or None): the query list, the heads, the counts; start on the best query."""
        self.it, self.query, self.fates, self._outlines, self._merges = it, None, None, None, None
        self._heat.clear()
        t = self.tab
        for combo in (t.query, t.head):
            combo.blockSignals(True)
            combo.clear()
        if it is not None:
            self.fates = query_fates(it)
            labels, scores = it.scores()
            cats = it.categories
            for q in np.argsort(-scores, kind="stable"):
                name = cats[labels[q]] if labels[q] < len(cats) else str(labels[q])
                fate = "no object" if self.fates[q] == NO_OBJECT else FATE_NAMES[int(self.fates[q])].split(" ")[0]
                t.query.addItem(f"query {q}: {name} {scores[q]:.2f} ({fate})", int(q))
            t.head.addItem("mean of the heads", -1)
            for h in range(it.heads()):
                t.head.addItem(f"head {h}", h)
            t.counts.setText(self.counts_text())
            if len(it.selected):
                self.query = int(it.selected[0])
            elif it.num_queries:
                self.query = int(np.argmax(scores))
            if self.query is not None:
                t.set_query(self.query)
        else:  # a new image being captured, another model: nothing of the last bundle stays
            t.counts.setText("")
            t.info.setText("Click a detection or a segment on the image, or pick a query.")
            t.bars.set_rows([])
        for combo in (t.query, t.head):
            combo.blockSignals(False)
        t.set_merge_visible(it is not None and it.merge is not None)

    def counts_text(self) -> str:
        it, fates = self.it, self.fates
        n = {f: int((fates == f).sum()) for f in (NO_OBJECT, BELOW_THRESHOLD, DROPPED_OVERLAP, KEPT)}
        fam = FAMILY_NAMES.get(it.family, it.family)
        what = "box" if it.boxes is not None else "mask"
        head = (f"{fam}: {it.num_queries} queries, each a class distribution and a {what}; no proposals and "
                f"no NMS (training matched one query to each object). ")
        if it.merge is not None:
            m = it.merge
            return head + (f"Panoptic merge: {n[NO_OBJECT]} no object → {n[BELOW_THRESHOLD]} below score "
                           f"{m.threshold:g} → {n[DROPPED_OVERLAP]} lost to overlapping queries (less than "
                           f"{m.overlap_threshold:g} of their mask left) → {n[KEPT]} kept as "
                           f"{len(set(m.segment_id[m.segment_id > 0].tolist()))} segments.")
        if it.no_object:
            return head + (f"{n[NO_OBJECT]} predict \"no object\", {n[BELOW_THRESHOLD]} a class below the score "
                           f"threshold, {len(it.selected)} give the result.")
        return head + (f"Scores are per-class sigmoids (no \"no object\" class): the top query x class scores "
                       f"above the threshold give the {len(it.selected)} detections.")

    def status_text(self) -> str:
        it = self.it
        return (f"{self.feature.model_id}: one pass ({it.num_queries} queries, last decoder layer {it.layer}), the "
                f"layers' result and these internals. Click a detection or segment, or pick a query.")

    def _on_picked(self, q: int) -> None:
        self.query = int(q)
        self.feature.update_view()

    # ---- input ------------------------------------------------------------------------------------
    def click(self, x: float, y: float) -> None:
        if self.it is None:
            raise SegviewerError("No set-prediction model's internals yet.")
        q = query_at(self.it, x, y)
        if q is None:
            raise SegviewerError("No query's box or mask covers this point; click a detection or a segment.")
        self.query = q
        self.tab.set_query(q)

    # ---- drawing ----------------------------------------------------------------------------------
    def draw(self, overlays: Any) -> None:
        it, t, q = self.it, self.tab, self.query
        if it is None:
            return
        if t.show_all.isChecked():
            self._draw_all(overlays)
        if q is None:
            t.info.setText("Click a detection or a segment on the image, or pick a query.")
            t.bars.set_rows([])
            return
        head = t.head_index()
        if t.show_attention.isChecked():
            h, w = it.image_size
            overlays.image(self.attention_rgba(q, head), (0.0, 0.0, float(w), float(h)))
        if it.sampling is not None and t.show_attention.isChecked():
            overlays.set("points", self.sampling_segments(q, head))
        if it.boxes is not None:
            overlays.set("current", box_segments(it.boxes[q][None]))
        elif it.mask_logits is not None:
            overlays.set("current", self.outlines()[q])
        t.bars.set_rows(self.bar_rows(q))
        t.info.setText(self.query_text(q, head))
        if it.merge is not None:
            self._draw_merges()

    def attention_rgba(self, q: int, head: int | None) -> np.ndarray:
        key = (q, head)
        if key not in self._heat:
            if len(self._heat) > 32:
                self._heat.clear()
            m = self.it.attention_map(q, head, display_size(self.it.image_size))
            self._heat[key] = heatmap_rgba(m, 0.0, max(float(m.max()), 1e-12), ATTENTION_CMAP, alpha=210,
                                           alpha_by_value=True)
        return self._heat[key]

    def sampling_segments(self, q: int, head: int | None) -> np.ndarray:
        """RT-DETR: query ``q``'s sampling points (all levels; one head or all) as weighted crosses."""
        s, (h, w) = self.it.sampling, self.it.image_size
        loc, wt = s.locations[q], s.weights[q]
        if head is not None:
            loc, wt = loc[head], wt[head]
        xy = loc.reshape(-1, 2) * np.array([w, h], np.float32)
        return sampling_crosses(xy, wt.reshape(-1), max(4.0, 0.02 * max(h, w)))

    def outlines(self) -> list[np.ndarray]:
        if self._outlines is None:
            self._outlines = mask_outline_segments(self.it.mask_logits, self.it.image_size)
        return self._outlines

    def bar_rows(self, q: int) -> list[tuple[str, float, bool]]:
        """The query's most likely classes (up to :data:`TOP_CLASSES`) and "no object" last."""
        it = self.it
        p = it.distribution(q)
        names = it.class_names()
        real = p[:-1] if it.no_object else p
        top = np.argsort(-real, kind="stable")[:TOP_CLASSES]
        best = int(np.argmax(p))
        rows = [(names[k], float(p[k]), int(k) == best) for k in top]
        if it.no_object:
            rows.append(("no object", float(p[-1]), best == len(p) - 1))
        return rows

    def query_text(self, q: int, head: int | None) -> str:
        it = self.it
        labels, scores = it.scores()
        fate = it.merge.describe(q) if it.merge is not None else FATE_NAMES[int(self.fates[q])]
        cats = it.categories
        name = cats[labels[q]] if labels[q] < len(cats) else str(labels[q])
        items = np.flatnonzero(np.asarray(it.selected) == q)
        lines = [f"Query {q}: best class {name} ({scores[q]:.3f}); {fate}"
                 + (f" (result item {', '.join(str(int(i)) for i in items)})." if items.size else ".")]
        if it.boxes is not None:
            b = it.boxes[q]
            lines.append(f"Box ({b[0]:.0f}, {b[1]:.0f}, {b[2]:.0f}, {b[3]:.0f}) (white).")
        which = "the heads' mean" if head is None else f"head {head}"
        if it.sampling is not None:
            s = it.sampling
            lines.append(f"Deformable attention, {which}: {s.weights.shape[2]} levels x {s.weights.shape[3]} points "
                         f"per head (crosses sized by weight; the map splats them).")
        elif it.attention is not None:
            fh, fw = it.attention.shape[-2:]
            lines.append(f"Cross-attention, {which}, over the {fw} x {fh} feature map it reads.")
        return "\n".join(lines)

    def _draw_all(self, overlays: Any) -> None:
        it, fates = self.it, self.fates
        for fate, style in FATE_STYLES.items():
            idx = np.flatnonzero(fates == fate)
            if it.boxes is not None:
                segs = box_segments(it.boxes[idx]) if idx.size else None
            else:
                out = self.outlines()
                segs = np.concatenate([out[i] for i in idx]) if idx.size else None
            overlays.set(style, segs)

    # ---- the panoptic merge beside ours -----------------------------------------------------------
    def merges(self) -> Any:
        """The model's merge, the heuristic and UPSNet of this bundle's queries, or a message. The
        first call per pass starts a background job (a few hundred ms at COCO size) and says so;
        its end redraws the view, and later clicks reuse it."""
        it = self.it
        f = self.feature
        result = f.session.results.get(f.model_id)
        token = (id(it), id(result))
        if self._merges is None or self._merges[0] != token:
            card = f._cards().get(f.model_id)
            isthing = tuple(getattr(card, "isthing", ()) or ())
            pm = result if isinstance(result, PanopticMap) else None
            if pm is not None and pm.isthing:
                isthing = pm.isthing
            thr = it.merge.threshold

            def job() -> Any:
                try:
                    return compare_merges(it, isthing, pm, threshold=thr)
                except (SegviewerError, ValueError) as err:
                    return str(err)

            self._merges = (token, "Merging the queries the heuristic and the UPSNet way…")
            run_background(job, lambda out: self._on_merges(token, out), lambda msg: self._on_merges(token, msg),
                           "Panoptic merges", owner=self.tab)
        return self._merges[1]

    def _on_merges(self, token: tuple, out: Any) -> None:
        if self._merges is None or self._merges[0] != token:
            return  # another pass by now
        self._merges = (token, out)
        self.feature.update_view()
        self.tab.mergesReady.emit()

    def _draw_merges(self) -> None:
        t, it, q = self.tab, self.it, self.query
        mc = self.merges()
        if isinstance(mc, str):
            t.merge_info.setText(mc if mc.endswith("…") else f"Merges not compared: {mc}")
            return
        for key, title in MERGE_TITLES:
            pm = mc.maps.get(key)
            heat = t.merge_maps[key]
            if pm is None:
                heat.set_rgba(None)
                t.merge_labels[key].setText(f"{title}: {mc.notes.get(key, '')}")
                continue
            lut = panoptic_colors(pm)
            lut[0] = VOID_RGBA
            heat.set_rgba(lut[segment_index(pm, pm.segment_ids)])
            agree = mc.agreement.get(key)
            tail = "" if agree is None or key == "model" else f", {100 * agree:.0f}% same class"
            t.merge_labels[key].setText(f"{title}: {len(pm.segments)} segments{tail}")
        m = it.merge
        lines = [f"Query {q}: {m.describe(q)}." if q is not None else "",
                 f"The model keeps queries whose best class beats {m.threshold:g}, gives each pixel to the kept "
                 f"query with the highest score x mask probability, and drops a query left with less than "
                 f"{m.overlap_threshold:g} of its own mask; stuff queries of one class fuse. Ours take the same "
                 "queries as instances (thing classes) and a semantic map (the query mixture); at the masks' "
                 "resolution."]
        t.merge_info.setText("\n".join(s for s in lines if s))
