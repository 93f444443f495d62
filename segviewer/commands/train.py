"""``segviewer train``: train one of our small model families on the shapes world or a folder.

    segviewer train --model fcn --data shapes --out runs/fcn --steps 2000 --seed 0
    segviewer train --model unet --data ~/flood --out runs/flood --epochs 25

Writes ``OUT/model.pt`` (float16 weights + config: what a model card's checkpoint is),
``OUT/last.pt`` (resume state), ``OUT/loss.csv``, ``OUT/loss.png`` and ``OUT/metrics.json``.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from segviewer.core.errors import BadDatasetError, SegviewerError
from segviewer.training.kinds import KINDS

SHAPES_EPOCH = 1000  # scenes per "epoch" of the endless shapes world


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, choices=tuple(KINDS))
    p.add_argument("--data", default="shapes", help="'shapes' (generated on the fly) or a dataset folder "
                   "(metadata.csv of Image,Mask, or annotations/instances.json + images/)")
    p.add_argument("--out", required=True, type=Path, help="folder for checkpoints, loss.csv and loss.png")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="optimizer steps (default per model)")
    g.add_argument("--epochs", type=float, help=f"passes over the folder ({SHAPES_EPOCH} scenes for shapes)")
    p.add_argument("--seed", type=int, default=0, help="0..9; picks the training scenes and the init")
    p.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--init", type=Path, metavar="MODEL_PT",
                   help="fine-tune: start from this checkpoint's weights (e.g. models/shapes_fcn.pt), "
                        "with a fresh optimizer and schedule")
    p.add_argument("--degrade", type=float, default=0.0, metavar="P",
                   help="probability of a camera-like degradation per training image (sub-pixel shift, "
                        "blur, noise), for robustness on video frames")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--warmup", type=int)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--val", type=int, default=50, help="validation scenes (shapes; unseen seeds)")
    p.add_argument("--ckpt-every", type=int, default=100, help="steps between checkpoints")
    p.add_argument("--minutes", type=float, help="time budget: the LR schedule follows the clock and training ends (and evaluates) after this many minutes")
    p.add_argument("--num-classes", type=int, help="class count of a folder of label masks")
    p.add_argument("--crop", type=int, default=256, help="square training crop of folder images (shorter side scaled to it)")
    p.add_argument("--skip-bad", action="store_true", help="leave out bad dataset items instead of stopping")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="architecture option, e.g. cell_size=3 (PCV), fpn_channels=128 (Mask R-CNN)")


def _parse_sets(items: list[str]) -> dict[str, Any]:
    import json

    out: dict[str, Any] = {}
    for it in items:
        if "=" not in it:
            raise SegviewerError(f"--set needs KEY=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except ValueError:
            out[k.strip()] = v
    return out


def _degraded(next_batch: Callable[[int], list], p: float, seed: int) -> Callable[[int], list]:
    """``next_batch`` with each sample's image degraded (see :mod:`segviewer.training.augment`);
    the draw is seeded by the step, so a resumed run sees the same images."""
    import dataclasses

    import numpy as np

    from segviewer.training.augment import degrade

    def batch(step: int) -> list:
        rng = np.random.default_rng([seed, step, 3])
        return [dataclasses.replace(s, image=degrade(s.image, rng, p)) for s in next_batch(step)]
    return batch


def _device(pref: str) -> str:
    try:
        from segviewer.adapters.device import resolve_device
    except ImportError:  # the device module is someone else's; fall back to the CPU
        return "cpu" if pref in ("auto", "cpu") else pref
    return resolve_device(pref)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from segviewer.core.fileio import check_output_dir
    from segviewer.training import data as D
    from segviewer.training.loop import LoopConfig, Trainer
    from segviewer.training.tasks import DEFAULTS, make_task, random_crop

    check_output_dir(args.out)  # an --out that cannot be written fails before data loading and training
    if args.threads:
        torch.set_num_threads(args.threads)
    dflt = DEFAULTS[args.model]
    bs = args.batch_size or dflt["batch_size"]
    model = args.model
    instance = KINDS[model] == "instance"  # which samples the task eats
    warn = lambda msg: print(f"segviewer train: {msg}", file=sys.stderr)  # noqa: E731
    sets = _parse_sets(args.set)

    if args.data == "shapes":
        from segviewer.synth.classes import CATEGORIES, DETECTION_CATEGORIES

        list(zip(range(1), D.train_seeds(args.seed)))  # validates the seed range
        if instance:
            categories, make = list(DETECTION_CATEGORIES), D.shapes_instance
        else:
            categories, make = list(CATEGORIES), D.shapes_semantic

        def next_batch(step: int) -> list:
            base = args.seed * D.TRAIN_SEEDS_PER_RUN + step * bs
            return [make(base + j) for j in range(bs)]

        val = [make(s) for s in D.val_seeds(args.val)]
        n_train = SHAPES_EPOCH
    else:
        root = Path(args.data).expanduser()
        if model == "pcv":
            raise BadDatasetError("the PCV net trains on the shapes world only (it needs instance centroids)")
        # The model's task picks the annotations: a `synth scenes` folder holds both kinds.
        kind = D.dataset_kind(root, "instance" if instance else "semantic")
        print(f"segviewer train: {model} reads {D.KIND_FILES[kind]} in {root}", file=sys.stderr)
        if kind == "instance":
            samples, categories = D.load_coco_instances(root, skip_bad=args.skip_bad, warn=warn)
        else:
            from segviewer.core.groundtruth import dataset_categories

            samples, n_cls, binary = D.load_semantic_folder(root, num_classes=args.num_classes,
                                                             skip_bad=args.skip_bad, warn=warn)
            named = dataset_categories(root)
            if binary:
                categories = ["background", "foreground"]
            elif named and len(named) >= n_cls and not args.num_classes:
                categories = list(named)  # the dataset's own names (and all its classes)
            else:
                categories = [f"class {i}" for i in range(n_cls)]
        # A fixed 10 % hold-out (every tenth item) when there are enough items.
        val = samples[9::10] if len(samples) >= 10 else []
        train = [s for i, s in enumerate(samples) if len(samples) < 10 or i % 10 != 9]
        n_train = len(train)
        crop = args.crop
        if crop < 32 or crop % 32:
            raise SegviewerError(f"--crop must be a multiple of 32 (at least 32), got {crop}")

        def next_batch(step: int) -> list:
            per_epoch = max(1, n_train // bs) if n_train >= bs else 1
            epoch, pos = divmod(step, per_epoch)
            order = np.random.default_rng([args.seed, epoch]).permutation(n_train)
            idx = [order[(pos * bs + j) % n_train] for j in range(bs)]
            rng = np.random.default_rng([args.seed, step, 1])
            chosen = [train[i] for i in idx]
            if instance:
                return chosen
            return [random_crop(s, crop, rng) for s in chosen]

        if not instance:
            val = [random_crop(s, crop, np.random.default_rng([args.seed, i, 2])) for i, s in enumerate(val)]

    if args.steps:
        steps = args.steps
    elif args.epochs:
        steps = max(1, math.ceil(args.epochs * n_train / bs))
    else:
        steps = dflt["steps"]
    if not 0.0 <= args.degrade <= 1.0:
        raise SegviewerError(f"--degrade is a probability in [0, 1], got {args.degrade}")
    if args.degrade > 0:
        next_batch = _degraded(next_batch, args.degrade, args.seed)
    task = make_task(model, categories, sets)
    cfg = LoopConfig(
        steps=steps, batch_size=bs, lr=args.lr or dflt["lr"], weight_decay=dflt["weight_decay"],
        warmup=args.warmup if args.warmup is not None else min(dflt["warmup"], max(1, steps // 10)),
        seed=args.seed, device=_device(args.device), ckpt_every=args.ckpt_every, max_minutes=args.minutes,
        extra={"data": str(args.data), "command": "segviewer train " + shlex.join(sys.argv[2:])
               if len(sys.argv) > 2 and sys.argv[1] == "train" else ""},
    )
    trainer = Trainer(task, cfg, args.out, next_batch, val)
    if args.resume and trainer.resume():
        print(f"segviewer train: resuming {args.out / 'last.pt'} at step {trainer.step}", file=sys.stderr)
    elif args.init is not None:
        trainer.init_from(args.init)
        print(f"segviewer train: fine-tuning from {args.init}", file=sys.stderr)
    status = trainer.run()
    for k, v in trainer.metrics.items():
        print(f"{k} {v:.4f}")
    print(f"segviewer train: {status} at step {trainer.step}; wrote {args.out}", file=sys.stderr)
    return 130 if status == "interrupted" else 0
