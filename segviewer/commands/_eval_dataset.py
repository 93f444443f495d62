"""``segviewer eval --per-image FILE.csv`` and ``--errors``: the dataset table and TIDE, headless.

* ``--per-image FILE.csv``: one row per image, the numbers the window's Metrics dock shows for
  that image (:mod:`segviewer.analysis.dataset_eval`): instance: box/mask AP and AP50, TP/FP/FN,
  TIDE counts for masks and boxes; panoptic: PQ/SQ/RQ and TP/FP/FN; semantic (``metadata.csv``
  ground truth, or a Cityscapes tree: ``leftImg8bit/`` + ``gtFine/``, given as its root or as a
  split folder under either): mIoU and pixel accuracy.
* ``--errors`` (``--task instance``): each TIDE error type's count and dAP for boxes and masks
  (:mod:`segviewer.analysis.tide`, AP50 as the paper), printed and added to ``--json`` under
  ``"errors"``. Crowd ground truth is scored like any other (as the window does).

Imports are lazy: ``eval.py`` imports this module only when one of these flags is given.
"""

from __future__ import annotations

import argparse
import csv
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from segviewer.core.errors import SegviewerError

__all__ = ["add_arguments", "instance_extras", "panoptic_extras", "semantic_extras", "instance_image",
           "panoptic_image", "semantic_image", "CSV_HEAD", "Mapper", "cityscapes_images", "cityscapes_masks",
           "read_gt_labels", "cityscapes_image"]

CSV_HEAD = ("image_id", "file_name", "gt")
#: ``mapper(fn, items)``: ``fn(*item)`` per item, values in the order of ``items`` (eval.py's engines).
Mapper = Callable[[Callable[..., Any], Iterable[tuple[Any, ...]]], Iterable[Any]]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--per-image", type=Path, default=None, metavar="FILE.csv",
                   help="also write one row of metrics per image (the dataset table) to this CSV")
    p.add_argument("--errors", action="store_true",
                   help="instance: TIDE error types (count and dAP) for boxes and masks")


def _instance_items(gt: Mapping[str, Any], results: Sequence[Mapping[str, Any]], want_row: bool,
                    want_errors: bool) -> tuple[list[tuple[Any, ...]], tuple[str, ...]]:
    """One argument tuple of :func:`instance_image` per ground-truth image, in id order, and the
    categories. Each holds only its image's ground truth and results (a small pickle for a Ray
    task); the whole file is validated here once."""
    from segviewer.core.coco_io import CocoInstances

    coco = CocoInstances(gt, "ground truth")
    with_masks = any("segmentation" in r for r in results)
    by_image: dict[int, list[Mapping[str, Any]]] = {}
    for r in results:
        by_image.setdefault(int(r["image_id"]), []).append(r)
    cats = list(gt["categories"])
    items = [({"images": [coco.images[iid]], "annotations": coco.annotations(iid), "categories": cats},
              iid, by_image.get(iid, []), with_masks, want_row, want_errors) for iid in coco.image_ids]
    return items, coco.categories


def instance_image(gt: Mapping[str, Any], iid: int, records: Sequence[Mapping[str, Any]], with_masks: bool,
                   want_row: bool, want_errors: bool) -> tuple[Any, Any, Any]:
    """One image of an instances evaluation, the same on either engine (this process or a Ray
    task): ``(CSV row or None, TIDE box classification or None, TIDE mask classification or
    None)``. ``gt`` is a COCO instances dict holding this image (:func:`_instance_items`)."""
    import numpy as np

    from segviewer.analysis.dataset_eval import evaluate_image
    from segviewer.analysis.tide import classify_image
    from segviewer.core.coco_io import CocoInstances
    from segviewer.core.coco_results import coco_to_detections
    from segviewer.core.groundtruth import GroundTruth
    from segviewer.core.results import Detections, MaskSet

    coco = CocoInstances(gt, "ground truth")
    g = coco.detections(iid)
    pred = coco_to_detections(records, g.image_size, coco.categories, coco.category_ids)
    if pred.masks is None and not len(pred) and with_masks:  # no detections: still scored for masks
        pred = Detections(g.image_size, pred.boxes, pred.scores, pred.class_ids, pred.categories,
                          masks=MaskSet(g.image_size, (), np.zeros((0, 2), np.int32)))
    name = str(coco.images[iid].get("file_name", ""))
    row = None
    if want_row:
        row = (iid, name, len(g), evaluate_image(pred, GroundTruth(instances=g), name=name)[1])
    boxes = classify_image(pred, g, "bbox") if want_errors else None
    masks = classify_image(pred, g, "segm") if want_errors and pred.masks is not None else None
    return row, boxes, masks


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
                    res: dict[str, Any], mapper: Mapper) -> None:
    """Per-image rows and/or TIDE for a COCO instances evaluation; TIDE lands in ``res["errors"]``.
    Each image by :func:`instance_image` through ``mapper`` (this process, or Ray tasks whose
    results come back in image order); TIDE's dAP, which needs every image, is computed here."""
    from segviewer.analysis.tide import tide_from_images

    items, cats = _instance_items(gt, results, args.per_image is not None, args.errors)
    rows = []
    evs: dict[str, list[Any]] = {"bbox": [], "segm": []}
    for row, boxes, masks in mapper(instance_image, items):
        if row is not None:
            rows.append(row)
        if boxes is not None:
            evs["bbox"].append(boxes)
        if masks is not None:
            evs["segm"].append(masks)
    if args.per_image is not None:
        _write_csv(args.per_image, rows)
    if args.errors:
        if not items or not cats:
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


def panoptic_extras(args: argparse.Namespace, gt_json: Mapping[str, Any], mapper: Mapper) -> None:
    """Per-image PQ rows of a COCO panoptic evaluation (``--per-image``), each image by
    :func:`panoptic_image` through ``mapper`` (this process or Ray tasks, rows in image order)."""
    from segviewer.analysis.pq import load_panoptic_json
    from segviewer.core.panoptic_io import PanopticDataset

    if args.errors:
        raise SegviewerError("--errors is for --task instance (TIDE types boxes and masks)")
    if args.per_image is None:
        return
    gt_folder = args.gt_folder if args.gt_folder is not None else Path(args.gt).with_suffix("")
    pred_json = load_panoptic_json(args.pred)
    pred_folder = args.pred_folder if args.pred_folder is not None else Path(args.pred).with_suffix("")
    gds = PanopticDataset(gt_json, Path(gt_folder), Path(args.gt).name)  # validates both files once
    PanopticDataset(pred_json, Path(pred_folder), Path(args.pred).name)
    gt_anns = {int(a["image_id"]): a for a in gt_json["annotations"]}
    pred_anns = {int(a["image_id"]): a for a in pred_json["annotations"]}

    def one(data: Mapping[str, Any], ann: Mapping[str, Any] | None, iid: int) -> dict[str, Any]:
        return {"images": [gds.images[iid]] if iid in gds.images else [], "categories": data["categories"],
                "annotations": [ann] if ann is not None else []}

    items = [(one(gt_json, gt_anns[iid], iid), Path(gt_folder), Path(args.gt).name,
              one(pred_json, pred_anns.get(iid), iid), Path(pred_folder), Path(args.pred).name, iid)
             for iid in gds.image_ids]
    _write_csv(args.per_image, list(mapper(panoptic_image, items)))


def panoptic_image(gt: Mapping[str, Any], gt_folder: Path, gt_name: str, pred: Mapping[str, Any],
                   pred_folder: Path, pred_name: str, iid: int) -> tuple[int, str, int, dict[str, Any]]:
    """One image's panoptic row (the same on either engine); ``gt`` / ``pred`` are panoptic JSON
    dicts holding this image (:func:`panoptic_extras`)."""
    from segviewer.analysis.error_map import panoptic_errors
    from segviewer.analysis.evaluation import remap_panoptic
    from segviewer.analysis.pq import image_pq
    from segviewer.core.panoptic_io import PanopticDataset

    gds = PanopticDataset(gt, gt_folder, gt_name)
    g = gds.panoptic(iid)
    p = PanopticDataset(pred, pred_folder, pred_name).panoptic(iid)
    p = remap_panoptic(p, g.categories, g.isthing)  # by name, as the dock
    a = image_pq(p, g)["all"]
    c = panoptic_errors(p, g).counts
    name = str(gds.images.get(iid, {}).get("file_name", gds.annotation(iid).get("file_name", "")))
    return (iid, name, sum(1 for s in g.segments if not s.iscrowd),
            {"pq": a["pq"], "sq": a["sq"], "rq": a["rq"], "tp": c["TP"], "fp": c["FP"], "fn": c["FN"]})


def semantic_extras(args: argparse.Namespace, mapper: Mapper) -> None:
    """Per-image semantic rows (``--per-image``) for a ``metadata.csv`` ground truth or a
    Cityscapes tree; predictions are found as ``eval`` finds them (``<name>_labels.png`` anywhere
    under ``--pred``, else ``<name>.png`` in it). Each image by :func:`semantic_image` (Cityscapes:
    :func:`cityscapes_image`) through ``mapper``."""
    if args.errors:
        raise SegviewerError("--errors is for --task instance (TIDE types boxes and masks)")
    if args.per_image is None:
        return
    gt = Path(args.gt)
    pred_dir = Path(args.pred)
    labels = {p.name[: -len("_labels.png")]: p for p in pred_dir.rglob("*_labels.png")}
    names = _pred_names(pred_dir)

    def pred_of(img: Path) -> Path:
        p = labels.get(img.stem) or next((q for q in (pred_dir / f"{img.stem}.png",) if q.is_file()), None)
        if p is None:
            raise SegviewerError(f"no prediction {img.stem}_labels.png or {img.stem}.png in {pred_dir}")
        return p

    if cityscapes_images(gt) is not None:
        masks, _ = cityscapes_masks(gt)
        items_c = [(m, img, pred_of(img), names) for m, img in masks]
        _write_csv(args.per_image, list(mapper(cityscapes_image, items_c)))
        return
    if gt.is_dir() and (gt / "metadata.csv").is_file():
        gt = gt / "metadata.csv"  # the pairs eval's own numbers use, not a COCO file's image list beside it
    _open_index.cache_clear()  # this run reads the dataset afresh
    index = _open_index(*_index_key(gt))
    if "semantic" not in index.kind:
        raise SegviewerError("--per-image for --task semantic needs a metadata.csv (or a folder holding one) "
                             "or a Cityscapes tree (leftImg8bit/ and gtFine/)")
    items = [(gt, i, pred_of(img), names) for i, img in enumerate(index.paths)]
    _write_csv(args.per_image, list(mapper(semantic_image, items)))


def cityscapes_images(gt: Path) -> list[Path] | None:
    """The ``*_leftImg8bit.png`` images of a Cityscapes tree given as its root (holding
    ``leftImg8bit/`` and ``gtFine/``) or as a folder under either (``gtFine/val``,
    ``leftImg8bit/val/ulm``); None when ``gt`` is not one. The images are what the dataset index
    lists for such a tree (``core.dataset_index``), their ground truth where the window finds it."""
    if not gt.is_dir():
        return None
    parts = gt.parts
    for top in ("gtFine", "leftImg8bit"):
        if top in parts:
            k = len(parts) - 1 - parts[::-1].index(top)
            folder = Path(*parts[:k], "leftImg8bit", *parts[k + 1:])
            break
    else:
        if not ((gt / "leftImg8bit").is_dir() and (gt / "gtFine").is_dir()):
            return None
        folder = gt / "leftImg8bit"
    return sorted(folder.rglob("*_leftImg8bit.png")) if folder.is_dir() else None


def _cityscapes_label_ids(image: Path) -> Path:
    """``leftImg8bit/<split>/<city>/<x>_leftImg8bit.png`` -> ``gtFine/<split>/<city>/<x>_gtFine_labelIds.png``
    (the layout ``core.groundtruth.find_ground_truth`` reads)."""
    parts = image.parent.parts
    k = len(parts) - 1 - parts[::-1].index("leftImg8bit")
    base = image.stem[: -len("_leftImg8bit")]
    return Path(*parts[:k], "gtFine", *parts[k + 1:]) / f"{base}_gtFine_labelIds.png"


def cityscapes_masks(gt: Path) -> tuple[list[tuple[Path, Path]], tuple[str, ...]]:
    """``[(labelIds PNG, image)]`` of a Cityscapes tree (:func:`cityscapes_images`) and the 34
    labelIds' names; an image without its labelIds is an error."""
    from segviewer.core.errors import BadDatasetError
    from segviewer.core.groundtruth import CITYSCAPES_LABELS

    images = cityscapes_images(gt) or []
    if not images:
        raise BadDatasetError(f"{gt} holds no *_leftImg8bit.png images")
    pairs = [(_cityscapes_label_ids(im), im) for im in images]
    missing = [m for m, _ in pairs if not m.is_file()]
    if missing:
        raise BadDatasetError(f"{len(missing)} image(s) lack their labelIds, e.g. {missing[0]}")
    return pairs, tuple(n for n, _, _ in CITYSCAPES_LABELS)


def read_gt_labels(mask: Path) -> Any:
    """A ground-truth label PNG's labels as the window reads them: Cityscapes ``*_labelIds.png``
    with the classes its evaluation ignores set to 255 (``core.groundtruth.cityscapes_semantic``),
    any other PNG as it is."""
    from segviewer.core.groundtruth import cityscapes_semantic, read_label_png

    if mask.name.endswith("_gtFine_labelIds.png"):
        return cityscapes_semantic(mask).labels
    return read_label_png(mask).labels


def cityscapes_image(mask: Path, image: Path, pred: Path, names: tuple[str, ...] | None
                     ) -> tuple[int, str, int, dict[str, Any]]:
    """One Cityscapes image's semantic row (the same on either engine), its ground truth read as
    the window reads it."""
    from segviewer.analysis.dataset_eval import evaluate_image
    from segviewer.core.groundtruth import GroundTruth, cityscapes_semantic, semantic_from_png

    g = cityscapes_semantic(mask)
    _, row = evaluate_image(semantic_from_png(pred, names or g.categories, None), GroundTruth(semantic=g),
                            name=image.name)
    return (-1, image.name, len(g.categories), row)


def semantic_image(gt: Path, i: int, pred: Path, names: tuple[str, ...] | None
                   ) -> tuple[int, str, int, dict[str, Any]]:
    """Image ``i``'s semantic row (the same on either engine): the dataset ``gt`` is opened once
    per process (a Ray worker keeps it for its next images)."""
    from segviewer.analysis.dataset_eval import evaluate_image
    from segviewer.core.groundtruth import semantic_from_png

    index = _open_index(*_index_key(gt))
    g = index.ground_truth(i)
    img = index.paths[i]
    _, row = evaluate_image(semantic_from_png(pred, names or g.semantic.categories, None), g, name=img.name)
    return (-1, img.name, len(g.semantic.categories), row)


def _index_key(gt: Path) -> tuple[str, tuple[int, ...]]:
    """The dataset's path and the modification times and sizes of it and of the ``metadata.csv``
    in it: a changed dataset is opened anew."""
    stamp: tuple[int, ...] = ()
    for f in (gt, gt / "metadata.csv") if gt.is_dir() else (gt,):
        if f.exists():
            st = f.stat()
            stamp += (st.st_mtime_ns, st.st_size)
    return str(gt), stamp


@functools.lru_cache(maxsize=2)
def _open_index(path: str, stamp: tuple[int, ...]) -> Any:
    from segviewer.core.dataset_index import open_dataset

    return open_dataset(Path(path))


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
