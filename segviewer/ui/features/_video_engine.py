"""The video feature's background engine: Deep Feature Flow per frame, whole-video processing and
annotated export, on one plain thread of its own (never the UI thread).

Why a thread of its own rather than the window's inference worker: DFF is stateful (the key
frame's features are carried to the following frames), so frames must be stepped by one owner,
in order, and the window's worker is per-image. Requests are latest-wins: while the user scrubs,
only the frame asked for last is computed. Results go into a :class:`FrameResultCache` (compact,
bounded in bytes) keyed by the DFF configuration, so playback after "Process whole video" only
decodes cached results. Signals are emitted from the engine thread; Qt queues them to the UI.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from segviewer.core.errors import SegviewerError
from segviewer.core.results import FlowField, SemanticMap
from segviewer.core.tracking import InstanceTracker
from segviewer.video.cache import FrameResultCache
from segviewer.video.keyframes import MAX_INTERVAL, AdaptiveSchedule, FixedInterval, KeyFrameError
from segviewer.video.source import VideoSource, open_video

__all__ = ["EngineConfig", "FrameReadout", "VideoEngine", "DFF_MODELS", "INSTANCE_MODELS", "available_models",
           "available_instance_models", "CACHE_BUDGET"]

DFF_MODELS = ("shapes_fcn", "shapes_unet")
INSTANCE_MODELS = ("shapes_maskrcnn",)  # bundled, so they run offline; run on every frame (no DFF)
CACHE_BUDGET = 256 * 1024**2  # compact results; a 48-frame 320x240 clip takes well under 1 MB


class _Cancelled(Exception):
    pass


def available_models(models: tuple[str, ...] = DFF_MODELS) -> list[str]:
    """The bundled DFF-splittable models (or other bundled ``models``) whose checkpoint is shipped."""
    from segviewer.adapters.registry import get_card

    out = []
    for m in models:
        try:
            p = get_card(m).extra.get("checkpoint_path")
        except Exception:  # noqa: BLE001 - a missing card just is not offered
            continue
        if p and Path(p).is_file():
            out.append(m)
    return out


def available_instance_models() -> list[str]:
    """The bundled instance models the video can track, whose checkpoint is shipped."""
    return available_models(INSTANCE_MODELS)


@dataclass(frozen=True)
class EngineConfig:
    """What the DFF runner does; ``key`` names the cache entries it produces."""

    model: str = "shapes_fcn"
    interval: int = 10  # fixed interval, or the adaptive schedule's maximum interval
    adaptive: bool = False
    reference: bool = True  # also run the whole net on propagated frames (agreement readout)
    instances: str = ""  # an instance model run on every frame, its instances tracked; "" for none

    def __post_init__(self) -> None:
        iv = self.interval
        if isinstance(iv, bool) or not isinstance(iv, int) or not 1 <= iv <= MAX_INTERVAL:
            raise KeyFrameError(f"The key-frame interval must be a whole number from 1 to {MAX_INTERVAL}; got {iv!r}.")

    @property
    def key(self) -> tuple[str, int, bool]:
        return (self.model, self.interval, self.adaptive)

    @property
    def instances_key(self) -> tuple[str, str]:
        return ("instances", self.instances)


@dataclass(frozen=True)
class FrameReadout:
    """One frame's DFF outcome as the UI shows it."""

    index: int
    key_index: int
    is_key: bool
    reason: str
    times: dict[str, float] = field(default_factory=dict)  # seconds: features, flow, warp, task
    agreement: float | None = None
    config: tuple[str, int, bool] = ("", 0, False)

    @property
    def total(self) -> float:
        return float(sum(self.times.values()))


def build_split_net(model_id: str) -> Any:
    """Load a bundled shapes model from its shipped checkpoint and split it for DFF."""
    from segviewer.adapters.dff import split_shapes_fcn, split_shapes_unet
    from segviewer.adapters.nets import registry
    from segviewer.adapters.nets.checkpoint import load, load_weights
    from segviewer.adapters.registry import get_card

    if model_id not in DFF_MODELS:
        raise SegviewerError(f"Deep Feature Flow in the window runs {', '.join(DFF_MODELS)}; got {model_id!r}.")
    p = get_card(model_id).extra.get("checkpoint_path")
    if not p or not Path(p).is_file():
        raise SegviewerError(f"{model_id}'s checkpoint is not shipped in models/; pick another model.")
    ck = load(Path(p))
    model = registry.build(ck["model"], list(ck["categories"]), ck.get("config"))
    load_weights(model, ck["state_dict"], Path(p).name)
    model.eval()
    cats = tuple(ck["categories"])
    return split_shapes_fcn(model, cats) if model_id == "shapes_fcn" else split_shapes_unet(model, cats)


def _load_instance_model(model_id: str) -> Any:
    """A bundled instance model, loaded on the CPU in the engine thread."""
    from segviewer.adapters.registry import create_adapter

    if model_id not in INSTANCE_MODELS:
        raise SegviewerError(f"The video tracks instances of {', '.join(INSTANCE_MODELS)}; got {model_id!r}.")
    adapter = create_adapter(model_id)
    adapter.load("cpu")
    return adapter


class VideoEngine(QObject):
    """Owns a video's decoder copy, the DFF runner and the result cache; serves the UI's requests.

    ``frameDone(readout, result, flow, frame_index_max_flow, instances)`` (instances: tracked
    :class:`Detections` or None); ``progress(done, total, what)``; ``jobFinished(what, cancelled,
    detail)``; ``failed(message)``.

    Instances are tracked in frame order (``InstanceTracker``): stepping forward continues the
    tracks; after a jump the tracker restarts from the cached frame before, when there is one, so
    colors stay put when the user scrubs back over processed frames.
    """

    frameDone = Signal(object, object, object, float, object)
    progress = Signal(int, int, str)
    jobFinished = Signal(str, bool, str)
    failed = Signal(str)

    def __init__(self, path: Path, config: EngineConfig | None = None, torch_threads: int = 1,
                 net_factory: Callable[[str], Any] = build_split_net,
                 instance_factory: Callable[[str], Any] | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path = Path(path)
        self.config = config or EngineConfig()
        self.cache = FrameResultCache(CACHE_BUDGET)
        self.readouts: dict[tuple[tuple[str, int, bool], int], FrameReadout] = {}
        self.max_flow = 0.0
        self._net_factory = net_factory
        self._instance_factory = instance_factory or _load_instance_model
        self._inst: dict[str, Any] = {}
        self._tracker = InstanceTracker(iou_threshold=0.3, ttl=5)
        self._tracked: tuple[str, int] | None = None  # (instance model, last frame the tracker saw)
        self._inst_failed: dict[str, str] = {}  # instance model -> why it is off
        self._torch_threads = torch_threads
        self._cv = threading.Condition()
        self._want: int | None = None
        self._job: tuple[str, Any] | None = None
        self._cancel = threading.Event()
        self._stop = False
        self._busy = False
        self._nets: dict[str, Any] = {}
        self._dff: Any = None
        self._dff_config: EngineConfig | None = None
        self._source: VideoSource | None = None
        self._thread = threading.Thread(target=self._run, name="segviewer-video-dff", daemon=True)
        self._thread.start()

    # ---- requests (any thread) -------------------------------------------------------------------
    def request(self, index: int) -> None:
        """Compute (or fetch from the cache) frame ``index``; replaces an earlier pending request."""
        with self._cv:
            self._want = int(index)
            self._cv.notify_all()

    def configure(self, config: EngineConfig) -> None:
        with self._cv:
            self.config = config
            self._cv.notify_all()

    def start_job(self, what: str, arg: Any = None) -> bool:
        """Start ``"process"`` (whole video) or ``"export"`` (arg: target path); False if one runs."""
        with self._cv:
            if self._job is not None:
                return False
            self._cancel.clear()
            self._job = (what, arg)
            self._cv.notify_all()
            return True

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def job_running(self) -> bool:
        with self._cv:
            return self._job is not None

    def readout(self, index: int, config: EngineConfig | None = None) -> FrameReadout | None:
        return self.readouts.get(((config or self.config).key, int(index)))

    def readouts_for(self, config: EngineConfig | None = None) -> list[FrameReadout]:
        key = (config or self.config).key
        return sorted((r for (k, _), r in list(self.readouts.items()) if k == key), key=lambda r: r.index)

    def close(self, timeout: float = 10.0) -> bool:
        """Stop the thread; True when it ended within ``timeout`` seconds."""
        self._cancel.set()
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ---- the engine thread -----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            import torch

            torch.set_num_threads(self._torch_threads)
        except ImportError:  # pragma: no cover - torch ships with segviewer
            pass
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._stop or self._want is not None or self._job is not None)
                if self._stop:
                    break
                job, want = self._job, self._want
                if job is None:
                    self._want = None
            try:
                if job is not None:
                    self._run_job(*job)
                elif want is not None:
                    self._serve(want, compute=True)
            except SegviewerError as err:
                self.failed.emit(str(err))
            except Exception as err:  # noqa: BLE001 - the UI shows one line, the thread lives on
                self.failed.emit(f"Video processing failed: {type(err).__name__}: {err}")
        if self._source is not None:
            self._source.close()

    def _src(self) -> VideoSource:
        if self._source is None:
            self._source = open_video(self.path)
        return self._source

    def _runner(self, cfg: EngineConfig | None = None) -> Any:
        from segviewer.adapters.dff import DeepFeatureFlow
        from segviewer.adapters.flow import DISFlow

        cfg = dataclasses.replace(cfg or self.config, instances="")  # the instance model is not DFF's
        if self._dff is None or self._dff_config != cfg:
            net = self._nets.get(cfg.model)
            if net is None:
                net = self._nets[cfg.model] = self._net_factory(cfg.model)
            sched = AdaptiveSchedule(max_interval=cfg.interval) if cfg.adaptive else FixedInterval(cfg.interval)
            self._dff = DeepFeatureFlow(net, DISFlow(), sched, reference=cfg.reference)
            self._dff_config = cfg
        return self._dff

    def _cached_instances(self, index: int, cfg: EngineConfig) -> Any:
        return self.cache.get(index, cfg.instances_key) if cfg.instances else None

    def _instances_done(self, index: int, cfg: EngineConfig) -> bool:
        """Nothing more to compute for the instances of frame ``index`` (none wanted, cached, or
        the model failed: its message was shown once and the segmentation goes on without it)."""
        return (not cfg.instances or cfg.instances in self._inst_failed
                or (index, cfg.instances_key) in self.cache)

    def _cached(self, index: int, cfg: EngineConfig) -> bool:
        return (cfg.key, index) in self.readouts and (index, cfg.key) in self.cache and self._instances_done(index, cfg)

    def _serve(self, index: int, compute: bool) -> bool:
        """Emit frame ``index``'s result from the cache, or compute it; False if neither."""
        cfg = self.config
        if self._cached(index, cfg):
            r = self.readouts[(cfg.key, index)]
            result = self.cache.get(index, cfg.key)
            flow = self.cache.get(index, (cfg.key, "flow"))
            self.frameDone.emit(r, result, flow, self.max_flow, self._cached_instances(index, cfg))
            return True
        if not compute:
            return False
        self._compute(index)
        return True

    def _instances(self, index: int, frame: np.ndarray, cfg: EngineConfig) -> Any:
        """Frame ``index``'s tracked instances (cached, or predicted and then tracked); None when
        none are wanted or the instance model fails (said once; the DFF result still shows)."""
        if not cfg.instances or cfg.instances in self._inst_failed:
            return None
        have = self._cached_instances(index, cfg)
        if have is not None:
            return have
        from segviewer.adapters.base import PredictParams

        try:
            adapter = self._inst.get(cfg.instances)
            if adapter is None:
                adapter = self._inst[cfg.instances] = self._instance_factory(cfg.instances)
            dets = adapter.predict(frame, PredictParams(min_score=0.5))
        except Exception as err:  # noqa: BLE001 - one message; the segmentation goes on
            msg = str(err) if isinstance(err, SegviewerError) else f"{type(err).__name__}: {err}"
            self._inst_failed[cfg.instances] = msg
            self.failed.emit(f"Instances from {cfg.instances} are off for this video: {msg}")
            return None
        if self._tracked != (cfg.instances, index - 1):
            # a jump: continue from a tracked neighbour when one is cached (stepping back has the
            # frame after it), so objects keep their ids; the id counter never goes back
            before = self._cached_instances(index - 1, cfg) if index > 0 else None
            if before is None:
                before = self._cached_instances(index + 1, cfg)
            self._tracker.restart(before)
        dets = self._tracker.track(dets)
        self._tracked = (cfg.instances, index)
        self.cache.put(index, cfg.instances_key, dets)
        return dets

    def _compute(self, index: int) -> FrameReadout:
        cfg = self.config
        src = self._src()
        frame = src.read(index)
        inst = self._instances(index, frame, cfg)
        r = self.readouts.get((cfg.key, index))
        result = self.cache.get(index, cfg.key) if r is not None else None
        if r is not None and result is not None:  # DFF cached; only the instances were missing
            self.frameDone.emit(r, result, self.cache.get(index, (cfg.key, "flow")), self.max_flow, inst)
            return r
        dff = self._runner(cfg)
        out = dff.step(index, frame, get_frame=src.read)
        r = FrameReadout(out.index, out.key_index, out.is_key, out.reason, dict(out.times), out.agreement, cfg.key)
        self.readouts[(cfg.key, index)] = r
        self.cache.put(index, cfg.key, out.result)
        flow: FlowField | None = out.flow
        if flow is not None:
            self.cache.put(index, (cfg.key, "flow"), flow)
            mag = float(np.sqrt((flow.uv.astype(np.float64) ** 2).sum(-1)).max()) if flow.uv.size else 0.0
            self.max_flow = max(self.max_flow, mag)
        self.frameDone.emit(r, out.result, flow, self.max_flow, inst)
        return r

    def _check(self, done: int, total: int, what: str) -> None:
        self.progress.emit(done, total, what)
        if self._cancel.is_set() or self._stop:
            raise _Cancelled

    def _run_job(self, what: str, arg: Any) -> None:
        cancelled, detail = False, ""
        try:
            if what == "process":
                self._process_all()
            elif what == "export":
                detail = str(self._export(Path(arg)))
            else:
                raise SegviewerError(f"Unknown video job {what!r}.")
        except _Cancelled:
            cancelled = True
        except SegviewerError as err:
            self.failed.emit(str(err))
            cancelled, detail = True, str(err)
        except Exception as err:  # noqa: BLE001
            self.failed.emit(f"Video {what} failed: {type(err).__name__}: {err}")
            cancelled, detail = True, str(err)
        finally:
            with self._cv:
                self._job = None
            self.jobFinished.emit(what, cancelled, detail)

    def _ensure(self, index: int, ordered: bool) -> None:
        """Make sure frame ``index`` is cached (computing it in playback order when ``ordered``)."""
        if not self._serve(index, compute=False):
            self._compute(index)
        with self._cv:  # a frame the user asked for meanwhile: answer from the cache if we can
            want = self._want
            if want is not None and want != index and self._cached(want, self.config):
                self._want = None
        if want is not None and want != index:
            self._serve(want, compute=False)

    def _process_all(self) -> None:
        n = self._src().frame_count
        if self.config.adaptive:  # an adaptive schedule's key frames depend on every frame before
            for i in range(n):
                self.readouts.pop((self.config.key, i), None)
            self._runner().reset()
        t0 = time.perf_counter()
        for i in range(n):
            self._check(i, n, "process")
            self._ensure(i, True)
        self.progress.emit(n, n, f"process {time.perf_counter() - t0:.1f}")

    def _export(self, target: Path) -> str:
        """Write the annotated video (H.264 via PyAV; mp4v with a note when it cannot); returns what
        the status bar says: the path, and the reason for a fallback."""
        from segviewer.render.compose import compose
        from segviewer.render.layers import render_layer
        from segviewer.video.writer import Mp4Writer

        if target.suffix.lower() != ".mp4":
            raise SegviewerError(f"Annotated videos are written as .mp4; {target.name} has another extension.")
        src = self._src()
        n = src.frame_count
        with Mp4Writer(target, src.fps) as writer:
            for i in range(n):
                self._check(i, n, "export")
                self._ensure(i, True)
                result = self.cache.get(i, self.config.key)
                if not isinstance(result, SemanticMap):
                    raise SegviewerError(f"Frame {i} has no result to draw.")
                layers = [(render_layer(result, "semantic"), 0.5)]
                inst = self._cached_instances(i, self.config)
                if inst is not None:
                    layers += [(render_layer(inst, kind), 1.0) for kind in ("masks", "boxes")]
                writer.write(compose(src.read(i), layers))
        self.progress.emit(n, n, "export")
        return str(target) if writer.note is None else f"{target} ({writer.note})"
