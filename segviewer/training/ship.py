"""Ship a trained run as a bundled model: copy its ``model.pt`` into ``models/``, measure it through
its adapter on validation scenes of unseen seeds, and write the card ``models/<id>.toml``.

    python -m segviewer.training.ship --run /tmp/runs/fcn --id shapes_fcn --val 200 \
        --command "segviewer train --model fcn --data shapes --out runs/fcn --steps 4000 --seed 0"
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from segviewer.core.fileio import write_text_atomic

CARDS: dict[str, dict[str, Any]] = {
    "maskrcnn": {
        "task": "instance",
        "family": "Mask R-CNN, ResNet-18 (to layer3) FPN, narrow heads, trained from scratch on the shapes world",
        "adapter": "segviewer.adapters.shapes:ShapesMaskRCNN",
        "description": "Small Mask R-CNN for the shapes world's five things; runs offline on a CPU.",
    },
    "fcn": {
        "task": "semantic",
        "family": "FCN-8s (narrow VGG-like encoder, 32s/16s/8s skip fusion), trained on the shapes world",
        "adapter": "segviewer.adapters.shapes:ShapesFCN",
        "description": "FCN with the paper's skip fusion; predict_stages() shows 32s, 16s and 8s side by side.",
    },
    "unet": {
        "task": "semantic",
        "family": "U-Net ({scales} scales, concatenated skips), trained on the shapes world",
        "adapter": "segviewer.adapters.shapes:ShapesUNet",
        "description": "Small U-Net for the shapes world's 9 classes (4 stuff + 5 things).",
    },
    "pcv": {
        "task": "voting",
        "family": "Pixel Consensus Voting: U-Net body, semantic head + 9x9 (K=17) voting head at stride 4",
        "adapter": "segviewer.adapters.shapes:ShapesPCV",
        "description": "Every thing pixel votes for its instance centroid's cell; predict_votes() returns the votes.",
    },
    "centernet": {
        "task": "detection",
        "family": "CenterNet (objects as points): ResNet-18 (to layer3), two upsampling stages to stride 4, "
                  "heatmap / offset / size heads, trained from scratch on the shapes world",
        "adapter": "segviewer.adapters.centernet:ShapesCenterNet",
        "description": "Class-centre heatmaps at stride 4; 3x3 max-pool peaks (no NMS), top 100, boxes from the "
                       "offset and size heads. The Internals dock's CenterNet tab shows them.",
    },
    "yolo": {
        "task": "detection",
        "family": "YOLO-style one-stage detector: plain conv trunk to stride 16, a grid of cells with B = 5 k-means "
                  "priors (v2's sigma(t) + c, p e^t) and one class distribution per cell (v1), trained from scratch "
                  "on the shapes world",
        "adapter": "segviewer.adapters.yolo:ShapesYOLO",
        "description": "Each cell predicts 5 boxes with confidences and Pr(class | object); class-specific scores, "
                       "class-wise NMS. The Internals dock's YOLO grid tab shows them.",
    },
    "yolact": {
        "task": "instance",
        "family": "YOLACT: k prototype masks (FPN-like protonet at stride 4) and k tanh coefficients per prior "
                  "of the bundled YOLO detector (frozen), masks assembled as sigmoid(P c) cropped to the box",
        "adapter": "segviewer.adapters.yolact:ShapesYOLACT",
        "description": "One-stage instance segmentation without RoI pooling; the Internals dock's YOLACT tab shows "
                       "the prototypes, a detection's coefficients and the assembly step by step.",
    },
}


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(round(v, 4)) if isinstance(v, float) else str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


def card_text(fields: dict[str, Any], training: dict[str, Any], metrics: dict[str, float]) -> str:
    lines = [f"{k} = {_toml_value(v)}" for k, v in fields.items()]
    lines += ["", "[training]"] + [f"{k} = {_toml_value(v)}" for k, v in training.items()]
    lines += ["", "[metrics]"] + [f"{k} = {_toml_value(float(v))}" for k, v in metrics.items()]
    return "\n".join(lines) + "\n"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    import torch

    from segviewer.adapters.base import ModelCard
    from segviewer.synth.classes import ISTHING
    from segviewer.training import checkpoint
    from segviewer.training.data import VAL_SEED
    from segviewer.training.evaluate import evaluate_adapter

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--id", required=True)
    ap.add_argument("--models", type=Path, default=Path(__file__).resolve().parents[2] / "models")
    ap.add_argument("--val", type=int, default=200)
    ap.add_argument("--command", required=True, help="the training command line(s) to record")
    ap.add_argument("--note", default="", help="how the run went (interruptions, budgets)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    from segviewer.training.tasks import full_config

    ck = checkpoint.load(a.run / "model.pt")
    kind = ck["model"]
    dst = a.models / f"{a.id}.pt"
    ck["config"] = full_config(kind, ck.get("config"))  # spell out every architecture option
    checkpoint.save(dst, ck)
    meta = dict(CARDS[kind])
    # the card states what the checkpoint builds (the U-Net's scale count is one per width)
    meta["family"] = meta["family"].format(scales=len(ck["config"].get("widths", ())))
    cats = list(ck["categories"])
    card = ModelCard(a.id, meta["task"], meta["family"], tuple(cats), weights_source="bundled",
                     weights_file=dst.name, extra={"checkpoint_path": str(dst)})
    import importlib

    mod_name, cls_name = meta["adapter"].split(":")  # the card's adapter class
    ad = getattr(importlib.import_module(mod_name), cls_name)(card)
    ad.load("cpu")
    metrics = evaluate_adapter(ad, kind, a.val)
    metrics = {k: round(float(v), 4) for k, v in metrics.items()}
    fields: dict[str, Any] = {
        "id": a.id, "task": meta["task"], "family": meta["family"], "adapter": meta["adapter"],
        "categories": cats,
    }
    if meta["task"] not in ("instance", "detection"):
        fields["isthing"] = list(ISTHING) if len(cats) == len(ISTHING) else [False] * len(cats)
    fields.update({
        "input_size": [256, 256], "checkpoint": dst.name, "sha256": sha256_of(dst),
        "file_size_mb": round(dst.stat().st_size / 1e6, 2), "description": meta["description"],
    })
    if kind == "pcv":
        fields["vote_stride"] = int(ck["config"].get("vote_stride", 4))
        fields["cell_size"] = float(ck["config"].get("cell_size", 3.0))
    training = {"command": a.command, "seed": int(ck.get("seed", 0)), "steps": int(ck["step"]),
                "validation": f"{a.val} shapes-world scenes, seeds {VAL_SEED}..{VAL_SEED + a.val - 1} "
                              "(never used for training), measured through the adapter on the shipped file"}
    if a.note:
        training["note"] = a.note
    write_text_atomic(a.models / f"{a.id}.toml", card_text(fields, training, metrics))
    print(json.dumps(metrics, indent=1))
    print(f"wrote {dst} and {a.models / (a.id + '.toml')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
