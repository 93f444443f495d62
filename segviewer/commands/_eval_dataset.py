"""``segviewer eval --per-image FILE.csv`` and ``--errors``: the dataset table and TIDE, headless.

* ``--per-image FILE.csv``: one row per image, the numbers the window's Metrics dock shows for
  that image (:mod:`segviewer.analysis.dataset_eval`): instance: box/mask AP and AP50, TP/FP/FN,
  TIDE counts for masks and boxes; panoptic: PQ/SQ/RQ and TP/FP/FN; semantic (``metadata.csv``
  ground truth): mIoU and pixel accuracy.
* ``--errors`` (``--task instance``): each TIDE error type's count and dAP for boxes and masks
  (:mod:`segviewer.analysis.tide`, AP50 as the paper), printed and added to ``--json`` under
  ``"errors"``. Crowd ground truth is scored like any other (as the window does).

Imports are lazy: ``eval.py`` imports this module only when one of these flags is given.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from segviewer.core.errors import SegviewerError

__all__ = ["add_arguments", "instance_extras", "panoptic_extras", "semantic_extras", "CSV_HEAD"]

CSV_HEAD = ("image_id", "file_name", "gt")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--per-image", type=Path, default=None, metavar="FILE.csv",
                   help="also write one row of metrics per image (the dataset table) to this CSV")
    p.add_argument("--errors", action="store_true",
                   help="instance: TIDE error types (count and dAP) for boxes and masks")


def _instance_images(gt: Mapping[str, Any], results: Sequence[Mapping[str, Any]]
                     ) -> Iterator[tuple[int, str, Any, Any]]:
    """``(image_id, file_name, prediction, ground truth)`` per ground-truth image, in id order."""
    import numpy as np

    from segviewer.core.coco_io import CocoInstances
    from segviewer.core.coco_results import coco_to_detections
    from segviewer.core.results import Detections, MaskSet

    coco = CocoInstances(gt, "ground truth")
    with_masks = any("segmentation" in r for r in results)
    by_image: dict[int, list[Mapping[str, Any]]] = {}
    for r in results:
        by_image.setdefault(int(r["image_id"]), []).append(r)
    for iid in coco.image_ids:
        g = coco.detections(iid)
        pred = coco_to_detections(by_image.get(iid, []), g.image_size, coco.categories, coco.category_ids)
        if pred.masks is None and not len(pred) and with_masks:  # no detections: still scored for masks
            pred = Detections(g.image_size, pred.boxes, pred.scores, pred.class_ids, pred.categories,
                              masks=MaskSet(g.image_size, (), np.zeros((0, 2), np.int32)))
        yield iid, str(coco.images[iid].get("file_name", "")), pred, g


def _write_csv(path: Path, rows: list[tuple[Any, str, int, dict[str, Any]]]) -> None:
    import io

    from segviewer.analysis.dataset_eval import ROW_KEYS
    from segviewer.core.fileio import write_text_atomic

    keys = [k for k in ROW_KEYS if any(k in r for *_, r in rows)]
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(list(CSV_HEAD) + keys)
    for iid, name, ngt, row in rows:
        wr.writerow([iid, name, ngt] + [_cell(row.get(k)) for k in keys])
    write_text_atomic(path, buf.getvalue())
    print(f"wrote {path} ({len(rows)} image{'' if len(rows) == 1 else 's'})")


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6f}"
    return str(v)


def instance_extras(args: argparse.Namespace, gt: Mapping[str, Any], results: Sequence[Mapping[str, Any]],
                    res: dict[str, Any]) -> None:
    """Per-image rows and/or TIDE for a COCO instances evaluation; TIDE lands in ``res["errors"]``."""
    from segviewer.analysis.dataset_eval import evaluate_image
    from segviewer.analysis.tide import classify_image, tide_from_images
    from segviewer.core.groundtruth import GroundTruth

    rows = []
    evs: dict[str, list[Any]] = {"bbox": [], "segm": []}
    cats: tuple[str, ...] = ()
    for iid, name, pred, g in _instance_images(gt, results):
        cats = g.categories
        if args.per_image is not None:
            _, row = evaluate_image(pred, GroundTruth(instances=g), name=name)
            rows.append((iid, name, len(g), row))
        if args.errors:
            evs["bbox"].append(classify_image(pred, g, "bbox"))
            if pred.masks is not None:
                evs["segm"].append(classify_image(pred, g, "segm"))
    if args.per_image is not None:
        _write_csv(args.per_image, rows)
    if args.errors:
        if not cats:
            raise SegviewerError("--errors needs ground-truth images")
        out = {t: tide_from_images(e, cats, t).as_dict() for t, e in evs.items() if e}
        res["errors"] = out
        print_errors(out)


def print_errors(out: Mapping[str, Mapping[str, Any]]) -> None:
    from segviewer.analysis.tide import ERROR_TYPES, SHORT_NAMES

    print("\nTIDE error types (Bolya et al. 2020; foreground IoU 0.5, background 0.1): count and dAP50")
    print(f"{'':6s} {'AP50':>6s}" + "".join(f"{SHORT_NAMES[t]:>12s}" for t in ERROR_TYPES))
    print(f"{'':13s}" + "".join(f"{'n':>5s} {'dAP':>6s}" for _ in ERROR_TYPES))
    for t, r in out.items():
        cells = "".join(f"{r['counts'][k]:>5d} {r['dAP'][k]:6.2f}" for k in ERROR_TYPES)
        print(f"{t:6s} {r['ap50']:6.2f}{cells}")


def panoptic_extras(args: argparse.Namespace, gt_json: Mapping[str, Any]) -> None:
    """Per-image PQ rows of a COCO panoptic evaluation (``--per-image``)."""
    from segviewer.analysis.error_map import panoptic_errors
    from segviewer.analysis.evaluation import remap_panoptic
    from segviewer.analysis.pq import image_pq, load_panoptic_json
    from segviewer.core.panoptic_io import PanopticDataset

    if args.errors:
        raise SegviewerError("--errors is for --task instance (TIDE types boxes and masks)")
    if args.per_image is None:
        return
    gt_folder = args.gt_folder if args.gt_folder is not None else Path(args.gt).with_suffix("")
    pred_json = load_panoptic_json(args.pred)
    pred_folder = args.pred_folder if args.pred_folder is not None else Path(args.pred).with_suffix("")
    gds = PanopticDataset(gt_json, Path(gt_folder), Path(args.gt).name)
    pds = PanopticDataset(pred_json, Path(pred_folder), Path(args.pred).name)
    rows = []
    for iid in gds.image_ids:
        g = gds.panoptic(iid)
        p = pds.panoptic(iid)
        p = remap_panoptic(p, g.categories, g.isthing)  # by name, as the dock
        a = image_pq(p, g)["all"]
        c = panoptic_errors(p, g).counts
        name = str(gds.images.get(iid, {}).get("file_name", gds.annotation(iid).get("file_name", "")))
        rows.append((iid, name, sum(1 for s in g.segments if not s.iscrowd),
                     {"pq": a["pq"], "sq": a["sq"], "rq": a["rq"], "tp": c["TP"], "fp": c["FP"], "fn": c["FN"]}))
    _write_csv(args.per_image, rows)


def semantic_extras(args: argparse.Namespace) -> None:
    """Per-image semantic rows (``--per-image``) for a ``metadata.csv`` ground truth; predictions
    are found as ``eval`` finds them (``<name>_labels.png`` anywhere under ``--pred``, else
    ``<name>.png`` in it)."""
    from segviewer.analysis.dataset_eval import evaluate_image
    from segviewer.core.dataset_index import open_dataset
    from segviewer.core.groundtruth import semantic_from_png

    if args.errors:
        raise SegviewerError("--errors is for --task instance (TIDE types boxes and masks)")
    if args.per_image is None:
        return
    index = open_dataset(args.gt)
    if "semantic" not in index.kind:
        raise SegviewerError("--per-image for --task semantic needs a metadata.csv (or a folder holding one)")
    pred_dir = Path(args.pred)
    labels = {p.name[: -len("_labels.png")]: p for p in pred_dir.rglob("*_labels.png")}
    rows = []
    for i, img in enumerate(index.paths):
        gt = index.ground_truth(i)
        p = labels.get(img.stem) or next((q for q in (pred_dir / f"{img.stem}.png",) if q.is_file()), None)
        if p is None:
            raise SegviewerError(f"no prediction {img.stem}_labels.png or {img.stem}.png in {pred_dir}")
        pred = semantic_from_png(p, _pred_names(pred_dir) or gt.semantic.categories, None)
        _, row = evaluate_image(pred, gt, name=img.name)
        rows.append((-1, img.name, len(gt.semantic.categories), row))
    _write_csv(args.per_image, rows)


def _pred_names(pred: Path) -> tuple[str, ...] | None:
    import json

    p = pred / "categories.json"
    if not p.is_file():
        return None
    try:
        data = sorted(json.loads(p.read_text(encoding="utf-8")), key=lambda c: int(c["id"]))
        return tuple(str(c["name"]) for c in data)
    except (OSError, ValueError, KeyError, TypeError):
        return None
