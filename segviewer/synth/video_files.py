"""Write a shapes-world video with its ground truth to a folder.

Layout under ``out_dir``::

    video.mp4                          the clip (H.264 via PyAV, mp4v without it; lossy)
    frames/frame_<t>.png               the same frames, lossless (optional; flow checks need them)
    masks/frame_<t>.png                semantic labels, uint8 CATEGORIES indices
    annotations/panoptic.json          COCO panoptic; thing ids are stable across frames (tracks)
    annotations/panoptic/frame_<t>.png
    flow/frame_<t>.flo                 forward flow t -> t + 1 (Middlebury), every ``flow_every``-th t
    video.json                         seed, size, fps, pan and the regenerate command

Everything is a function of the arguments, so ``segviewer synth video`` with the same seed,
frame count and size rewrites identical PNG, JSON and ``.flo`` files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2

from segviewer.core.coco_io import category_entries, image_entry
from segviewer.core.errors import SegviewerError
from segviewer.core.fileio import write_image_atomic, write_json_atomic
from segviewer.core.flo import write_flo
from segviewer.core.panoptic_io import panoptic_annotation, write_panoptic_json, write_panoptic_png
from segviewer.synth.classes import CATEGORIES, ISTHING
from segviewer.synth.video import generate_video
from segviewer.video.writer import Mp4Writer

__all__ = ["write_video", "VideoSummary", "count_video_frames"]


@dataclass(frozen=True)
class VideoSummary:
    out_dir: Path
    n_frames: int
    n_flow: int
    pan: tuple[float, float]
    codec: str = "h264"
    note: str | None = None
    """Why the clip is not H.264 (PyAV or its encoder missing), else None."""


def count_video_frames(path: str | os.PathLike[str]) -> int:
    """Frames OpenCV can decode from ``path`` (0 when it cannot open it)."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return 0
        n = 0
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()


def write_video(out_dir: str | os.PathLike[str], seed: int, n_frames: int, size: tuple[int, int] = (240, 320),
                fps: float = 12.0, flow_every: int = 1, frames_png: bool = True,
                progress: Callable[[int, int], None] | None = None, **options: object) -> VideoSummary:
    """Generate and write a video with panoptic, semantic and flow ground truth (see module doc).

    ``flow_every = 0`` writes no flow; ``k`` writes the flow of frames 0, k, 2k, ... (never of
    the last frame, which has no successor in the clip). The mp4 (H.264, see
    :class:`segviewer.video.writer.Mp4Writer`) is re-read with ``cv2.VideoCapture`` and must give
    back every frame, or a :class:`SegviewerError` is raised.
    """
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise SegviewerError(f"{root} exists and is not a folder")
    if flow_every < 0:
        raise SegviewerError(f"flow_every must be 0 (no flow) or a positive step, got {flow_every}")
    h, w = (int(v) for v in size)
    if h % 2 or w % 2:  # H.264 (yuv420p) needs even sizes; padding would part the frames from the masks
        raise SegviewerError(f"video frames need an even height and width, got {h}x{w} "
                             f"(try {h + h % 2}x{w + w % 2})")
    width = max(4, len(str(n_frames - 1)))
    images, anns = [], []
    n_flow = 0
    pan = (0.0, 0.0)
    root.mkdir(parents=True, exist_ok=True)
    with Mp4Writer(root / "video.mp4", fps) as writer:
        for fr in generate_video(seed, n_frames, (h, w), **options):
            name = f"frame_{fr.index:0{width}d}"
            pan = fr.pan
            writer.write(fr.image)
            if frames_png:
                write_image_atomic(root / "frames" / f"{name}.png", fr.image)
            write_image_atomic(root / "masks" / f"{name}.png", fr.semantic)
            write_panoptic_png(root / "annotations" / "panoptic" / f"{name}.png", fr.panoptic.segment_ids)
            images.append(image_entry(fr.index + 1, f"{name}.png", h, w) | {"frame": fr.index})
            anns.append(panoptic_annotation(fr.index + 1, f"{name}.png", fr.panoptic))
            if flow_every and fr.index % flow_every == 0 and fr.index < n_frames - 1:
                write_flo(root / "flow" / f"{name}.flo", fr.flow)
                n_flow += 1
            if progress is not None:
                progress(fr.index + 1, n_frames)
        got = count_video_frames(writer.finish())
        if got != n_frames:
            raise SegviewerError(f"the written mp4 reads back with {got} of {n_frames} frames")
    info = {"description": "segviewer shapes-world video", "seed": int(seed), "n_frames": int(n_frames),
            "size": [h, w], "fps": float(fps), "pan": [float(pan[0]), float(pan[1])],
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(options.items())}}
    write_panoptic_json(root / "annotations" / "panoptic.json", images, anns,
                        category_entries(CATEGORIES, ISTHING), info)
    info["flow_every"] = int(flow_every)
    info["regenerate"] = (f"segviewer synth video --out DIR --frames {n_frames} --seed {seed} --size {h}x{w}"
                          f" --fps {fps:g}")
    write_json_atomic(root / "video.json", info, indent=2)
    return VideoSummary(root, int(n_frames), n_flow, (float(pan[0]), float(pan[1])), writer.codec, writer.note)
