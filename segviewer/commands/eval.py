"""``segviewer eval``: compare predictions with ground truth, print a table, optionally write JSON.

* ``--task panoptic``: ``--gt`` / ``--pred`` are COCO panoptic JSONs, each with its PNG folder
  beside it (``panoptic.json`` + ``panoptic/``) or named by ``--gt-folder`` / ``--pred-folder``.
  Numbers equal the reference ``pq_compute`` (see segviewer.analysis.pq).
* ``--task semantic``: ``--gt`` is a folder of label PNGs, a ``metadata.csv`` (``Image,Mask``), or
  a dataset folder holding one; ``--pred`` a folder of label PNGs matched to the ground truth by
  file stem. ``--num-classes`` defaults to the dataset's categories, else the largest label + 1.
* ``--task instance``: ``--gt`` a COCO instances JSON, ``--pred`` a COCO results JSON.

The JSON (``--json OUT``) is written atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from segviewer.core.errors import SegviewerError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = __doc__.split("\n\n", 1)[1].replace("``", "")
    p.add_argument("--task", required=True, choices=("semantic", "instance", "panoptic"))
    p.add_argument("--gt", required=True, type=Path,
                   help="panoptic: COCO panoptic JSON; semantic: label PNG folder, metadata.csv or dataset "
                        "folder; instance: COCO instances JSON")
    p.add_argument("--pred", required=True, type=Path,
                   help="panoptic: COCO panoptic JSON; semantic: label PNG folder; instance: COCO results JSON")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    p.add_argument("--gt-folder", type=Path, default=None, help="panoptic: ground-truth PNG folder")
    p.add_argument("--pred-folder", type=Path, default=None, help="panoptic: prediction PNG folder")
    p.add_argument("--workers", type=int, default=None,
                   help="panoptic: threads decoding PNGs (default: one per CPU, at most 8)")
    p.add_argument("--num-classes", type=int, default=None, help="semantic: number of classes")
    p.add_argument("--ignore-index", type=int, default=255, help="semantic: void label (-1 for none)")


def run(args: argparse.Namespace) -> int:
    if args.task == "panoptic":
        from segviewer.analysis.pq import pq_compute

        res = pq_compute(args.gt, args.pred, args.gt_folder, args.pred_folder, workers=args.workers)
        _print_panoptic(res)
    elif args.task == "semantic":
        res = _semantic(args)
        _print_semantic(res)
    else:
        from segviewer.analysis.instance_eval import coco_evaluate

        res = coco_evaluate(args.gt, args.pred)
        _print_instance(res)
    if args.json is not None:
        from segviewer.core.fileio import write_json_atomic

        write_json_atomic(args.json, res, indent=1)
        print(f"\nwrote {args.json}")
    return 0


# ---------------------------------------------------------------------------------------------


def _gt_masks(gt: Path) -> tuple[list[Path], tuple[str, ...] | None]:
    from segviewer.core.groundtruth import dataset_categories, metadata_pairs

    if gt.is_file() and gt.suffix.lower() == ".csv":
        return [m for _, m in metadata_pairs(gt)], dataset_categories(gt.parent)
    if gt.is_dir() and (gt / "metadata.csv").is_file():
        return [m for _, m in metadata_pairs(gt / "metadata.csv")], dataset_categories(gt)
    if gt.is_dir():
        files = sorted(p for p in gt.iterdir() if p.suffix.lower() == ".png")
        if not files:
            raise SegviewerError(f"{gt} holds no label PNGs")
        return files, dataset_categories(gt.parent)
    raise SegviewerError(f"{gt} is neither a folder of label PNGs nor a metadata.csv")


def _semantic(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from segviewer.analysis.metrics import ConfusionMatrix
    from segviewer.core.errors import BadDatasetError
    from segviewer.core.groundtruth import read_label_png

    masks, cats = _gt_masks(args.gt)
    if not args.pred.is_dir():
        raise SegviewerError(f"the prediction {args.pred} must be a folder of label PNGs")
    preds = {p.stem: p for p in args.pred.iterdir() if p.suffix.lower() == ".png"}
    ignore = None if args.ignore_index is not None and args.ignore_index < 0 else args.ignore_index
    pairs = []
    for m in masks:
        p = preds.get(m.stem)
        if p is None:
            raise BadDatasetError(f"no prediction {m.stem}.png in {args.pred} for ground truth {m.name}")
        pairs.append((m, p))
    n = args.num_classes or (len(cats) if cats else None)
    loaded = None
    if n is None:  # the largest label seen, over ground truth and predictions
        loaded = [(read_label_png(m).labels, read_label_png(p).labels) for m, p in pairs]
        top = 0
        for g, pr in loaded:
            for a in (g, pr):
                v = a[a != ignore] if ignore is not None else a
                top = max(top, int(v.max()) if v.size else 0)
        n = top + 1
    names = cats if cats and len(cats) == n else None
    cm = ConfusionMatrix(n, ignore, names)
    for k, (m, p) in enumerate(pairs):
        g, pr = loaded[k] if loaded else (read_label_png(m).labels, read_label_png(p).labels)
        cm.update(np.asarray(g), np.asarray(pr), where=m.name)
    res = cm.scores()
    res["num_classes"] = n
    res["ignore_index"] = ignore
    return res


def _pct(v: float | None) -> str:
    return "    -" if v is None else f"{100 * v:5.1f}"


def _print_semantic(res: dict[str, Any]) -> None:
    print(f"{'class':16s} {'IoU':>5s} {'acc':>5s} {'GT px':>10s}")
    for name, row in res["per_class"].items():
        print(f"{name:16s} {_pct(row['iou'])} {_pct(row['accuracy'])} {row['gt_pixels']:10d}")
    print("-" * 40)
    print(f"pixel accuracy {_pct(res['pixel_accuracy'])}   mean accuracy {_pct(res['mean_accuracy'])}   "
          f"mean IoU {_pct(res['mean_iou'])}   fw IoU {_pct(res['fw_iou'])}   "
          f"({res['n_classes']} classes present, {res['images']} images)")


def _print_panoptic(res: dict[str, Any]) -> None:
    print(f"{'category':16s} {'PQ':>5s} {'SQ':>5s} {'RQ':>5s} {'TP':>5s} {'FP':>5s} {'FN':>5s}")
    for name, row in res["per_class"].items():
        print(f"{name:16s} {_pct(row['pq'])} {_pct(row['sq'])} {_pct(row['rq'])} "
              f"{row['tp']:5d} {row['fp']:5d} {row['fn']:5d}")
    print("-" * 52)
    print(f"{'':16s} {'PQ':>5s} {'SQ':>5s} {'RQ':>5s} {'N':>5s}")
    for k in ("all", "things", "stuff"):
        r = res[k]
        print(f"{k:16s} {_pct(r['pq'])} {_pct(r['sq'])} {_pct(r['rq'])} {r['n']:5d}")
    for size, parts in res.get("by_size", {}).items():
        r = parts["all"]
        print(f"{'  ' + size:16s} {_pct(r['pq'])} {_pct(r['sq'])} {_pct(r['rq'])} {r['n']:5d}")
    print(f"({res['images']} images)")


def _print_instance(res: dict[str, dict[str, float]]) -> None:
    from segviewer.analysis.instance_eval import STAT_NAMES

    print(f"{'':6s}" + "".join(f"{k:>7s}" for k in STAT_NAMES))
    for t, stats in res.items():
        print(f"{t:6s}" + "".join(f"{'-' if stats[k] < 0 else f'{100 * stats[k]:.1f}':>7s}" for k in STAT_NAMES))
