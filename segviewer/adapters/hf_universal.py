"""Mask2Former and OneFormer (Hugging Face transformers): one checkpoint, three tasks.

The card's task (``panoptic`` for the released COCO / ADE20K checkpoints) is the default;
``params.extra["task"]`` picks ``"panoptic"``, ``"instance"`` or ``"semantic"`` per call (OneFormer is
told the task through its task token, Mask2Former only changes its post-processing). The
processor's own post-processing makes the result:

* panoptic: ``post_process_panoptic_segmentation`` (queries above ``params.extra["threshold"]``,
  default 0.5 as in transformers, merged by their score-weighted mask argmax; stuff classes fused)
  -> :class:`~segviewer.core.results.PanopticMap` (segment ids from 1, 0 is void);
* instance: ``post_process_instance_segmentation`` above ``params.min_score`` -> Detections with
  compact masks and the masks' bounding boxes;
* semantic: ``post_process_semantic_segmentation`` -> SemanticMap; with ``params.extras`` also the
  class probabilities (each pixel's query-mixture, normalised) at the masks' resolution.

Padding: transformers' post-processing resizes the mask logits straight to the image, which is
right only when they cover no padding. For one image the processor resizes to a multiple of 32
(a slight stretch, no padding: ``pixel_mask`` is all ones); where it does pad (bottom and right),
the mask logits are cropped to the unpadded part first, so masks never shift.

:meth:`HFUniversalSegmenter.predict_queries` runs the same pass with the internals captured: every
query's class logits ("no object" last) and mask logits, the last decoder layer's masked
cross-attention per head (a hook asks ``nn.MultiheadAttention`` for per-head weights) over the
feature level it attends to, and for panoptic results the merge traced query by query
(:class:`~segviewer.analysis.queries.MergeTrace`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.adapters._convert import cap_probs, check_image
from segviewer.adapters.base import ModelCard, PredictParams
from segviewer.adapters.hf_base import HFAdapter
from segviewer.adapters.hf_loading import hf_cache_dir, hub_offline
from segviewer.adapters.weights import downloads_allowed
from segviewer.analysis.queries import (
    BELOW_THRESHOLD,
    DROPPED_OVERLAP,
    KEPT,
    NO_OBJECT,
    QUERY_ATTENTION,
    QUERY_CLASSES,
    QUERY_MASKS,
    QUERY_MERGE,
    MergeTrace,
    QueryInternals,
    match_segments,
)
from segviewer.core.errors import SegviewerError
from segviewer.core.results import Detections, MaskSet, PanopticMap, PanopticSegment, Result, SemanticMap
from segviewer.core.timing import Timings

__all__ = ["HFUniversalSegmenter", "TASKS"]

TASKS = ("panoptic", "instance", "semantic")
PANOPTIC_THRESHOLD = 0.5  # transformers' default query score threshold for the panoptic merge
PROBS_MAX_SIDE = 512


def _masks_from(seg: np.ndarray, ids: list[int]) -> MaskSet:
    """Compact masks of the given ids in an id map (one pass per id over the map)."""
    h, w = seg.shape
    crops, offs = [], []
    for sid in ids:
        m = seg == sid
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        if rows.size == 0:
            crops.append(np.zeros((0, 0), bool))
            offs.append((0, 0))
            continue
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        crops.append(m[y0:y1, x0:x1].copy())
        offs.append((x0, y0))
    return MaskSet((h, w), tuple(crops), np.array(offs, np.int32).reshape(-1, 2))


def _instance_queries(logits: np.ndarray, mask_logits: np.ndarray, det: Detections) -> np.ndarray:
    """The query behind each instance (transformers' instance post-processing does not say: it
    takes the top query x class scores, so one query may give several instances). Each instance
    goes to the query with the highest mean ``p(class) x mask probability`` over the instance's
    pixels (at the logits' resolution), among queries whose probability of the instance's class
    reaches its score (the score is that probability x a mask mean, so never more). Mask2Former's
    instance masks are a query's mask thresholded; OneFormer's are the pixels that query wins."""
    import cv2

    from segviewer.analysis.queries import class_distribution

    p = class_distribution(logits, no_object=True)[:, :-1]
    mh, mw = mask_logits.shape[-2:]
    prob = 1.0 / (1.0 + np.exp(-np.asarray(mask_logits, np.float32).reshape(len(mask_logits), -1)))
    out = np.zeros(len(det), np.int64)
    for i in range(len(det)):
        m = cv2.resize(det.masks.full(i).astype(np.uint8), (mw, mh), interpolation=cv2.INTER_NEAREST).ravel() > 0
        c = int(det.class_ids[i])
        inside = prob[:, m].mean(axis=1) if m.any() else np.zeros(len(p), np.float32)
        fit = np.where(p[:, c] >= float(det.scores[i]) - 1e-4, p[:, c] * inside, -1.0)
        out[i] = int(np.argmax(fit))
    return out


class HFUniversalSegmenter(HFAdapter):
    """Mask2Former (``mask2former``) or OneFormer (``oneformer``): ``card.extra["hf_family"]``."""
    params_keys: tuple[str, ...] = ("task", "threshold")  # the PredictParams.extra keys it reads (--set checks them)

    #: what :meth:`predict_queries` captures (the merge only for panoptic results)
    query_kinds = (QUERY_CLASSES, QUERY_ATTENTION, QUERY_MASKS, QUERY_MERGE)

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        fam = str(card.extra.get("hf_family", "mask2former"))
        if fam not in ("mask2former", "oneformer"):
            raise SegviewerError(f"{card.id}: {fam!r} is not a universal segmenter segviewer knows (mask2former, oneformer)")
        self.family = fam
        self.model_types = (fam,)

    # ------------------------------------------------------------------ loading

    def _model_class(self) -> Any:
        import transformers

        return (transformers.Mask2FormerForUniversalSegmentation if self.family == "mask2former"
                else transformers.OneFormerForUniversalSegmentation)

    def _load_processor(self, folder: Path, allow_download: bool | None) -> Any:
        import transformers

        if self.family == "mask2former":
            return transformers.Mask2FormerImageProcessor.from_pretrained(str(folder), local_files_only=True)
        cfg = self._processor_json(folder)
        info = str(cfg.get("class_info_file") or "")
        path = self._class_info(str(cfg.get("repo_path") or ""), info, allow_download) if info else None
        # class_info_file read by us (offline-aware), never fetched by the processor's constructor
        where = {"class_info_file": path.name, "repo_path": str(path.parent)} if path else {"class_info_file": None}
        image_proc = transformers.OneFormerImageProcessor.from_pretrained(str(folder), local_files_only=True, **where)
        if not image_proc.class_info_file:
            image_proc.class_info_file = ""  # its instance post-processing tests `"ade20k" in class_info_file`
        tokenizer = transformers.CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
        seq = {k: int(cfg[k]) for k in ("max_seq_length", "task_seq_length") if k in cfg}
        return transformers.OneFormerProcessor(image_processor=image_proc, tokenizer=tokenizer, **seq)

    @staticmethod
    def _processor_json(folder: Path) -> dict[str, Any]:
        import json

        out: dict[str, Any] = {}
        for name in ("preprocessor_config.json", "processor_config.json"):
            p = folder / name
            if p.is_file():
                data = json.loads(p.read_text(encoding="utf-8"))
                out.update(data.get("image_processor", {}) if isinstance(data.get("image_processor"), dict) else {})
                out.update({k: v for k, v in data.items() if k != "image_processor"})
        return out

    @staticmethod
    def _class_info(repo: str, name: str, allow_download: bool | None) -> Path | None:
        """OneFormer's class metadata (thing ids): beside the repo path, in the HF cache, or
        downloaded (a JSON file, never code) when downloads are on; None when none of these works."""
        local = Path(repo) / name
        if local.is_file():
            return local
        if not repo:
            return None
        for kind in ("datasets", "models"):
            root = hf_cache_dir() / f"{kind}--{repo.replace('/', '--')}"
            ref = root / "refs" / "main"
            if ref.is_file():
                p = root / "snapshots" / ref.read_text(encoding="utf-8").strip() / name
                if p.is_file():
                    return p
        if not downloads_allowed(allow_download) or hub_offline():
            return None
        try:
            from huggingface_hub import hf_hub_download

            return Path(hf_hub_download(repo, name, repo_type="dataset", cache_dir=hf_cache_dir()))
        except Exception:  # noqa: BLE001 - without the metadata every class counts as a thing
            return None

    def _default_processor(self) -> Any:
        import transformers

        settings = dict(self._base_card.extra.get("processor", {}))
        if self.family == "mask2former":
            return transformers.Mask2FormerImageProcessor(**settings)
        image_proc = transformers.OneFormerImageProcessor(**settings)
        image_proc.class_info_file = ""  # no class metadata: see _load_processor
        return transformers.OneFormerProcessor(image_processor=image_proc, tokenizer=transformers.CLIPTokenizer(),
                                               max_seq_length=77, task_seq_length=77)

    def _random_config(self) -> Any:
        """The released Swin-T architecture with ``num_labels`` classes."""
        import transformers

        n = int(self._base_card.extra.get("num_labels", 133))
        labels = {"id2label": {i: f"class {i}" for i in range(n)}}
        swin = transformers.SwinConfig(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
                                       out_features=["stage1", "stage2", "stage3", "stage4"])
        if self.family == "mask2former":
            return transformers.Mask2FormerConfig(backbone_config=swin, **labels)
        return transformers.OneFormerConfig(backbone_config=swin, num_queries=150, is_training=False, **labels)

    def _isthing(self, categories: tuple[str, ...]) -> tuple[bool, ...]:
        meta = getattr(getattr(self.processor, "image_processor", self.processor), "metadata", None)
        if isinstance(meta, dict) and meta.get("thing_ids") is not None:
            things = {int(i) for i in meta["thing_ids"]}
            return tuple(i in things for i in range(len(categories)))
        return super()._isthing(categories)

    # ------------------------------------------------------------------ predicting

    def _task(self, params: PredictParams) -> str:
        task = str(dict(params.extra).get("task", self.card.task))
        if task not in TASKS:
            raise SegviewerError(f"{self.card.id} does {', '.join(TASKS)} segmentation; got task {task!r}")
        return task

    def predict(self, image: np.ndarray, params: PredictParams | None = None, timings: Timings | None = None) -> Result:
        """A panoptic map, instances or a semantic map (see the module docstring) for ``image``."""
        return self._run(image, params, timings, capture=False)[0]

    def predict_queries(self, image: np.ndarray, params: PredictParams | None = None,
                        timings: Timings | None = None) -> tuple[Result, QueryInternals]:
        """The same result and, from the same pass, every query's prediction and attention."""
        res, internals = self._run(image, params, timings, capture=True)
        assert internals is not None
        return res, internals

    def _run(self, image: np.ndarray, params: PredictParams | None, timings: Timings | None,
             capture: bool) -> tuple[Result, QueryInternals | None]:
        import torch

        model, dev = self._require_loaded()
        img = check_image(image)
        params = params or PredictParams()
        tm = timings if timings is not None else Timings()
        task = self._task(params)
        h, w = img.shape[:2]
        got: dict[str, Any] = {}
        handles: list[Any] = []
        try:
            with torch.inference_mode():
                with tm.stage("preprocess"):
                    kw = {"task_inputs": [task]} if self.family == "oneformer" else {}
                    inputs = self._inputs(img, **kw)
                with tm.stage("model"):
                    if capture:
                        handles = self._hooks(model, got)
                    out = model(**inputs)
                    if dev.startswith("cuda"):
                        torch.cuda.synchronize()
                with tm.stage("postprocess"):
                    input_size = self._crop_padding(out, inputs)
                    result, trace = self._post(out, task, params, (h, w))
                    internals = self._internals(out, got, input_size, (h, w), result, trace) if capture else None
        except torch.cuda.OutOfMemoryError as err:
            raise self._oom(err, img) from err
        finally:
            for hd in handles:
                hd.remove()
        return result, internals

    @staticmethod
    def _crop_padding(out: Any, inputs: Any) -> tuple[int, int]:
        """Cut the padded bottom / right off the mask logits; returns the unpadded input size."""
        pv = inputs["pixel_values"]
        ph, pw = int(pv.shape[-2]), int(pv.shape[-1])
        mask = inputs.get("pixel_mask")
        vh, vw = (ph, pw) if mask is None else (int(mask[0].any(1).sum()), int(mask[0].any(0).sum()))
        lg = out.masks_queries_logits
        mh, mw = int(lg.shape[-2]), int(lg.shape[-1])
        ch, cw = min(mh, math.ceil(vh * mh / ph)), min(mw, math.ceil(vw * mw / pw))
        if (ch, cw) != (mh, mw):
            out.masks_queries_logits = lg[..., :ch, :cw].contiguous()
        return vh, vw

    def _stuff_ids(self) -> set[int]:
        isthing = self.card.isthing
        return {i for i, t in enumerate(isthing) if not t} if isthing else set()

    def _post(self, out: Any, task: str, params: PredictParams,
              size: tuple[int, int]) -> tuple[Result, tuple[np.ndarray, float] | None]:
        h, w = size
        proc = self.processor
        cats = self.card.categories
        if task == "semantic":
            labels = proc.post_process_semantic_segmentation(out, target_sizes=[(h, w)])[0]
            lab = labels.cpu().numpy().astype(np.int32)
            if not params.extras:
                return SemanticMap(lab, cats), None
            import torch

            cls = torch.softmax(out.class_queries_logits[0].float(), -1)[:, :-1]
            mix = torch.einsum("qc,qhw->chw", cls, out.masks_queries_logits[0].float().sigmoid())
            probs = (mix / mix.sum(0, keepdim=True).clamp_min(1e-12)).cpu().numpy()
            return SemanticMap(lab, cats, probs=cap_probs(probs, PROBS_MAX_SIDE)), None
        if task == "panoptic":
            thr = float(dict(params.extra).get("threshold", PANOPTIC_THRESHOLD))
            res = proc.post_process_panoptic_segmentation(out, threshold=thr, label_ids_to_fuse=self._stuff_ids(),
                                                          target_sizes=[(h, w)])[0]
            seg = res["segmentation"].cpu().numpy()
            seg = np.where(seg > 0, seg, 0).astype(np.int32)  # -1 everywhere when nothing was found
            infos = list(res["segments_info"])
            areas = np.bincount(seg.ravel(), minlength=max((int(s["id"]) for s in infos), default=0) + 1)
            isthing = self.card.isthing or (True,) * len(cats)
            segments: dict[int, PanopticSegment] = {}
            for s in infos:  # fused stuff queries repeat their segment's id: keep one, best score
                sid, cat = int(s["id"]), int(s["label_id"])
                prev = segments.get(sid)
                score = max(float(s["score"]), prev.score if prev else 0.0)
                segments[sid] = PanopticSegment(sid, cat, bool(isthing[cat]), int(areas[sid]), score)
            pan = PanopticMap(seg, tuple(segments.values()), cats, isthing=self.card.isthing)
            ids = np.array([(int(s["id"]), int(s["label_id"]), float(s["score"])) for s in infos], np.float64)
            return pan, (ids.reshape(-1, 3), thr)
        thr = float(params.min_score)
        if self.family == "mask2former":
            res = proc.post_process_instance_segmentation(out, threshold=thr, target_sizes=[(h, w)],
                                                          return_binary_maps=True)[0]
        else:
            res = proc.post_process_instance_segmentation(out, task_type="instance", threshold=thr,
                                                          target_sizes=[(h, w)])[0]
        infos = sorted(res["segments_info"], key=lambda s: -float(s["score"]))[: int(params.max_detections)]
        seg = res["segmentation"]
        if seg is None or not infos:
            masks = MaskSet((h, w), (), np.zeros((0, 2), np.int32))
        elif seg.ndim == 3:  # one binary map per instance, in segments_info order
            order = {int(s["id"]): i for i, s in enumerate(res["segments_info"])}
            full = seg.cpu().numpy()[[order[int(s["id"])] for s in infos]]
            masks = MaskSet.from_full(full)
        else:
            masks = _masks_from(seg.cpu().numpy(), [int(s["id"]) for s in infos])
        return Detections((h, w), masks.crop_boxes(), np.array([float(s["score"]) for s in infos], np.float32),
                          np.array([int(s["label_id"]) for s in infos], np.int32), cats, masks=masks), None

    # ------------------------------------------------------------------ internals

    def _hooks(self, model: Any, got: dict[str, Any]) -> list[Any]:
        import torch

        module = model.model.transformer_module
        cross = [m for name, m in module.named_modules()
                 if isinstance(m, torch.nn.MultiheadAttention) and "cross_attn" in name and "decoder" in name]
        if not cross:
            return []

        def sizes(_mod: Any, args: tuple, kwargs: dict) -> None:
            feats = kwargs.get("multi_scale_features", args[0] if args else None)
            got["level_shapes"] = [tuple(int(s) for s in f.shape[-2:]) for f in feats]

        def per_head(_mod: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            return args, {**kwargs, "need_weights": True, "average_attn_weights": False}

        def keep(_mod: Any, _args: tuple, _kwargs: dict, out: Any) -> None:
            got["attention"] = out[1]

        last = cross[-1]
        got["layers"] = len(cross)
        return [module.register_forward_pre_hook(sizes, with_kwargs=True),
                last.register_forward_pre_hook(per_head, with_kwargs=True),
                last.register_forward_hook(keep, with_kwargs=True)]

    def _attention(self, got: dict[str, Any], input_size: tuple[int, int], padded: tuple[int, int]) -> np.ndarray | None:
        a = got.get("attention")
        if a is None or a.ndim != 4:
            return None
        a = a[0]  # (heads, Q, HW)
        shape = next((s for s in got.get("level_shapes", []) if s[0] * s[1] == a.shape[-1]), None)
        if shape is None:
            return None
        fh, fw = shape
        a = a.reshape(a.shape[0], a.shape[1], fh, fw).permute(1, 0, 2, 3)
        ch, cw = min(fh, math.ceil(input_size[0] * fh / padded[0])), min(fw, math.ceil(input_size[1] * fw / padded[1]))
        return a[:, :, :ch, :cw].float().cpu().numpy().astype(np.float16)

    def _internals(self, out: Any, got: dict[str, Any], input_size: tuple[int, int], size: tuple[int, int],
                   result: Result, trace: tuple[np.ndarray, float] | None) -> QueryInternals:
        logits = out.class_queries_logits[0].float().cpu().numpy()
        masks = out.masks_queries_logits[0].float().cpu().numpy().astype(np.float16)
        mh, mw = masks.shape[-2:]
        stride = getattr(self.module.config, "common_stride", 4)
        padded = (max(input_size[0], mh * stride), max(input_size[1], mw * stride))
        merge = None
        selected = np.zeros(0, np.int64)
        if trace is not None and isinstance(result, PanopticMap):
            merge = self._merge_trace(logits, trace)
            selected = np.array([int(np.flatnonzero(merge.segment_id == s.id)[0]) for s in result.segments], np.int64)
        elif isinstance(result, Detections) and result.masks is not None:
            selected = _instance_queries(logits, masks, result)
        return QueryInternals(
            family=self.family, image_size=size, input_size=input_size, categories=self.card.categories,
            class_logits=logits, no_object=True, selected=selected, mask_logits=masks,
            attention=self._attention(got, input_size, padded), layer=int(got.get("layers", 0)) - 1, merge=merge,
        )

    @staticmethod
    def _merge_trace(logits: np.ndarray, trace: tuple[np.ndarray, float]) -> MergeTrace:
        from segviewer.analysis.queries import class_distribution

        segs, thr = trace
        p = class_distribution(logits, no_object=True)
        labels, scores = p.argmax(axis=1), p.max(axis=1)
        no_obj = labels == p.shape[1] - 1
        kept = ~no_obj & (scores > thr)
        seg_of = match_segments(labels, scores, kept, [(int(a), int(b), float(c)) for a, b, c in segs])
        fate = np.where(no_obj, NO_OBJECT, np.where(~kept, BELOW_THRESHOLD, np.where(seg_of > 0, KEPT, DROPPED_OVERLAP)))
        return MergeTrace(fate.astype(np.int8), seg_of, thr, 0.8)
