"""``segviewer [PATHS...]``: open the explorer window (the command line's no-verb invocation)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                        help="images or folders to open (default: the first sample scene)")
    parser.add_argument("--model", action="append", default=[], metavar="ID",
                        help="model to run on every image; repeat for several (see `segviewer models`)")
    parser.add_argument("--weights", type=Path, metavar="FILE",
                        help="checkpoint for the first --model instead of its default weights")
    parser.add_argument("--device", metavar="D", help="cpu, cuda, cuda:1, mps or auto (default: last used)")
    parser.add_argument("--no-default", action="store_true",
                        help="open no sample scene and run no model unless asked")


def run(args: argparse.Namespace) -> int:
    """Start the Qt application; imports Qt only here so the headless verbs never load it."""
    from segviewer.core.errors import SegviewerError

    if args.weights is not None and not args.weights.is_file():
        raise SegviewerError(f"weights file {args.weights} does not exist.")
    for p in args.paths:
        if not p.exists():
            raise SegviewerError(f"{p} does not exist.")
    from segviewer.ui.app import run_app

    return run_app(args.paths, args.model, args.weights, args.device, args.no_default)
