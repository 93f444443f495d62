"""Flow estimators against the shapes world's exact ground-truth flow, at 640x480.

For each consecutive pair (t, t + 1) of a generated clip, every estimator computes the forward
flow; the end-point error is averaged over all pixels and over the pixels still visible at t + 1
(``noc``, as Sintel/KITTI report), and the time per frame is the median over the pairs.

    nice -n 10 python bench/flow.py [--frames 12] [--size 480 640] [--seed 3]

RAFT runs only when its weights are in the torch hub cache (or ``--raft-weights FILE``); offline
it is listed as "weights not available offline".
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from segviewer.adapters.flow import DISFlow, FarnebackFlow, RAFTFlow
from segviewer.analysis.flow import endpoint_error
from segviewer.core.errors import SegviewerError
from segviewer.synth.video import generate_video


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=12, help="frames of the clip (pairs = frames - 1)")
    ap.add_argument("--size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"))
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--raft-weights", default=None, help="a RAFT small checkpoint file")
    args = ap.parse_args(argv)

    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    frames = list(generate_video(args.seed, args.frames, tuple(args.size)))
    mags = [float(np.sqrt((f.flow**2).sum(-1)).mean()) for f in frames[:-1]]

    estimators: list[tuple[str, object | str]] = [
        ("DIS ultrafast", DISFlow("ultrafast")), ("DIS fast", DISFlow("fast")), ("DIS medium (default)", DISFlow()),
        ("Farneback", FarnebackFlow()),
    ]
    for size in ("small", "large"):
        try:
            estimators.append((f"RAFT {size}", RAFTFlow(size, weights=args.raft_weights if size == "small" else None,
                                                         allow_download=False)))
        except SegviewerError:
            estimators.append((f"RAFT {size}", "weights not available offline"))

    h, w = args.size
    print(f"shapes-world clip seed {args.seed}: {len(frames) - 1} pairs at {w}x{h}, "
          f"mean GT motion {np.mean(mags):.2f} px/frame; torch/cv2 threads {args.threads}")
    print(f"{'estimator':<22} {'EPE all':>8} {'EPE noc':>8} {'ms/frame':>9}")
    for name, est in estimators:
        if isinstance(est, str):
            print(f"{name:<22} {est}")
            continue
        epe_all, epe_noc, times = [], [], []
        est.estimate(frames[0].image, frames[1].image)  # warm-up (allocations, first-call costs)
        for a, b in zip(frames[:-1], frames[1:]):
            t0 = time.perf_counter()
            uv = est.estimate(a.image, b.image).uv
            times.append(time.perf_counter() - t0)
            epe_all.append(endpoint_error(uv, a.flow))
            epe_noc.append(endpoint_error(uv, a.flow, a.visible_next))
        print(f"{name:<22} {np.mean(epe_all):8.3f} {np.mean(epe_noc):8.3f} {statistics.median(times) * 1e3:9.1f}")
    zero = np.mean([endpoint_error(np.zeros_like(f.flow), f.flow) for f in frames[:-1]])
    print(f"{'(zero flow)':<22} {zero:8.3f} {'':>8} {'':>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
