"""The bundled CenterNet ("Objects as Points") and what its one forward pass computed.

:class:`ShapesCenterNet` runs the net once per image; :meth:`ShapesCenterNet.predict_centernet`
returns both the detections the layers show and a :class:`CenterNetInternals` bundle with the raw
head outputs (class heatmap probabilities, offsets, sizes at stride 4) and the peaks the decoder
found, so the Internals dock draws exactly what produced the boxes. The decoding itself (3 x 3
max-pool peaks, top-k, ``box = stride * (x + dx -+ w / 2, y + dy -+ h / 2)``) is numpy in
:mod:`segviewer.analysis.centernet`: one implementation for the adapter, training and the view.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from segviewer.adapters._convert import check_image
from segviewer.adapters.base import PredictParams
from segviewer.adapters.internals import ModelFrame
from segviewer.adapters.shapes import _resize_short, _ShapesAdapter, _short_side
from segviewer.analysis import centernet as dec
from segviewer.core.errors import ModelError, SegviewerError
from segviewer.core.results import Detections
from segviewer.core.timing import Timings

__all__ = ["CENTERNET_KINDS", "CenterNetInternals", "PeakInfo", "ShapesCenterNet"]

#: the capture kind a CenterNet pass offers (the dock's CenterNet view draws it)
CENTERNET_KINDS = ("centernet_heads",)
DIVISOR = 16  # the trunk's coarsest stride: inputs are padded to a multiple of it


@dataclass(frozen=True)
class PeakInfo:
    """One heatmap cell read through the heads: what the decoder makes of it."""

    cls: int  # heatmap channel (0-based; category index = cls + 1)
    row: int
    col: int
    score: float  # sigmoid heatmap value
    offset: tuple[float, float]  # (dx, dy) in output cells
    size: tuple[float, float]  # (w, h) in output cells
    box: np.ndarray  # (4,) xyxy in the model frame
    is_peak: bool  # a local maximum (equals its 3 x 3 max-pool)
    rank: int | None  # its place in the top-k (None: not among them)


@dataclass(frozen=True, eq=False)
class CenterNetInternals(ModelFrame):
    """Raw head outputs of one pass (numpy, model frame) and the decoder's peaks."""

    model_name: str
    categories: tuple[str, ...]  # the card's ("__background__", things...)
    image_size: tuple[int, int]
    model_size: tuple[int, int]  # (h, w) the net saw, before padding to DIVISOR
    heat: np.ndarray  # (C, H/4, W/4) float32 sigmoid probabilities
    offset: np.ndarray  # (2, H/4, W/4) float32 dx, dy in cells
    size: np.ndarray  # (2, H/4, W/4) float32 w, h in cells
    stride: int
    peaks: dec.Peaks  # every local maximum and the top-k
    boxes: np.ndarray  # (K, 4) decoded boxes of the top-k, model frame
    score_thresh: float
    detections: np.ndarray  # indices into the top-k that passed the threshold (what the layers show)
    timings: dict[str, float] = field(default_factory=dict)
    log_size: bool = False  # the size head predicts log w, log h (``size`` holds exp of it)
    kinds: tuple[str, ...] = CENTERNET_KINDS

    def nbytes(self) -> int:
        return int(self.heat.nbytes + self.offset.nbytes + self.size.nbytes + self.peaks.all_cyx.nbytes
                   + self.boxes.nbytes)

    def class_map(self, cls: int | None) -> np.ndarray:
        """One class's heatmap (``cls`` 0-based channel) or the max over classes (None)."""
        return self.heat.max(0) if cls is None else self.heat[int(cls)]

    def peaks_of(self, cls: int | None) -> np.ndarray:
        """``(M, 3)`` local maxima (class, row, col) of one channel, or of all (None)."""
        a = self.peaks.all_cyx
        return a if cls is None else a[a[:, 0] == int(cls)]

    def cell_center(self, row: int, col: int) -> tuple[float, float]:
        """Centre of an output cell in model pixels."""
        return self.stride * (col + 0.5), self.stride * (row + 0.5)

    def info(self, cls: int, row: int, col: int) -> PeakInfo:
        """The heads at one cell and the box they decode there (the decoder's formula)."""
        h, w = self.heat.shape[1:]
        if not (0 <= row < h and 0 <= col < w and 0 <= cls < self.heat.shape[0]):
            raise SegviewerError(f"cell ({row}, {col}) of class {cls} lies outside the {w}x{h} heatmap")
        box = dec.decode_boxes(np.array([row]), np.array([col]), self.offset, self.size, self.stride)[0]
        top = np.flatnonzero((self.peaks.cls == cls) & (self.peaks.ys == row) & (self.peaks.xs == col))
        is_peak = bool(((self.peaks.all_cyx == (cls, row, col)).all(1)).any())
        return PeakInfo(int(cls), int(row), int(col), float(self.heat[cls, row, col]),
                        (float(self.offset[0, row, col]), float(self.offset[1, row, col])),
                        (float(self.size[0, row, col]), float(self.size[1, row, col])), box, is_peak,
                        int(top[0]) if len(top) else None)

    def kept(self, thresh: float, cls: int | None = None) -> np.ndarray:
        """Indices into the top-k of the peaks scoring at least ``thresh`` (of channel ``cls``)."""
        sel = self.peaks.scores >= thresh
        if cls is not None:
            sel &= self.peaks.cls == int(cls)
        return np.flatnonzero(sel)

    def at(self, x: float, y: float, cls: int | None = None, thresh: float | None = None) -> PeakInfo:
        """What a click at input-image ``(x, y)`` reads: the nearest top-k peak scoring at least
        ``thresh`` (default: the pass's threshold) within 2 cells (of ``cls`` if given), else the
        clicked cell itself (its strongest class, or ``cls``)."""
        mx, my = self.to_model(x, y)
        h, w = self.heat.shape[1:]
        col, row = int(np.floor(mx / self.stride)), int(np.floor(my / self.stride))
        if not (0 <= row < h and 0 <= col < w):
            raise SegviewerError("The click is outside the image.")
        pk = self.peaks
        sel = np.zeros(len(pk.cls), bool)
        sel[self.kept(self.score_thresh if thresh is None else thresh, cls)] = True
        if sel.any():
            d = np.maximum(np.abs(pk.ys - row), np.abs(pk.xs - col)).astype(np.float64)
            d[~sel] = np.inf
            j = int(np.argmin(d))
            if d[j] <= 2:
                return self.info(int(pk.cls[j]), int(pk.ys[j]), int(pk.xs[j]))
        c = int(np.argmax(self.heat[:, row, col])) if cls is None else int(cls)
        return self.info(c, row, col)


class ShapesCenterNet(_ShapesAdapter):
    """The bundled CenterNet: top-100 heatmap peaks above ``params.min_score`` become boxes (no NMS)."""

    model_kind = "centernet"

    def predict(self, image: np.ndarray, params: PredictParams | None = None,
                timings: Timings | None = None) -> Detections:
        return self.predict_centernet(image, params, timings)[0]

    def predict_centernet(self, image: np.ndarray, params: PredictParams | None = None,
                          timings: Timings | None = None) -> tuple[Detections, CenterNetInternals]:
        """ONE forward pass: the detections and the heads' outputs that decode to them."""
        import torch

        from segviewer.adapters.nets.registry import to_tensor

        model, device = self._require()
        params = params or PredictParams()
        tm = timings if timings is not None else Timings()
        img = check_image(image)
        h, w = img.shape[:2]
        with tm.stage("preprocess"):
            small = _resize_short(img, _short_side(params))
            rh, rw = small.shape[:2]
            x = to_tensor([np.ascontiguousarray(small)])
            x = torch.nn.functional.pad(x, (0, -rw % DIVISOR, 0, -rh % DIVISOR)).to(device)  # 0 = the mean colour
        try:
            with tm.stage("model"), torch.inference_mode():
                out = model(x)
                heads = {k: v[0].float().cpu().numpy() for k, v in out.items()}
        except RuntimeError as err:
            raise ModelError(f"{self.card.id} failed on a {w}x{h} image ({str(err).splitlines()[0]})") from err
        with tm.stage("postprocess"):
            stride = int(self.config.get("stride", 4))
            k = max(0, min(dec.TOP_K, int(params.max_detections)))
            heat = dec.sigmoid(heads["heatmap"])
            pk = dec.find_peaks(heat, k)
            mboxes = dec.decode_boxes(pk.ys, pk.xs, heads["offset"], heads["size"], stride)
            keep = np.flatnonzero(pk.scores >= float(params.min_score))
            sx, sy = w / rw, h / rh  # ModelFrame.scale
            boxes = mboxes[keep] * np.array([sx, sy, sx, sy], np.float32)
            boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
            det = Detections((h, w), boxes, pk.scores[keep], (pk.cls[keep] + 1).astype(np.int32),
                             self.card.categories)
        it = CenterNetInternals(
            image_size=(h, w), model_size=(rh, rw), model_name=str(self.card.id),
            categories=tuple(self.card.categories), heat=heat, offset=heads["offset"], size=heads["size"],
            stride=stride, peaks=pk, boxes=mboxes, score_thresh=float(params.min_score), detections=keep,
            timings=dict(tm), log_size=bool(self.config.get("log_size", False)))
        return det, it
