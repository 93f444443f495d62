"""Deep Feature Flow: speed and accuracy against running the whole model on every frame.

For key-frame intervals l = 1, 5, 10, 20 on a generated shapes-world clip it reports frames per
second, the speedup over l = 1 (the whole model on every frame), the ideal speedup
``l / (1 + (l - 1) c_prop / c_full)`` from the measured per-frame costs (c_full: a key frame;
c_prop: flow + warp + task on a propagated frame), the ratio of the two, the agreement (mIoU
against the whole model's output on the same frame) and, for the shapes models, the mIoU against
ground truth over the clip.

Models:
* the bundled shapes FCN and U-Net (``models/shapes_fcn*.pt``, ``models/shapes_unet*.pt``) on the
  sample video ``assets/video/video.mp4`` (48 frames, 320x240, decoded as the app decodes it), with
  its exact ground truth regenerated from the recipe in ``video.json`` (``--random-shapes`` times
  the nets untrained instead);
* torchvision DeepLabV3-ResNet50 at 512x1024 with random weights (timing; agreement with its
  own per-frame output stands in for accuracy), split after ASPP, and before ASPP at l = 10.

    nice -n 10 python bench/dff.py [--models shapes,deeplab] [--video assets/video/video.mp4] [--deeplab-frames 20]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from segviewer.adapters.dff import (
    DeepFeatureFlow,
    SplitNet,
    speedup_bound,
    split_shapes_fcn,
    split_shapes_unet,
)
from segviewer.adapters.flow import make_flow_estimator
from segviewer.analysis.metrics import ConfusionMatrix
from segviewer.synth.classes import CATEGORIES
from segviewer.synth.video import generate_video
from segviewer.video.keyframes import AdaptiveSchedule, FixedInterval

ROOT = Path(__file__).resolve().parents[1]


def run_interleaved(configs: list[tuple[str, SplitNet, int | AdaptiveSchedule]], frames: list[np.ndarray], flow: str,
                    gt: list[np.ndarray] | None, ref_every: int = 1) -> list[dict[str, object]]:
    """Step every configuration (name, split net, interval) on frame i before moving to frame i + 1.

    The machine is shared: interleaving spreads any change in load evenly over all configurations,
    so their ratios stay meaningful even when absolute times drift. The first configuration must
    have l = 1; its labels are the per-frame reference for the agreement of the others. With
    ``ref_every = k > 1`` that whole-model configuration runs only on frames ``k - 1, 2k - 1, ...``
    (to save time on big models): its mean cost is still c_full, and agreement is measured there.
    """
    assert configs[0][2] == 1
    dffs = [DeepFeatureFlow(net, make_flow_estimator(flow), iv if isinstance(iv, AdaptiveSchedule) else FixedInterval(iv))
            for _, net, iv in configs]
    n = len(configs[0][1].categories)
    acc = [{"key": [], "prop": [], "stages": {}, "agree": ConfusionMatrix(n, None), "gt": ConfusionMatrix(n, 255)}
           for _ in configs]
    for i, img in enumerate(frames):
        ref = None
        for j, (dff, a) in enumerate(zip(dffs, acc)):
            if ref_every > 1 and (j == 0 and i % ref_every != ref_every - 1):
                continue
            out = dff.step(i, img)
            a["key" if out.is_key else "prop"].append(out.total)
            if not out.is_key:
                for k, v in out.times.items():
                    a["stages"][k] = a["stages"].get(k, 0.0) + v
            if j == 0:
                ref = out.result.labels
            if ref is not None:
                a["agree"].update(ref, out.result.labels)
            if gt is not None:
                a["gt"].update(gt[i], out.result.labels)
    rows = []
    for (name, _, iv), a in zip(configs, acc):
        times = a["key"] + a["prop"]
        rows.append({
            # the bound uses the interval the run really had (frames per key frame): a fixed l
            # longer than the clip, or an adaptive schedule, has fewer key frames than l implies
            "name": name, "l": iv if isinstance(iv, int) else 0, "l_eff": len(times) / len(a["key"]),
            "fps": len(times) / sum(times), "c_key": float(np.mean(a["key"])),
            "c_prop": float(np.mean(a["prop"])) if a["prop"] else None,
            "stages": {k: v / max(len(a["prop"]), 1) for k, v in a["stages"].items()},
            "agreement": a["agree"].scores()["mean_iou"], "miou_gt": a["gt"].scores()["mean_iou"] if gt else None,
        })
    return rows


def report(title: str, net: SplitNet, frames: list[np.ndarray], intervals: list[int], flow: str,
           gt: list[np.ndarray] | None, extra: list[tuple[str, SplitNet, int | AdaptiveSchedule]] = (),
           ref_every: int = 1) -> None:
    DeepFeatureFlow(net, make_flow_estimator(flow), FixedInterval(1)).full_labels(frames[0])  # warm-up
    configs = [(net.split, net, iv) for iv in sorted(set([1, *intervals]))] + list(extra)
    rows = run_interleaved(configs, frames, flow, gt, ref_every)
    c_full = rows[0]["c_key"]
    h, w = frames[0].shape[:2]
    ref = "every frame" if ref_every == 1 else f"every {ref_every}th frame"
    print(f"\n{title}: {len(frames)} frames at {w}x{h}, flow {flow}; c_full = {c_full * 1e3:.0f} ms/frame; "
          f"whole model (l = 1) on {ref}", flush=True)
    print(f"{'split':<22} {'l':>5} {'l eff':>5} {'s/frame':>8} {'fps':>7} {'speedup':>8} {'bound':>6} {'ratio':>6} "
          f"{'c_prop ms':>9} {'flow/warp/task ms':>18} {'agree':>6} {'mIoU GT':>8}")
    for r in rows:
        iv = r["l"]
        c_prop = r["c_prop"]
        speed = r["fps"] * c_full
        bound = speedup_bound(r["l_eff"], c_prop, c_full) if c_prop is not None else 1.0
        st = r["stages"]
        parts = "/".join(f"{st.get(k, 0) * 1e3:.0f}" for k in ("flow", "warp", "task")) if st else "-"
        gtm = "-" if r["miou_gt"] is None else f"{r['miou_gt'] * 100:.1f}"
        cp = "-" if c_prop is None else f"{c_prop * 1e3:.0f}"
        shown = "adapt" if not iv else str(iv)
        print(f"{r['name']:<22} {shown:>5} {r['l_eff']:5.3g} {1 / r['fps']:8.3f} {r['fps']:7.2f} {speed:8.2f} {bound:6.2f} "
              f"{speed / bound:6.2f} {cp:>9} {parts:>18} {r['agreement'] * 100:6.1f} {gtm:>8}", flush=True)


def sample_video(path: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The video's frames as the app decodes them, and its exact semantic ground truth, regenerated
    from the recipe (seed, size, options) in the ``video.json`` beside it."""
    import json

    from segviewer.video.source import open_video

    meta = json.loads((path.parent / "video.json").read_text())
    src = open_video(path)
    try:
        frames = [src.read(i) for i in range(src.frame_count)]
    finally:
        src.close()
    clip = generate_video(int(meta["seed"]), int(meta["n_frames"]), tuple(meta["size"]), **meta.get("options", {}))
    gt = [f.semantic for f in clip]
    if len(gt) != len(frames) or gt[0].shape != frames[0].shape[:2]:
        raise SystemExit(f"{path}: {len(frames)} frames of {frames[0].shape[:2]} but video.json describes "
                         f"{len(gt)} of {gt[0].shape}")
    return frames, gt


def _shapes_model(kind: str, random: bool, path: Path | None = None):  # noqa: ANN202
    import torch

    if random:
        from segviewer.adapters.nets.fcn import FCN
        from segviewer.adapters.nets.unet import UNet

        torch.manual_seed(0)
        return (FCN if kind == "fcn" else UNet)(len(CATEGORIES)).eval(), "random weights"
    files = [path] if path is not None else sorted((ROOT / "models").glob(f"shapes_{kind}*.pt"))
    if not files:
        return None, f"no models/shapes_{kind}*.pt shipped yet"
    from segviewer.adapters.nets import registry
    from segviewer.adapters.nets.checkpoint import load, load_weights

    ckpt = load(files[0])
    model = registry.build(ckpt["model"], list(ckpt["categories"]), ckpt.get("config"))
    load_weights(model, ckpt["state_dict"], files[0].name)
    return model.eval(), files[0].name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="shapes,deeplab")
    ap.add_argument("--intervals", type=int, nargs="+", default=[1, 5, 10, 20])
    ap.add_argument("--video", type=Path, default=ROOT / "assets" / "video" / "video.mp4",
                    help="a shapes-world video whose video.json sits beside it (for the ground truth)")
    ap.add_argument("--deeplab-frames", type=int, default=20, help="one l = 20 period")
    ap.add_argument("--deeplab-ref-every", type=int, default=4, help="whole DeepLab on every k-th frame only")
    ap.add_argument("--before-aspp", action="store_true", help="also DeepLab split before ASPP at l = 10")
    ap.add_argument("--flow", default="dis")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--random-shapes", action="store_true", help="time untrained shapes nets (mIoU meaningless)")
    ap.add_argument("--weights", action="append", default=[], metavar="KIND=PATH",
                    help="another checkpoint for fcn or unet (e.g. a candidate before shipping it)")
    args = ap.parse_args(argv)

    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    models = args.models.split(",")
    print(f"torch {torch.__version__}, {args.threads} threads, CPU; intervals {args.intervals}", flush=True)
    other = {k: Path(v) for k, _, v in (w.partition("=") for w in args.weights)}
    if "shapes" in models:
        frames, gt = sample_video(args.video)
        for kind in ("fcn", "unet"):
            model, src = _shapes_model(kind, args.random_shapes, other.get(kind))
            if model is None:
                print(f"\nshapes {kind.upper()}: {src}; skipped", flush=True)
                continue
            if kind == "fcn":
                net = split_shapes_fcn(model, CATEGORIES)
                report(f"shapes FCN ({src})", net, frames, args.intervals, args.flow, gt,
                       extra=[("adaptive (8 px, 5 %)", net, AdaptiveSchedule(8.0, 30.0, 0.05, 30))])
            else:
                report(f"shapes U-Net ({src})", split_shapes_unet(model, CATEGORIES), frames,
                       args.intervals, args.flow, gt,
                       extra=[("bottleneck", split_shapes_unet(model, CATEGORIES, "bottleneck"), 10)])
    if "deeplab" in models:
        from segviewer.adapters.dff import split_torchvision, torchvision_segmentation_model

        torch.manual_seed(0)
        model = torchvision_segmentation_model("deeplabv3_resnet50", len(CATEGORIES), random_init=True)
        clip = list(generate_video(args.seed, args.deeplab_frames, (512, 1024)))
        frames = [f.image for f in clip]
        report("DeepLabV3-ResNet50, random weights", split_torchvision(model, CATEGORIES, "after_aspp"),
               frames, args.intervals, args.flow, None, ref_every=args.deeplab_ref_every,
               extra=[("before_aspp", split_torchvision(model, CATEGORIES, "before_aspp"), 10)] if args.before_aspp
               else [])
    return 0


if __name__ == "__main__":
    sys.exit(main())
