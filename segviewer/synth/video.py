"""Shapes-world videos with exact ground-truth forward optical flow.

The world: a stuff canvas larger than the frame that the camera pans across at a constant
sub-pixel speed, and things that move by their own similarity transform (constant velocity,
spin and scale rate), enter and leave the frame and pass in front of each other (fixed depth
order). Everything is a closed-form function of time, so for every pixel of frame t the flow to
frame t + 1 is exact:

* a pixel of thing k (centre ``c_t``, angle ``a_t``, radius ``r_t``) moves with the thing:
  ``p' = c_{t+1} + (r_{t+1} / r_t) R(a_{t+1} - a_t) (p - c_t)``, flow ``= p' - p``;
* a background pixel moves by the pan vector (the image motion of the stuff, pixels per frame).

Flow is evaluated at pixel centres and is what the surface *visible at t* does. Disocclusions:
pixels of frame t whose surface is hidden at t + 1 (behind a nearer thing, or out of frame)
still carry their surface's motion and are flagged False in ``VideoFrame.visible_next``; pixels
newly uncovered at t + 1 have no source in frame t, so no forward vector lands on them. Thing
textures live in object coordinates and there is no sensor noise by default, so brightness is
constant along the flow (up to resampling of the background and the rasterised edges).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from segviewer.core.errors import SegviewerError
from segviewer.core.results import PanopticMap, PanopticSegment
from segviewer.synth.classes import CATEGORIES, ISTHING, THINGS
from segviewer.synth.scene import SceneInstance
from segviewer.synth.shapes import UNIT_AREA, Pose, ThingStyle, paint, random_style, rasterize
from segviewer.synth.stuff import stuff_image, stuff_labels

__all__ = ["Mover", "VideoFrame", "VideoWorld", "VIDEO_DEFAULTS", "generate_video", "video_world", "segment_id"]

THING_IDS = tuple(CATEGORIES.index(t) for t in THINGS)

VIDEO_DEFAULTS: dict[str, object] = {
    "n_things": (5, 10),
    "pan": None,  # (u, v) px/frame of the background; None = random, slow, mostly horizontal
    "speed": (0.5, 2.2),  # thing speed range, px/frame at 320x240 (scaled with the frame)
    "spin": 0.05,  # max |angular velocity|, rad/frame
    "zoom": 0.012,  # max |log scale rate| per frame
    "area": (300.0, 6000.0),  # thing area range at the crossing time (scaled by frame size / 320x240)
    "p_sky": 0.9,
    "p_road_band": 0.5,
    "noise": 0.0,
}


def segment_id(category: int, track: int) -> int:
    """Panoptic id of a segment, as in :mod:`segviewer.synth.dataset` (stuff: track 0)."""
    return (category + 1) * 1000 + (track if ISTHING[category] else 0)


@dataclass(frozen=True)
class Mover:
    """A thing's look and closed-form motion: pose(t) for any real t."""

    track: int  # 1..N, stable across frames (panoptic ids derive from it)
    style: ThingStyle
    cx: float
    cy: float  # centre at t = 0
    vx: float
    vy: float  # px/frame
    radius: float  # at t = 0
    log_zoom: float  # radius(t) = radius * exp(log_zoom * t)
    angle: float
    spin: float  # rad/frame

    def pose(self, t: float) -> Pose:
        return Pose(self.cx + self.vx * t, self.cy + self.vy * t,
                    self.radius * math.exp(self.log_zoom * t), self.angle + self.spin * t)


@dataclass(frozen=True, eq=False)
class VideoFrame:
    """Frame ``index`` with ground truth; ``flow`` is forward (t -> t + 1), ``(H, W, 2)`` float32."""

    index: int
    image: np.ndarray  # (H, W, 3) uint8 RGB
    semantic: np.ndarray  # (H, W) uint8 CATEGORIES indices
    panoptic: PanopticMap
    instances: tuple[SceneInstance, ...]  # visible things, back to front; instance_id = track
    flow: np.ndarray  # (H, W, 2) float32 (u, v)
    visible_next: np.ndarray  # (H, W) bool: the surface here is still visible (and in frame) at t + 1
    pan: tuple[float, float]


@dataclass(frozen=True, eq=False)
class VideoWorld:
    """The closed-form world of a clip: a stuff canvas the camera pans over and the movers."""

    size: tuple[int, int]
    canvas: np.ndarray  # float32 RGB
    canvas_labels: np.ndarray  # uint8
    origin: tuple[float, float]  # canvas point shown at frame pixel (0, 0) edge at t = 0
    pan: tuple[float, float]
    movers: tuple[Mover, ...]  # back to front
    noise: float
    seed: int


def _opts(options: dict[str, object]) -> dict[str, object]:
    unknown = set(options) - set(VIDEO_DEFAULTS)
    if unknown:
        raise SegviewerError(f"unknown video option(s) {sorted(unknown)}; known: {sorted(VIDEO_DEFAULTS)}")
    return {**VIDEO_DEFAULTS, **options}


def _time_to_exit(px: float, py: float, dx: float, dy: float, r: float, h: int, w: int) -> float:
    """Frames until a thing of radius r at (px, py) moving by (dx, dy) per frame is wholly out of view."""
    ts = []
    if dx > 1e-9:
        ts.append((w + r - px) / dx)
    elif dx < -1e-9:
        ts.append((px + r) / -dx)
    if dy > 1e-9:
        ts.append((h + r - py) / dy)
    elif dy < -1e-9:
        ts.append((py + r) / -dy)
    return min(ts) if ts else math.inf


def _mover(rng: np.random.Generator, track: int, h: int, w: int, n: int, opt: dict) -> Mover:
    style = random_style(rng, int(rng.choice(THING_IDS)))
    lo, hi = (float(a) * (h * w) / (240 * 320) for a in opt["area"])  # type: ignore[union-attr]
    area = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    radius = math.sqrt(area / UNIT_AREA(style))
    s_lo, s_hi = opt["speed"]  # type: ignore[misc]
    speed = rng.uniform(float(s_lo), float(s_hi)) * math.sqrt(h * w / (240 * 320))
    heading = rng.uniform(0, 2 * math.pi)
    vx, vy = speed * math.cos(heading), speed * math.sin(heading)
    # Scale changes around the clip's middle and by at most 1.6x either way over the clip, so a
    # long clip never grows a thing without bound.
    zoom, spin = min(float(opt["zoom"]), math.log(1.6) / max(n / 2, 1)), float(opt["spin"])
    log_zoom = rng.uniform(-zoom, zoom)
    r_max = radius * math.exp(abs(log_zoom) * n / 2) + 1  # the largest it gets within the clip
    # Thing 1 enters, thing 2 leaves, the others do either or just cross the view at some time,
    # so clips show things coming and going as well as staying.
    mode = {1: "enter", 2: "leave"}.get(track) or str(rng.choice(["enter", "leave", "cross"], p=[0.2, 0.2, 0.6]))
    px, py = rng.uniform(0.25 * w, 0.75 * w), rng.uniform(0.25 * h, 0.75 * h)
    delay = rng.uniform(0.05, 0.35) * n
    if mode == "enter":  # wholly outside at t = 0, at (px, py) once it has come in
        tc = _time_to_exit(px, py, -vx, -vy, r_max, h, w) + delay
    elif mode == "leave":  # wholly outside from about frame n - 1 - delay on
        tc = n - 1 - delay - _time_to_exit(px, py, vx, vy, r_max, h, w)
    else:
        tc = rng.uniform(0.2 * n, 0.8 * n)  # mid-clip, near the middle: paths cross, things occlude
    return Mover(track, style, px - vx * tc, py - vy * tc, vx, vy, radius * math.exp(-log_zoom * n / 2),
                 log_zoom, float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(-spin, spin)))


def video_world(seed: int, n_frames: int, size: tuple[int, int] = (240, 320), **options: object) -> VideoWorld:
    """The closed-form world behind :func:`generate_video` (canvas, pan, movers)."""
    opt = _opts(options)
    h, w = (int(v) for v in size)
    if h < 16 or w < 16:
        raise SegviewerError(f"video size must be at least 16x16 pixels, got {h}x{w}")
    if n_frames < 1:
        raise SegviewerError(f"a video needs at least 1 frame, got {n_frames}")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFFFFFFFFFF, 0x7ADE0])
    if opt["pan"] is None:
        speed = rng.uniform(0.3, 1.0)
        ang = rng.uniform(-0.4, 0.4) + (math.pi if rng.random() < 0.5 else 0.0)
        pan = (speed * math.cos(ang), speed * math.sin(ang))
    else:
        pan = tuple(float(v) for v in opt["pan"])  # type: ignore[union-attr]
    travel_x, travel_y = abs(pan[0]) * n_frames, abs(pan[1]) * n_frames
    ch, cw = int(math.ceil(h + travel_y)) + 4, int(math.ceil(w + travel_x)) + 4
    labels = stuff_labels(rng, ch, cw, float(opt["p_sky"]), float(opt["p_road_band"]))
    # A slight blur keeps the per-pixel texture from shimmering as the sub-pixel pan resamples it.
    canvas = cv2.GaussianBlur(stuff_image(rng, labels), (0, 0), 0.6)
    # Origin such that the view stays inside the canvas for the whole clip: the content moves by
    # ``pan`` per frame, so the window moves by ``-pan`` over the canvas.
    ox = 2.0 + (travel_x if pan[0] > 0 else 0.0)
    oy = 2.0 + (travel_y if pan[1] > 0 else 0.0)
    lo_n, hi_n = opt["n_things"]  # type: ignore[misc]
    movers = tuple(_mover(rng, k + 1, h, w, n_frames, opt) for k in range(int(rng.integers(lo_n, hi_n + 1))))
    return VideoWorld((h, w), canvas, labels, (ox, oy), pan, movers, float(opt["noise"]), int(seed))


def _background(world: VideoWorld, t: float) -> tuple[np.ndarray, np.ndarray]:
    """The stuff image (float32) and labels seen at time t: frame point p shows canvas point p + o_t."""
    h, w = world.size
    ox, oy = world.origin[0] - world.pan[0] * t, world.origin[1] - world.pan[1] * t
    m = np.array([[1, 0, ox], [0, 1, oy]], np.float64)
    flags = cv2.WARP_INVERSE_MAP
    img = cv2.warpAffine(world.canvas, m, (w, h), flags=cv2.INTER_LINEAR | flags, borderMode=cv2.BORDER_REFLECT)
    lab = cv2.warpAffine(world.canvas_labels, m, (w, h), flags=cv2.INTER_NEAREST | flags,
                         borderMode=cv2.BORDER_REFLECT)
    return img, lab


def _render(world: VideoWorld, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Pose], dict]:
    """Image (float32), semantic labels, owner map (0 background, k = movers[k - 1]), the poses,
    and ``{k: (whole-shape pixels, in-frame pixels)}`` at time t."""
    h, w = world.size
    img, sem = _background(world, t)
    owner = np.zeros((h, w), np.int16)
    poses, areas = [], {}
    for k, mv in enumerate(world.movers, start=1):
        pose = mv.pose(t)
        poses.append(pose)
        if not 1.0 <= pose.radius <= 4 * max(h, w):  # too small to draw, or a runaway scale
            continue
        # Skip things far outside the frame before rasterising.
        if pose.cx + pose.radius < -1 or pose.cy + pose.radius < -1 or pose.cx - pose.radius > w + 1 \
                or pose.cy - pose.radius > h + 1:
            continue
        crop, x0, y0 = rasterize(mv.style, pose)
        ya, yb, xa, xb = max(y0, 0), min(y0 + crop.shape[0], h), max(x0, 0), min(x0 + crop.shape[1], w)
        if ya >= yb or xa >= xb:
            continue
        sub = crop[ya - y0 : yb - y0, xa - x0 : xb - x0]
        tex = paint(mv.style, pose, x0, y0, crop.shape[0], crop.shape[1], crop)
        img[ya:yb, xa:xb][sub] = tex[ya - y0 : yb - y0, xa - x0 : xb - x0][sub]
        owner[ya:yb, xa:xb][sub] = k
        sem[ya:yb, xa:xb][sub] = mv.style.category
        areas[k] = (int(crop.sum()), int(sub.sum()))
    return img, sem, owner, poses, areas


def _flow(world: VideoWorld, owner: np.ndarray, poses_t: list[Pose], poses_n: list[Pose]) -> np.ndarray:
    h, w = world.size
    flow = np.empty((h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = world.pan
    for k in np.flatnonzero(np.bincount(owner.ravel(), minlength=len(world.movers) + 1)[1:]) + 1:
        a, b = poses_t[k - 1], poses_n[k - 1]
        ys, xs = np.nonzero(owner == k)
        px, py = xs + 0.5 - a.cx, ys + 0.5 - a.cy  # float64 relative to the centre at t
        s, da = b.radius / a.radius, b.angle - a.angle
        ca, sa = s * math.cos(da), s * math.sin(da)
        flow[ys, xs, 0] = b.cx + ca * px - sa * py - (xs + 0.5)
        flow[ys, xs, 1] = b.cy + sa * px + ca * py - (ys + 0.5)
    return flow


def _visible_next(flow: np.ndarray, owner: np.ndarray, owner_next: np.ndarray) -> np.ndarray:
    """Whether the surface at each pixel lands, at t + 1, on a pixel still showing that surface."""
    h, w = owner.shape
    ys, xs = np.mgrid[0:h, 0:w]
    tx = np.floor(xs + 0.5 + flow[..., 0]).astype(np.int64)
    ty = np.floor(ys + 0.5 + flow[..., 1]).astype(np.int64)
    inside = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
    same = np.zeros((h, w), bool)
    same[inside] = owner_next[ty[inside], tx[inside]] == owner[inside]
    return same


def _frame_truth(world: VideoWorld, sem: np.ndarray, owner: np.ndarray, poses: list[Pose],
                 areas: dict) -> tuple[PanopticMap, tuple[SceneInstance, ...]]:
    ids = np.zeros(sem.shape, np.int32)
    segs = []
    counts = np.bincount(sem.ravel(), minlength=len(CATEGORIES))
    for c in range(len(CATEGORIES)):
        if not ISTHING[c] and counts[c]:
            m = (sem == c) & (owner == 0)
            ids[m] = segment_id(c, 0)
            segs.append(PanopticSegment(segment_id(c, 0), c, False, int(m.sum())))
    inst = []
    for k in np.flatnonzero(np.bincount(owner.ravel(), minlength=len(world.movers) + 1)[1:]) + 1:
        mv = world.movers[k - 1]
        m = owner == k
        sid = segment_id(mv.style.category, mv.track)
        ids[m] = sid
        segs.append(PanopticSegment(sid, mv.style.category, True, int(m.sum())))
        full, inframe = areas[int(k)]
        inst.append(SceneInstance(mv.style.category, m, mv.track, full_area=full, inframe_area=inframe,
                                  pose=poses[k - 1]))
    return PanopticMap(ids, tuple(segs), CATEGORIES, ISTHING), tuple(inst)


def generate_video(seed: int, n_frames: int, size: tuple[int, int] = (240, 320),
                   **options: object) -> Iterator[VideoFrame]:
    """Yield ``n_frames`` frames (``size = (H, W)``) with panoptic truth and exact forward flow.

    The flow of the last frame points to the frame that would come next. ``options``: see
    ``VIDEO_DEFAULTS`` (``pan=(u, v)`` fixes the background motion in pixels per frame).
    """
    world = video_world(seed, n_frames, size, **options)
    nrng = np.random.default_rng([int(seed) & 0xFFFFFFFFFFFFFFFF, 0x401CE])
    cur = _render(world, 0.0)
    for t in range(n_frames):
        nxt = _render(world, float(t + 1))
        img, sem, owner, poses, areas = cur
        flow = _flow(world, owner, poses, nxt[3])
        pm, inst = _frame_truth(world, sem, owner, poses, areas)
        if world.noise > 0:
            img = img + nrng.standard_normal(img.shape[:2] + (1,), dtype=np.float32) * np.float32(world.noise)
        yield VideoFrame(t, np.clip(img + 0.5, 0, 255).astype(np.uint8), sem, pm, inst, flow,
                         _visible_next(flow, owner, nxt[2]), world.pan)
        cur = nxt
