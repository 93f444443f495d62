"""DETR, RT-DETR and RT-DETRv2 (Hugging Face transformers) behind the adapter interface: boxes,
scores, classes.

The processor's own ``post_process_object_detection`` turns the network's outputs into boxes in
the input image's pixels (the boxes are predicted relative to the unpadded image, so no padding has
to be undone); detections are then sorted by score and capped at ``params.max_detections``.

:meth:`HFDetector.predict_queries` runs the same pass with the internals captured
(:class:`~segviewer.analysis.queries.QueryInternals`): every query's class logits (DETR's include
"no object"; RT-DETR's are per-class sigmoids) and box before the selection, the query behind each
detection, and the last decoder layer's cross-attention: DETR's dense weights over the backbone's
stride-32 map (eager attention for that pass only: SDPA returns no weights), RT-DETR's deformable
sampling points and weights (a hook on the last layer's sampling, no second run). RT-DETRv2 computes
its sampling points inside its attention module (a scaled offset around each query's box): hooks on
that layer's offset projection and on the module's inputs and output rebuild the same points and
weights from the same pass.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.adapters._convert import check_image
from segviewer.adapters.base import PredictParams
from segviewer.adapters.hf_base import HFAdapter
from segviewer.adapters.hf_loading import eager_attention
from segviewer.analysis.queries import (
    QUERY_ATTENTION,
    QUERY_BOXES,
    QUERY_CLASSES,
    DeformableSampling,
    QueryInternals,
)
from segviewer.core.errors import SegviewerError
from segviewer.core.results import Detections
from segviewer.core.timing import Timings

__all__ = ["HFDetector"]


def _np(t: Any, dtype: Any = np.float32) -> np.ndarray:
    return t.detach().float().cpu().numpy().astype(dtype)


_FAMILIES = ("detr", "rt_detr", "rt_detr_v2")


class HFDetector(HFAdapter):
    """DETR (``detr``), RT-DETR (``rt_detr``) or RT-DETRv2 (``rt_detr_v2``): ``card.extra["hf_family"]`` says which."""

    #: what :meth:`predict_queries` captures (the Internals dock's capture kinds)
    query_kinds = (QUERY_CLASSES, QUERY_ATTENTION, QUERY_BOXES)

    def __init__(self, card: Any) -> None:
        super().__init__(card)
        fam = str(card.extra.get("hf_family", "detr"))
        if fam not in _FAMILIES:
            raise SegviewerError(f"{card.id}: {fam!r} is not a transformers detector segviewer knows ({', '.join(_FAMILIES)})")
        self.family = fam
        self.model_types = (fam,)

    def _model_class(self) -> Any:
        if self.family == "detr":
            from transformers import DetrForObjectDetection

            return DetrForObjectDetection
        if self.family == "rt_detr_v2":
            from transformers import RTDetrV2ForObjectDetection

            return RTDetrV2ForObjectDetection
        from transformers import RTDetrForObjectDetection

        return RTDetrForObjectDetection

    def _processor_class(self) -> Any:
        if self.family == "detr":
            from transformers import DetrImageProcessor

            return DetrImageProcessor
        from transformers import RTDetrImageProcessor

        return RTDetrImageProcessor

    def _load_processor(self, folder: Path, allow_download: bool | None) -> Any:
        cls = self._processor_class()
        if not (folder / "preprocessor_config.json").is_file():
            return self._default_processor()
        return cls.from_pretrained(str(folder), local_files_only=True)

    def _default_processor(self) -> Any:
        return self._processor_class()(**dict(self._base_card.extra.get("processor", {})))

    def _random_config(self) -> Any:
        """The released architecture (ResNet-50 DETR / RT-DETR(v2) r50vd) with ``num_labels`` classes."""
        n = int(self._base_card.extra.get("num_labels", 91))
        labels = {i: f"class {i}" for i in range(n)}
        if self.family == "detr":
            from transformers import DetrConfig, ResNetConfig

            # torchvision-layout ResNet-50 from transformers itself (the hub checkpoint names timm's)
            return DetrConfig(backbone_config=ResNetConfig(out_features=["stage4"]), id2label=labels)
        if self.family == "rt_detr_v2":
            from transformers import RTDetrV2Config

            return RTDetrV2Config(id2label=labels)
        from transformers import RTDetrConfig

        return RTDetrConfig(id2label=labels)

    # ------------------------------------------------------------------ predicting

    def predict(self, image: np.ndarray, params: PredictParams | None = None,
                timings: Timings | None = None) -> Detections:
        """Detections above ``params.min_score`` in ``image``'s pixels, best first."""
        return self._run(image, params, timings, capture=False)[0]

    def predict_queries(self, image: np.ndarray, params: PredictParams | None = None,
                        timings: Timings | None = None) -> tuple[Detections, QueryInternals]:
        """The same detections and, from the same pass, every query's prediction and attention."""
        det, internals = self._run(image, params, timings, capture=True)
        assert internals is not None
        return det, internals

    def _run(self, image: np.ndarray, params: PredictParams | None, timings: Timings | None,
             capture: bool) -> tuple[Detections, QueryInternals | None]:
        import torch

        model, dev = self._require_loaded()
        img = check_image(image)
        params = params or PredictParams()
        tm = timings if timings is not None else Timings()
        h, w = img.shape[:2]
        got: dict[str, Any] = {}
        handles = []
        try:
            with torch.inference_mode():
                with tm.stage("preprocess"):
                    inputs = self._inputs(img)
                with tm.stage("model"):
                    if capture:
                        handles = self._hooks(model, got)
                    if capture and self.family == "detr":
                        with eager_attention(model):
                            out = model(**inputs, output_attentions=True)
                    else:
                        out = model(**inputs)
                    if dev.startswith("cuda"):
                        torch.cuda.synchronize()
                with tm.stage("postprocess"):
                    thr = float(params.min_score)
                    res = self.processor.post_process_object_detection(out, threshold=thr, target_sizes=[(h, w)])[0]
                    queries = self._query_index(out.logits[0], thr)
                    scores = _np(res["scores"])
                    if len(queries) != len(scores):
                        raise SegviewerError(f"{self.card.id}: {len(scores)} detections but {len(queries)} queries above the threshold")
                    order = np.argsort(-scores, kind="stable")[: int(params.max_detections)]
                    boxes = _np(res["boxes"]).reshape(-1, 4)[order]
                    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, w)
                    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, h)
                    det = Detections((h, w), boxes, scores[order], _np(res["labels"], np.int32)[order],
                                     self.card.categories)
                    internals = self._internals(out, inputs, got, queries[order], (h, w)) if capture else None
        except torch.cuda.OutOfMemoryError as err:
            raise self._oom(err, img) from err
        finally:
            for hd in handles:
                hd.remove()
        return det, internals

    def _query_index(self, logits: Any, threshold: float) -> np.ndarray:
        """The query behind each detection the processor returns, in its order (it does not say).

        DETR: queries whose best real class beats the threshold, in query order. RT-DETR(v2): the top
        ``Q`` of all query x class sigmoid scores, so one query may give several detections.
        """
        import torch

        if self.family == "detr":
            scores = torch.softmax(logits, -1)[:, :-1].max(-1).values
            return torch.nonzero(scores > threshold).flatten().cpu().numpy().astype(np.int64)
        q, c = logits.shape
        scores, index = torch.topk(torch.sigmoid(logits).flatten(), q)
        return (index[scores > threshold] // c).cpu().numpy().astype(np.int64)

    def _hooks(self, model: Any, got: dict[str, Any]) -> list[Any]:
        if self.family == "detr":
            def keep_shape(_mod: Any, _inp: Any, out: Any) -> None:
                got["feature_hw"] = tuple(int(s) for s in out.shape[-2:])

            return [model.model.input_projection.register_forward_hook(keep_shape)]
        layer = model.model.decoder.layers[-1]
        if self.family == "rt_detr_v2":
            return self._hooks_v2(layer.encoder_attn, got)

        def keep_sampling(_mod: Any, args: tuple) -> None:
            # MultiScaleDeformableAttention(value, shapes, shapes_list, level_start, locations, weights, step)
            got["level_shapes"] = tuple((int(a), int(b)) for a, b in args[2])
            got["locations"] = args[4][0].detach().float().cpu().numpy()
            got["weights"] = args[5][0].detach().float().cpu().numpy()

        return [layer.encoder_attn.attn.register_forward_pre_hook(keep_sampling)]

    @staticmethod
    def _hooks_v2(attn: Any, got: dict[str, Any]) -> list[Any]:
        """RT-DETRv2's last-layer deformable attention: its points rebuilt as the module builds them
        (``reference + offset * (1 / points) * box size * offset_scale``), its softmaxed weights
        from its own output."""
        raw: dict[str, Any] = {}

        def keep_inputs(_mod: Any, _args: tuple, kwargs: dict[str, Any]) -> None:
            raw["reference"] = kwargs["reference_points"]
            raw["shapes"] = tuple((int(a), int(b)) for a, b in kwargs["spatial_shapes_list"])

        def keep_offsets(_mod: Any, _inp: Any, out: Any) -> None:
            raw["offsets"] = out

        def keep_weights(mod: Any, _args: tuple, _kwargs: dict[str, Any], out: Any) -> None:
            ref, off = raw["reference"], raw["offsets"]
            b, q = off.shape[:2]
            levels, points = mod.n_levels, mod.n_points
            off = off.view(b, q, mod.n_heads, levels * points, 2)
            if ref.shape[-1] != 4:  # RT-DETRv2's decoder always passes boxes; anything else: no sampling shown
                return
            scale = mod.n_points_scale.to(dtype=off.dtype).unsqueeze(-1)
            loc = ref[:, :, None, :, :2] + off * scale * ref[:, :, None, :, 2:] * mod.offset_scale
            got["level_shapes"] = raw["shapes"]
            got["locations"] = loc.reshape(b, q, mod.n_heads, levels, points, 2)[0].detach().float().cpu().numpy()
            got["weights"] = out[1].reshape(b, q, mod.n_heads, levels, points)[0].detach().float().cpu().numpy()

        return [attn.register_forward_pre_hook(keep_inputs, with_kwargs=True),
                attn.sampling_offsets.register_forward_hook(keep_offsets),
                attn.register_forward_hook(keep_weights, with_kwargs=True)]

    def _internals(self, out: Any, inputs: Any, got: dict[str, Any], selected: np.ndarray,
                   size: tuple[int, int]) -> QueryInternals:
        from transformers.image_transforms import center_to_corners_format

        h, w = size
        boxes = _np(center_to_corners_format(out.pred_boxes[0])) * np.array([w, h, w, h], np.float32)
        pv = inputs["pixel_values"]
        ph, pw = int(pv.shape[-2]), int(pv.shape[-1])
        mask = inputs.get("pixel_mask")
        vh, vw = (ph, pw) if mask is None else (int(mask[0].any(1).sum()), int(mask[0].any(0).sum()))
        attention = sampling = None
        layers = 0
        if self.family == "detr":
            cross = out.cross_attentions
            if cross:
                layers = len(cross)
                fh, fw = got["feature_hw"]
                a = cross[-1][0]  # (heads, Q, fh * fw)
                a = a.reshape(a.shape[0], a.shape[1], fh, fw).permute(1, 0, 2, 3)
                ch, cw = min(fh, math.ceil(vh * fh / ph)), min(fw, math.ceil(vw * fw / pw))
                attention = a[:, :, :ch, :cw].float().cpu().numpy().astype(np.float16)
        elif "locations" in got:
            layers = len(self.module.model.decoder.layers)
            sampling = DeformableSampling(got["locations"].astype(np.float32), got["weights"].astype(np.float32),
                                          got["level_shapes"])
        return QueryInternals(
            family=self.family, image_size=size, input_size=(vh, vw), categories=self.card.categories,
            class_logits=_np(out.logits[0]), no_object=self.family == "detr", selected=selected,
            boxes=boxes, attention=attention, sampling=sampling, layer=layers - 1,
        )
