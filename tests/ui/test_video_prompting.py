"""SAM 2 in the video view, on a tiny random SAM 2 *video* checkpoint: a click on a frame shows the
object's mask (an image prompt through the worker), Propagate tracks it through the timeline in the
worker's host, each frame's masks are cached and equal what the adapter's own ``track`` gives, an
object keeps its colour on every frame, Cancel stops a track; and the host paths the app uses
(the child process) answer prompts and tracks as the in-thread host does."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import Qt

from segviewer.adapters.hf_sam2 import ObjectPrompt
from segviewer.adapters.registry import create_adapter, get_card
from segviewer.core.coco_results import decode_segmentation
from segviewer.core.colors import instance_colors
from segviewer.synth.video import generate_video
from segviewer.ui.features.video import VideoFeature
from segviewer.ui.features.video_prompting import VideoPromptFeature
from segviewer.ui.model_host import ModelHost, ProcessHost, registry_factory
from segviewer.ui.worker import InferenceWorker, PromptRequest, TrackRequest
from segviewer.video.source import open_video
from tests.adapters import hf_tiny

MODEL = "sam2_hiera_tiny"
TIMEOUT = 120_000
N = 5
_factory = functools.partial(registry_factory, torch_threads=1)


@pytest.fixture(scope="module")
def sam_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hf_tiny.sam2_video(tmp_path_factory.mktemp("sam2v") / "sam2_video")


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("frames") / "clip"
    folder.mkdir()
    for i, f in enumerate(generate_video(5, N, (96, 128))):
        cv2.imwrite(str(folder / f"frame_{i:03d}.png"), cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(scope="module")
def direct(sam_video: Path):
    ad = create_adapter(MODEL)
    ad.load("cpu", sam_video)
    return ad


def _reference(direct, folder: Path, prompts) -> dict[int, object]:  # noqa: ANN001
    with open_video(folder) as src:
        return dict(direct.track(iter(src), prompts))


@pytest.fixture
def opened(qtbot, show_window, sam_video: Path, frames_dir: Path):
    w = show_window(_factory, [get_card(MODEL)], size=(1200, 800))
    w.load_weights(MODEL, sam_video)
    video = w.findChild(VideoFeature)
    feat = w.findChild(VideoPromptFeature)
    assert video is not None and feat is not None
    with qtbot.waitSignal(video.videoOpened, timeout=TIMEOUT):
        video.open(frames_dir)
    qtbot.waitUntil(lambda: video.shown_index == 0, timeout=TIMEOUT)
    yield w, video, feat
    video.close_video()


def test_prompt_on_a_frame_then_propagate_with_stable_colours(qtbot, opened, direct, frames_dir: Path,
                                                             tmp_path: Path) -> None:
    w, video, feat = opened
    with qtbot.waitSignal(video.frameShown, timeout=TIMEOUT):
        video.seek(1)
    feat.panel.mode.click()
    assert feat.active and feat.prompter.active
    with qtbot.waitSignal(feat.previewShown, timeout=TIMEOUT):
        qtbot.mouseClick(w.canvas.viewport(), Qt.MouseButton.LeftButton, pos=w.canvas.image_to_widget(40, 30))
    ((obj, frame), (pts, box)), = feat.prompts.items()
    assert (obj, frame) == (1, 1) and len(pts) == 1 and pts[0][2] and box is None
    shown = feat.frame_result(1)
    ref = direct.prompt(video.readahead.get(1, timeout=5), points=pts)
    np.testing.assert_array_equal(shown.masks.full(0), ref.masks.full(ref.best))
    assert feat.mask_item.isVisible()

    # a second object by a box, on frame 2
    feat.new_object()
    assert feat.obj_id == 2
    with qtbot.waitSignal(video.frameShown, timeout=TIMEOUT):
        video.seek(2)
    with qtbot.waitSignal(feat.previewShown, timeout=TIMEOUT):
        feat.set_box((70.0, 20.0, 120.0, 80.0))
    assert set(feat.prompts) == {(1, 1), (2, 2)}

    with qtbot.waitSignal(w.worker.trackFinished, timeout=TIMEOUT) as done:
        assert feat.propagate()
    assert done.args[1:] == [N - 1, False]  # frames 1..4
    assert feat.tracked == set(range(1, N))
    want = _reference(direct, frames_dir, feat.object_prompts())
    assert sorted(want) == sorted(feat.tracked)
    colours = {}
    for i, ref_det in want.items():
        got = feat.frame_result(i)  # from the worker's result cache
        assert got is w.worker.cached_track_frame(feat.request, i)
        assert got.instance_ids.tolist() == ref_det.instance_ids.tolist()
        np.testing.assert_array_equal(got.masks.to_full(), ref_det.masks.to_full())
        for k, oid in enumerate(got.instance_ids.tolist()):
            colours.setdefault(oid, set()).add(tuple(instance_colors(got.class_ids, got.instance_ids)[k]))
    assert set(colours) == {1, 2} and all(len(c) == 1 for c in colours.values())  # one colour per object
    assert colours[1] != colours[2]
    # exported as COCO RLE: one record per object and frame
    out = tmp_path / "track.json"
    assert feat.panel.export.isEnabled()
    with qtbot.waitSignal(w.exported, timeout=TIMEOUT):
        feat.export(out)
    recs = json.loads(out.read_text())
    assert sorted((r["image_id"], r["track_id"]) for r in recs) == sorted(
        (i, int(o)) for i, d in want.items() for o in d.instance_ids)
    for r in recs:
        det = want[r["image_id"]]
        k = det.instance_ids.tolist().index(r["track_id"])
        np.testing.assert_array_equal(decode_segmentation(r["segmentation"], (96, 128)), det.masks.full(k))
    # the drawn layer is that frame's tracked masks
    with qtbot.waitSignal(video.frameShown, timeout=TIMEOUT):
        video.seek(3)
    assert feat.mask_item.isVisible() and feat.mask_item.image.shape[:2] == (96, 128)


def test_cancel_stops_a_track(qtbot, opened) -> None:
    w, video, feat = opened
    feat.set_active(True)
    with qtbot.waitSignal(feat.previewShown, timeout=TIMEOUT):
        feat.add_point(40, 30, True)
    feat.trackProgress.connect(lambda n: feat.cancel())  # cancel after the first tracked frame
    with qtbot.waitSignal(w.worker.trackFinished, timeout=TIMEOUT) as done:
        feat.propagate()
    assert done.args[2] is True and done.args[1] < N
    assert "cancelled" in feat.panel.status.text() and not feat.running
    # Undo drops the prompt and its preview; Clear forgets the track
    feat.undo()
    assert feat.prompts == {} and feat.frame_result(0) is not None  # the cached tracked frame stays
    feat.clear()
    assert feat.request is None and feat.frame_result(0) is None
    # Esc leaves frame prompt mode; opening an image leaves the video view and the mode
    feat.set_active(True)
    qtbot.keyClick(w, Qt.Key.Key_Escape)
    assert not feat.active and not feat.prompter.active
    feat.set_active(True)
    with qtbot.waitSignal(w.session.imageShown, timeout=TIMEOUT):
        w.session.open_paths([Path(__file__).resolve().parents[2] / "assets" / "scenes" / "scene_000.png"])
    assert not feat.active and not feat.mask_item.isVisible()


def test_an_image_only_checkpoint_is_refused_in_one_sentence(qtbot, show_window, frames_dir: Path,
                                                            tmp_path: Path) -> None:
    w = show_window(_factory, [get_card(MODEL)])
    w.load_weights(MODEL, hf_tiny.sam2(tmp_path / "image_only"))
    video, feat = w.findChild(VideoFeature), w.findChild(VideoPromptFeature)
    with qtbot.waitSignal(video.videoOpened, timeout=TIMEOUT):
        video.open(frames_dir)
    qtbot.waitUntil(lambda: video.shown_index == 0, timeout=TIMEOUT)
    feat.prompts[(1, 0)] = (((40.0, 30.0, True),), None)
    with qtbot.waitSignal(w.worker.trackFailed, timeout=TIMEOUT):
        feat.propagate()
    assert "image-only SAM 2 checkpoint" in feat.panel.status.text() and not feat.running
    video.close_video()


@pytest.mark.parametrize("process", [False, True], ids=["thread", "child process"])
def test_hosts_answer_prompts_and_stop_tracks(direct, sam_video: Path, frames_dir: Path, process: bool) -> None:
    from segviewer.core.timing import Timings

    host = ProcessHost(_factory) if process else ModelHost(_factory)
    try:
        with open_video(frames_dir) as src:
            frame = src.read(0)
        pm = host.prompt(MODEL, "cpu", sam_video, frame, (((40.0, 30.0, True),), None, True), Timings(),
                         lambda s: None)
        ref = direct.prompt(frame, points=[(40.0, 30.0, True)])
        np.testing.assert_array_equal(pm.masks.to_full(), ref.masks.to_full())
        np.testing.assert_allclose(pm.ious, ref.ious, atol=1e-6)
        prompts = (ObjectPrompt(4, 0, points=((40.0, 30.0, True),)),)
        seen: list[int] = []
        n = host.track(MODEL, "cpu", sam_video, frames_dir, prompts, Timings(), lambda s: None,
                       lambda i, det: seen.append(i) or len(seen) < 2)  # stop after two frames
        assert seen == [0, 1] and n == 2
        # the host is usable after a stopped track (the child ignores the late stop message)
        again = host.prompt(MODEL, "cpu", sam_video, frame, (((40.0, 30.0, True),), None, True), Timings(),
                            lambda s: None)
        np.testing.assert_array_equal(again.masks.to_full(), ref.masks.to_full())
    finally:
        host.close()


def test_worker_track_caches_every_frame(qtbot, sam_video: Path, frames_dir: Path) -> None:
    worker = InferenceWorker(_factory, synchronous=True)
    got: list[tuple[int, int]] = []
    worker.trackFrame.connect(lambda seq, i, det: got.append((seq, i)))
    req = TrackRequest(1, 7, frames_dir, ("clip", 0), MODEL, "cpu", sam_video,
                       (ObjectPrompt(1, 2, points=((40.0, 30.0, True),)),))
    with qtbot.waitSignal(worker.trackFinished, timeout=TIMEOUT) as done:
        worker.request_track(req)
    assert done.args == [7, N - 2, False] and got == [(7, i) for i in range(2, N)]
    assert all(worker.cached_track_frame(req, i) is not None for i in range(2, N))
    assert worker.cached_track_frame(req, 1) is None
    with qtbot.waitSignal(worker.promptFailed, timeout=TIMEOUT) as failed:
        worker.request_prompt(PromptRequest(1, 8, ("clip", 0), np.zeros((8, 8, 3), np.uint8), MODEL, "cpu",
                                            sam_video))
    assert failed.args[0] == 8 and "at least one point or a box" in failed.args[2]
    worker.stop()
