"""The video feature end to end with the bundled shapes FCN (real weights, no fakes) on a tiny
generated 10-frame clip: timeline and key-frame ticks, stepping and key jumps, a propagated frame's
readout, whole-video processing and its cancel, annotated export, and bad input as a message."""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np
import pytest

from segviewer.synth.video import generate_video
from segviewer.ui.features.video import VideoFeature, readout_text
from segviewer.ui.main_window import ASSETS, MainWindow
from segviewer.ui.model_host import registry_factory
from segviewer.ui.worker import InferenceWorker

TIMEOUT = 120_000  # a 2-core CPU shared with a training job
N_FRAMES = 10
_factory = functools.partial(registry_factory, torch_threads=1)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "tiny.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (128, 96))
    for f in generate_video(3, N_FRAMES, (96, 128)):
        writer.write(cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture
def window(qtbot):
    made: list[MainWindow] = []

    def make() -> tuple[MainWindow, VideoFeature]:
        w = MainWindow(InferenceWorker(_factory, process=False), cards=[])  # the feature runs its own DFF; no window models
        qtbot.addWidget(w)
        w.resize(1200, 800)
        w.show()
        qtbot.waitExposed(w)
        made.append(w)
        feat = w.findChild(VideoFeature)
        assert feat is not None, "the video feature did not install"
        return w, feat

    yield make
    for w in made:
        feat = w.findChild(VideoFeature)
        if feat is not None:
            feat.close_video()
        w.shutdown()


def _open(qtbot, feat: VideoFeature, path: Path, interval: int = 4) -> None:
    feat.interval.setValue(interval)
    with qtbot.waitSignal(feat.videoOpened, timeout=TIMEOUT) as blocker:
        feat.open(path)
    assert blocker.args == [N_FRAMES]


def test_open_timeline_step_and_key_jumps(qtbot, window, clip: Path) -> None:
    w, feat = window()
    assert "Video" in w.docks
    _open(qtbot, feat, clip)
    tl = feat.timeline
    assert tl.frame_count == N_FRAMES and tl.frame_box.maximum() == N_FRAMES - 1
    assert tl.slider.keys == (0, 4, 8)
    qtbot.waitUntil(lambda: w.canvas.image is not None and feat._pending is None, timeout=TIMEOUT)
    frame0 = w.canvas.image.copy()
    assert frame0.shape == (96, 128, 3)
    with qtbot.waitSignal(feat.frameShown, timeout=TIMEOUT, check_params_cb=lambda i: i == 1):
        feat.step(1)
    assert feat.index == 1 and tl.slider.value() == 1
    assert not np.array_equal(w.canvas.image, frame0), "the next frame is a different picture"
    feat.jump_key(1)
    assert feat.index == 4
    feat.jump_key(1)
    assert feat.index == 8
    feat.jump_key(1)  # no key after 8: stays
    assert feat.index == 8
    feat.jump_key(-1)
    assert feat.index == 4
    feat.step(-1)
    assert feat.index == 3
    tl.frame_box.setValue(7)  # typing a frame number (Enter) jumps there
    assert feat.index == 7 and tl.slider.value() == 7
    assert "0:00.70" in tl.time_label.text()
    # the video keys are the window's while a video is open: next/previous image lose theirs
    keys = w.actions["next"].shortcuts()
    assert keys == []
    assert all(sc.isEnabled() for sc in feat.shortcuts)
    # opening a still image leaves the video: its keys go back to next/previous image
    with qtbot.waitSignal(w.session.imageShown, timeout=TIMEOUT):
        w.session.open_paths([ASSETS / "scenes" / "scene_000.png"])
    assert not feat.active and feat.engine is None and feat.source is None
    assert [k.toString() for k in w.actions["next"].shortcuts()] == ["Right", "PgDown"]
    assert not any(sc.isEnabled() for sc in feat.shortcuts)


def test_propagated_frame_readout_and_interval_message(qtbot, window, clip: Path) -> None:
    w, feat = window()
    _open(qtbot, feat, clip)
    with qtbot.waitSignal(feat.resultShown, timeout=TIMEOUT, check_params_cb=lambda r: r.index == 5):
        feat.seek(5)
    r = feat.engine.readout(5)
    assert r is not None and not r.is_key and r.key_index == 4
    assert {"flow", "warp", "task"} <= set(r.times) and "features" not in r.times
    assert r.agreement is not None and 0.0 <= r.agreement <= 1.0
    assert "propagated from key frame 4" in feat.readout.text() == readout_text(r)
    assert feat.seg_item.isVisible() and feat.seg_item.image.shape == (96, 128, 4)
    feat.show_color.setChecked(True)
    feat.show_arrows.setChecked(True)
    assert feat.color_item.isVisible() and feat.color_item.image.shape == (96, 128, 4)
    assert feat.arrow_item.isVisible()
    feat._on_hover((10.0, 20.0))
    assert feat.hover_label.text().startswith("(u, v) = (")
    with qtbot.waitSignal(w.errorShown, timeout=5000) as blocker:
        assert not feat.set_interval(0)
    assert "from 1 to 60" in blocker.args[0]
    assert feat.engine.config.interval == 4


def test_process_whole_video_cancel_and_export(qtbot, window, clip: Path, tmp_path: Path) -> None:
    w, feat = window()
    _open(qtbot, feat, clip, interval=3)
    with qtbot.waitSignal(feat.jobDone, timeout=TIMEOUT) as blocker:
        assert feat.process_all()
    assert blocker.args == ["process", False]
    rs = feat.engine.readouts_for()
    assert [r.index for r in rs] == list(range(N_FRAMES))
    assert [r.index for r in rs if r.is_key] == [0, 3, 6, 9]
    assert feat.plot.n_points == N_FRAMES
    assert len(feat.engine.cache.frames(feat.engine.config.key)) == N_FRAMES
    # playback from the cache: every frame in order, stopping at the end
    shown: list[int] = []
    feat.frameShown.connect(shown.append)
    feat.set_playing(True)
    qtbot.waitUntil(lambda: not feat.play_timer.isActive(), timeout=TIMEOUT)
    assert feat.index == N_FRAMES - 1 and shown == list(range(1, N_FRAMES))
    qtbot.waitUntil(lambda: feat.readout.text().startswith(f"Frame {N_FRAMES - 1}:"), timeout=TIMEOUT)

    feat.interval.setValue(5)  # a new configuration: nothing cached; cancel straight away
    with qtbot.waitSignal(feat.jobDone, timeout=TIMEOUT) as blocker:
        assert feat.process_all()
        feat.cancel_job()
    assert blocker.args == ["process", True]
    assert len(feat.engine.readouts_for()) < N_FRAMES
    assert not feat.progress.isVisible() and feat.process_btn.isEnabled()

    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "annotated.mp4"
    with qtbot.waitSignal(feat.jobDone, timeout=TIMEOUT) as blocker:
        assert feat.export(out)
    assert blocker.args == ["export", False]
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == N_FRAMES
    cap.release()
    assert [p.name for p in out.parent.iterdir()] == ["annotated.mp4"], "no temporary file left behind"


def test_not_a_video_is_a_message(qtbot, window, tmp_path: Path) -> None:
    w, feat = window()
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video")
    with qtbot.waitSignal(w.errorShown, timeout=TIMEOUT) as blocker:
        feat.open(bad)
    assert "notes.mp4" in blocker.args[0]
    assert feat.source is None and not feat.active
    empty = tmp_path / "frames"
    empty.mkdir()
    with qtbot.waitSignal(w.errorShown, timeout=TIMEOUT) as blocker:
        feat.open(empty)
    assert "no frames" in blocker.args[0]


@pytest.fixture(scope="module")
def busy_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six frames with four or five moving things each (the tiny clip has few)."""
    path = tmp_path_factory.mktemp("video") / "busy.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (256, 192))
    for f in generate_video(3, 6, (192, 256), n_things=(5, 5)):
        writer.write(cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _mask_iou(a, b) -> float:
    fa, fb = a.masks.to_full(), b.masks.to_full()
    return [[(x & y).sum() / max((x | y).sum(), 1) for y in fb] for x in fa]


def test_tracked_instances_keep_their_color(qtbot, window, busy_clip: Path) -> None:
    from segviewer.render.style import RenderStyle, detection_colors

    w, feat = window()
    assert feat.instances_box.findData("shapes_maskrcnn") >= 0, "the bundled Mask R-CNN is offered"
    feat.instances_box.setCurrentIndex(feat.instances_box.findData("shapes_maskrcnn"))
    feat.interval.setValue(3)
    with qtbot.waitSignal(feat.videoOpened, timeout=TIMEOUT):
        feat.open(busy_clip)
    with qtbot.waitSignal(feat.jobDone, timeout=TIMEOUT) as blocker:
        assert feat.process_all()
    assert blocker.args == ["process", False]
    key = feat.engine.config.instances_key
    frames = [feat.engine.cache.get(i, key) for i in range(6)]
    assert all(d is not None and d.instance_ids is not None for d in frames)
    assert sum(len(d) for d in frames) >= 12, "the model finds the moving things"
    continued = 0
    style = RenderStyle()
    for prev, cur in zip(frames, frames[1:]):
        ious = _mask_iou(cur, prev)
        for i, row in enumerate(ious):
            j = int(np.argmax(row)) if len(row) else -1
            if j >= 0 and row[j] > 0.6 and cur.class_ids[i] == prev.class_ids[j]:
                # the same object a frame later: same track id, so the same color
                assert cur.instance_ids[i] == prev.instance_ids[j]
                np.testing.assert_array_equal(detection_colors(cur, style)[i], detection_colors(prev, style)[j])
                continued += 1
    assert continued >= 8
    # on screen: the frame's tracked instances are drawn as their own layers
    with qtbot.waitSignal(feat.resultShown, timeout=TIMEOUT, check_params_cb=lambda r: r.index == 2):
        feat.seek(2)
    assert feat.instances is not None and feat.instances.instance_ids.tolist() == frames[2].instance_ids.tolist()
    assert feat.inst_item.isVisible() and feat.inst_item.image.shape == (192, 256, 4)
    assert feat.box_item.isVisible()
    # switching instances off hides them and keeps the DFF result
    feat.instances_box.setCurrentIndex(0)
    qtbot.waitUntil(lambda: feat.seg_item.isVisible(), timeout=TIMEOUT)
    assert not feat.inst_item.isVisible() and feat.instances is None


def test_a_video_path_on_the_command_line_or_dropped_opens_as_video(qtbot, window, clip: Path) -> None:
    w, feat = window()
    with qtbot.waitSignal(feat.videoOpened, timeout=TIMEOUT):
        w.open_paths([clip])  # what `segviewer tiny.mp4` and a drop do
    assert feat.active and feat.source is not None and feat.source.path == clip
    with qtbot.waitSignal(w.session.imageShown, timeout=TIMEOUT):
        w.open_paths([ASSETS / "scenes" / "scene_000.png"])  # an image still goes to the session
    assert not feat.active


def test_video_settings_are_remembered(qtbot, window) -> None:
    _, feat = window()
    feat.interval.setValue(7)
    feat.adaptive.setChecked(True)
    feat.instances_box.setCurrentIndex(feat.instances_box.findData("shapes_maskrcnn"))
    _, again = window()  # a new window reads the same settings store
    assert again.interval.value() == 7 and again.adaptive.isChecked()
    assert again.instances_box.currentData() == "shapes_maskrcnn"


def _engine(qtbot, path: Path, instance_factory=None):  # noqa: ANN001, ANN202
    from segviewer.ui.features._video_engine import EngineConfig, VideoEngine

    kw = {} if instance_factory is None else {"instance_factory": instance_factory}
    eng = VideoEngine(path, EngineConfig("shapes_fcn", 3, False, False, "shapes_maskrcnn"), **kw)
    done: dict[int, object] = {}
    eng.frameDone.connect(lambda r, res, flow, mx, inst: done.__setitem__(r.index, inst))
    return eng, done


def _ask(qtbot, eng, done: dict, i: int) -> object:  # noqa: ANN001
    done.pop(i, None)
    eng.request(i)
    qtbot.waitUntil(lambda: i in done, timeout=TIMEOUT)
    return done[i]


def test_stepping_back_after_a_jump_keeps_the_tracks(qtbot, busy_clip: Path) -> None:
    eng, done = _engine(qtbot, busy_clip)
    try:
        three, four = _ask(qtbot, eng, done, 3), _ask(qtbot, eng, done, 4)
        two = _ask(qtbot, eng, done, 2)  # a step back: frame 1 is not cached, frame 3 is
        continued = 0
        for later, earlier in ((three, two), (four, three)):
            for i, row in enumerate(_mask_iou(earlier, later)):
                j = int(np.argmax(row)) if len(row) else -1
                if j >= 0 and row[j] > 0.6:
                    assert earlier.instance_ids[i] == later.instance_ids[j]
                    continued += 1
        assert continued >= 4
        seen = {int(t) for d in (two, three, four) for t in d.instance_ids}
        zero = _ask(qtbot, eng, done, 0)  # a jump with no tracked neighbour (frame 1 is not cached)
        assert len(zero) and int(zero.instance_ids.min()) > max(seen), "no id is reused for another object"
    finally:
        eng.close()


def test_a_failing_instance_model_leaves_the_segmentation(qtbot, busy_clip: Path) -> None:
    def broken(model_id: str):  # noqa: ANN202
        raise RuntimeError("weights are corrupt")

    eng, done = _engine(qtbot, busy_clip, broken)
    errors: list[str] = []
    eng.failed.connect(errors.append)
    try:
        assert _ask(qtbot, eng, done, 0) is None
        assert _ask(qtbot, eng, done, 1) is None
        assert eng.readout(1) is not None, "the DFF result still came"
        assert len(errors) == 1 and "shapes_maskrcnn" in errors[0] and "weights are corrupt" in errors[0]
    finally:
        eng.close()


def test_every_panel_describes_the_frame_not_the_last_image(qtbot, clip: Path) -> None:
    """Issue #10: with a video open, the inspector, the Metrics hover line, the layers, classes,
    legend and internals no longer describe the image shown before it, a late result for that
    image lands nowhere, and going back to images empties and hides the Video dock."""
    from fakes import FakeAdapter, fake_card

    from segviewer.ui.display import legend_entries
    from segviewer.ui.features.groundtruth import GroundTruthFeature
    from segviewer.ui.features.internals import InternalsFeature
    from segviewer.ui.widgets.video_controls import OPEN_HINT

    w = MainWindow(InferenceWorker(lambda mid: FakeAdapter(mid), process=False), cards=[fake_card("bright")])
    qtbot.addWidget(w)
    w.resize(1200, 700)
    w.show()
    feat, gt, internals = w.findChild(VideoFeature), w.findChild(GroundTruthFeature), w.findChild(InternalsFeature)
    late: list = []
    w.session.worker.resultReady.connect(late.append)
    try:
        with qtbot.waitSignal(gt.groundTruthLoaded, timeout=TIMEOUT):
            w.start([ASSETS / "scenes" / "scene_000.png"], models=["bright"], no_default=True)
        qtbot.waitUntil(lambda: "bright" in w.session.results and bool(late), timeout=TIMEOUT)
        w.canvas.hovered.emit((100.0, 300.0))
        assert "bright:" in w.inspector.text() and gt.panel.hover.text().startswith("Under cursor: ground truth")
        assert ("bright", "semantic") in w.canvas.layer_ids() and w.panel.isVisible()

        with qtbot.waitSignal(feat.videoOpened, timeout=TIMEOUT):
            feat.open(clip)
        with qtbot.waitSignal(feat.resultShown, timeout=TIMEOUT, check_params_cb=lambda r: r.index == 0):
            pass
        qtbot.waitUntil(lambda: feat.shown_index == 0, timeout=TIMEOUT)
        assert w.session.image is None and w.session.results == {}
        assert w.canvas.layer_ids() == [] and not w.panel.isVisible() and w.view_note.isVisible()
        assert internals.internals is None and internals.stages is None and internals.overlays.segments == {}
        w.canvas.hovered.emit((20.0, 30.0))
        lines = w.inspector.text().splitlines()
        assert lines[0] == "frame 0" and any("(DFF)" in ln for ln in lines), lines
        assert not any("bright" in ln for ln in lines)
        assert gt.panel.hover.text() == "Under cursor: –" and "No image open" in gt.panel.source.text()
        dff = [name for name, _rgb in legend_entries(feat.frame_results())]
        assert dff and w.legend.names() == dff, "the legend lists the frame's classes"
        w.session.worker.resultReady.emit(late[0])  # the image's result arriving late
        assert w.session.results == {} and w.canvas.layer_ids() == []

        with qtbot.waitSignal(w.session.resultsChanged, timeout=TIMEOUT):
            w.session.open_paths([ASSETS / "scenes" / "scene_001.png"])
        assert not feat.active and not feat.dock.isVisible() and w.panel.isVisible()
        assert feat.plot.n_points == 0 and feat.timeline.frame_count == 1 and feat.readout.text() == OPEN_HINT
        assert not any(item.isVisible() for item in feat.layers.items)
    finally:
        feat.close_video()
        w.shutdown()
