"""ONE forward pass for the layers and the Internals dock: :func:`predict_with_internals`.

The app's worker runs a model with hooks when the Internals dock wants to look inside it, and the
same pass gives the result the layers show, so nothing runs twice (issue #4). What a pass yields
beyond the result depends on the model (:func:`internals_kind`): a two-stage detector's
:class:`~segviewer.adapters.internals.DetectorInternals`, the FCN's three skip-stage maps, the PCV
net's votes, or :class:`InternalsUnavailable` with the reason.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from segviewer.adapters.internals import DetectorHooks, build_internals, check_internals_image
from segviewer.adapters.internals_dense import DENSE_KINDS, DenseHooks, build_dense_internals, dense_kind
from segviewer.analysis.queries import QUERY_KINDS
from segviewer.core.errors import SegviewerError
from segviewer.core.timing import Timings

__all__ = ["InternalsUnavailable", "internals_nbytes", "internals_kind", "capture_kinds", "CAPTURE_KINDS",
           "predict_with_internals"]

#: what each hooked pass offers, as typed capture kinds the dock's views declare they draw
CAPTURE_KINDS: dict[str, tuple[str, ...]] = {
    "votes": ("votes",),
    "stages": ("fcn_stages",),
    "detector": ("rpn", "roi", "mask_logits", "keypoint_heatmaps"),  # a bundle's ``kinds``: what its heads had
    "dense": DENSE_KINDS,
    "queries": QUERY_KINDS,
    "centernet": ("centernet_heads",),  # adapters.centernet.CENTERNET_KINDS
    "yolo": ("yolo_grid",),  # adapters.yolo.YOLO_KINDS
    "yolact": ("yolo_grid", "yolact"),  # adapters.yolact.YOLACT_KINDS: a YOLACT pass is a YOLO pass too
    "": (),
}


@dataclass(frozen=True)
class InternalsUnavailable:
    """Why a hooked pass produced a result but no internals (one sentence for the panel)."""

    message: str

    def nbytes(self) -> int:
        return len(self.message)


def internals_nbytes(internals: Any) -> int:
    """Bytes held by an internals bundle (for the worker's bytes-bounded cache)."""
    if internals is None:
        return 0
    if isinstance(internals, dict) and not callable(getattr(internals, "nbytes", None)):
        return sum(internals_nbytes(v) for v in internals.values())
    nb = getattr(internals, "nbytes", None)
    if callable(nb):
        return int(nb())
    if isinstance(nb, (int, np.integer)):
        return int(nb)
    votes, sem = getattr(internals, "votes", None), getattr(internals, "semantic", None)
    if votes is not None:  # the PCV net's VotePrediction
        return int(np.asarray(votes).nbytes) + internals_nbytes(sem)
    return 1024


def internals_kind(adapter: Any) -> str:
    """What a hooked pass of ``adapter`` yields: "votes" (PCV), "stages" (the FCN's skip stages),
    "detector" (a two-stage R-CNN), "dense" (RetinaNet, FCOS, SSD: dense heads), "queries" (DETR,
    RT-DETR, Mask2Former, OneFormer: set prediction) or "" (nothing beyond the result)."""
    if callable(getattr(adapter, "predict_votes", None)):
        return "votes"
    if callable(getattr(adapter, "predict_stages", None)):
        return "stages"
    if callable(getattr(adapter, "predict_queries", None)):
        return "queries"
    if callable(getattr(adapter, "predict_centernet", None)):
        return "centernet"
    if callable(getattr(adapter, "predict_yolact", None)):
        return "yolact"
    if callable(getattr(adapter, "predict_grid", None)):
        return "yolo"
    m = getattr(adapter, "module", None)
    if m is not None and all(hasattr(m, n) for n in ("backbone", "rpn", "roi_heads")):
        return "detector"
    if m is not None and dense_kind(m):
        return "dense"
    return ""


def capture_kinds(adapter: Any) -> tuple[str, ...]:
    """The capture kinds a hooked pass of ``adapter`` yields (see :data:`CAPTURE_KINDS`; a
    set-prediction adapter declares its own subset in ``query_kinds``)."""
    kind = internals_kind(adapter)
    if kind == "queries":
        return tuple(getattr(adapter, "query_kinds", QUERY_KINDS))
    return CAPTURE_KINDS[kind]


def predict_with_internals(adapter: Any, image: np.ndarray, params: Any = None,
                           timings: Timings | None = None) -> tuple[Any, Any]:
    """ONE forward pass of ``adapter`` that yields both its normal result and its internals:
    ``(result, internals)``.

    The result is what ``adapter.predict(image, params)`` returns, derived from the same pass:

    * a two-stage detector: ``adapter.predict`` itself runs with :class:`DetectorHooks`
      attached, so the internals (:class:`DetectorInternals`) explain exactly the detections
      the layers show (same resize, same thresholds);
    * the FCN: ``predict_stages`` (one pass, all three skip stages); the result is the stage
      ``params.extra["stage"]`` names (8s by default), as ``predict`` would pick;
    * the PCV net: ``predict_votes``; the result is its semantic map, the internals the votes.

    Any other model gives ``(adapter.predict(...), InternalsUnavailable(why))``; so does a
    detector whose internals cannot be rebuilt (the result is still good).
    """
    from segviewer.adapters.base import PredictParams

    params = params or PredictParams()
    tm = timings if timings is not None else Timings()
    kind = internals_kind(adapter)
    name = getattr(getattr(adapter, "card", None), "id", type(adapter).__name__)
    if kind == "votes":
        from segviewer.adapters.internals_upsample import pcv_votes_pass

        vp = pcv_votes_pass(adapter, image, params, tm)  # + the voting head's layers (taps view)
        return vp.semantic, vp
    if kind == "stages":
        stage = str(dict(params.extra).get("stage", "8s"))
        from segviewer.adapters.internals_upsample import fcn_stages_pass

        stages = fcn_stages_pass(adapter, image, params, tm)  # + upsampling and receptive-field captures
        if stage not in stages:
            raise SegviewerError(f"the FCN's stages are {', '.join(stages)}; got {stage!r}")
        return stages[stage], stages
    if kind == "queries":  # the adapter hooks its own pass (QueryInternals)
        return adapter.predict_queries(image, params, tm)
    if kind == "centernet":  # the heads' raw outputs are the internals (CenterNetInternals)
        return adapter.predict_centernet(image, params, tm)
    if kind == "yolact":  # the grid, the prototypes and the kept boxes' coefficients (YolactInternals)
        return adapter.predict_yolact(image, params, tm)
    if kind == "yolo":  # the head's raw grid is the internals (YoloInternals)
        return adapter.predict_grid(image, params, tm)
    if kind == "dense":
        return _predict_hooked(adapter, image, params, tm, str(name), DenseHooks, build_dense_internals)
    if kind != "detector":
        task = getattr(getattr(adapter, "card", None), "task", "this kind of")
        return adapter.predict(image, params, tm), InternalsUnavailable(
            f"{name} is a {task} model: it has no region proposal network, so there are no proposals, "
            "RoIs or mask logits to show.")
    if callable(getattr(adapter, "predict_mask_scoring", None)):  # + the MaskIoU head on the same RoI features
        return adapter.predict_mask_scoring(image, params, tm)
    return _predict_hooked(adapter, image, params, tm, str(name), DetectorHooks, build_internals)


def _predict_hooked(adapter: Any, image: np.ndarray, params: Any, tm: Timings, name: str,
                    hooks_type: Any, build: Any) -> tuple[Any, Any]:
    """``predict`` with ``hooks_type``'s hooks attached (a two-stage detector's or a one-stage
    one's :class:`DenseHooks`): one pass; ``build`` makes the internals from what they caught."""
    model = adapter.module
    img = check_internals_image(image)
    hooks = hooks_type(model)
    with hooks as got:
        result = adapter.predict(img, params, tm)
    try:
        hooks.complete(name)
        cats = tuple(getattr(adapter.card, "categories", ()))
        it = build(model, got, img.shape[:2], name, cats, Timings(tm))
        if getattr(it, "keypoint_logits", None) is not None and getattr(result, "keypoint_names", ()):
            it = dataclasses.replace(it, keypoint_names=tuple(result.keypoint_names))  # the card's names
        tm["internals"] = it.timings.get("replay", 0.0)
    except (SegviewerError, RuntimeError, KeyError, IndexError) as err:
        return result, InternalsUnavailable(f"{name}: the internals could not be rebuilt from its pass ({err}).")
    return result, it
