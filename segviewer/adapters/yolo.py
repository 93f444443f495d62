"""The bundled YOLO-style detector (``shapes_yolo``): detections, and its grid from the same pass.

``predict`` and :meth:`ShapesYOLO.predict_grid` run the net once; the raw head output is decoded
by :mod:`segviewer.analysis.yolo` (numpy: the one implementation of the formulas, which the view
and the tests read too) and the class-wise greedy NMS is :func:`segviewer.analysis.nms.nms_trace`,
so the Internals view replays exactly the steps that produced the layers' boxes.

The image is scaled so its shorter side is 256 px (the shapes world's scale), padded at the
bottom/right to a multiple of 16 (replicated edge), and the grid is cut to the cells that overlap
the real image; results come back in the input image's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from segviewer.adapters.base import PredictParams
from segviewer.adapters.internals import ModelFrame
from segviewer.adapters.shapes import _ShapesAdapter
from segviewer.analysis import yolo as Y
from segviewer.analysis.nms import NMSTrace, nms_trace
from segviewer.core.errors import SegviewerError
from segviewer.core.results import Detections
from segviewer.core.timing import Timings

__all__ = ["ShapesYOLO", "YoloInternals", "YOLO_KINDS", "CellReadout"]

#: the capture kind a YOLO pass offers (the "YOLO grid" view declares it)
YOLO_KINDS = ("yolo_grid",)
NMS_IOU = 0.5


@dataclass(frozen=True)
class CellReadout:
    """One grid cell: its B boxes (input-image xyxy), confidences, the raw ``t`` numbers per prior
    ``(B, 5)``, its class distribution ``Pr(class | object)`` and class-specific scores ``(B, C)``."""

    row: int
    col: int
    rect: np.ndarray  # (4,) the cell in input-image pixels
    boxes: np.ndarray
    conf: np.ndarray
    t: np.ndarray
    class_prob: np.ndarray
    class_scores: np.ndarray


@dataclass(frozen=True, eq=False)
class YoloInternals(ModelFrame):
    """What one pass of the YOLO net computed (model frame = the rescaled image, before padding)."""

    model_name: str
    categories: tuple[str, ...]  # the detector's, "__background__" first
    image_size: tuple[int, int]
    model_size: tuple[int, int]
    grid: Y.YoloGrid
    candidates: Y.Candidates  # model frame, the NMS input
    trace: NMSTrace  # class-wise greedy NMS over the candidates
    keep: np.ndarray  # candidate indices the layers show, best first
    detections: Detections
    score_thresh: float
    nms_thresh: float
    timings: Timings = field(default_factory=Timings)
    kinds: tuple[str, ...] = YOLO_KINDS

    @property
    def class_names(self) -> tuple[str, ...]:
        """The C classes of the grid's class distribution (no background)."""
        return tuple(self.categories[1:])

    def cell_at(self, x: float, y: float) -> tuple[int, int]:
        """The ``(row, col)`` of the cell under an input-image point."""
        mx, my = self.to_model(x, y)
        rc = self.grid.cell_of(mx, my)
        if rc is None:
            raise SegviewerError("That point lies outside the YOLO grid.")
        return rc

    def cell_rect(self, row: int, col: int) -> np.ndarray:
        s = self.grid.stride
        return self.to_image(np.array([col * s, row * s, (col + 1) * s, (row + 1) * s], np.float32))[0]

    def cell(self, row: int, col: int) -> CellReadout:
        g = self.grid
        nb = g.num_priors
        return CellReadout(row, col, self.cell_rect(row, col), self.to_image(g.boxes[row, col]),
                           g.conf[row, col].copy(), g.raw[row, col, : 5 * nb].reshape(nb, 5).copy(),
                           g.class_prob[row, col].copy(), g.class_scores()[row, col].copy())

    def grid_lines(self) -> tuple[np.ndarray, np.ndarray]:
        """x positions of the vertical lines and y positions of the horizontal ones (input pixels); the
        last cells, partly over the padding, end at the image's edge."""
        sh, sw = self.grid.shape
        s = self.grid.stride
        sx, sy = self.scale
        rh, rw = self.model_size
        xs = np.unique(np.minimum(np.arange(sw + 1) * s, rw)) * sx
        ys = np.unique(np.minimum(np.arange(sh + 1) * s, rh)) * sy
        return xs.astype(np.float32), ys.astype(np.float32)

    def responsible(self, boxes: np.ndarray) -> Y.Assignment:
        """Which cell and prior answer for each ground-truth box (input-image xyxy)."""
        sx, sy = self.scale
        b = np.asarray(boxes, np.float32).reshape(-1, 4) / np.array([sx, sy, sx, sy], np.float32)
        return Y.responsible(b, self.grid.shape, self.grid.stride, self.grid.priors)

    def max_conf_map(self) -> np.ndarray:
        """``(S_h, S_w)`` the best class-specific score of each cell (the heatmap under the grid)."""
        return self.grid.class_scores().max(axis=(2, 3))

    def nms(self, class_id: int, iou_threshold: float | None = None) -> NMSTrace:
        """The class-wise NMS of one class (0-based, the grid's classes) replayed step by step; at the
        model's threshold its kept set is exactly that class's share of :attr:`trace`."""
        c = self.candidates
        idx = np.flatnonzero(c.class_ids == class_id)
        if not len(idx):
            raise SegviewerError(f"No NMS candidates of class {self.class_names[class_id]}.")
        thr = self.nms_thresh if iou_threshold is None else float(iou_threshold)
        batch = (len(c.boxes), float(c.boxes.max()))  # the full call's class offsets: identical decisions
        return nms_trace(c.boxes[idx], c.scores[idx], thr, c.class_ids[idx], ids=idx, batch=batch)

    def nbytes(self) -> int:
        g = self.grid
        return int(g.raw.nbytes + g.boxes.nbytes + g.conf.nbytes + g.class_prob.nbytes
                   + self.candidates.boxes.nbytes * 3)


class ShapesYOLO(_ShapesAdapter):
    """The YOLO-style detector; ``predict`` keeps boxes with class-specific score >= ``min_score``."""

    model_kind = "yolo"

    def _raw(self, image: np.ndarray, params: PredictParams, tm: Timings) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
        """The head's raw output cut to the real image's cells, the input size and the model size."""
        out, (h, w, rh, rw) = self._forward(image, params, tm)  # cells wholly in the padding are cut off below
        model, _ = self._require()
        s = int(model.stride)
        raw = out[0, :, : -(-rh // s), : -(-rw // s)].float().cpu().numpy()
        return raw, (h, w), (rh, rw)

    def _decode(self, raw: np.ndarray, params: PredictParams, size: tuple[int, int],
                model_size: tuple[int, int]) -> tuple[Y.YoloGrid, Y.Candidates, NMSTrace, np.ndarray, np.ndarray]:
        """The grid, the NMS candidates, its trace, the kept indices and their boxes in input pixels
        (clipped to the input) from the head's raw output."""
        model, _ = self._require()
        (h, w), (rh, rw) = size, model_size
        grid = Y.decode(raw, np.asarray(model.priors, np.float32), int(model.stride))
        cand, trace, keep = Y.postprocess(grid, float(params.min_score), NMS_IOU, int(params.max_detections),
                                          size=(rh, rw))
        sx, sy = w / rw, h / rh
        boxes = cand.boxes[keep] * np.array([sx, sy, sx, sy], np.float32)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        return grid, cand, trace, keep, boxes

    def predict_grid(self, image: np.ndarray, params: PredictParams | None = None,
                     timings: Timings | None = None) -> tuple[Detections, YoloInternals]:
        """ONE pass: the detections (as ``predict``) and the grid they came from."""
        params = params or PredictParams()
        tm = timings if timings is not None else Timings()
        raw, (h, w), (rh, rw) = self._raw(image, params, tm)
        with tm.stage("postprocess"):
            grid, cand, trace, keep, boxes = self._decode(raw, params, (h, w), (rh, rw))
            det = Detections((h, w), boxes, cand.scores[keep], (cand.class_ids[keep] + 1).astype(np.int32),
                             self.card.categories)
        it = YoloInternals(str(self.card.id), tuple(self.card.categories), (h, w), (rh, rw), grid, cand, trace,
                           keep, det, float(params.min_score), NMS_IOU, Timings(tm))
        return det, it

    def predict(self, image: np.ndarray, params: PredictParams | None = None,
                timings: Timings | None = None) -> Detections:
        return self.predict_grid(image, params, timings)[0]
