"""Video generator: exact forward flow (pan and thing motion), warping consistency, tracks, files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from segviewer.core.errors import SegviewerError
from segviewer.core.flo import read_flo
from segviewer.core.panoptic_io import read_panoptic
from segviewer.synth.video import generate_video
from segviewer.synth.video_files import count_video_frames, write_video

SIZE = (96, 128)


@pytest.fixture(scope="module")
def clip() -> list:
    return list(generate_video(5, 40, SIZE))


def _warp_back(nxt: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Frame t + 1 sampled at p + flow(p): should reproduce frame t where the surface stays visible."""
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(nxt.astype(np.float32), xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def test_deterministic() -> None:
    a = list(generate_video(9, 4, (48, 64)))
    b = list(generate_video(9, 4, (48, 64)))
    for x, y in zip(a, b):
        assert x.image.tobytes() == y.image.tobytes() and x.flow.tobytes() == y.flow.tobytes()
        assert x.panoptic.segment_ids.tobytes() == y.panoptic.segment_ids.tobytes()


def test_pure_pan_flow_equals_the_pan_and_moves_the_pixels() -> None:
    frames = list(generate_video(3, 4, (48, 64), n_things=(0, 0), pan=(1.0, -2.0)))
    for f in frames:
        assert not f.instances
        assert np.all(f.flow[..., 0] == 1.0) and np.all(f.flow[..., 1] == -2.0)
    for a, b in zip(frames, frames[1:]):
        # an integer pan moves content exactly: b(x + 1, y - 2) == a(x, y)
        assert np.array_equal(b.image[:-2, 1:], a.image[2:, :-1])
        assert np.array_equal(b.semantic[:-2, 1:], a.semantic[2:, :-1])
        assert a.visible_next[2:, :-1].all() and not a.visible_next[:2].any()


def test_warping_next_frame_back_by_gt_flow_reproduces_frame(clip: list) -> None:
    errs, zero_errs = [], []
    for a, b in zip(clip, clip[1:]):
        ok = cv2.erode(a.visible_next.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert ok.mean() > 0.5
        img = a.image.astype(np.float32)
        errs.append(np.abs(_warp_back(b.image, a.flow) - img).mean(2)[ok].mean())
        zero_errs.append(np.abs(b.image.astype(np.float32) - img).mean(2)[ok].mean())
    assert np.mean(errs) < 2.0 and max(errs) < 4.0, errs
    assert np.mean(zero_errs) > 2.5 * np.mean(errs)


def test_thing_flow_carries_each_mask_to_its_next_position(clip: list) -> None:
    """Mask centroid + mean flow = next centroid, for whole, unoccluded things (sub-pixel)."""
    errs = []
    for a, b in zip(clip, clip[1:]):
        nxt = {i.instance_id: i for i in b.instances}
        for inst in a.instances:
            other = nxt.get(inst.instance_id)
            whole = int(inst.mask.sum()) == inst.full_area
            if other is None or not whole or int(other.mask.sum()) != other.full_area or inst.full_area < 200:
                continue
            ys, xs = np.nonzero(inst.mask)
            moved = np.array([xs.mean() + a.flow[ys, xs, 0].mean(), ys.mean() + a.flow[ys, xs, 1].mean()])
            ys2, xs2 = np.nonzero(other.mask)
            errs.append(np.abs(moved - (xs2.mean(), ys2.mean())).max())
            assert other.category == inst.category
    # vertex rounding moves a small mask's centroid by a fraction of a pixel, never more
    assert len(errs) >= 20 and max(errs) < 1.0 and np.median(errs) < 0.3, (len(errs), max(errs), np.median(errs))


def test_things_enter_leave_and_occlude(clip: list) -> None:
    occluded = 0
    for frames in (clip, list(generate_video(6, 40, SIZE)), list(generate_video(7, 40, SIZE))):
        tracks = [{i.instance_id for i in f.instances} for f in frames]
        everywhere = set().union(*tracks)
        assert everywhere - tracks[0], "no thing enters after the first frame"
        assert everywhere - tracks[-1], "no thing leaves before the last frame"
        occluded += sum(int(i.mask.sum()) < i.inframe_area for f in frames for i in f.instances)
        assert any((~f.visible_next).sum() > 0 for f in frames)
        for f in frames[::5]:
            ids = f.panoptic.segment_ids
            for s in f.panoptic.segments:
                assert s.area == int((ids == s.id).sum())
    assert occluded > 0


def test_write_video_files(tmp_path: Path) -> None:
    out = tmp_path / "v"
    summary = write_video(out, seed=2, n_frames=6, size=(48, 64), flow_every=2)
    assert count_video_frames(out / "video.mp4") == 6
    assert summary.n_flow == 3 and sorted(p.name for p in (out / "flow").iterdir()) == [
        "frame_0000.flo", "frame_0002.flo", "frame_0004.flo"]
    frames = list(generate_video(2, 6, (48, 64)))
    assert np.array_equal(read_flo(out / "flow" / "frame_0002.flo"), frames[2].flow)
    png = cv2.imread(str(out / "frames" / "frame_0003.png"))[..., ::-1]
    assert np.array_equal(png, frames[3].image)
    pan = read_panoptic(out / "annotations" / "panoptic.json")
    assert np.array_equal(pan.panoptic(4).segment_ids, frames[3].panoptic.segment_ids)
    meta = json.loads((out / "video.json").read_text())
    assert meta["seed"] == 2 and "--seed 2" in meta["regenerate"]
    # rerun: identical lossless files
    write_video(tmp_path / "w", seed=2, n_frames=6, size=(48, 64), flow_every=2)
    for p in out.rglob("*"):
        if p.is_file() and p.suffix in (".png", ".flo", ".json"):
            q = tmp_path / "w" / p.relative_to(out)
            assert hashlib.sha256(p.read_bytes()).digest() == hashlib.sha256(q.read_bytes()).digest(), p


def test_bad_video_arguments(tmp_path: Path) -> None:
    with pytest.raises(SegviewerError, match="at least 1 frame"):
        list(generate_video(0, 0))
    with pytest.raises(SegviewerError, match="unknown video option"):
        list(generate_video(0, 2, wobble=1))
    with pytest.raises(SegviewerError, match="flow_every"):
        write_video(tmp_path / "x", 0, 2, flow_every=-1)
