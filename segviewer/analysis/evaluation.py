"""Qt-free evaluation glue for the ground-truth view and ``segviewer predict --panoptic``.

Models and ground truth name their classes differently (the shapes Mask R-CNN has
``__background__`` + 5 things, the shapes FCN 4 stuff + 5 things, the dataset's COCO files all 9),
so everything here maps categories by NAME:

* merge: things = the instance model's classes (not ``__background__``); stuff = the semantic
  model's classes that are not things and not ``__background__`` (its pixels become void);
* comparison with ground truth: predictions are re-labelled into the ground truth's category list;
  a predicted class the ground truth does not know is dropped (panoptic, instances) or kept as an
  extra class with IoU 0 (semantic: predicting it is simply wrong).

No Qt and no torch in this module, so the CLI and the window share it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segviewer.core.errors import BadDatasetError, SegviewerError
from segviewer.core.results import Detections, PanopticMap, PanopticSegment, SemanticMap

__all__ = [
    "BACKGROUND", "MergeParams", "MERGE_METHODS", "merge_by_name", "upsnet_by_name", "merge_panoptic",
    "upsnet_missing", "remap_panoptic", "remap_detections",
    "SemanticAccumulator", "semantic_scores", "BACKGROUND_NAMES", "semantic_pred_names", "image_report", "report_csv", "FolderAccumulator",
    "pick_results", "pick_keypoints",
]

BACKGROUND = "__background__"


MERGE_METHODS = ("heuristic", "upsnet")
UNKNOWN = "(unknown)"  # UPSNet's "unknown" channel: thing-like pixels no instance claims become void
#: UPSNet's head holds (stuff + things + 1) float32 planes at image size; past this it refuses.
UPSNET_MAX_BYTES = 2 << 30


@dataclass(frozen=True)
class MergeParams:
    """The panoptic merge's knobs: ``method`` is "heuristic" (panoptic paper / Panoptic FPN: all
    three knobs apply) or "upsnet" (UPSNet's parameter-free head: only ``min_score`` applies, as
    the detector's output threshold)."""

    overlap: float = 0.5
    stuff_min_area: int = 1024
    min_score: float = 0.5
    method: str = "heuristic"

    def __post_init__(self) -> None:
        if self.method not in MERGE_METHODS:
            raise SegviewerError(f"the panoptic merge is one of {', '.join(MERGE_METHODS)}; got {self.method!r}")


def merge_by_name(instances: Detections, semantic: SemanticMap, params: MergeParams = MergeParams()
                  ) -> PanopticMap:
    """Heuristic panoptic merge of two models with different label spaces, mapped by class name.

    Output categories: the semantic model's, then the instance model's things it lacks. Semantic
    pixels of ``__background__`` are void (it is not stuff).
    """
    from segviewer.analysis.panoptic_merge import heuristic_merge

    if instances.masks is None:
        raise SegviewerError("the panoptic merge needs instance masks; this instance model gives boxes only")
    things = [n for n in instances.categories if n != BACKGROUND]
    cats = list(semantic.categories) + [n for n in things if n not in semantic.categories]
    isthing = [n in things for n in cats]
    labels = semantic.labels
    ignore = semantic.ignore_index
    if BACKGROUND in semantic.categories:
        ignore = 255 if ignore is None and len(cats) < 255 else ignore if ignore is not None else len(cats)
        labels = labels.copy()
        labels[labels == semantic.categories.index(BACKGROUND)] = ignore
    sem = SemanticMap(labels, tuple(cats), ignore_index=ignore)
    return heuristic_merge(instances, sem, overlap_thresh=params.overlap, min_score=params.min_score,
                           stuff_min_area=int(params.stuff_min_area), isthing=isthing)


def upsnet_missing(instances: Detections | None, semantic: SemanticMap | None,
                   names: tuple[str, str] = ("the instance model", "the semantic model")) -> str:
    """Why UPSNet's head cannot run on these results, or "" when it can (for tooltips and notes)."""
    if instances is None or semantic is None:
        return "UPSNet's head needs an instance model and a semantic model."
    if instances.mask_logits is None:
        return (f"UPSNet's head needs mask logits, and {names[0]} gives none (a model without a mask "
                "head, or a result made before logits were kept).")
    if semantic.logits is None:
        return f"UPSNet's head needs the semantic head's logits, and {names[1]} gives none."
    return ""


def upsnet_by_name(instances: Detections, semantic: SemanticMap, params: MergeParams = MergeParams()
                   ) -> PanopticMap:
    """UPSNet's panoptic head on two models with different label spaces, mapped by class name.

    Stuff channels are the semantic model's classes that are not the detector's things (its
    ``__background__`` included: pixels it wins become void). A detection's instance logit is its
    mask logits pasted in its box plus the semantic logit of its class (0 where the semantic model
    lacks that class). UPSNet's "unknown" class is modelled as one more channel, the semantic
    head's best thing logit: a thing-like pixel that no instance claims becomes void rather than
    stuff (the heuristic voids it too). A pixel of a detection's box goes to the detection when its
    instance logit (mask logit + semantic logit of its class) is strictly above the best stuff
    logit (the unknown channel included) and the logits of the detections before it; ties keep
    the earlier channel. So where the detection's class is the semantic head's top thing class,
    its mask logit must be positive *and* no stuff logit may beat the instance logit. Detections under
    ``params.min_score`` are left out; the other knobs do not apply. Output categories are those
    of :func:`merge_by_name`, so the two methods are interchangeable downstream.
    """
    from segviewer.analysis.panoptic_merge import upsnet_merge

    why = upsnet_missing(instances, semantic)
    if why:
        raise SegviewerError(why)
    if instances.image_size != semantic.image_size:
        raise SegviewerError(f"detections are {instances.image_size} but the semantic map is "
                             f"{semantic.image_size}; they must come from the same image size")
    things = [n for n in instances.categories if n != BACKGROUND]
    cats = list(semantic.categories) + [n for n in things if n not in semantic.categories]
    isthing = [n in things for n in cats]
    sem_index = {n: i for i, n in enumerate(semantic.categories)}
    stuff_idx = [i for i, n in enumerate(semantic.categories) if n not in things]
    thing_sem = [sem_index[n] for n in things if n in sem_index]
    h, w = semantic.image_size
    planes = len(stuff_idx) + len(things) + 1
    if planes * h * w * 4 > UPSNET_MAX_BYTES:
        raise SegviewerError(f"UPSNet's head would hold {planes} float planes of {w}x{h} "
                             f"({planes * h * w * 4 / 2**30:.1f} GiB); use the heuristic merge for this image")
    det = instances.above(params.min_score)
    stuff = semantic.logits_at_image_size(stuff_idx)
    assert stuff is not None  # checked by upsnet_missing
    thing_logits = np.zeros((len(things), h, w), np.float32)
    for t, n in enumerate(things):
        if n in sem_index:
            thing_logits[t] = semantic.logits_at_image_size([sem_index[n]])[0]
    stuff_names = [semantic.categories[i] for i in stuff_idx]
    if thing_sem:
        best_thing = thing_logits[[t for t, n in enumerate(things) if n in sem_index]].max(axis=0)
        stuff = np.concatenate([stuff, best_thing[None]])
        stuff_names.append(UNKNOWN)
    tpos = {n: t for t, n in enumerate(things)}
    for n in det.names:  # only __background__ can miss here; refused as the heuristic does
        if n not in tpos:
            raise SegviewerError(f"detection class {n!r} is not a thing category of the semantic map")
    classes = np.array([tpos[n] for n in det.names], np.int64)
    assert det.mask_logits is not None
    pm = upsnet_merge(stuff, thing_logits, det.boxes, classes, det.mask_logits, stuff_names, things,
                      scores=det.scores)
    void = {s.id for s in pm.segments if pm.categories[s.category_id] in (BACKGROUND, UNKNOWN)}
    if void:
        ids = np.where(np.isin(pm.segment_ids, list(void)), 0, pm.segment_ids).astype(np.int32)
        pm = PanopticMap(ids, tuple(s for s in pm.segments if s.id not in void), pm.categories, pm.isthing)
    return remap_panoptic(pm, cats, isthing)


def merge_panoptic(instances: Detections, semantic: SemanticMap, params: MergeParams = MergeParams()
                   ) -> tuple[PanopticMap, str]:
    """The merge ``params.method`` names, and a note when UPSNet was asked for but cannot run here
    (then the heuristic is used, so one model without logits does not leave the view empty)."""
    if params.method == "upsnet":
        why = upsnet_missing(instances, semantic)
        if not why:
            return upsnet_by_name(instances, semantic, params), ""
        return merge_by_name(instances, semantic, params), f"{why} The heuristic merge was used."
    return merge_by_name(instances, semantic, params), ""


def remap_panoptic(pm: PanopticMap, categories: Sequence[str], isthing: Sequence[bool]) -> PanopticMap:
    """``pm`` with category ids re-indexed into ``categories`` by name; segments of unknown
    classes become void (they cannot be scored against this ground truth)."""
    index = {n: i for i, n in enumerate(categories)}
    ids = pm.segment_ids
    segs, drop = [], []
    for s in pm.segments:
        c = index.get(pm.categories[s.category_id])
        if c is None:
            drop.append(s.id)
            continue
        segs.append(PanopticSegment(s.id, c, bool(isthing[c]) if len(isthing) == len(categories) else s.isthing,
                                    s.area, s.score, s.iscrowd))
    if drop:
        ids = np.where(np.isin(ids, drop), 0, ids).astype(np.int32)
    return PanopticMap(ids, tuple(segs), tuple(categories), tuple(isthing))


def remap_detections(d: Detections, categories: Sequence[str]) -> Detections:
    """``d`` re-labelled into ``categories`` by name, detections of unknown classes dropped."""
    index = {n: i for i, n in enumerate(categories)}
    new = np.array([index.get(n, -1) for n in d.names], np.int64)
    keep = new >= 0
    sub = d.select(keep)
    return Detections(sub.image_size, sub.boxes, sub.scores, new[keep].astype(np.int32), tuple(categories),
                      masks=sub.masks, mask_logits=sub.mask_logits, keypoints=sub.keypoints,
                      keypoint_names=sub.keypoint_names, skeleton=sub.skeleton)


#: How label maps spell their background class (torchvision models ``__background__``, VOC files
#: ``background``); compared case-insensitively.
BACKGROUND_NAMES = ("__background__", "background")


def semantic_pred_names(pred_names: Sequence[str], gt_names: Sequence[str]) -> list[str]:
    """A semantic prediction's class names as matched to the ground truth's by name, except that
    its background takes the ground truth's spelling: a torchvision model's ``__background__``
    against VOC's ``background`` is the same class, not two classes each with IoU 0."""
    gt_bg = next((n for n in gt_names if n.lower() in BACKGROUND_NAMES), None)
    if gt_bg is None or gt_bg in pred_names:
        return list(pred_names)
    out, renamed = list(pred_names), False
    for i, n in enumerate(out):
        if not renamed and n.lower() in BACKGROUND_NAMES:
            out[i], renamed = gt_bg, True
    return out


class SemanticAccumulator:
    """One confusion matrix over images whose predictions may name classes the ground truth lacks.

    Rows/columns are the union of names, ground truth's first; the matrix grows when a new
    predicted name appears, so accumulating over a folder never needs the label spaces up front.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self.matrix = np.zeros((0, 0), np.int64)
        self.images = 0

    def _index(self, names: Sequence[str]) -> np.ndarray:
        for n in names:
            if n not in self.names:
                self.names.append(n)
        k = len(self.names)
        if self.matrix.shape[0] < k:
            grown = np.zeros((k, k), np.int64)
            grown[: self.matrix.shape[0], : self.matrix.shape[1]] = self.matrix
            self.matrix = grown
        pos = {n: i for i, n in enumerate(self.names)}
        return np.array([pos[n] for n in names], np.int64)

    def update(self, pred: SemanticMap, gt: SemanticMap, where: str = "image") -> None:
        from segviewer.analysis.metrics import confusion_matrix

        if pred.image_size != gt.image_size:
            raise BadDatasetError(f"{where}: prediction is {pred.image_size[::-1]} but the ground truth is "
                                  f"{gt.image_size[::-1]}")
        gmap = self._index(gt.categories)
        pmap = self._index(semantic_pred_names(pred.categories, gt.categories))
        k = len(self.names)
        g = gt.labels.astype(np.int64)
        valid = np.ones(g.shape, bool) if gt.ignore_index is None else g != gt.ignore_index
        p = pred.labels.astype(np.int64)
        if pred.ignore_index is not None:
            # a void prediction on a counted pixel is wrong: count it as an extra "void" class
            pvoid = p == pred.ignore_index
            if (pvoid & valid).any():
                pmap = np.concatenate([pmap, self._index(["(void)"])])
                k = len(self.names)
                p = np.where(pvoid, len(pmap) - 1, p)
        lut_g = np.append(gmap, 0)
        gg = lut_g[np.where(valid, g, len(gmap))]
        pp = pmap[np.clip(p, 0, len(pmap) - 1)]
        self.matrix += confusion_matrix(gg[valid], pp[valid], k, None, where)
        self.images += 1

    def merge(self, other: SemanticAccumulator) -> None:
        """Add another accumulator's counts (images scored elsewhere); merged in image order the
        names, matrix and numbers equal one accumulator updated image by image."""
        pos = self._index(other.names)
        self.matrix[np.ix_(pos, pos)] += other.matrix
        self.images += other.images

    def scores(self) -> dict[str, Any]:
        from segviewer.analysis.metrics import scores_from_confusion

        out = scores_from_confusion(self.matrix, tuple(self.names))
        out["images"] = self.images
        return out


def semantic_scores(pred: SemanticMap, gt: SemanticMap) -> dict[str, Any]:
    """One image's semantic numbers (pixel acc, mean acc, mIoU, fwIoU, per class)."""
    acc = SemanticAccumulator()
    acc.update(pred, gt)
    return acc.scores()


def pick_results(results: Mapping[str, Any], order: Sequence[str] = ()) -> tuple[
        tuple[str, Detections] | None, tuple[str, SemanticMap] | None]:
    """The first instance result (Detections with masks) and the first semantic result, models in
    ``order`` first (the user's selection order), then any other keys."""
    keys = [k for k in order if k in results] + [k for k in results if k not in order]
    inst = sem = None
    for k in keys:
        r = results[k]
        if inst is None and isinstance(r, Detections) and r.masks is not None:
            inst = (k, r)
        elif sem is None and isinstance(r, SemanticMap):
            sem = (k, r)
    return inst, sem


def pick_keypoints(results: Mapping[str, Any], order: Sequence[str] = ()) -> tuple[str, Detections] | None:
    """The first result that carries keypoints (a Keypoint R-CNN's; it has no masks, so
    :func:`pick_results` passes it over), models in ``order`` first: the dock's keypoint AP."""
    keys = [k for k in order if k in results] + [k for k in results if k not in order]
    for k in keys:
        r = results[k]
        if isinstance(r, Detections) and r.keypoints is not None:
            return k, r
    return None


@dataclass
class ImageEval:
    """What one image gives: derived results for the layers and the numbers for the dock."""

    merged: PanopticMap | None = None
    merge_method: str = ""  # the merge actually used: "heuristic" | "upsnet"
    errors: Any = None  # ErrorMap
    error_kind: str = ""  # "panoptic" | "instances"
    semantic_errors: Any = None  # SemanticErrorMap: per pixel, when a semantic result meets semantic GT
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    pred_names: dict[int, str] = field(default_factory=dict)  # error-map pred id -> class
    gt_names: dict[int, str] = field(default_factory=dict)
    pairs: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # kind -> (pred, gt) for folders


def image_report(inst: Detections | None, sem: SemanticMap | None, gt: Any, params: MergeParams,
                 name: str = "this image", want_ap: bool = True, want_errors: bool = True,
                 keypoints: Detections | None = None) -> ImageEval:
    """Merge, error map and per-image metrics for one image; ``gt`` is a GroundTruth or None.
    ``keypoints`` (a keypoint model's result, :func:`pick_keypoints`) adds keypoint AP (OKS,
    ``metrics["keypoints"]``) when the ground-truth instances carry COCO keypoints."""
    ev = ImageEval()
    if inst is not None and sem is not None:
        ev.merged, note = merge_panoptic(inst, sem, params)
        ev.merge_method = "heuristic" if note or params.method == "heuristic" else "upsnet"
        if note:
            ev.notes.append(note)
    if gt is None or not gt:
        # "No ground truth found beside <name>" is the dock's source line already; not a note too
        if inst is None and sem is None and keypoints is None:
            ev.notes.append("No model results yet.")
        return ev
    if inst is None and sem is None and keypoints is None:
        ev.notes.append("No model results to compare with the ground truth yet.")
        return ev
    if sem is not None and gt.semantic is not None:
        ev.metrics["semantic"] = semantic_scores(sem, gt.semantic)
        ev.pairs["semantic"] = (sem, gt.semantic)
        if want_errors:
            from segviewer.analysis.semantic_error_map import semantic_errors

            ev.semantic_errors = semantic_errors(sem, gt.semantic)
    elif gt.semantic is not None:
        ev.notes.append("Semantic metrics need a semantic model's result.")
    if gt.panoptic is not None and ev.merged is not None:
        from segviewer.analysis.pq import image_pq

        pred = remap_panoptic(ev.merged, gt.panoptic.categories, _isthing(gt.panoptic))
        ev.metrics["panoptic"] = image_pq(pred, gt.panoptic)
        ev.pairs["panoptic"] = (pred, gt.panoptic)
        if want_errors:
            from segviewer.analysis.error_map import panoptic_errors

            ev.errors, ev.error_kind = panoptic_errors(pred, gt.panoptic), "panoptic"
            ev.pred_names = {s.id: pred.categories[s.category_id] for s in pred.segments}
            ev.gt_names = {s.id: gt.panoptic.categories[s.category_id] for s in gt.panoptic.segments}
    elif gt.panoptic is not None:
        ev.notes.append("Panoptic quality needs an instance model and a semantic model (merged).")
    if inst is not None and gt.instances is not None:
        pred_d = remap_detections(inst, gt.instances.categories)
        ev.pairs["instances"] = (pred_d, gt.instances)
        if want_ap:
            from segviewer.analysis.instance_eval import evaluate_detections

            ev.metrics["instances"] = evaluate_detections([(pred_d, gt.instances)])
        if want_errors and ev.errors is None:
            from segviewer.analysis.error_map import instance_errors

            ev.errors, ev.error_kind = instance_errors(pred_d, gt.instances), "instances"
            ev.pred_names = {i + 1: n for i, n in enumerate(pred_d.names)}
            ev.gt_names = {i + 1: n for i, n in enumerate(gt.instances.names)}
    elif gt.instances is not None and inst is None and keypoints is None:
        ev.notes.append("Box/mask AP needs an instance model's result.")
    if keypoints is not None:
        _keypoint_report(ev, keypoints, gt, want_ap)
    return ev


def _keypoint_report(ev: ImageEval, kp: Detections, gt: Any, want_ap: bool) -> None:
    """Keypoint AP of one image (see :func:`image_report`), or a note saying why there is none."""
    if gt.instances is None or gt.instances.keypoints is None:
        ev.notes.append("Keypoint AP needs COCO keypoint ground truth (keypoints in instances.json).")
        return
    pred = remap_detections(kp, gt.instances.categories)
    if not set(kp.categories) & set(gt.instances.categories):
        ev.notes.append(f"Keypoint AP: no predicted class is a ground-truth category "
                        f"({', '.join(gt.instances.categories[:4])}).")
        return
    ev.pairs["keypoints"] = (pred, gt.instances)
    if want_ap:
        from segviewer.analysis.keypoint_eval import evaluate_keypoint_pairs

        try:
            ev.metrics["keypoints"] = evaluate_keypoint_pairs([(pred, gt.instances)])
        except BadDatasetError as err:
            ev.notes.append(f"No keypoint AP: {err}")


def _isthing(pm: PanopticMap) -> tuple[bool, ...]:
    if len(pm.isthing) == len(pm.categories):
        return tuple(pm.isthing)
    flags = [False] * len(pm.categories)
    for s in pm.segments:
        flags[s.category_id] = s.isthing
    return tuple(flags)


def hover_text(ev: ImageEval, x: float, y: float, pixels: bool = True) -> str:
    """"Under cursor: TP circle, IoU 0.91" for the error map at image point (x, y), and, with
    ``pixels`` (the window passes whether that layer is shown), a line for the semantic error map
    ("Pixel: wrong class, predicted grass (IoU 0.91), true sky (IoU 0.88)")."""
    seg = _segment_hover(ev, x, y)
    pix = ev.semantic_errors.hover_text(x, y) if ev.semantic_errors is not None and pixels else ""
    return "\n".join(t for t in (seg, pix) if t)


def _segment_hover(ev: ImageEval, x: float, y: float) -> str:
    if ev.errors is None:
        return ""
    info = ev.errors.info_at(x, y)
    if info is None or info["status"] == "none":
        return "Under cursor: nothing predicted or annotated"
    status = info["status"]
    pid, gid = info["pred_id"], info["gt_id"]
    if status == "TP":
        return f"Under cursor: TP {ev.pred_names.get(pid, '?')}, IoU {info['iou']:.2f}"
    if status == "FN":
        return f"Under cursor: FN {ev.gt_names.get(gid, '?')} (missed)"
    best = info.get("best_iou")
    best_s = f", best IoU {best:.2f}" if best is not None else ""
    if info.get("error_type"):  # the TIDE type (instances): analysis.tide
        best_s += f", {info['error_type']} error"
    if status == "FP":
        return f"Under cursor: FP {ev.pred_names.get(pid, '?')}{best_s}"
    if status == "FP+FN":
        return (f"Under cursor: FP {ev.pred_names.get(pid, '?')}{best_s} over FN "
                f"{ev.gt_names.get(gid, '?')}")
    return f"Under cursor: {status} {ev.pred_names.get(pid, '?')} (mostly on void or crowd)"


class FolderAccumulator:
    """Metrics over a folder: ONE confusion matrix, PQ through ``pq_from_maps`` fed lazily (a
    generator, so no image's maps are kept), and AP through COCOeval over every image at the end."""

    def __init__(self) -> None:
        self.semantic = SemanticAccumulator()
        self.det_pairs: list[tuple[Detections, Detections]] = []
        self.kp_pairs: list[tuple[Detections, Detections]] = []  # keypoint model vs GT with keypoints
        self.images = 0
        self.skipped: list[str] = []
        self.merges: dict[str, int] = {}  # images merged per method (UPSNet falls back without logits)

    def run(self, items: Iterator[ImageEval | str]) -> dict[str, Any]:
        """``items`` yields one ImageEval per evaluated image, or a file name for one without ground
        truth. Exceptions (e.g. cancellation) raised by ``items`` propagate."""
        from segviewer.analysis.pq import pq_from_maps

        def panoptic_pairs() -> Iterator[tuple[PanopticMap, PanopticMap]]:
            for it in items:
                if isinstance(it, str):
                    self.skipped.append(it)
                    continue
                self.images += 1
                if it.merge_method:
                    self.merges[it.merge_method] = self.merges.get(it.merge_method, 0) + 1
                if "semantic" in it.pairs:
                    self.semantic.update(*it.pairs["semantic"])
                if "instances" in it.pairs:
                    self.det_pairs.append(it.pairs["instances"])
                if "keypoints" in it.pairs:
                    self.kp_pairs.append(it.pairs["keypoints"])
                if "panoptic" in it.pairs:
                    yield it.pairs["panoptic"]

        out: dict[str, Any] = {}
        try:
            out["panoptic"] = pq_from_maps(panoptic_pairs())
        except BadDatasetError as err:
            if "no image pairs" not in str(err):
                raise
        if self.semantic.images:
            out["semantic"] = self.semantic.scores()
        if self.det_pairs:
            from segviewer.analysis.instance_eval import evaluate_detections

            out["instances"] = evaluate_detections(self.det_pairs)
            out["instances"]["images"] = len(self.det_pairs)  # type: ignore[assignment]
        if self.kp_pairs:
            from segviewer.analysis.keypoint_eval import evaluate_keypoint_pairs

            try:
                out["keypoints"] = evaluate_keypoint_pairs(self.kp_pairs)
                out["keypoints"]["images"] = len(self.kp_pairs)
            except BadDatasetError as err:
                out["keypoints_note"] = f"No keypoint AP: {err}"
        out["images_evaluated"] = self.images
        if self.merges:
            out["panoptic_merges"] = dict(self.merges)
        out["images_without_ground_truth"] = list(self.skipped)
        return out


ProgressFn = Callable[[int, int, str], None]


def report_csv(report: Mapping[str, Any]) -> str:
    """A flat CSV (section, class, metric, value) of a metrics dict, for spreadsheets."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["section", "class", "metric", "value"])
    sem = report.get("semantic")
    if sem:
        for k in ("pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou"):
            w.writerow(["semantic", "", k, _num(sem[k])])
        for cname, row in sem.get("per_class", {}).items():
            for k in ("iou", "accuracy"):
                w.writerow(["semantic", cname, k, _num(row[k])])
    pan = report.get("panoptic")
    if pan:
        for part in ("all", "things", "stuff"):
            for k in ("pq", "sq", "rq", "n"):
                w.writerow(["panoptic", part, k, _num(pan[part][k])])
        for cname, row in pan.get("per_class", {}).items():
            for k in ("pq", "sq", "rq", "tp", "fp", "fn"):
                w.writerow(["panoptic", cname, k, _num(row[k])])
    inst = report.get("instances")
    if inst:
        for iou_type, stats in inst.items():
            if isinstance(stats, Mapping):
                for k, v in stats.items():
                    w.writerow([f"instances_{iou_type}", "", k, _num(v)])
    kps = report.get("keypoints")
    if isinstance(kps, Mapping):
        for k, v in kps.items():
            w.writerow(["keypoints", "", k, _num(v)])
    return buf.getvalue()


def _num(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6f}"
    return str(v)
