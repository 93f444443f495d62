"""Exported models through ONNX Runtime: a generic adapter driven by a small layout card.

An exported YOLO or torchvision model opens without its training framework (no torch here: numpy,
OpenCV and onnxruntime). The card's ``[onnx]`` table (``card.extra["onnx"]``) says how to feed the
network and read its outputs::

    [onnx]
    layout = "yolo-seg"       # detection | yolo | yolo-seg | semantic
    input = "images"          # input name (default: the model's first input)
    size = [640, 640]         # [H, W] of the input (default: the model's static input shape)
    resize = "letterbox"      # letterbox (keep aspect, pad) | stretch | none (feed the image as is)
    pad_value = 114           # letterbox padding grey
    scale = 255.0             # pixels are divided by this, then (x - mean) / std per channel
    mean = [0.0, 0.0, 0.0]
    std = [1.0, 1.0, 1.0]
    channels = "rgb"          # or "bgr"
    outputs = {}              # role -> output name (default: the output named as the role, else
                              # the model's outputs in order)
    box_format = "xyxy"       # detection layout: xyxy | cxcywh | xywh
    normalized = false        # detection layout: boxes in [0, 1] of the input
    label_offset = 0          # added to the model's labels to index the card's categories
    mask_threshold = 0.5      # detection layout with masks: a pixel is inside at this probability
    iou = 0.7                 # yolo layouts: NMS threshold (class-aware)

Layouts and their output roles:

* ``detection`` (NMS already in the graph, e.g. torchvision or an end-to-end export): ``boxes``
  ``(N, 4)``, ``scores`` ``(N,)``, ``labels`` ``(N,)``, or one ``detections`` output ``(N, 6)`` of
  ``x0 y0 x1 y1 score label`` (a leading batch dimension of 1 is dropped everywhere); optionally
  ``masks`` ``(N, 1, h, w)`` or ``(N, h, w)``: each detection's mask probabilities over the input (as
  torchvision's Mask R-CNN pastes them), bound when the card names it or an output is called
  ``masks``. A torchvision detection export takes one ``(3, H, W)`` image (its input list) and
  resizes and normalises inside the graph: give it ``resize = "none"`` and the default
  ``scale`` / ``mean`` / ``std``, and its 1-based labels index categories that start with
  ``__background__``;
* ``yolo`` / ``yolo-seg`` (as Ultralytics exports them): ``predictions`` ``(1, 4 + C [+ M], A)``,
  each anchor a ``cx cy w h`` box in input pixels, C class scores (already sigmoids) and, for
  ``yolo-seg``, M mask coefficients; ``protos`` ``(1, M, mh, mw)``. Here: score filter, class-aware
  greedy NMS (:func:`segviewer.analysis.nms.nms_trace`), each mask ``sigmoid(coefficients @ protos)``
  cropped to its box and mapped back to the image's pixels (one affine warp per box, nothing
  full-frame);
* ``semantic``: ``logits`` ``(1, C, h, w)`` over the input; upsampled to the image and argmaxed, the
  letterbox padding cut off first.

Class names: the card's ``categories``; when it has none, the ``names`` an Ultralytics export
stores in its metadata; else ``class 0``, ``class 1``, ...

Execution providers: CUDA when the device is ``cuda[:i]`` and this onnxruntime has it, else the CPU
(the provider actually used is in :attr:`OnnxAdapter.providers`).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segviewer.adapters._convert import cap_probs, check_image, labels_from_logits
from segviewer.adapters.base import ModelCard, PredictParams, ProgressCallback
from segviewer.analysis.nms import nms_trace
from segviewer.core.errors import CheckpointMismatchError, SegviewerError, WeightsUnavailableError
from segviewer.core.results import Detections, MaskSet, Result, SemanticMap
from segviewer.core.timing import Timings

__all__ = ["OnnxSpec", "OnnxAdapter", "onnx_card", "LAYOUTS"]

LAYOUTS = {"detection": "detection", "yolo": "detection", "yolo-seg": "instance", "semantic": "semantic"}
_ROLES = {"detection": ("boxes", "scores", "labels"), "yolo": ("predictions",),
          "yolo-seg": ("predictions", "protos"), "semantic": ("logits",)}
EXTRA_HINT = "pip install 'segviewer[onnx]'"
PROBS_MAX_SIDE = 512


@dataclass(frozen=True)
class OnnxSpec:
    """The ``[onnx]`` table of a card, validated (see the module docstring for each key)."""

    layout: str
    input: str | None = None
    size: tuple[int, int] | None = None
    resize: str = "letterbox"
    pad_value: float = 114.0
    scale: float = 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channels: str = "rgb"
    outputs: dict[str, str] = field(default_factory=dict)
    box_format: str = "xyxy"
    normalized: bool = False
    label_offset: int = 0
    iou: float = 0.7
    mask_threshold: float = 0.5

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> OnnxSpec:
        """Check every key, naming ``where`` (the card) and the key in the message."""
        def bad(msg: str) -> SegviewerError:
            return SegviewerError(f"{where}: [onnx] {msg}")

        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise bad(f"has unknown keys {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        layout = str(data.get("layout", ""))
        if layout not in LAYOUTS:
            raise bad(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
        kw: dict[str, Any] = {"layout": layout}
        if "size" in data:
            s = data["size"]
            if not (isinstance(s, (list, tuple)) and len(s) == 2 and all(int(v) > 0 for v in s)):
                raise bad("size must be [H, W] in pixels")
            kw["size"] = (int(s[0]), int(s[1]))
        for key, choices in (("resize", ("letterbox", "stretch", "none")), ("channels", ("rgb", "bgr")),
                             ("box_format", ("xyxy", "cxcywh", "xywh"))):
            if key in data:
                if str(data[key]) not in choices:
                    raise bad(f"{key} {data[key]!r} is not one of {', '.join(choices)}")
                kw[key] = str(data[key])
        for key in ("mean", "std"):
            if key in data:
                v = data[key]
                if not (isinstance(v, (list, tuple)) and len(v) == 3):
                    raise bad(f"{key} must list 3 numbers (one per channel)")
                kw[key] = tuple(float(x) for x in v)
        if any(s == 0 for s in kw.get("std", (1.0,))):
            raise bad("std must not be 0")
        try:
            for key, conv in (("pad_value", float), ("scale", float), ("label_offset", int), ("iou", float),
                              ("normalized", bool), ("input", str), ("mask_threshold", float)):
                if key in data:
                    kw[key] = conv(data[key])
        except (TypeError, ValueError) as err:
            raise bad(f"a value has the wrong type ({err})") from None
        outs = data.get("outputs", {})
        if not isinstance(outs, dict):
            raise bad("outputs must map roles to output names")
        roles = set(_ROLES[layout]) | ({"detections", "masks"} if layout == "detection" else set())
        extra_roles = sorted(set(outs) - roles)
        if extra_roles:
            raise bad(f"outputs names roles {', '.join(extra_roles)}; the {layout} layout has {', '.join(sorted(roles))}")
        kw["outputs"] = {str(k): str(v) for k, v in outs.items()}
        return cls(**kw)


def onnx_card(model_id: str, path: Path | str | None, layout: str, categories: tuple[str, ...] = (),
              **spec: Any) -> ModelCard:
    """A card for an ONNX file without writing a TOML card (tests, scripts, plugins)."""
    task = LAYOUTS.get(layout)
    if task is None:
        raise SegviewerError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    extra: dict[str, Any] = {"adapter": "segviewer.adapters.onnx_runtime:OnnxAdapter",
                             "onnx": {"layout": layout, **spec}, "needs_extra": "onnx"}
    if path is not None:
        extra["checkpoint_path"] = str(Path(path).resolve())
    return ModelCard(id=model_id, task=task, family=f"ONNX ({layout} layout)", categories=tuple(categories),  # type: ignore[arg-type]
                     weights_source="bundled" if path is not None else "none",
                     weights_file=Path(path).name if path is not None else None, extra=extra)


def _squeeze(a: np.ndarray, ndim: int, what: str) -> np.ndarray:
    while a.ndim > ndim and a.shape[0] == 1:
        a = a[0]
    if a.ndim != ndim:
        raise SegviewerError(f"the model's {what} output has shape {a.shape}; the layout expects {ndim} dimensions")
    return a


def _to_xyxy(b: np.ndarray, fmt: str) -> np.ndarray:
    b = b.astype(np.float32, copy=True)
    if fmt == "cxcywh":
        cx, cy, w, h = b[:, 0].copy(), b[:, 1].copy(), b[:, 2].copy(), b[:, 3].copy()
        b[:, 0], b[:, 1], b[:, 2], b[:, 3] = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    elif fmt == "xywh":
        b[:, 2] += b[:, 0]
        b[:, 3] += b[:, 1]
    return b


@dataclass(frozen=True)
class _Geometry:
    """How image pixels map to input pixels: ``x_in = x * sx + px`` (and the same for y)."""

    sx: float
    sy: float
    px: float
    py: float
    input_hw: tuple[int, int]

    def to_image(self, boxes: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
        out = boxes.astype(np.float32, copy=True)
        out[:, 0::2] = (out[:, 0::2] - self.px) / self.sx
        out[:, 1::2] = (out[:, 1::2] - self.py) / self.sy
        h, w = size_hw
        out[:, 0::2] = np.clip(out[:, 0::2], 0, w)
        out[:, 1::2] = np.clip(out[:, 1::2], 0, h)
        return out


class OnnxAdapter:
    """An ONNX model behind the :class:`~segviewer.adapters.base.ModelAdapter` interface."""
    params_keys: tuple[str, ...] = ()  # the PredictParams.extra keys it reads (--set checks them)

    def __init__(self, card: ModelCard) -> None:
        self.card = card
        self._base_card = card
        self.spec = OnnxSpec.from_dict(dict(card.extra.get("onnx") or {}), f"model {card.id}")
        self.session: Any = None
        self.providers: list[str] = []
        self._device: str | None = None
        self.weights_path: Path | None = None
        self._names: dict[str, str] = {}
        self._input: Any = None

    @property
    def loaded(self) -> bool:
        return self.session is not None

    @property
    def device(self) -> str | None:
        return self._device

    # ------------------------------------------------------------------ loading

    def load(self, device: str, weights: Path | None = None, progress: ProgressCallback | None = None,
             *, allow_download: bool | None = None) -> None:
        """Open the ``.onnx`` file (``weights``, else the card's checkpoint) on ``device``."""
        base = self._base_card
        if importlib.util.find_spec("onnxruntime") is None:
            raise SegviewerError(f"{base.id} needs the onnx extra, which is not installed: {EXTRA_HINT}")
        import onnxruntime as ort

        where = weights if weights is not None else base.extra.get("checkpoint_path")
        if where is None:
            raise WeightsUnavailableError(f"{base.id} is an ONNX model and has no random initialisation: pass --weights FILE.onnx")
        path = Path(where).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(f"ONNX file {path} {'is not a file' if path.exists() else 'does not exist'}")
        providers: list[Any] = ["CPUExecutionProvider"]
        kind, _, index = device.partition(":")
        if kind == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(index or 0)}))
        try:
            session = ort.InferenceSession(str(path), providers=providers)
        except Exception as err:  # onnxruntime raises its own Fail / InvalidGraph / ... kinds
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise CheckpointMismatchError(f"{path.name} cannot be opened by ONNX Runtime ({first})") from err
        self._bind(session, path)
        self.session = session
        self.providers = list(session.get_providers())
        self._device = device
        self.weights_path = path
        cats = base.categories or self._metadata_names(session)
        self.card = dataclasses.replace(base, categories=cats, weights_file=path.name,
                                        extra={**base.extra, "weights_path": str(path), "onnx_providers": self.providers})

    def _bind(self, session: Any, path: Path) -> None:
        """Match the card's roles to the model's inputs and outputs; refuse what does not fit."""
        spec = self.spec
        inputs = {i.name: i for i in session.get_inputs()}
        name = spec.input or next(iter(inputs))
        if name not in inputs:
            raise CheckpointMismatchError(f"{path.name} has no input {name!r} (it has {', '.join(inputs)})")
        inp = inputs[name]
        if len(inp.shape) not in (3, 4):
            raise CheckpointMismatchError(
                f"{path.name}: input {name} has shape {inp.shape}; an image input is (1, 3, H, W) or (3, H, W)")
        self._input = inp
        outs = [o.name for o in session.get_outputs()]
        roles = _ROLES[spec.layout]
        if spec.layout == "detection" and ("detections" in spec.outputs or len(outs) == 1):
            roles = ("detections",)
        if spec.layout == "detection" and ("masks" in spec.outputs or "masks" in outs):
            roles = (*roles, "masks")
        names: dict[str, str] = {}
        for i, role in enumerate(roles):
            want = spec.outputs.get(role) or (role if role in outs else (outs[i] if i < len(outs) else None))
            if want not in outs:
                raise CheckpointMismatchError(
                    f"{path.name} has no output for {role} ({want!r}); its outputs are {', '.join(outs)}: "
                    f"name them in the card's [onnx] outputs")
            names[role] = want
        self._names = names

    def _metadata_names(self, session: Any) -> tuple[str, ...]:
        """Class names an Ultralytics export stores in its metadata (a dict literal), read safely."""
        meta = session.get_modelmeta().custom_metadata_map or {}
        raw = meta.get("names")
        if not raw:
            return ()
        try:
            names = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return ()
        if isinstance(names, dict):
            ids = sorted(int(k) for k in names)
            return tuple(str(names.get(i, names.get(str(i), f"class {i}"))) for i in range(ids[-1] + 1)) if ids else ()
        return tuple(str(n) for n in names) if isinstance(names, (list, tuple)) else ()

    # ------------------------------------------------------------------ predicting

    def _input_size(self, h: int, w: int) -> tuple[int, int]:
        if self.spec.size is not None:
            return self.spec.size
        hh, ww = self._input.shape[-2:]
        if isinstance(hh, int) and isinstance(ww, int) and hh > 0 and ww > 0:
            return hh, ww
        return h, w  # a dynamic input and no size in the card: the image as it is

    def _preprocess(self, img: np.ndarray) -> tuple[np.ndarray, _Geometry]:
        spec = self.spec
        h, w = img.shape[:2]
        ih, iw = self._input_size(h, w)
        if spec.resize == "none" or (ih, iw) == (h, w):
            canvas, geo = img, _Geometry(1.0, 1.0, 0.0, 0.0, (h, w))
        elif spec.resize == "stretch":
            canvas = cv2.resize(img, (iw, ih), interpolation=cv2.INTER_LINEAR)
            geo = _Geometry(iw / w, ih / h, 0.0, 0.0, (ih, iw))
        else:  # letterbox, centred as Ultralytics pads
            r = min(ih / h, iw / w)
            nh, nw = max(1, round(h * r)), max(1, round(w * r))
            top, left = (ih - nh) // 2, (iw - nw) // 2
            canvas = np.full((ih, iw, 3), spec.pad_value, np.uint8)
            canvas[top:top + nh, left:left + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
            geo = _Geometry(nw / w, nh / h, float(left), float(top), (ih, iw))
        x = canvas[..., ::-1] if spec.channels == "bgr" else canvas
        x = x.astype(np.float32) / np.float32(spec.scale)
        x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None], np.float32), geo

    def predict(self, image: np.ndarray, params: PredictParams | None = None,
                timings: Timings | None = None) -> Result:
        """Run the network on ``image`` and decode its outputs by the card's layout."""
        if self.session is None:
            raise SegviewerError(f"{self.card.id} is not loaded yet")
        img = check_image(image)
        params = params or PredictParams()
        tm = timings if timings is not None else Timings()
        with tm.stage("preprocess"):
            x, geo = self._preprocess(img)
            if len(self._input.shape) == 3:  # one (3, H, W) image, as torchvision's detection exports take it
                x = x[0]
        with tm.stage("model"):
            try:
                values = self.session.run(list(self._names.values()), {self._input.name: x})
            except Exception as err:  # onnxruntime's own error kinds
                first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
                raise SegviewerError(f"{self.card.id}: ONNX Runtime failed on a {img.shape[1]}x{img.shape[0]} image ({first})") from err
        out = dict(zip(self._names, values))
        with tm.stage("postprocess"):
            if self.spec.layout == "semantic":
                return self._semantic(out["logits"], geo, img.shape[:2], params)
            if self.spec.layout == "detection":
                return self._detections(out, geo, img.shape[:2], params)
            return self._yolo(out, geo, img.shape[:2], params)

    def _categories_for(self, n: int) -> tuple[str, ...]:
        cats = self.card.categories
        return cats if len(cats) >= n else (*cats, *(f"class {i}" for i in range(len(cats), n)))

    def _detections(self, out: dict[str, np.ndarray], geo: _Geometry, size: tuple[int, int],
                    params: PredictParams) -> Detections:
        spec = self.spec
        if "detections" in out:
            d = _squeeze(np.asarray(out["detections"], np.float32), 2, "detections")
            if d.shape[1] < 6:
                raise SegviewerError(f"{self.card.id}: detections output has {d.shape[1]} columns; x0 y0 x1 y1 score label needs 6")
            boxes, scores, labels = d[:, :4], d[:, 4], d[:, 5]
        else:
            boxes = _squeeze(np.asarray(out["boxes"], np.float32), 2, "boxes")
            scores = _squeeze(np.asarray(out["scores"], np.float32), 1, "scores")
            labels = _squeeze(np.asarray(out["labels"]), 1, "labels")
        boxes = _to_xyxy(boxes.reshape(-1, 4), spec.box_format)
        if spec.normalized:
            ih, iw = geo.input_hw
            boxes *= np.array([iw, ih, iw, ih], np.float32)
        cls = np.rint(labels).astype(np.int64) + spec.label_offset
        keep = np.flatnonzero(scores >= params.min_score)
        keep = keep[np.argsort(-scores[keep], kind="stable")][: int(params.max_detections)]
        if len(keep) and (cls[keep].min() < 0):
            raise SegviewerError(f"{self.card.id}: the model gives label {int(cls[keep].min())}; set label_offset in [onnx]")
        cats = self._categories_for(int(cls[keep].max()) + 1 if len(keep) else 0)
        masks = None
        if "masks" in out:
            masks = self._prob_masks(np.asarray(out["masks"], np.float32), keep, geo, size)
        return Detections(size, geo.to_image(boxes[keep], size), scores[keep], cls[keep].astype(np.int32), cats,
                          masks=masks)

    def _prob_masks(self, probs: np.ndarray, keep: np.ndarray, geo: _Geometry, size: tuple[int, int]) -> MaskSet:
        """The kept detections' mask probabilities over the input, back on the image's pixels
        (letterbox padding cut off, one bilinear warp per mask) and thresholded."""
        if probs.ndim == 4 and probs.shape[1] == 1:
            probs = probs[:, 0]
        if probs.ndim != 3:
            raise SegviewerError(f"{self.card.id}: masks output has shape {probs.shape}; the layout expects (N, 1, h, w) or (N, h, w)")
        h, w = size
        ih, iw = geo.input_hw
        mh, mw = probs.shape[1:]
        if (mh, mw) == (h, w) and (geo.sx, geo.sy, geo.px, geo.py) == (1.0, 1.0, 0.0, 0.0):
            return MaskSet.from_full(probs[keep] >= self.spec.mask_threshold)
        # image pixel centre (x + 0.5) sits at input x_in = (x + 0.5) * sx + px, mask cell j's at (j + 0.5) * iw / mw
        kx, ky = mw / iw, mh / ih
        warp = np.array([[geo.sx * kx, 0.0, (0.5 * geo.sx + geo.px) * kx - 0.5],
                         [0.0, geo.sy * ky, (0.5 * geo.sy + geo.py) * ky - 0.5]], np.float64)
        full = [cv2.warpAffine(probs[i], warp, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REPLICATE) >= self.spec.mask_threshold
                for i in keep]
        return MaskSet.from_full(np.stack(full) if full else np.zeros((0, h, w), bool))

    def _yolo(self, out: dict[str, np.ndarray], geo: _Geometry, size: tuple[int, int],
              params: PredictParams) -> Detections:
        pred = _squeeze(np.asarray(out["predictions"], np.float32), 2, "predictions")  # (4 + C [+ M], A)
        protos = None
        m = 0
        if self.spec.layout == "yolo-seg":
            protos = _squeeze(np.asarray(out["protos"], np.float32), 3, "protos")  # (M, mh, mw)
            m = int(protos.shape[0])
        c = pred.shape[0] - 4 - m
        if c < 1:
            raise SegviewerError(f"{self.card.id}: predictions have {pred.shape[0]} rows; 4 box rows + classes"
                                 f"{' + ' + str(m) + ' mask coefficients' if m else ''} need more")
        p = pred.T  # (A, 4 + C + M)
        cls_scores = p[:, 4:4 + c]
        cls = cls_scores.argmax(axis=1)
        conf = cls_scores[np.arange(len(p)), cls]
        cand = np.flatnonzero(conf >= params.min_score)
        boxes_in = _to_xyxy(p[cand, :4], "cxcywh")
        trace = nms_trace(boxes_in, conf[cand], self.spec.iou, class_ids=cls[cand])
        keep = trace.keep[: int(params.max_detections)]
        sel = cand[keep]
        boxes = geo.to_image(boxes_in[keep], size)
        masks = None
        if protos is not None:
            masks = self._masks(p[sel, 4 + c:], protos, boxes, geo, size)
        return Detections(size, boxes, conf[sel], cls[sel].astype(np.int32), self._categories_for(c), masks=masks)

    @staticmethod
    def _masks(coeffs: np.ndarray, protos: np.ndarray, boxes: np.ndarray, geo: _Geometry,
               size: tuple[int, int]) -> MaskSet:
        """Each instance's ``coefficients @ protos`` logits sampled over its box in image pixels
        (bilinear, one affine warp of the prototype grid per box) and thresholded at 0 (sigmoid 0.5)."""
        h, w = size
        m, mh, mw = protos.shape
        ih, iw = geo.input_hw
        logits = (coeffs @ protos.reshape(m, -1)).reshape(-1, mh, mw).astype(np.float32)
        kx, ky = mw / iw, mh / ih  # input pixels -> prototype cells
        crops, offs = [], []
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            bx0, by0 = int(np.floor(x0)), int(np.floor(y0))
            bx1, by1 = min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))
            if bx1 <= bx0 or by1 <= by0:
                crops.append(np.zeros((0, 0), bool))
                offs.append((0, 0))
                continue
            # crop pixel (u, v) has its centre at image (bx0 + u + 0.5, by0 + v + 0.5); prototype cell
            # centres sit at (j + 0.5) / kx input pixels
            sx, sy = geo.sx * kx, geo.sy * ky
            tx = (bx0 + 0.5) * sx + geo.px * kx - 0.5
            ty = (by0 + 0.5) * sy + geo.py * ky - 0.5
            warp = np.array([[sx, 0.0, tx], [0.0, sy, ty]], np.float64)
            crop = cv2.warpAffine(logits[i], warp, (bx1 - bx0, by1 - by0),
                                  flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
            # Ultralytics keeps a mask only inside its box
            yy = by0 + np.arange(by1 - by0) + 0.5
            xx = bx0 + np.arange(bx1 - bx0) + 0.5
            inside = ((yy >= y0) & (yy < y1))[:, None] & ((xx >= x0) & (xx < x1))[None, :]
            crops.append((crop > 0) & inside)
            offs.append((bx0, by0))
        return MaskSet(size, tuple(crops), np.array(offs, np.int32).reshape(-1, 2))

    def _semantic(self, logits: np.ndarray, geo: _Geometry, size: tuple[int, int],
                  params: PredictParams) -> SemanticMap:
        lg = _squeeze(np.asarray(logits, np.float32), 3, "logits")  # (C, lh, lw) over the input
        c, lh, lw = lg.shape
        ih, iw = geo.input_hw
        h, w = size
        # the image's part of the input (letterbox padding cut off), in logit cells
        x0, y0 = geo.px * lw / iw, geo.py * lh / ih
        x1, y1 = (geo.px + w * geo.sx) * lw / iw, (geo.py + h * geo.sy) * lh / ih
        if (x0, y0, x1, y1) != (0.0, 0.0, float(lw), float(lh)):
            cx0, cy0 = int(np.floor(x0)), int(np.floor(y0))
            cx1, cy1 = max(cx0 + 1, int(np.ceil(x1))), max(cy0 + 1, int(np.ceil(y1)))
            lg = lg[:, cy0:cy1, cx0:cx1]
        cats = self._categories_for(c)
        labels = labels_from_logits(lg, size)
        if not params.extras:
            return SemanticMap(labels, cats)
        z = lg - lg.max(axis=0, keepdims=True)
        e = np.exp(z)
        return SemanticMap(labels, cats, probs=cap_probs(e / e.sum(axis=0, keepdims=True), PROBS_MAX_SIDE))
