"""``segviewer synth``: write shapes-world datasets and videos with ground truth.

    segviewer synth scenes --out data/shapes --n 1000 --seed 0 [--size 256x256]
    segviewer synth video  --out data/clip --frames 48 --seed 0 [--size 240x320] [--flow-every 1]

Scenes: images/, masks/ (semantic), metadata.csv, annotations/instances.json (COCO, RLE) and
annotations/panoptic.json + annotations/panoptic/ (COCO panoptic). Video: video.mp4, frames/,
masks/, annotations/panoptic*, flow/*.flo (forward flow t -> t + 1), video.json.
The same arguments always write the same files.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from segviewer.core.errors import SegviewerError


def _size(text: str) -> tuple[int, int]:
    """``HxW`` (rows x columns), e.g. ``240x320``."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"size must look like HxW (e.g. 240x320), got {text!r}")
    h, w = int(m.group(1)), int(m.group(2))
    if not (16 <= h <= 8192 and 16 <= w <= 8192):
        raise argparse.ArgumentTypeError(f"size {h}x{w} is out of range (16..8192 per side)")
    return h, w


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="what", required=True, metavar="{scenes,video}")
    s = sub.add_parser("scenes", help="a dataset of still scenes (COCO instances + panoptic, semantic PNGs)")
    s.add_argument("--out", required=True, type=Path, help="output folder")
    s.add_argument("--n", required=True, type=_positive, help="number of scenes")
    s.add_argument("--seed", type=int, default=0, help="dataset seed (image i uses a seed derived from it)")
    s.add_argument("--size", type=_size, default=(256, 256), help="HxW, default 256x256")
    s.add_argument("--prefix", default="scene_", help="file name prefix (default scene_)")
    s.add_argument("--images-dir", default="images",
                   help="folder of the images inside --out (default images; '.' puts them at the top)")
    v = sub.add_parser("video", help="a clip with panoptic ground truth and exact forward flow")
    v.add_argument("--out", required=True, type=Path, help="output folder")
    v.add_argument("--frames", required=True, type=_positive, help="number of frames")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--size", type=_size, default=(240, 320), help="HxW, default 240x320")
    v.add_argument("--fps", type=float, default=12.0)
    v.add_argument("--flow-every", type=int, default=1,
                   help="write the .flo of every k-th frame (0: none; default 1: all)")
    v.add_argument("--no-frames", action="store_true", help="skip the lossless PNG frames (mp4 only)")


class _Progress:
    """One self-overwriting status line on a terminal, a line per 10 % otherwise."""

    def __init__(self, what: str) -> None:
        self.what, self.t0, self.last = what, time.perf_counter(), -1
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        pct = 100 * done // total
        if self.tty:
            rate = done / max(time.perf_counter() - self.t0, 1e-9)
            end = "\n" if done == total else ""
            print(f"\r{self.what} {done}/{total} ({pct}%) {rate:.1f}/s", end=end, file=sys.stderr, flush=True)
        elif pct // 10 != self.last // 10 or done == total:
            print(f"{self.what} {done}/{total} ({pct}%)", file=sys.stderr, flush=True)
        self.last = pct


def run(args: argparse.Namespace) -> int:
    from segviewer.core.fileio import OutputError, check_output_dir

    check_output_dir(args.out)  # --out under a file or in a read-only place: one line, nothing written
    try:
        return _run(args)
    except OSError as err:  # a write the writers did not already report (a full disk mid-video)
        where = err.filename or args.out
        raise OutputError(f"cannot write {where}: {err.strerror or err}") from None


def _run(args: argparse.Namespace) -> int:
    if args.what == "scenes":
        from segviewer.synth.dataset import write_dataset

        t0 = time.perf_counter()
        res = write_dataset(args.out, args.n, args.seed, args.size, prefix=args.prefix,
                            images_dir=args.images_dir, progress=_Progress("scenes"))
        print(f"wrote {len(res.names)} scenes with {res.n_instances} things to {res.out_dir} "
              f"in {time.perf_counter() - t0:.1f} s")
        return 0
    if args.what == "video":
        from segviewer.synth.video_files import write_video

        if args.fps <= 0:
            raise SegviewerError(f"--fps must be positive, got {args.fps}")
        t0 = time.perf_counter()
        res = write_video(args.out, args.seed, args.frames, args.size, fps=args.fps,
                          flow_every=args.flow_every, frames_png=not args.no_frames,
                          progress=_Progress("frames"))
        print(f"wrote {res.n_frames} frames ({res.n_flow} flow files, pan {res.pan[0]:+.2f},"
              f"{res.pan[1]:+.2f} px/frame) to {res.out_dir} in {time.perf_counter() - t0:.1f} s")
        if res.note:  # the H.264 writer fell back to mp4v: say why, as the window's export does
            print(f"segviewer: video.mp4: {res.note}", file=sys.stderr)
        return 0
    raise SegviewerError(f"unknown synth target {args.what!r}; use scenes or video")
