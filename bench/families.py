"""Milliseconds per 640x480 image for each transformers family at its default input size, beside
torchvision's Mask R-CNN (ResNet-50 FPN), with each one's peak memory.

    nice -n 10 python bench/families.py                       # every family, CPU, 1 thread, 5 rounds
    python bench/families.py --threads 2 --rounds 3 --families detr_resnet50 maskrcnn_resnet50_fpn

Workload: one shapes-world scene, 640x480 RGB (``generate_scene(1000, (480, 640))``). Every model
is built at its released architecture with random weights (``create_adapter(id, random_init=True)``:
no download), on the CPU (or ``--device``), with ``--threads`` torch and OpenCV threads.

* **time**: ``adapter.predict(image, PredictParams(extras=False))`` (what ``segviewer predict``
  calls: preprocessing, forward, the processor's post-processing into our result types), all
  families round-robin (A B C ... A B C ..., ``bench/_common.time_both``), median wall and process
  CPU ms. SAM 2 is timed three ways: "segment everything" (``predict``, a 16 x 16 point grid), one
  click on a new image (image encoder + mask decoder) and one more click on the same image
  (the cached embedding: the mask decoder only). ``--queries`` adds DETR / RT-DETR / Mask2Former /
  OneFormer's ``predict_queries`` (the same pass with every query's attention captured).
  ``--onnx`` adds ``onnx: maskrcnn_resnet50_fpn``: the same random Mask R-CNN exported to ONNX
  (torchvision's documented export: a ``(3, H, W)`` input, opset 11) and run through
  ONNX Runtime by the generic adapter (``detection`` layout with masks), beside the torch one.
* **memory**: each family alone in a fresh interpreter (a subprocess): peak resident memory
  (``VmHWM``) over loading and one prediction, and the same less the resident memory after
  the imports (what the model and its run add).

Random weights: the network's cost is the trained one's, but post-processing that depends on what
survives a threshold (DETR's and Mask R-CNN's few detections, SAM's masks above predicted IoU 0.8,
panoptic segments) does less work than with trained weights; the table says how many results each
gave. Default input sizes: the released processors' (DETR and Mask R-CNN: short side 800, at most
1333; RT-DETR and RT-DETRv2 640 x 640; SegFormer-B0 512 x 512; Mask2Former Swin-T short side 384; OneFormer
Swin-T 512; SAM 2 1024 x 1024).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_line, pin_threads, table, time_both  # noqa: E402

FAMILIES = ["maskrcnn_resnet50_fpn", "detr_resnet50", "rtdetr_r50vd", "rtdetr_v2_r50vd",
            "mask2former_swin_tiny_coco_panoptic", "oneformer_swin_tiny_ade20k", "segformer_b0_ade", "sam2_hiera_tiny"]
QUERY_FAMILIES = ("detr_resnet50", "rtdetr_r50vd", "rtdetr_v2_r50vd", "mask2former_swin_tiny_coco_panoptic",
                  "oneformer_swin_tiny_ade20k")


def _image() -> Any:
    from segviewer.synth.generate import generate_scene

    return generate_scene(1000, (480, 640)).image


def _adapter(model_id: str, device: str) -> Any:
    from segviewer.adapters.registry import create_adapter

    ad = create_adapter(model_id, random_init=True)
    ad.load(device)
    return ad


ONNX_REF = "maskrcnn_resnet50_fpn"
ONNX_ROW = f"onnx: {ONNX_REF}"


def _export_onnx(folder: Path) -> Path:
    """torchvision's Mask R-CNN (random weights, as the torch row), exported to ``folder``."""
    import warnings

    import torch

    ref = _adapter(ONNX_REF, "cpu")
    path = folder / "maskrcnn.onnx"
    names = ["boxes", "labels", "scores", "masks"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(ref.module.eval(), ([torch.rand(3, 480, 640)],), str(path), dynamo=False, opset_version=11,
                          input_names=["image"], output_names=names,
                          dynamic_axes={"image": {1: "h", 2: "w"}, **{k: {0: "n"} for k in names}})
    return path


def _onnx_adapter(path: Path, threads: int) -> Any:
    """The exported file through the generic ONNX adapter, on ``threads`` CPU threads."""
    import onnxruntime as ort

    from segviewer.adapters.onnx_runtime import OnnxAdapter, onnx_card
    from segviewer.adapters.registry import get_card

    ad = OnnxAdapter(onnx_card(ONNX_ROW, path, "detection", get_card(ONNX_REF).categories, resize="none"))
    ad.load("cpu")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    ad.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])  # same file, pinned threads
    return ad


def _count(result: Any) -> str:
    segs = getattr(result, "segments", None)
    if segs is not None:
        return f"{len(segs)} segments"
    if hasattr(result, "boxes"):
        return f"{len(result)} detections"
    return "semantic map"


def _status_mb(key: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process in MB. Not ``ru_maxrss``: Linux keeps
    it across fork and exec, so a child would report its parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {key}")


def child(model_id: str, device: str, threads: int, onnx_file: str | None = None) -> None:
    """Load one family, run it once, print its memory as JSON (run in a fresh interpreter)."""
    pin_threads(threads)
    import torch  # noqa: F401 - count the imports as the baseline

    from segviewer.adapters.base import PredictParams
    from segviewer.adapters.hf_loading import transformers_available

    if transformers_available():
        import transformers  # noqa: F401
    img = _image()
    base = _status_mb("VmRSS")
    t0 = time.perf_counter()
    ad = _onnx_adapter(Path(onnx_file), threads) if onnx_file else _adapter(model_id, device)
    load_s = time.perf_counter() - t0
    ad.predict(img, PredictParams(extras=False))  # the peak is reached in the first
    peak = _status_mb("VmHWM")
    out = {"peak_mb": peak, "added_mb": peak - base, "load_s": load_s,
           "params_m": sum(p.numel() for p in ad.module.parameters()) / 1e6 if hasattr(ad, "module") else 0.0}
    if device.startswith("cuda"):
        import torch

        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(out))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="+", default=FAMILIES)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--queries", action="store_true", help="also time predict_queries (attention captured)")
    ap.add_argument("--no-memory", action="store_true", help="skip the per-family subprocesses")
    ap.add_argument("--onnx", action="store_true", help="also Mask R-CNN exported to ONNX, through ONNX Runtime")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--onnx-file", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.device, args.threads, args.onnx_file)
        return 0
    pin_threads(args.threads)
    from segviewer.adapters.base import PredictParams

    img = _image()
    params = PredictParams(extras=False)
    adapters = {mid: _adapter(mid, args.device) for mid in args.families}
    onnx_file: Path | None = None
    if args.onnx:
        tmp = tempfile.TemporaryDirectory(prefix="segviewer_bench_onnx_")
        onnx_file = _export_onnx(Path(tmp.name))
        adapters[ONNX_ROW] = _onnx_adapter(onnx_file, args.threads)
    fns: dict[str, Any] = {}
    counts: dict[str, str] = {}
    for mid, ad in adapters.items():
        fns[mid] = lambda ad=ad: ad.predict(img, params)
        counts[mid] = _count(fns[mid]())
        if mid == "sam2_hiera_tiny":
            # SAM caches one image's embedding: "everything" alternates two images (the encoder runs
            # every call, as on a new image); the clicks get adapters of their own
            pair = [img, img[:, ::-1].copy()]

            def everything(ad: Any = ad, pair: list[Any] = pair) -> None:
                pair.reverse()
                ad.predict(pair[0], params)

            fns[mid] = everything
            new, same = _adapter(mid, args.device), _adapter(mid, args.device)
            flip = [img[::-1].copy(), img[::-1, ::-1].copy()]

            def new_click(ad: Any = new, flip: list[Any] = flip) -> None:  # a new image each call: the encoder runs
                flip.reverse()
                ad.prompt(flip[0], points=[(320.0, 240.0, True)])

            fns["sam2: click, new image"] = new_click
            fns["sam2: click, same image"] = lambda ad=same: ad.prompt(img, points=[(200.0, 150.0, True)])
            counts["sam2: click, new image"] = counts["sam2: click, same image"] = "3 candidate masks"
        if args.queries and mid in QUERY_FAMILIES:
            fns[f"{mid} + queries"] = lambda ad=ad: ad.predict_queries(img, params)
            counts[f"{mid} + queries"] = counts[mid]
    timing = time_both(fns, repeats=args.rounds, warmup=1)
    mem: dict[str, dict[str, float]] = {}
    if not args.no_memory:
        for mid in [*args.families, *([ONNX_ROW] if onnx_file else [])]:
            extra = ["--onnx-file", str(onnx_file)] if mid == ONNX_ROW else []
            out = subprocess.run([sys.executable, __file__, "--child", mid, "--device", args.device,
                                  "--threads", str(args.threads), *extra], capture_output=True, text=True, check=True)
            mem[mid] = json.loads(out.stdout.strip().splitlines()[-1])
    ref = "maskrcnn_resnet50_fpn"
    rows = []
    for name, (wall, cpu) in timing.items():
        m = mem.get(name, {})
        lo, hi = timing.spread(name)
        rows.append([name, f"{wall:.0f}", f"{lo:.0f}-{hi:.0f}", f"{cpu:.0f}",
                     f"{timing[ref][0] / wall:.2f}x" if ref in timing else "-",
                     f"{m['params_m']:.1f}" if m.get('params_m') else "", f"{m['peak_mb']:.0f}" if m else "",
                     f"{m['added_mb']:.0f}" if m else "", counts[name]])
    print(f"{machine_line()} · {args.threads} thread(s) · device {args.device} · {args.rounds} rounds, "
          f"interleaved={timing.interleaved} · 640x480 image, random weights")
    print(table(rows, ["model", "wall ms", "range", "cpu ms", "vs Mask R-CNN", "params M", "peak MB",
                       "added MB", "gave"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
