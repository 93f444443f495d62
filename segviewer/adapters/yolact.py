"""The bundled YOLACT (``shapes_yolact``): instance masks from prototypes and per-box coefficients.

One pass of the net gives the YOLO grid (the detector's boxes, decoded and NMS'd exactly as
``shapes_yolo``'s), the ``k`` prototypes and every predictor's ``k`` coefficients. Each kept
detection's mask is assembled by :mod:`segviewer.analysis.yolact` (linear combination, sigmoid,
crop to the box, threshold); :class:`YolactInternals` keeps the prototypes and the kept
detections' coefficients, so the Internals view replays the very steps that made each mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from segviewer.adapters.base import PredictParams
from segviewer.adapters.yolo import NMS_IOU, YOLO_KINDS, ShapesYOLO, YoloInternals
from segviewer.analysis import yolact as A
from segviewer.core.errors import SegviewerError
from segviewer.core.results import Detections, MaskSet
from segviewer.core.timing import Timings

__all__ = ["ShapesYOLACT", "YolactInternals", "YOLACT_KINDS"]

#: the capture kinds a YOLACT pass offers: its own view's, and the YOLO grid's (the pass is a YOLO pass)
YOLACT_KINDS = (*YOLO_KINDS, "yolact")


@dataclass(frozen=True, eq=False)
class YolactInternals(YoloInternals):
    """A YOLO pass plus YOLACT's branch: ``proto`` ``(k, h, w)`` (model frame at ``proto_stride``,
    cut to the cells over the real image) and ``coef`` ``(n, k)``, the coefficients of the
    ``n`` detections in :attr:`detections` (same order)."""

    proto: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 1), np.float32))
    coef: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    proto_stride: float = 4.0
    mask_threshold: float = A.MASK_THRESHOLD
    kinds: tuple[str, ...] = YOLACT_KINDS

    @property
    def num_prototypes(self) -> int:
        return int(self.proto.shape[0])

    def assembly(self, i: int) -> A.Assembly:
        """Detection ``i``'s four steps, from the same numbers that made its mask."""
        if not 0 <= i < len(self.coef):
            raise SegviewerError(f"there is no detection {i} (this pass kept {len(self.coef)})")
        return A.assemble_one(self.proto, self.coef[i], self.detections.boxes[i], self.image_size, self.scale,
                              self.proto_stride, self.mask_threshold)

    def detection_at(self, x: float, y: float) -> int | None:
        """The best-scoring detection whose mask covers the input-image point, else whose box does."""
        det = self.detections
        hits = np.array([i for i in range(len(det)) if det.masks is not None and det.masks.contains(i, x, y)], np.int64)
        if not len(hits):
            b = det.boxes
            hits = np.flatnonzero((b[:, 0] <= x) & (x < b[:, 2]) & (b[:, 1] <= y) & (y < b[:, 3]))
        return int(hits[np.argmax(det.scores[hits])]) if len(hits) else None

    def nbytes(self) -> int:
        return super().nbytes() + int(self.proto.nbytes + self.coef.nbytes)


class ShapesYOLACT(ShapesYOLO):
    """YOLACT on the YOLO detector; ``predict`` gives boxes and masks (score >= ``min_score``)."""

    model_kind = "yolact"

    def predict_yolact(self, image: np.ndarray, params: PredictParams | None = None,
                       timings: Timings | None = None) -> tuple[Detections, YolactInternals]:
        """ONE pass: the detections with their masks (as ``predict``) and what assembled them."""
        params = params or PredictParams()
        tm = timings if timings is not None else Timings()
        outs, (h, w, rh, rw) = self._forward(image, params, tm)
        model, _ = self._require()
        s, k = int(model.stride), int(model.num_prototypes)
        gh, gw = -(-rh // s), -(-rw // s)
        raw = outs["out"][0, :, :gh, :gw].float().cpu().numpy()
        coef_map = outs["coef"][0, :, :gh, :gw].float().cpu().numpy()
        ps = s * outs["out"].shape[-1] / outs["proto"].shape[-1]  # model pixels per prototype cell
        proto = outs["proto"][0, :, : int(np.ceil(rh / ps)), : int(np.ceil(rw / ps))].float().cpu().numpy()
        with tm.stage("postprocess"):
            grid, cand, trace, keep, boxes = self._decode(raw, params, (h, w), (rh, rw))
            sx, sy = w / rw, h / rh
            coef = A.coefficients(coef_map, cand.cell[keep], cand.prior[keep], k)
            crops, offsets = A.assemble(proto, coef, boxes, (h, w), (sx, sy), ps)
            det = Detections((h, w), boxes, cand.scores[keep], (cand.class_ids[keep] + 1).astype(np.int32),
                             self.card.categories, masks=MaskSet((h, w), tuple(crops), offsets))
        it = YolactInternals(str(self.card.id), tuple(self.card.categories), (h, w), (rh, rw), grid, cand, trace,
                             keep, det, float(params.min_score), NMS_IOU, Timings(tm), proto=proto, coef=coef,
                             proto_stride=float(ps))
        return det, it

    def predict_grid(self, image: np.ndarray, params: PredictParams | None = None,
                     timings: Timings | None = None) -> tuple[Detections, YoloInternals]:
        return self.predict_yolact(image, params, timings)

    def predict(self, image: np.ndarray, params: PredictParams | None = None,
                timings: Timings | None = None) -> Detections:
        return self.predict_yolact(image, params, timings)[0]
