"""``segviewer models``: the model zoo as a table of id, task, weight state and weights file.

Fast: it reads cards (torchvision's weight metadata and ``models/*.toml``) and looks for files;
it builds no network.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the cards as JSON instead of a table")
    p.add_argument("--task", default=None,
                   help="only models of this task (detection, instance, keypoint, semantic, panoptic, voting)")


def run(args: argparse.Namespace) -> int:
    from segviewer.adapters.base import ModelCard
    from segviewer.adapters.registry import (
        bundled_card_problems,
        list_cards,
        missing_extra,
        models_dir,
        weight_state,
    )
    from segviewer.adapters.weights import hub_checkpoint_dir

    def state_of(c: ModelCard) -> str:
        extra = missing_extra(c)  # a family whose optional extra is not installed says which
        return f"needs the {extra} extra" if extra else weight_state(c)

    cards = [c for c in list_cards() if args.task is None or c.task == args.task]
    rows = [(c.id, c.task, state_of(c), c.weights_file or "-", c.family) for c in cards]
    if args.json:
        print(json.dumps([
            {"id": c.id, "task": c.task, "weights": state, "file": c.weights_file, "family": c.family,
             "categories": len(c.categories), "file_size_mb": c.file_size_mb, "metrics": c.metrics}
            for c, (_, _, state, _, _) in zip(cards, rows)
        ], indent=1))
    else:
        head = ("ID", "TASK", "WEIGHTS", "FILE", "FAMILY")
        widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(4)]
        for r in [head, *rows]:
            print("  ".join(str(v).ljust(w) for v, w in zip(r[:4], widths)) + "  " + r[4])
        print(f"\nhub cache: {hub_checkpoint_dir()}   bundled models: {models_dir()}")
    for problem in bundled_card_problems():
        print(f"segviewer: {problem}", file=sys.stderr)
    return 0
