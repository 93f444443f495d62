"""``segviewer eval``: compare predictions with ground truth, print a table, optionally write JSON.

* ``--task panoptic``: ``--gt`` / ``--pred`` are COCO panoptic JSONs, each with its PNG folder
  beside it (``panoptic.json`` + ``panoptic/``) or named by ``--gt-folder`` / ``--pred-folder``.
  Numbers equal the reference ``pq_compute`` (see segviewer.analysis.pq).
* ``--task semantic``: ``--gt`` is a folder of label PNGs, a ``metadata.csv`` (``Image,Mask``), a
  Cityscapes tree (``leftImg8bit/`` + ``gtFine/``: its root or a split folder; labelIds read as the
  window reads them, classes Cityscapes ignores set to 255), or
  a dataset folder holding one; ``--pred`` a folder of label PNGs matched to the ground truth by
  file stem: ``segviewer predict``'s ``<name>_labels.png`` (in subfolders too), else plain
  ``<name>.png``. ``--num-classes`` defaults to the dataset's categories, else the largest label
  + 1. When ``categories.json`` beside the predictions names their classes differently from the
  dataset, classes are matched by name.
* ``--task instance``: ``--gt`` a COCO instances JSON, ``--pred`` a COCO results JSON (or the
  folder ``segviewer predict`` wrote, holding ``results.json``). When ``categories.json`` beside
  the results names their category ids (``predict`` writes it) and the names disagree with the
  ground truth's ids, categories are matched by name; results of classes the ground truth lacks
  are left out, and when no predicted category is a ground-truth category, eval refuses. When the
  ground truth annotates keypoints and the results carry them (a Keypoint R-CNN's), keypoint AP
  (OKS, COCO's sigmas) is added through COCOeval's ``keypoints`` IoU type. When every result
  carries ``box_score`` and ``mask_iou`` (``predict`` writes them for Mask Scoring R-CNN,
  ``shapes_msrcnn``), mask AP is also printed under both scoring rules side by side: box score
  (Mask R-CNN) and box score x predicted mask IoU (Mask Scoring R-CNN), each COCOeval on the
  results rescored that way, and each score's Pearson r with the detections' real mask IoU
  (``--json``: ``mask_scoring``).

``--engine ray``: each image's partial statistics (the semantic confusion matrix, the PQ per-class
TP/FP/FN/IoU sums, the ``--per-image`` rows and ``--errors``' per-image TIDE classifications) are
computed by Ray tasks and gathered here in image order, so the numbers (and the CSV's bytes) equal
the single-process ones; box/mask AP (COCOeval) and TIDE's dAP need every image and run here.

Ground truth whose annotations refer to image ids its ``images`` list lacks is refused. The JSON
(``--json OUT``) is written atomically.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterable, Iterator
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
                   help="panoptic: processes decoding and counting PNGs (threads where the platform "
                        "cannot fork; default: one per CPU, at most 8)")
    p.add_argument("--num-classes", type=int, default=None, help="semantic: number of classes")
    p.add_argument("--ignore-index", type=int, default=255, help="semantic: void label (-1 for none)")
    from segviewer.commands import _eval_dataset

    _eval_dataset.add_arguments(p)  # --per-image FILE.csv, --errors (the dataset view, issue #14)
    from segviewer.commands import _ray_engine

    _ray_engine.add_arguments(p, "score")  # --engine ray: per-image statistics on Ray, reduced here


def run(args: argparse.Namespace) -> int:
    from segviewer.commands import _ray_engine

    _ray_engine.check_arguments(args)
    if args.json is not None:  # a --json that cannot be written fails before minutes of scoring
        from segviewer.core.fileio import ensure_dir

        ensure_dir(Path(args.json).parent, args.json)
        if Path(args.json).is_dir():
            raise SegviewerError(f"--json {args.json} is a folder; name a file")
    with _engine(args) as mapper:
        return _run(args, mapper)


Mapper = Callable[..., Iterable[Any]]


def _local_map(fn: Callable[..., Any], items: Iterable[tuple[Any, ...]]) -> Iterator[Any]:
    """The single-process engine: ``fn(*item)`` per item, in order."""
    for item in items:
        yield fn(*item)


@contextlib.contextmanager
def _engine(args: argparse.Namespace) -> Iterator[Mapper | None]:
    """``mapper(fn, items)`` running the per-image statistics: None for the single-process engine
    (each task's own loop), Ray tasks with ``--engine ray`` (results in image order)."""
    if getattr(args, "engine", "single") != "ray":
        yield None
        return
    from segviewer.commands import _ray_engine

    with contextlib.ExitStack() as stack:
        sessions: list[Any] = []

        def mapper(fn: Callable[..., Any], items: Iterable[tuple[Any, ...]]) -> Iterator[Any]:
            if not sessions:  # Ray starts only when there is per-image work for it
                sessions.append(stack.enter_context(_ray_engine.RaySession(args.address)))
            ray = sessions[0].ray
            items = list(items)
            pool = _ray_engine.pool_for(ray, args, len(items), gpu_work=False)
            progress = _ray_engine.Progress(len(items))
            yield from _ray_engine.ordered_map(ray, fn, items, pool, progress)
            _note(f"ray: {len(items)} images scored in {progress.summary()}")

        _ray_engine.import_ray()  # a missing extra says so before anything is read
        yield mapper


def _run(args: argparse.Namespace, mapper: Mapper | None) -> int:
    if args.task == "panoptic":
        from segviewer.analysis.pq import load_panoptic_json, pq_compute
        from segviewer.core.coco_io import check_annotated_images

        gt = load_panoptic_json(args.gt)
        check_annotated_images(gt, Path(args.gt).name)
        gt_folder = args.gt_folder if args.gt_folder is not None else Path(args.gt).with_suffix("")
        res = pq_compute(gt, args.pred, gt_folder, args.pred_folder, workers=args.workers, mapper=mapper,
                         processes=True)  # a command: no other thread runs, so its workers fork
        _print_panoptic(res)
        if args.per_image is not None or args.errors:
            from segviewer.commands import _eval_dataset

            _eval_dataset.panoptic_extras(args, gt, mapper or _local_map)
    elif args.task == "semantic":
        res = _semantic(args, mapper or _local_map)
        _print_semantic(res)
        if args.per_image is not None or args.errors:
            from segviewer.commands import _eval_dataset

            _eval_dataset.semantic_extras(args, mapper or _local_map)
    else:
        from segviewer.analysis.instance_eval import coco_evaluate

        gt, results = _instance_inputs(args.gt, args.pred)
        if mapper is not None:
            _note("ray: box and mask AP are computed here, on the driver (COCOeval needs every image at once)"
                  + ("; TIDE's dAP too, from the workers' per-image classifications" if args.errors else ""))
        res = coco_evaluate(gt, results)
        from segviewer.analysis.keypoint_eval import has_keypoint_annotations, keypoint_evaluate

        if has_keypoint_annotations(gt) and any(r.get("keypoints") for r in results):
            try:  # OKS through COCOeval(iouType="keypoints"); box/mask AP stand without it
                res["keypoints"] = keypoint_evaluate(gt, results)
            except SegviewerError as err:
                _note(f"no keypoint AP: {err}")
        _print_instance(res)
        from segviewer.analysis.mask_scoring import has_rule_scores, rescore

        if has_rule_scores(results):  # Mask Scoring R-CNN's records: mask AP under either rule
            from segviewer.analysis.mask_scoring import rule_correlations

            res["mask_scoring"] = {rule: coco_evaluate(gt, rescore(results, rule), ["segm"])["segm"]
                                   for rule in ("box", "mask")}
            res["mask_scoring"]["pearson_real_iou"] = rule_correlations(gt, results)
            _print_mask_scoring(res["mask_scoring"])
        if args.per_image is not None or args.errors:
            from segviewer.commands import _eval_dataset

            _eval_dataset.instance_extras(args, gt, results, res, mapper or _local_map)
    if args.json is not None:
        from segviewer.core.fileio import write_json_atomic

        write_json_atomic(args.json, res, indent=1)
        print(f"\nwrote {args.json}")
    return 0


# ---------------------------------------------------------------------------------------------


def _note(msg: str) -> None:
    import sys

    print(f"segviewer eval: {msg}", file=sys.stderr)


def _names_beside(pred: Path) -> dict[int, str] | None:
    """``categories.json`` beside predictions (``[{"id", "name"}, ...]``, as predict writes it)."""
    import json

    p = (pred if pred.is_dir() else pred.parent) / "categories.json"
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        return {int(c["id"]): str(c["name"]) for c in data}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise SegviewerError(f"{p} does not name categories as [{{\"id\", \"name\"}}, ...] ({err})") from None


def _instance_inputs(gt_path: Path, pred: Path) -> tuple[dict[str, Any], list[Any]]:
    """The ground truth and the results, the results' categories matched to the ground truth's
    by name when ``categories.json`` says their ids mean other classes (see the module docstring)."""
    import json

    from segviewer.core.coco_io import check_annotated_images
    from segviewer.core.errors import BadDatasetError
    from segviewer.core.fileio import read_json_object

    gt = read_json_object(gt_path, "ground-truth JSON")
    if not all(isinstance(gt.get(k), list) for k in ("images", "annotations", "categories")):
        raise BadDatasetError(f"{gt_path.name} is not a COCO instances JSON (images, annotations, categories)")
    check_annotated_images(gt, gt_path.name)
    res_path = pred / "results.json" if pred.is_dir() else pred
    try:
        results = json.loads(res_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadDatasetError(f"the results {res_path} are missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise BadDatasetError(f"{res_path.name} is not a readable JSON file ({err})") from None
    if isinstance(results, dict) and isinstance(results.get("annotations"), list):
        results = results["annotations"]  # a whole COCO file given as results
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise BadDatasetError(f"{res_path.name} is not a list of COCO result records")
    try:
        gt_names = {int(c["id"]): str(c["name"]) for c in gt["categories"]}
    except (KeyError, TypeError, ValueError) as err:
        raise BadDatasetError(f"{gt_path.name} has a category without a valid {err}") from None
    pred_names = _names_beside(res_path)
    used = {r.get("category_id") for r in results}
    if pred_names is None or all(pred_names.get(c) == gt_names.get(c) for c in used):
        return gt, results  # the ids already agree (or nothing says otherwise)
    by_name = {n: i for i, n in sorted(gt_names.items(), reverse=True)}  # the smallest id per name
    to_gt = {c: by_name.get(pred_names.get(c, "")) for c in used}
    if not any(v is not None for v in to_gt.values()):
        shown = sorted({pred_names.get(c, f"id {c}") for c in used}, key=str)[:6]
        raise BadDatasetError(f"no predicted category ({', '.join(map(str, shown))}) is a category of "
                              f"{gt_path.name} ({', '.join(list(gt_names.values())[:6])})")
    lost = sorted({pred_names.get(c, f"id {c}") for c, v in to_gt.items() if v is None}, key=str)
    kept = [dict(r, category_id=to_gt[r.get("category_id")]) for r in results if to_gt[r.get("category_id")] is not None]
    _note(f"categories matched by name ({res_path.parent / 'categories.json'} against {gt_path.name})"
          + (f"; {len(results) - len(kept)} results of {', '.join(lost)} left out" if lost else ""))
    return gt, kept


def _gt_masks(gt: Path) -> tuple[list[tuple[Path, Path | None]], tuple[str, ...] | None]:
    """``[(mask, its image or None)]`` and the dataset's class names (when it has them)."""
    from segviewer.core.groundtruth import dataset_categories, metadata_pairs

    if gt.is_file() and gt.suffix.lower() == ".csv":
        return [(m, i) for i, m in metadata_pairs(gt)], dataset_categories(gt.parent)
    if gt.is_dir() and (gt / "metadata.csv").is_file():
        return [(m, i) for i, m in metadata_pairs(gt / "metadata.csv")], dataset_categories(gt)
    from segviewer.commands._eval_dataset import cityscapes_images, cityscapes_masks

    if cityscapes_images(gt) is not None:  # leftImg8bit/ + gtFine/ (root or a split folder)
        pairs, names = cityscapes_masks(gt)
        return [(m, im) for m, im in pairs], names
    if gt.is_dir():
        files = sorted(p for p in gt.iterdir() if p.suffix.lower() == ".png")
        if not files:
            raise SegviewerError(f"{gt} holds no label PNGs")
        return [(f, None) for f in files], dataset_categories(gt.parent)
    raise SegviewerError(f"{gt} is neither a folder of label PNGs nor a metadata.csv")


def _pred_pngs(pred: Path) -> dict[str, list[Path]]:
    """Prediction label PNGs by name: ``predict``'s ``*_labels.png`` anywhere under ``pred`` (the
    name without ``_labels``) when there are any, else the plain PNGs directly in ``pred``."""
    if not pred.is_dir():
        raise SegviewerError(f"the prediction {pred} must be a folder of label PNGs")
    found: dict[str, list[Path]] = {}
    labels = sorted(pred.rglob("*_labels.png"))
    if labels:
        for p in labels:
            found.setdefault(p.name[: -len("_labels.png")], []).append(p)
    else:
        for p in sorted(pred.iterdir()):
            if p.suffix.lower() == ".png" and not p.stem.endswith("_overlay"):
                found.setdefault(p.stem, []).append(p)
    return found


def _pred_for(preds: dict[str, list[Path]], mask: Path, image: Path | None, pred_dir: Path) -> Path:
    from segviewer.core.errors import BadDatasetError

    for key in ([image.stem] if image is not None else []) + [mask.stem]:
        hits = preds.get(key, [])
        if len(hits) > 1:
            raise BadDatasetError(f"{len(hits)} predictions are named {key} in {pred_dir} "
                                  f"({', '.join(str(h.relative_to(pred_dir)) for h in hits[:3])}); keep one")
        if hits:
            return hits[0]
    raise BadDatasetError(f"no prediction {mask.stem}.png (or {mask.stem}_labels.png) in {pred_dir} "
                          f"for ground truth {mask.name}")


def _semantic(args: argparse.Namespace, mapper: Mapper) -> dict[str, Any]:
    """The confusion matrix summed over images; each image's matrix made by ``mapper`` (this
    process or Ray tasks) and added here in image order."""
    from segviewer.analysis.metrics import ConfusionMatrix

    masks, cats = _gt_masks(args.gt)
    preds = _pred_pngs(args.pred)
    ignore = None if args.ignore_index is not None and args.ignore_index < 0 else args.ignore_index
    pairs = [(m, _pred_for(preds, m, im, args.pred)) for m, im in masks]
    pred_names = _names_beside(args.pred)
    if cats and pred_names and not args.num_classes:
        names = [pred_names.get(i) for i in range(max(pred_names) + 1)]
        if None not in names and tuple(names) != tuple(cats):
            return _semantic_by_name(pairs, tuple(cats), tuple(n for n in names if n is not None), ignore, args,
                                     mapper)
    n = args.num_classes or (len(cats) if cats else None)
    if n is None:  # the largest label seen, over ground truth and predictions
        n = max(mapper(_top_label, [(m, p, ignore) for m, p in pairs]), default=0) + 1
    names = cats if cats and len(cats) == n else None
    cm = ConfusionMatrix(n, ignore, names)
    for matrix in mapper(_pair_confusion, [(m, p, n, ignore) for m, p in pairs]):
        cm.matrix += matrix
        cm.images += 1
    res = cm.scores()
    res["num_classes"] = n
    res["ignore_index"] = ignore
    return res


def _top_label(mask: Path, pred: Path, ignore: int | None) -> int:
    """The largest label of one image pair (ground truth and prediction, ignore label left out)."""
    from segviewer.commands._eval_dataset import read_gt_labels
    from segviewer.core.groundtruth import read_label_png

    top = 0
    for a in (read_gt_labels(mask), read_label_png(pred).labels):
        v = a[a != ignore] if ignore is not None else a
        top = max(top, int(v.max()) if v.size else 0)
    return top


def _pair_confusion(mask: Path, pred: Path, n: int, ignore: int | None) -> Any:
    """One image pair's ``(n, n)`` confusion matrix (a per-image partial sum)."""
    import numpy as np

    from segviewer.analysis.metrics import confusion_matrix
    from segviewer.commands._eval_dataset import read_gt_labels
    from segviewer.core.groundtruth import read_label_png

    g, pr = read_gt_labels(mask), read_label_png(pred).labels
    return confusion_matrix(np.asarray(g), np.asarray(pr), n, ignore, where=mask.name)


def _semantic_by_name(pairs: list[tuple[Path, Path]], gt_names: tuple[str, ...], pred_names: tuple[str, ...],
                      ignore: int | None, args: argparse.Namespace, mapper: Mapper) -> dict[str, Any]:
    """Predictions whose class ids name other classes than the dataset's: scored by name, the
    way the window scores them (classes only one side has count as wrong)."""
    from segviewer.analysis.evaluation import SemanticAccumulator, semantic_pred_names
    from segviewer.core.errors import BadDatasetError

    matched = set(semantic_pred_names(pred_names, gt_names)) & set(gt_names)
    if not matched:
        raise BadDatasetError(f"no predicted class ({', '.join(pred_names[:6])}) is a class of the ground truth "
                              f"({', '.join(gt_names[:6])})")
    _note(f"classes matched by name ({args.pred / 'categories.json'} against the dataset's)")
    acc = SemanticAccumulator()
    for one in mapper(_pair_by_name, [(m, p, gt_names, pred_names, ignore) for m, p in pairs]):
        acc.merge(one)
    res = acc.scores()
    res["num_classes"] = len(acc.names)
    res["ignore_index"] = ignore
    return res


def _pair_by_name(mask: Path, pred: Path, gt_names: tuple[str, ...], pred_names: tuple[str, ...],
                  ignore: int | None) -> Any:
    """One image pair scored by name: an accumulator of that image alone (merged in order)."""
    from segviewer.analysis.evaluation import SemanticAccumulator
    from segviewer.commands._eval_dataset import read_gt_labels
    from segviewer.core.errors import BadDatasetError
    from segviewer.core.groundtruth import read_label_png
    from segviewer.core.results import SemanticMap

    g, pr = read_gt_labels(mask), read_label_png(pred).labels
    if pr.size and int(pr.max()) >= len(pred_names):
        raise BadDatasetError(f"{pred.name} has label {int(pr.max())} but categories.json names {len(pred_names)}")
    acc = SemanticAccumulator()
    acc.update(SemanticMap(pr, pred_names, ignore_index=None), SemanticMap(g, gt_names, ignore_index=ignore),
               where=mask.name)
    return acc


def _pct(v: float | None) -> str:
    return "    -" if v is None else f"{100 * v:5.1f}"


def _print_semantic(res: dict[str, Any]) -> None:
    print(f"{'class':16s} {'IoU':>5s} {'acc':>5s} {'GT px':>10s}")
    for name, row in res["per_class"].items():
        print(f"{name:16s} {_pct(row['iou'])} {_pct(row['accuracy'])} {row['gt_pixels']:10d}")
    print("-" * 40)
    print(f"pixel accuracy {_pct(res['pixel_accuracy'])}   mean accuracy {_pct(res['mean_accuracy'])}   "
          f"mean IoU {_pct(res['mean_iou'])}   fw IoU {_pct(res['fw_iou'])}   "
          f"({res['n_classes']} class{'' if res['n_classes'] == 1 else 'es'} present, "
          f"{res['images']} image{'' if res['images'] == 1 else 's'})")


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
    print(f"({res['images']} image{'' if res['images'] == 1 else 's'})")


def _print_instance(res: dict[str, dict[str, float]]) -> None:
    from segviewer.analysis.instance_eval import STAT_NAMES

    print(f"{'':6s}" + "".join(f"{k:>7s}" for k in STAT_NAMES))
    for t, stats in res.items():
        if t == "keypoints":  # COCO's ten keypoint numbers (no small objects), under their own header
            print(f"\n{'':10s}" + "".join(f"{k:>7s}" for k in stats))
            print(f"{t:10s}" + "".join(f"{'-' if v < 0 else f'{100 * v:.1f}':>7s}" for v in stats.values()))
            continue
        print(f"{t:6s}" + "".join(f"{'-' if stats[k] < 0 else f'{100 * stats[k]:.1f}':>7s}" for k in STAT_NAMES))


def _print_mask_scoring(rules: dict[str, dict[str, float]]) -> None:
    from segviewer.analysis.instance_eval import STAT_NAMES

    print("\nmask AP by scoring rule (the records carry box_score and mask_iou: Mask Scoring R-CNN)")
    print(f"{'':16s}" + "".join(f"{k:>7s}" for k in STAT_NAMES))
    for rule, title in (("box", "box score"), ("mask", "box x mask IoU")):
        stats = rules[rule]
        print(f"{title:16s}" + "".join(f"{'-' if stats[k] < 0 else f'{100 * stats[k]:.1f}':>7s}" for k in STAT_NAMES))
    r = rules.get("pearson_real_iou")
    if r:
        print(f"Pearson r with each detection's real mask IoU ({int(r['detections'])} detections): "
              f"box score {r['box']:.3f}, box x mask IoU {r['mask']:.3f}, predicted IoU alone {r['mask_iou']:.3f}")
