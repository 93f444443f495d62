"""Command line: ``segviewer [FILES...]`` opens the GUI; ``segviewer VERB ...`` runs headless.

Each verb lives in ``segviewer/commands/<verb>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; they are imported only when used, so ``segviewer models`` never loads Qt
and the GUI never pays for argparse set-up of the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from segviewer import __version__
from segviewer.core.errors import SegviewerError

VERBS: dict[str, str] = {
    "predict": "run a model on images and write overlays and predictions",
    "models": "list the model zoo and each model's weight state",
    "eval": "compare predictions with ground truth (semantic, instance, panoptic)",
    "synth": "generate shapes-world scenes and videos with ground truth",
    "train": "train a bundled model family on a dataset",
}


def _command(name: str):
    return importlib.import_module(f"segviewer.commands.{name}")


def build_parser(verb: str | None) -> argparse.ArgumentParser:
    if verb is None:
        p = argparse.ArgumentParser(
            prog="segviewer",
            description="Open the segviewer window. Verbs: "
            + "; ".join(f"{k}: {v}" for k, v in VERBS.items()),
        )
        p.add_argument("--version", action="version", version=f"segviewer {__version__}")
        _command("gui").add_arguments(p)
        return p
    p = argparse.ArgumentParser(prog=f"segviewer {verb}", description=VERBS[verb])
    _command(verb).add_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = argv[0] if argv and argv[0] in VERBS else None
    args = build_parser(verb).parse_args(argv[1:] if verb else argv)
    try:
        return int(_command(verb or "gui").run(args) or 0)
    except SegviewerError as err:
        print(f"segviewer: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("segviewer: interrupted", file=sys.stderr)
        return 130
