"""``segviewer predict``: run one model on images and folders, write overlays and predictions.

For every input image ``<stem>`` the output folder gets ``<stem>_overlay.png`` (every layer of the
result at the default opacities: masks / semantic 0.5, boxes / labels / keypoints 1.0) and the
predictions: ``<stem>.json`` (COCO results format, image id = the image's 1-based position in the
run) for detection, instance and keypoint models, ``<stem>_labels.png`` (class id per pixel) for
semantic ones, ``<stem>_panoptic.png`` (COCO panoptic ids, R + 256 G + 256^2 B) and
``<stem>_segments.json`` for panoptic ones. ``categories.json`` maps class ids to names once per run. The JSON keeps every
detection scoring at least ``--score-thresh`` (low, for evaluation); the overlay draws only those
at ``--draw-thresh`` and above (readable). A bad image is reported on stderr and skipped; the exit
status is then 1.

``--panoptic`` with two models (``--model INSTANCE --model SEMANTIC``, either order) merges their
results with the panoptic paper's heuristic (classes mapped by name: things are the instance
model's classes, stuff the semantic model's other classes, ``__background__`` is void) and writes
COCO panoptic output: ``panoptic/<stem>.png`` (ids R + 256 G + 256^2 B) per image, one
``panoptic.json`` for the run (``images``, ``annotations`` with ``segments_info``, ``categories``
with ``isthing``; category id = index + 1 in the semantic model's order, then extra things; image
id = the image's 1-based position in the run) and ``<stem>_overlay.png``. ``segviewer eval --task
panoptic --pred OUT/panoptic.json`` reads it.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segviewer.core.errors import SegviewerError

if TYPE_CHECKING:  # pragma: no cover
    from segviewer.core.timing import Timings

DEFAULT_OPACITY = {"masks": 0.5, "semantic": 0.5, "panoptic": 0.5, "boxes": 1.0, "labels": 1.0, "keypoints": 1.0}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    p.add_argument("--model", required=True, action="append",
                   help="model id (see `segviewer models`); give it twice with --panoptic")
    p.add_argument("--panoptic", action="store_true",
                   help="merge an instance model and a semantic model into COCO panoptic output")
    p.add_argument("--merge", choices=("heuristic", "upsnet"), default="heuristic",
                   help="--panoptic: the panoptic paper's heuristic (default) or UPSNet's parameter-free head "
                        "(needs mask logits and semantic logits, which the bundled and torchvision models give)")
    p.add_argument("--overlap", type=float, default=0.5,
                   help="--panoptic: keep an instance if at least this fraction of its mask is free (0.5)")
    p.add_argument("--stuff-min-area", type=int, default=1024,
                   help="--panoptic: stuff classes with fewer pixels become void (default 1024)")
    p.add_argument("--merge-score", type=float, default=0.5,
                   help="--panoptic: instances scoring below this are left out of the merge (0.5)")
    p.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    p.add_argument("--weights", type=Path, default=None,
                   help="a checkpoint file to load instead of the model's own weights (class names from "
                        "a .json/.toml file with the same stem beside it)")
    p.add_argument("--device", default="auto", help="auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--score-thresh", type=float, default=0.05,
                   help="keep detections scoring at least this in the predictions JSON (default 0.05)")
    p.add_argument("--draw-thresh", type=float, default=0.5,
                   help="draw detections scoring at least this in the overlay (default 0.5)")
    p.add_argument("--max-detections", type=int, default=100, help="at most this many detections per image")
    p.add_argument("--min-size", type=int, default=None,
                   help="resize the image's short side to this before the network (faster, coarser)")
    p.add_argument("--no-download", action="store_true", help="never download weights (as SEGVIEWER_OFFLINE=1)")
    p.add_argument("--random-init", action="store_true", help=argparse.SUPPRESS)  # plumbing tests, timings


def _collect(inputs: list[str]) -> tuple[list[Path], list[str]]:
    from segviewer.core.imageio import list_images

    images: list[Path] = []
    problems: list[str] = []
    for raw in inputs:
        p = Path(raw).expanduser()
        if p.is_dir():
            found = list_images(p)
            if not found:
                problems.append(f"{p}: no images in this folder")
            images.extend(found)
        elif p.is_file():
            images.append(p)
        else:
            problems.append(f"{p}: no such file or folder")
    return images, problems


def _unique_stem(path: Path, used: set[str]) -> str:
    stem, k = path.stem, 2
    while stem in used:
        stem = f"{path.stem}_{k}"
        k += 1
    used.add(stem)
    return stem


def _progress(model_id: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        mb = 1024 * 1024
        size = f" / {total / mb:.1f}" if total else ""
        print(f"\rdownloading weights for {model_id}: {done / mb:.1f}{size} MB", end="", file=sys.stderr, flush=True)
        if total and done >= total:
            print(file=sys.stderr)

    return report


def _load(model_id: str, args: argparse.Namespace, device: str) -> Any:
    from segviewer.adapters.registry import create_adapter

    adapter = create_adapter(model_id, random_init=args.random_init)
    kwargs: dict[str, object] = {"progress": _progress(model_id)}
    if args.no_download and "allow_download" in inspect.signature(adapter.load).parameters:
        kwargs["allow_download"] = False
    adapter.load(device, args.weights, **kwargs)
    return adapter


def run(args: argparse.Namespace) -> int:
    from segviewer.adapters.base import PredictParams
    from segviewer.adapters.device import resolve_device
    from segviewer.core.fileio import write_image_atomic, write_json_atomic
    from segviewer.core.results import Detections, PanopticMap, SemanticMap
    from segviewer.render.compose import render_overlay
    from segviewer.render.layers import layer_kinds

    for name in ("score_thresh", "draw_thresh"):
        v = getattr(args, name)
        if not 0.0 <= v <= 1.0:
            raise SegviewerError(f"--{name.replace('_', '-')} must lie in [0, 1], got {v}")
    if args.max_detections < 1:
        raise SegviewerError(f"--max-detections must be at least 1, got {args.max_detections}")
    if args.min_size is not None and args.min_size < 16:
        raise SegviewerError(f"--min-size must be at least 16 pixels, got {args.min_size}")
    images, problems = _collect(args.inputs)
    for msg in problems:
        print(f"segviewer: {msg}", file=sys.stderr)
    if not images:
        raise SegviewerError("no images to predict on: " + "; ".join(problems))

    models = list(args.model) if isinstance(args.model, list) else [args.model]
    if args.panoptic:
        if len(models) != 2:
            raise SegviewerError(f"--panoptic needs two models (--model INSTANCE --model SEMANTIC), got {len(models)}")
        if not 0.0 <= args.overlap <= 1.0 or not 0.0 <= args.merge_score <= 1.0:
            raise SegviewerError("--overlap and --merge-score must lie in [0, 1]")
        if args.stuff_min_area < 0:
            raise SegviewerError(f"--stuff-min-area must be at least 0, got {args.stuff_min_area}")
        if args.weights is not None:
            raise SegviewerError("--weights names one checkpoint; with --panoptic use each model's own weights")
    elif len(models) != 1:
        raise SegviewerError(f"give one --model ({len(models)} given); two are for --panoptic")
    device = resolve_device(args.device)
    adapters = [_load(m, args, device) for m in models]
    extra = (("min_size", int(args.min_size)),) if args.min_size else ()
    params = PredictParams(min_score=float(args.score_thresh), max_detections=int(args.max_detections), extra=extra)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.panoptic:
        return _run_panoptic(args, adapters, params, images, len(problems))
    adapter = adapters[0]
    card = adapter.card
    write_json_atomic(out / "categories.json", [{"id": i, "name": n} for i, n in enumerate(card.categories)], indent=1)
    failures = len(problems)
    used: set[str] = set()
    bad: list[Path] = []
    for image_id, path, image, tm in _decoded(images, bad):
        result = adapter.predict(image, params, tm)
        stem = _unique_stem(path, used)
        written: list[Path] = []
        if isinstance(result, Detections):
            from segviewer.core.coco_results import detections_to_coco

            pred = out / f"{stem}.json"
            write_json_atomic(pred, detections_to_coco(result, image_id=image_id))
            written.append(pred)
            shown = result.above(float(args.draw_thresh))
            summary = f"{len(result)} detections, {len(shown)} drawn"
        elif isinstance(result, SemanticMap):
            labels = result.labels if result.labels.dtype == np.uint8 else result.labels.astype(np.uint16)
            pred = out / f"{stem}_labels.png"
            write_image_atomic(pred, labels)
            written.append(pred)
            shown = result
            summary = f"{int(np.count_nonzero(result.counts()))} classes present"
        elif isinstance(result, PanopticMap):
            from segviewer.core.panoptic_io import write_panoptic_png

            pred = out / f"{stem}_panoptic.png"
            write_panoptic_png(pred, result.segment_ids)
            segs = out / f"{stem}_segments.json"
            write_json_atomic(segs, [dataclasses.asdict(s) for s in result.segments])
            written += [pred, segs]
            shown = result
            summary = f"{len(result.segments)} segments"
        else:
            shown = result
            summary = type(result).__name__
        with tm.stage("render"):
            opac = {k.value: DEFAULT_OPACITY.get(k.value, 1.0) for k in layer_kinds(shown)}
            overlay = render_overlay(image, [shown], opac)
        overlay_path = out / f"{stem}_overlay.png"
        write_image_atomic(overlay_path, overlay)
        written.insert(0, overlay_path)
        print(f"{path}: {summary} ({tm.summary()}) -> {', '.join(p.name for p in written)}")
    return _exit_status(failures + len(bad))


def _roles(adapters: list[Any]) -> tuple[Any, Any]:
    """(instance adapter, semantic adapter), in whichever order they were given."""
    inst = [a for a in adapters if a.card.task == "instance"]
    sem = [a for a in adapters if a.card.task == "semantic"]
    if len(inst) != 1 or len(sem) != 1:
        kinds = ", ".join(f"{a.card.id} ({a.card.task})" for a in adapters)
        raise SegviewerError(f"--panoptic needs one instance model and one semantic model; got {kinds}")
    return inst[0], sem[0]


def _run_panoptic(args: argparse.Namespace, adapters: list[Any], params: Any, images: list[Path],
                  failures: int) -> int:
    """Both models on every image, merged by class name, written as COCO panoptic (PNG + one JSON)."""
    from segviewer.analysis.evaluation import MergeParams, merge_by_name, upsnet_by_name
    from segviewer.core.fileio import write_image_atomic
    from segviewer.core.panoptic_io import panoptic_annotation, write_panoptic_json, write_panoptic_png
    from segviewer.core.results import Detections, SemanticMap
    from segviewer.render.compose import render_overlay

    inst_ad, sem_ad = _roles(adapters)
    merge = MergeParams(float(args.overlap), int(args.stuff_min_area), float(args.merge_score),
                        str(getattr(args, "merge", "heuristic")))
    merge_fn = upsnet_by_name if merge.method == "upsnet" else merge_by_name  # upsnet: no silent fallback
    out: Path = args.out
    entries, anns = [], []
    categories: tuple[str, ...] | None = None
    isthing: tuple[bool, ...] = ()
    used: set[str] = set()
    bad: list[Path] = []
    for image_id, path, image, tm in _decoded(images, bad):
        dets = inst_ad.predict(image, params, tm)
        sem = sem_ad.predict(image, params, tm)
        if not isinstance(dets, Detections) or dets.masks is None or not isinstance(sem, SemanticMap):
            raise SegviewerError(f"{inst_ad.card.id} must give instance masks and {sem_ad.card.id} a semantic map")
        with tm.stage("merge"):
            pm = merge_fn(dets, sem, merge)
        if categories is None:
            categories, isthing = pm.categories, pm.isthing
        stem = _unique_stem(path, used)
        png = out / "panoptic" / f"{stem}.png"
        write_panoptic_png(png, pm.segment_ids)
        h, w = pm.image_size
        entries.append({"id": image_id, "file_name": path.name, "height": h, "width": w})
        anns.append(panoptic_annotation(image_id, png.name, pm))
        with tm.stage("render"):
            overlay = render_overlay(image, [pm], {"panoptic": DEFAULT_OPACITY["panoptic"]})
        write_image_atomic(out / f"{stem}_overlay.png", overlay)
        things = sum(s.isthing for s in pm.segments)
        print(f"{path}: {things} things + {len(pm.segments) - things} stuff segments ({tm.summary()}) -> "
              f"panoptic/{png.name}, {stem}_overlay.png")
    if categories is not None:
        cats = [{"id": i + 1, "name": n, "isthing": int(t), "supercategory": "thing" if t else "stuff"}
                for i, (n, t) in enumerate(zip(categories, isthing))]
        write_panoptic_json(out / "panoptic.json", entries, anns, cats,
                            {"description": "segviewer predict --panoptic",
                             "models": [inst_ad.card.id, sem_ad.card.id],
                             "merge": {"method": merge.method, "overlap": merge.overlap,
                                       "stuff_min_area": merge.stuff_min_area, "min_score": merge.min_score}})
        print(f"wrote {out / 'panoptic.json'} ({len(anns)} images)")
    return _exit_status(failures + len(bad))


def _decoded(images: Sequence[Path], bad: list[Path]) -> Iterator[tuple[int, Path, np.ndarray, Timings]]:
    """(image id from 1, path, RGB image, timings with "decode") per readable input; an unreadable
    one is reported on stderr, appended to ``bad`` and skipped, so one broken file spoils nothing."""
    from segviewer.core.imageio import read_image
    from segviewer.core.timing import Timings

    for image_id, path in enumerate(images, start=1):
        tm = Timings()
        try:
            with tm.stage("decode"):
                image = read_image(path)
        except SegviewerError as err:
            print(f"segviewer: {path}: {err}", file=sys.stderr)
            bad.append(path)
            continue
        yield image_id, path, image, tm


def _exit_status(failures: int) -> int:
    if failures:
        print(f"segviewer: {failures} input(s) could not be used; see above", file=sys.stderr)
    return 1 if failures else 0
