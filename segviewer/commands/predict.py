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
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from segviewer.core.errors import SegviewerError

DEFAULT_OPACITY = {"masks": 0.5, "semantic": 0.5, "panoptic": 0.5, "boxes": 1.0, "labels": 1.0, "keypoints": 1.0}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    p.add_argument("--model", required=True, help="model id (see `segviewer models`)")
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


def run(args: argparse.Namespace) -> int:
    from segviewer.adapters.base import PredictParams
    from segviewer.adapters.device import resolve_device
    from segviewer.adapters.registry import create_adapter
    from segviewer.core.fileio import write_image_atomic, write_json_atomic
    from segviewer.core.imageio import read_image
    from segviewer.core.results import Detections, PanopticMap, SemanticMap
    from segviewer.core.timing import Timings
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

    device = resolve_device(args.device)
    adapter = create_adapter(args.model, random_init=args.random_init)
    kwargs: dict[str, object] = {"progress": _progress(args.model)}
    if args.no_download and "allow_download" in inspect.signature(adapter.load).parameters:
        kwargs["allow_download"] = False
    adapter.load(device, args.weights, **kwargs)
    card = adapter.card
    extra = (("min_size", int(args.min_size)),) if args.min_size else ()
    params = PredictParams(min_score=float(args.score_thresh), max_detections=int(args.max_detections), extra=extra)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "categories.json", [{"id": i, "name": n} for i, n in enumerate(card.categories)], indent=1)
    failures = len(problems)
    used: set[str] = set()
    for image_id, path in enumerate(images, start=1):
        tm = Timings()
        try:
            with tm.stage("decode"):
                image = read_image(path)
        except SegviewerError as err:
            print(f"segviewer: {path}: {err}", file=sys.stderr)
            failures += 1
            continue
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
    if failures:
        print(f"segviewer: {failures} input(s) could not be used; see above", file=sys.stderr)
    return 1 if failures else 0
