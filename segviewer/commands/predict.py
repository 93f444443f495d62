"""``segviewer predict``: run one model on images and folders, write overlays and predictions.

Output names keep each image's path relative to the input root (the folder given, or the folder
holding every input), so ``a/x.png`` and ``b/x.png`` write ``OUT/a/x_*`` and ``OUT/b/x_*``. For
an image ``<rel>`` the output folder gets ``<rel>_overlay.png`` (every layer of the result at the
default opacities: masks / semantic 0.5, boxes / labels / keypoints 1.0) and the predictions:

* detection, instance and keypoint models: one ``results.json`` for the run (COCO results, which
  pycocotools' ``COCO.loadRes`` reads as it is), ``images.json`` (``id``, ``file_name``,
  ``height``, ``width`` of every image: the file-name-to-image-id map) and ``categories.json``
  (the category ids used, with names). When the images belong to a COCO dataset (``--gt FILE``,
  or ``annotations/instances.json`` found beside the images as the window finds ground truth),
  image ids are the dataset's (matched by file name) and category ids the dataset's (matched by
  class name; detections of classes the dataset lacks are left out). Otherwise image ids are
  the 1-based positions in the run and category ids the model's class ids. Mask Scoring R-CNN
  (``shapes_msrcnn``) records also carry ``box_score`` (Mask R-CNN's score) and ``mask_iou`` (the
  MaskIoU head's predicted IoU) from the same pass, whichever rule gave ``score``, so
  ``segviewer eval`` prints mask AP under both rules;
* semantic models: ``<rel>_labels.png`` (the model's class id per pixel; ``categories.json``
  names them), which ``segviewer eval --task semantic --pred OUT`` reads;
* panoptic models: ``<rel>_panoptic.png`` (COCO panoptic ids, R + 256 G + 256^2 B) and
  ``<rel>_segments.json``.

The JSON keeps every detection scoring at least ``--score-thresh`` (low, for evaluation); the
overlay draws only those at ``--draw-thresh`` and above (readable). Only what is written is
computed: the class probabilities, logits and mask logits the window shows are skipped (except
with ``--merge upsnet``, whose head needs the logits). ``--threads N`` gives torch and OpenCV N
threads.

``--panoptic`` with two models (``--model INSTANCE --model SEMANTIC``, either order) merges their
results with the panoptic paper's heuristic (classes mapped by name: things are the instance
model's classes, stuff the semantic model's other classes, ``__background__`` is void) and writes
COCO panoptic output: ``panoptic/<rel>.png`` (ids R + 256 G + 256^2 B) per image, one
``panoptic.json`` for the run (``images``, ``annotations`` with ``segments_info``, ``categories``
with ``isthing``) and ``<rel>_overlay.png``. Ids as above, from ``annotations/panoptic.json``
beside the images or ``--gt``; without a dataset, category id = index + 1 in the semantic
model's order, then extra things. ``segviewer eval --task panoptic --pred OUT/panoptic.json``
reads it.

``--engine ray`` runs the same per-image function on a Ray Data actor pool (a local Ray, or the
cluster at ``--address`` / ``RAY_ADDRESS``; ``pip install 'segviewer[ray]'``) and writes the same
files, byte for byte; finished images are committed as Parquet shards in ``OUT/.segviewer-ray``,
so the same command run again after a stop resumes where it stopped.

Failures: an input that cannot be used (unreadable, or the model fails on it) is reported on
stderr in one line and skipped; the others are still written, a summary line counts the
failures and the exit status is then 1. Exit 2: nothing could run (bad arguments, no images,
missing weights, an output that cannot be written, outputs already in OUT without
``--overwrite``).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segviewer.commands import _predict_plan as plan
from segviewer.core.errors import SegviewerError

if TYPE_CHECKING:  # pragma: no cover
    from segviewer.core.coco_results import DatasetIds
    from segviewer.core.timing import Timings

DEFAULT_OPACITY = {"masks": 0.5, "semantic": 0.5, "panoptic": 0.5, "boxes": 1.0, "labels": 1.0, "keypoints": 1.0}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = __doc__.split("\n\n", 1)[1].replace("``", "")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files, folders of images, a .txt list of image paths (one per line, relative to "
                        "the list) or a COCO JSON (its images)")
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
    p.add_argument("--overwrite", action="store_true",
                   help="replace outputs of an earlier run in --out (refused otherwise)")
    p.add_argument("--gt", type=Path, default=None, metavar="COCO_JSON",
                   help="the images' COCO dataset (instances or panoptic JSON): results use its image ids "
                        "(by file name) and category ids (by class name); default: annotations/ beside the images")
    p.add_argument("--no-gt", action="store_true",
                   help="do not look for ground truth beside the images: ids are run positions and class ids")
    p.add_argument("--weights", type=Path, default=None,
                   help="a checkpoint file to load instead of the model's own weights (class names from "
                        "a .json/.toml file with the same stem beside it)")
    p.add_argument("--device", default="auto", help="auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for torch and OpenCV (default: torch's own choice, one per core); "
                        "on a machine shared with other jobs fewer threads are often faster")
    p.add_argument("--score-thresh", type=float, default=0.05,
                   help="keep detections scoring at least this in the predictions JSON (default 0.05)")
    p.add_argument("--draw-thresh", type=float, default=0.5,
                   help="draw detections scoring at least this in the overlay (default 0.5)")
    p.add_argument("--max-detections", type=int, default=100, help="at most this many detections per image")
    p.add_argument("--min-size", type=int, default=None,
                   help="resize the image's short side to this before the network (faster, coarser)")
    p.add_argument("--no-download", action="store_true", help="never download weights (as SEGVIEWER_OFFLINE=1)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a model option, e.g. SAM 2's prompt points=320,240;100,80,- or box=10,20,200,180 "
                        "(each image gets it), or points_per_side=32 for its 'segment everything'; a key the model does "
                        "not read is refused, naming the keys it does")
    p.add_argument("--random-init", action="store_true", help=argparse.SUPPRESS)  # plumbing tests, timings
    from segviewer.commands import _ray_engine

    _ray_engine.add_arguments(p, "predict")  # --engine ray: the same per-image function on Ray Data


class _DownloadLine:
    """Shows a weights download as one line that rewrites itself and ends with a newline.

    Adapters call ``progress(done, total)`` only while bytes really arrive; a load from a bundled
    or cached file prints nothing.
    """

    def __init__(self, model_id: str) -> None:
        self.model_id, self.open = model_id, False

    def __call__(self, done: int, total: int) -> None:
        mb = 1024 * 1024
        size = f" / {total / mb:.1f}" if total else ""
        print(f"\rdownloading weights for {self.model_id}: {done / mb:.1f}{size} MB", end="",
              file=sys.stderr, flush=True)
        self.open = True

    def close(self) -> None:
        if self.open:
            print(file=sys.stderr, flush=True)
            self.open = False


def _load(adapter: Any, args: argparse.Namespace, device: str) -> None:
    line = _DownloadLine(adapter.card.id)
    kwargs: dict[str, object] = {"progress": line}
    if args.no_download and "allow_download" in inspect.signature(adapter.load).parameters:
        kwargs["allow_download"] = False
    try:
        adapter.load(device, args.weights, **kwargs)
    finally:
        line.close()


def _first_line(err: BaseException) -> str:
    """A failure as one line: a :class:`SegviewerError`'s sentence, else ``Type: first line``."""
    text = (str(err).strip().splitlines() or [""])[0]
    if isinstance(err, SegviewerError):
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _classes_present(n: int) -> str:
    return f"{n} class{'' if n == 1 else 'es'} present"


def _check_args(args: argparse.Namespace, models: list[str]) -> None:
    for name in ("score_thresh", "draw_thresh"):
        v = getattr(args, name)
        if not 0.0 <= v <= 1.0:
            raise SegviewerError(f"--{name.replace('_', '-')} must lie in [0, 1], got {v}")
    if args.max_detections < 1:
        raise SegviewerError(f"--max-detections must be at least 1, got {args.max_detections}")
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        raise SegviewerError(f"--threads must be at least 1, got {threads}")
    if args.min_size is not None and args.min_size < 16:
        raise SegviewerError(f"--min-size must be at least 16 pixels, got {args.min_size}")
    if args.gt is not None and args.no_gt:
        raise SegviewerError("--gt and --no-gt contradict each other; give one")
    if args.gt is not None and not Path(args.gt).is_file():
        raise SegviewerError(f"--gt {args.gt} is not a file (give a COCO instances or panoptic JSON)")
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


@dataclasses.dataclass
class _Run:
    """The run's inputs, output names, ids and failure count, shared by both kinds of run."""

    out: Path
    images: list[Path]
    stems: list[str]
    image_ids: list[int]
    dataset: DatasetIds | None
    failures: int = 0

    def items(self) -> list[tuple[Path, str, int]]:
        return list(zip(self.images, self.stems, self.image_ids))

    def rel_name(self, path: Path, stem: str) -> str:
        return f"{stem}{path.suffix}"

    def skip(self, path: Path, err: BaseException | str) -> None:
        """One input failed: one line on stderr, counted, the run goes on. ``err`` may be the
        line already made (a Ray actor's failure arrives as its message)."""
        msg = err if isinstance(err, str) else _first_line(err)
        print(f"segviewer: {path}: {msg.rstrip('.')}; skipped", file=sys.stderr, flush=True)
        self.failures += 1

    def exit_status(self, attempted: int) -> int:
        if not self.failures:
            return 0
        done = attempted - self.failures
        print(f"segviewer: {self.failures} of {attempted} input(s) failed (see above); "
              f"{done} written to {self.out}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    from segviewer.adapters.base import PredictParams
    from segviewer.adapters.device import resolve_device
    from segviewer.adapters.registry import create_adapter
    from segviewer.commands import _ray_engine
    from segviewer.core.fileio import check_output_dir, ensure_dir

    models = list(args.model) if isinstance(args.model, list) else [args.model]
    _check_args(args, models)
    _ray_engine.check_arguments(args)
    on_ray = getattr(args, "engine", "single") == "ray"
    images, root, problems = plan.collect(args.inputs)
    for msg in problems:
        print(f"segviewer: {msg}", file=sys.stderr)
    if not images:
        raise SegviewerError("no images to predict on: " + "; ".join(problems))
    stems = plan.output_stems(images, root)
    out: Path = args.out
    resume = False
    if on_ray:
        from segviewer.commands import _ray_predict

        _ray_engine.import_ray()  # a missing extra says so before anything is loaded
        resume = _ray_predict.resumable(args)  # a stopped Ray run in OUT goes on where it stopped
    if not args.overwrite and not resume:
        plan.refuse_overwrite(out, stems)
    adapters = [create_adapter(m, random_init=args.random_init) for m in models]
    if args.panoptic:
        _roles(adapters)
    options = _model_options(getattr(args, "set", []))
    check_model_options(adapters, [k for k, _ in options])  # a typo fails now, not silently
    task = adapters[0].card.task
    wants_ids = args.panoptic or task in ("detection", "instance", "keypoint")
    dataset, ids = plan.dataset_ids(images, args.gt if wants_ids else None,
                                    "panoptic.json" if args.panoptic else "instances.json",
                                    auto=wants_ids and not args.no_gt)
    if args.gt is not None and not wants_ids:
        print(f"segviewer: --gt is not used for a {task} model: its outputs hold the model's class ids "
              "(categories.json names them)", file=sys.stderr)
    check_output_dir(out)  # before minutes of model loading: an output path that cannot work fails now
    if getattr(args, "threads", None) is not None:
        from segviewer.adapters.runtime import set_threads

        set_threads(int(args.threads))
    if not on_ray:  # on Ray each actor loads its own copy
        device = resolve_device(args.device)
        for adapter in adapters:
            _load(adapter, args, device)
    ensure_dir(out)
    extra = ((("min_size", int(args.min_size)),) if args.min_size else ()) + options
    # Only what is written: probabilities, logits and mask logits are for the window, and for
    # UPSNet's merge, which needs the logits.
    extras = bool(args.panoptic and getattr(args, "merge", "heuristic") == "upsnet")
    params = PredictParams(min_score=float(args.score_thresh), max_detections=int(args.max_detections),
                           extra=extra, extras=extras)
    state = _Run(out, images, stems, ids, dataset, failures=len(problems))
    attempted = len(images) + len(problems)
    if on_ray:
        _ray_predict.run(args, adapters, params, state)
    elif args.panoptic:
        _run_panoptic(args, adapters, params, state)
    else:
        _run_single(args, adapters[0], params, state)
    return state.exit_status(attempted)


def _model_options(items: Sequence[str]) -> tuple[tuple[str, Any], ...]:
    """``--set KEY=VALUE`` pairs for ``PredictParams.extra`` (a JSON value when it parses, else the text)."""
    out = []
    for it in items:
        key, eq, value = it.partition("=")
        if not eq or not key.strip():
            raise SegviewerError(f"--set needs KEY=VALUE, got {it!r}")
        try:
            out.append((key.strip(), json.loads(value)))
        except ValueError:
            out.append((key.strip(), value))
    return tuple(out)


def check_model_options(adapters: Sequence[Any], keys: Sequence[str]) -> None:
    """Refuse ``--set`` keys that no model reads (a typo such as ``scroing=box`` would otherwise
    change nothing, silently), naming the keys each model accepts. An adapter that declares no
    ``params_keys`` (a plugin's) accepts any key: what it reads is unknown."""
    declared = [getattr(a, "params_keys", None) for a in adapters]
    if not keys or any(d is None for d in declared):
        return
    known = {k for d in declared for k in d}
    unknown = [k for k in dict.fromkeys(keys) if k not in known]
    if unknown:
        accepts = "; ".join(f"{a.card.id} accepts {', '.join(d) if d else 'no --set keys'}"
                            for a, d in zip(adapters, declared))
        raise SegviewerError(f"--set {', '.join(unknown)}: unknown model option{'s' if len(unknown) > 1 else ''} "
                             f"({accepts})")


def _category_ids(state: _Run, names: Sequence[str], what: str) -> list[int | None] | None:
    """The dataset's category id of each class name (None: not in the dataset), or None without a
    dataset. Refuses when not one class is a dataset category: every result would be dropped."""
    if state.dataset is None:
        return None
    ids = state.dataset.category_ids(names)
    real = [n for n in names if n.lower() not in ("__background__", "background")]
    lost = [n for n, i in zip(names, ids) if i is None and n in real]
    if real and len(lost) == len(real):
        raise SegviewerError(f"none of {what}'s classes ({', '.join(real[:6])}) is a category of "
                             f"{state.dataset.source} ({', '.join(list(state.dataset.categories)[:6])}); "
                             "give the right --gt, or --no-gt for the model's own ids")
    if lost:
        print(f"segviewer: {what}'s classes {', '.join(lost)} are not categories of {state.dataset.source.name}; "
              "their results are left out", file=sys.stderr)
    return ids


@dataclasses.dataclass
class ImageOutput:
    """One image's outputs, already encoded: what either engine (this process or a Ray actor)
    hands to the writer. ``files`` maps an output name (one of :data:`FILES`, ``{stem}`` standing
    for the image's output stem) to its bytes; ``records`` are the image's COCO results (None for
    models without detections); ``panoptic`` (``--panoptic``) holds the merge's ``categories``,
    ``isthing`` and the image's ``segments_info`` with category ids ``index + 1``."""

    height: int
    width: int
    files: dict[str, bytes]
    records: list[dict[str, Any]] | None
    summary: str
    panoptic: dict[str, Any] | None = None


#: Every per-image output name, ``{stem}`` standing for the image's output stem.
FILES = ("{stem}_overlay.png", "{stem}_labels.png", "{stem}_panoptic.png", "{stem}_segments.json",
         "panoptic/{stem}.png")


def predict_image(adapter: Any, image: np.ndarray, image_id: int, params: Any, draw_thresh: float,
                  cat_ids: Sequence[int | None] | None, tm: Timings) -> ImageOutput:
    """One image through one model: the result, its overlay and its predictions, encoded. The
    single-process run and the Ray actors both call this, so their outputs are the same bytes."""
    from segviewer.core.fileio import encode_image
    from segviewer.core.results import Detections, PanopticMap, SemanticMap
    from segviewer.render.compose import render_overlay
    from segviewer.render.layers import layer_kinds

    rules = None
    if callable(getattr(adapter, "predict_scored", None)):  # Mask Scoring R-CNN: both rules, one pass
        result, rules = adapter.predict_scored(image, params, tm)
    else:
        result = adapter.predict(image, params, tm)
    with tm.stage("render"):
        shown = result.above(float(draw_thresh)) if isinstance(result, Detections) else result
        opac = {k.value: DEFAULT_OPACITY.get(k.value, 1.0) for k in layer_kinds(shown)}
        overlay = render_overlay(image, [shown], opac)
    files: dict[str, bytes] = {}
    records = None
    if isinstance(result, Detections):
        from segviewer.core.coco_results import detections_to_coco

        records = detections_to_coco(result, image_id=image_id, category_ids=cat_ids)
        if rules is not None:
            _add_rule_scores(records, result, rules, cat_ids)
        summary = f"{len(result)} detections, {len(shown)} drawn"
    elif isinstance(result, SemanticMap):
        labels = result.labels if result.labels.dtype == np.uint8 else result.labels.astype(np.uint16)
        files["{stem}_labels.png"] = encode_image(labels)
        summary = _classes_present(int(np.count_nonzero(result.counts())))
    elif isinstance(result, PanopticMap):
        from segviewer.core.panoptic_io import id2rgb

        files["{stem}_panoptic.png"] = encode_image(id2rgb(result.segment_ids))
        files["{stem}_segments.json"] = json.dumps([dataclasses.asdict(s) for s in result.segments]).encode("utf-8")
        summary = f"{len(result.segments)} segments"
    else:
        summary = type(result).__name__
    h, w = image.shape[:2]
    return ImageOutput(int(h), int(w), {"{stem}_overlay.png": encode_image(overlay), **files}, records, summary)


def _add_rule_scores(records: list[dict[str, Any]], result: Any, rules: Any,
                     cat_ids: Sequence[int | None] | None) -> None:
    """Mask Scoring R-CNN's records get ``box_score`` (Mask R-CNN's rule) and ``mask_iou`` (the
    MaskIoU head's prediction) beside ``score``, so ``segviewer eval`` can score both rules."""
    kept = [i for i in range(len(result)) if cat_ids is None or cat_ids[int(result.class_ids[i])] is not None]
    for rec, i in zip(records, kept, strict=True):
        rec["box_score"] = float(rules.box_scores[i])
        rec["mask_iou"] = float(rules.mask_iou[i])


def write_image_output(out: Path, stem: str, files: Mapping[str, bytes]) -> list[Path]:
    """An image's files (:attr:`ImageOutput.files`) under ``out``, atomically, in order."""
    from segviewer.core.fileio import write_bytes_atomic

    written = []
    for name, data in files.items():
        path = out / name.format(stem=stem)
        write_bytes_atomic(path, data)
        written.append(path)
    return written


def single_categories(state: _Run, card: Any) -> list[int | None] | None:
    """The dataset's category id per class of a detection model (None: no dataset or not one)."""
    if card.task in ("detection", "instance", "keypoint"):
        return _category_ids(state, card.categories, card.id)
    return None


def image_entry(state: _Run, path: Path, stem: str, image_id: int, height: int, width: int) -> dict[str, Any]:
    """The image's ``images.json`` entry."""
    return {"id": int(image_id), "file_name": state.rel_name(path, stem), "height": int(height), "width": int(width)}


def report_image(out: Path, path: Path, result: ImageOutput, times: str, written: Sequence[Path]) -> None:
    print(f"{path}: {result.summary} ({times}) -> {', '.join(str(p.relative_to(out)) for p in written)}")


def finish_single(state: _Run, card: Any, cat_ids: Sequence[int | None] | None,
                  records: list[dict[str, Any]] | None, entries: list[dict[str, Any]]) -> None:
    """The run's files: ``categories.json``, and for detection models ``results.json`` (records in
    image order) and ``images.json``."""
    from segviewer.core.fileio import write_json_atomic

    out = state.out
    if cat_ids is not None:
        cats = [{"id": int(i), "name": n} for n, i in zip(card.categories, cat_ids) if i is not None]
    else:
        cats = [{"id": i, "name": n} for i, n in enumerate(card.categories)]
    write_json_atomic(out / "categories.json", cats, indent=1)
    if records is not None or card.task in ("detection", "instance", "keypoint"):
        write_json_atomic(out / "results.json", records or [])
        write_json_atomic(out / "images.json", entries, indent=1)
        src = f"ids of {state.dataset.source}" if state.dataset is not None else "run ids, see images.json"
        n = len(entries)
        print(f"wrote {out / 'results.json'} ({len(records or [])} detections on {n} image{'' if n == 1 else 's'}; {src})")


def _run_single(args: argparse.Namespace, adapter: Any, params: Any, state: _Run) -> None:
    card = adapter.card
    cat_ids = single_categories(state, card)
    records: list[dict[str, Any]] | None = None
    entries: list[dict[str, Any]] = []
    for path, stem, image_id, image, tm in _decoded(state):
        try:
            result = predict_image(adapter, image, image_id, params, float(args.draw_thresh), cat_ids, tm)
        except Exception as err:  # a model failing on one image spoils nothing else
            state.skip(path, err)
            continue
        written = write_image_output(state.out, stem, result.files)
        if result.records is not None:
            records = records if records is not None else []
            records += result.records
        entries.append(image_entry(state, path, stem, image_id, result.height, result.width))
        report_image(state.out, path, result, tm.summary(), written)
    finish_single(state, card, cat_ids, records, entries)


def _roles(adapters: list[Any]) -> tuple[Any, Any]:
    """(instance adapter, semantic adapter), in whichever order they were given."""
    inst = [a for a in adapters if a.card.task == "instance"]
    sem = [a for a in adapters if a.card.task == "semantic"]
    if len(inst) != 1 or len(sem) != 1:
        kinds = ", ".join(f"{a.card.id} ({a.card.task})" for a in adapters)
        raise SegviewerError(f"--panoptic needs one instance model and one semantic model; got {kinds}")
    return inst[0], sem[0]


def _panoptic_category_ids(state: _Run, names: Sequence[str], what: str) -> list[int]:
    """Category ids of the merged classes: the dataset's by name (classes it lacks get new ids
    after its largest), else index + 1."""
    ids = _category_ids(state, names, what)
    if ids is None:
        return list(range(1, len(names) + 1))
    assert state.dataset is not None  # ids is None without one
    top = max(state.dataset.categories.values(), default=0)
    out = []
    for i in ids:
        if i is None:
            top += 1
            i = top
        out.append(int(i))
    return out


def panoptic_merge(args: argparse.Namespace) -> Any:
    """The merge's parameters from the command line."""
    from segviewer.analysis.evaluation import MergeParams

    return MergeParams(float(args.overlap), int(args.stuff_min_area), float(args.merge_score),
                       str(getattr(args, "merge", "heuristic")))


def predict_panoptic_image(inst_ad: Any, sem_ad: Any, merge: Any, image: np.ndarray, params: Any,
                           tm: Timings) -> ImageOutput:
    """Both models on one image, merged by class name, encoded (PNG + overlay + segments_info):
    the single-process run and the Ray actors both call this."""
    from segviewer.analysis.evaluation import merge_by_name, upsnet_by_name
    from segviewer.core.fileio import encode_image
    from segviewer.core.panoptic_io import id2rgb, segments_info
    from segviewer.core.results import Detections, SemanticMap
    from segviewer.render.compose import render_overlay

    merge_fn = upsnet_by_name if merge.method == "upsnet" else merge_by_name  # upsnet: no silent fallback
    dets = inst_ad.predict(image, params, tm)
    sem = sem_ad.predict(image, params, tm)
    if not isinstance(dets, Detections) or dets.masks is None or not isinstance(sem, SemanticMap):
        raise SegviewerError(f"{inst_ad.card.id} must give instance masks and {sem_ad.card.id} a semantic map")
    with tm.stage("merge"):
        pm = merge_fn(dets, sem, merge)
    with tm.stage("render"):
        overlay = render_overlay(image, [pm], {"panoptic": DEFAULT_OPACITY["panoptic"]})
    things = sum(s.isthing for s in pm.segments)
    h, w = pm.image_size
    files = {"panoptic/{stem}.png": encode_image(id2rgb(pm.segment_ids)), "{stem}_overlay.png": encode_image(overlay)}
    info = {"categories": list(pm.categories), "isthing": [bool(t) for t in pm.isthing],
            "segments_info": segments_info(pm.segment_ids, pm.segments)}
    return ImageOutput(int(h), int(w), files, None, f"{things} things + {len(pm.segments) - things} stuff segments",
                       info)


class PanopticRun:
    """The run-level side of ``--panoptic``: category ids (from the first merged image), the
    ``images`` and ``annotations`` lists, and ``panoptic.json``; fed in image order by either engine."""

    def __init__(self, state: _Run, inst_ad: Any, sem_ad: Any, merge: Any) -> None:
        self.state, self.inst_id, self.sem_id, self.merge = state, inst_ad.card.id, sem_ad.card.id, merge
        self.categories: tuple[str, ...] | None = None
        self.isthing: tuple[bool, ...] = ()
        self.cat_ids: list[int] = []
        self.entries: list[dict[str, Any]] = []
        self.anns: list[dict[str, Any]] = []

    def add(self, path: Path, stem: str, image_id: int, height: int, width: int, info: Mapping[str, Any]) -> None:
        if self.categories is None:
            self.categories, self.isthing = tuple(info["categories"]), tuple(info["isthing"])
            self.cat_ids = _panoptic_category_ids(self.state, self.categories, f"{self.inst_id} + {self.sem_id}")
        self.entries.append(image_entry(self.state, path, stem, image_id, height, width))
        segs = [dict(s, category_id=int(self.cat_ids[int(s["category_id"]) - 1])) for s in info["segments_info"]]
        self.anns.append({"image_id": int(image_id), "file_name": f"{stem}.png", "segments_info": segs})

    def finish(self) -> None:
        from segviewer.core.panoptic_io import write_panoptic_json

        if self.categories is None:
            return
        state, merge = self.state, self.merge
        cats = [{"id": c, "name": n, "isthing": int(t), "supercategory": "thing" if t else "stuff"}
                for c, n, t in zip(self.cat_ids, self.categories, self.isthing)]
        write_panoptic_json(state.out / "panoptic.json", self.entries, self.anns, cats,
                            {"description": "segviewer predict --panoptic",
                             "models": [self.inst_id, self.sem_id],
                             "ids": str(state.dataset.source) if state.dataset is not None else "run positions",
                             "merge": {"method": merge.method, "overlap": merge.overlap,
                                       "stuff_min_area": merge.stuff_min_area, "min_score": merge.min_score}})
        print(f"wrote {state.out / 'panoptic.json'} ({len(self.anns)} images)")


def _run_panoptic(args: argparse.Namespace, adapters: list[Any], params: Any, state: _Run) -> None:
    """Both models on every image, merged by class name, written as COCO panoptic (PNG + one JSON)."""
    inst_ad, sem_ad = _roles(adapters)
    merge = panoptic_merge(args)
    run = PanopticRun(state, inst_ad, sem_ad, merge)
    for path, stem, image_id, image, tm in _decoded(state):
        try:
            result = predict_panoptic_image(inst_ad, sem_ad, merge, image, params, tm)
        except Exception as err:  # one image failing spoils nothing else
            state.skip(path, err)
            continue
        assert result.panoptic is not None
        run.add(path, stem, image_id, result.height, result.width, result.panoptic)
        written = write_image_output(state.out, stem, result.files)
        report_image(state.out, path, result, tm.summary(), written)
    run.finish()


def decode(path: Path) -> tuple[np.ndarray, Timings]:
    """The RGB image and its timings (with "decode"); raises SegviewerError / OSError."""
    from segviewer.core.imageio import read_image
    from segviewer.core.timing import Timings

    tm: Timings = Timings()
    with tm.stage("decode"):
        image = read_image(path)
    return image, tm


def _decoded(state: _Run) -> Iterator[tuple[Path, str, int, np.ndarray, Timings]]:
    """(path, output stem, image id, RGB image, timings with "decode") per readable input; an
    unreadable one is reported on stderr and skipped, so one broken file spoils nothing."""
    for path, stem, image_id in state.items():
        try:
            image, tm = decode(path)
        except (SegviewerError, OSError) as err:
            state.skip(path, err)
            continue
        yield path, stem, image_id, image, tm
