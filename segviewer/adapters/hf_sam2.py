"""SAM 2 (Hugging Face transformers): promptable masks on images, and objects tracked through a video.

Three ways in, one model:

* :meth:`HFSam2.prompt`: positive / negative click points and / or a box on an image give the three
  candidate masks of SAM's multimask output with their predicted IoUs (or one mask); the image
  embedding is cached, so the next click on the same image only runs the small mask decoder;
* :meth:`HFSam2.predict` (the adapter interface, what ``segviewer predict`` runs): with a
  ``points`` and / or ``box`` prompt in ``params.extra`` (``segviewer predict --set points=320,240
  --set box=10,20,200,180``), that prompt's best candidate (or all three with ``candidates=all``),
  scored by predicted IoU; else "segment everything" -- a grid of single-point prompts, candidates kept by predicted IoU and stability,
  then non-maximum suppression, as SAM's automatic mask generator does (one crop layer, no
  post-hoc hole filling). Detections of class ``object`` scored by predicted IoU;
* :meth:`HFSam2.track`: prompts on one or more frames, then each later frame in order through
  ``Sam2VideoModel``'s streaming inference (memory of past frames); per frame a Detections whose
  ``instance_ids`` are the prompt's object ids (tracked colours). Needs a video checkpoint
  (``model_type`` ``sam2_video``, as ``facebook/sam2.1-*`` are); frames before a prompt are not
  tracked backwards.

Coordinates: points ``(x, y)`` and boxes xyxy in the image's pixels; masks at the image's size.
The processor's ``post_process_masks`` upsamples SAM's 256 x 256 mask logits to the image.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.adapters._convert import check_image
from segviewer.adapters.base import ModelCard, PredictParams, ProgressCallback
from segviewer.adapters.hf_base import HFAdapter
from segviewer.adapters.hf_loading import check_checkpoint_dir, load_pretrained
from segviewer.core.errors import CheckpointMismatchError, SegviewerError
from segviewer.core.results import Detections, MaskSet
from segviewer.core.timing import Timings

__all__ = ["HFSam2", "PromptMasks", "ObjectPrompt", "CATEGORIES", "parse_points", "parse_box"]

CATEGORIES = ("object",)
# point prompts per decoder call in "segment everything": each prompt gets its own copy of the
# image embedding and upscaled features; 16 peaked at 2.0 GB, 64 at 4.0 GB (bench/families.py, CPU)
_BATCH = 16


@dataclass(frozen=True, eq=False)
class PromptMasks:
    """SAM's answer to one prompt: ``masks`` (3 candidates with multimask output, else 1) at the
    image's size, each with its predicted IoU; ``best`` is the candidate with the highest one;
    ``low_res_logits`` ``(K, 256, 256)`` float32 are what a refining prompt can pass back."""

    masks: MaskSet
    ious: np.ndarray
    low_res_logits: np.ndarray

    @property
    def best(self) -> int:
        return int(np.argmax(self.ious)) if len(self.ious) else -1

    def detections(self, which: int | None = None) -> Detections:
        """One candidate (the best by default) as a Detections of class ``object`` (layers, export)."""
        i = self.best if which is None else int(which)
        m = self.masks.select(np.array([i]))
        return Detections(m.image_size, m.crop_boxes(), self.ious[[i]], np.zeros(1, np.int32), CATEGORIES, masks=m)


@dataclass(frozen=True)
class ObjectPrompt:
    """A prompt for one tracked object: click points ``(x, y, positive)`` and / or a box on ``frame``."""

    obj_id: int
    frame: int
    points: tuple[tuple[float, float, bool], ...] = ()
    box: tuple[float, float, float, float] | None = None


def parse_points(value: Any) -> tuple[tuple[float, float, bool], ...]:
    """Click points from a ``--set points=...`` value: ``"x,y"`` (positive) or ``"x,y,-"`` (negative,
    also ``0``) joined by ``;`` or spaces, or a JSON list of ``[x, y]`` / ``[x, y, label]``."""
    items: list[Any]
    if isinstance(value, str):
        items = [p.split(",") for p in value.replace(";", " ").split()]
    elif isinstance(value, (list, tuple)):  # one [x, y(, label)] or a list of them
        items = [list(value)] if value and not isinstance(value[0], (list, tuple)) else [list(v) for v in value]
    else:
        items = []
    out = []
    for it in items:
        if len(it) not in (2, 3):
            raise SegviewerError(f"a SAM point is x,y or x,y,+/- ; got {value!r}")
        try:
            x, y = float(it[0]), float(it[1])
        except (TypeError, ValueError):
            raise SegviewerError(f"a SAM point is x,y or x,y,+/- ; got {value!r}") from None
        label = str(it[2]).strip() if len(it) == 3 else "+"
        if label not in ("+", "-", "1", "0", "True", "False"):
            raise SegviewerError(f"a SAM point's label is + or - (1 or 0); got {label!r}")
        out.append((x, y, label in ("+", "1", "True")))
    if not out:
        raise SegviewerError(f"no SAM point in {value!r}; give x,y or x,y,- (several joined by ;)")
    return tuple(out)


def parse_box(value: Any) -> tuple[float, float, float, float]:
    """A box from a ``--set box=x0,y0,x1,y1`` value (or a JSON list)."""
    parts = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else []
    try:
        box = tuple(float(v) for v in parts)
    except (TypeError, ValueError):
        box = ()
    if len(box) != 4:
        raise SegviewerError(f"a SAM box is x0,y0,x1,y1 in pixels; got {value!r}")
    return box  # type: ignore[return-value]


def _prompt_lists(points: Sequence[tuple[float, float, bool]], box: Sequence[float] | None) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if points:
        kw["input_points"] = [[[[float(x), float(y)] for x, y, _ in points]]]
        kw["input_labels"] = [[[1 if pos else 0 for _, _, pos in points]]]
    if box is not None:
        x0, y0, x1, y1 = (float(v) for v in box)
        if not (x1 > x0 and y1 > y0):
            raise SegviewerError(f"a SAM box needs x1 > x0 and y1 > y0, got {tuple(box)}")
        kw["input_boxes"] = [[[x0, y0, x1, y1]]]
    if not kw:
        raise SegviewerError("SAM needs at least one point or a box to segment")
    return kw


class HFSam2(HFAdapter):
    """SAM 2 behind the adapter interface (plus :meth:`prompt` and :meth:`track`)."""
    params_keys: tuple[str, ...] = ("points", "box", "candidates", "points_per_side", "pred_iou_thresh", "stability_thresh", "nms_iou")  # the PredictParams.extra keys it reads (--set checks them)

    model_types = ("sam2", "sam2_video")

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        self._cache: tuple[str, Any, list[list[int]]] | None = None
        self._video: tuple[Any, Any] | None = None

    def _model_class(self) -> Any:
        from transformers import Sam2Model

        return Sam2Model

    def _load_processor(self, folder: Path, allow_download: bool | None) -> Any:
        from transformers import Sam2ImageProcessor, Sam2Processor

        return Sam2Processor(image_processor=Sam2ImageProcessor.from_pretrained(str(folder), local_files_only=True))

    def _default_processor(self) -> Any:
        from transformers import Sam2ImageProcessor, Sam2Processor

        return Sam2Processor(image_processor=Sam2ImageProcessor(**dict(self._base_card.extra.get("processor", {}))))

    def _random_config(self) -> Any:
        """Hiera-T (the transformers default SAM 2 configuration)."""
        from transformers import Sam2Config

        return Sam2Config()

    def load(self, device: str, weights: Path | None = None, progress: ProgressCallback | None = None,
             *, allow_download: bool | None = None) -> None:
        """As every transformers family; the classes are SAM's one: ``object``."""
        super().load(device, weights, progress, allow_download=allow_download)
        self.card = dataclasses.replace(self.card, categories=CATEGORIES)
        self._cache = None
        self._video = None

    # ------------------------------------------------------------------ prompts

    def _embedding(self, img: np.ndarray, tm: Timings) -> tuple[Any, list[list[int]]]:
        """The image embedding (cached by the image's bytes: a second click costs only the decoder)."""
        key = hashlib.blake2b(img.tobytes(), digest_size=16).hexdigest() + str(img.shape)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1], self._cache[2]
        model, _ = self._require_loaded()
        with tm.stage("preprocess"):
            inputs = self._inputs(img)
        with tm.stage("model"):
            emb = model.get_image_embeddings(inputs["pixel_values"])
        sizes = [[int(v) for v in s] for s in inputs["original_sizes"].tolist()]
        self._cache = (key, emb, sizes)
        return emb, sizes

    def prompt(self, image: np.ndarray, points: Sequence[tuple[float, float, bool]] = (),
               box: Sequence[float] | None = None, multimask: bool = True,
               timings: Timings | None = None) -> PromptMasks:
        """Masks for click ``points`` ``(x, y, positive)`` and / or a ``box`` (xyxy) on ``image``."""
        import torch

        model, dev = self._require_loaded()
        img = check_image(image)
        tm = timings if timings is not None else Timings()
        kw = _prompt_lists(points, box)
        try:
            with torch.inference_mode():
                emb, sizes = self._embedding(img, tm)
                with tm.stage("model"):
                    enc = self.processor(original_sizes=sizes, return_tensors="pt", **kw)
                    enc = {k: v.to(dev) for k, v in enc.items() if k.startswith("input_")}
                    out = model(image_embeddings=emb, multimask_output=multimask, **enc)
                with tm.stage("postprocess"):
                    full = self.processor.post_process_masks(out.pred_masks.cpu(), sizes, binarize=True)[0][0]
                    return PromptMasks(MaskSet.from_full(full.numpy()), out.iou_scores[0, 0].float().cpu().numpy(),
                                       out.pred_masks[0, 0].float().cpu().numpy())
        except torch.cuda.OutOfMemoryError as err:
            raise self._oom(err, img) from err

    # ------------------------------------------------------------------ segment everything

    def predict(self, image: np.ndarray, params: PredictParams | None = None,
                timings: Timings | None = None) -> Detections:
        """"Segment everything": a ``points_per_side`` grid of point prompts (default 16), each
        candidate kept when its predicted IoU >= ``pred_iou_thresh`` (0.8) and ``params.min_score``
        and its stability >= ``stability_thresh`` (0.95), then NMS at ``nms_iou`` (0.7) on the boxes
        (all in ``params.extra``)."""
        import torch
        from torchvision.ops import nms

        model, dev = self._require_loaded()
        img = check_image(image)
        params = params or PredictParams()
        tm = timings if timings is not None else Timings()
        extra = dict(params.extra)
        if "points" in extra or "box" in extra:
            pts = parse_points(extra["points"]) if "points" in extra else ()
            box = parse_box(extra["box"]) if "box" in extra else None
            which = str(extra.get("candidates", "best"))
            if which not in ("best", "all"):
                raise SegviewerError(f"candidates is best or all, got {which!r}")
            pm = self.prompt(img, pts, box, multimask=True, timings=tm)
            if which == "best":
                return pm.detections()
            order = np.argsort(-pm.ious, kind="stable")
            masks = pm.masks.select(order)
            return Detections(masks.image_size, masks.crop_boxes(), pm.ious[order].astype(np.float32),
                              np.zeros(len(order), np.int32), CATEGORIES, masks=masks)
        n = int(extra.get("points_per_side", 16))
        if n < 1:
            raise SegviewerError(f"points_per_side must be at least 1, got {n}")
        iou_thr = max(float(extra.get("pred_iou_thresh", 0.8)), float(params.min_score))
        stab_thr = float(extra.get("stability_thresh", 0.95))
        h, w = img.shape[:2]
        grid = (np.arange(n) + 0.5) / n
        pts = np.stack(np.meshgrid(grid * w, grid * h), -1).reshape(-1, 1, 2)
        try:
            with torch.inference_mode():
                emb, sizes = self._embedding(img, tm)
                logits, scores = [], []
                with tm.stage("model"):
                    for i in range(0, len(pts), _BATCH):
                        chunk = pts[i:i + _BATCH]
                        enc = self.processor(original_sizes=sizes, input_points=[chunk.tolist()],
                                             input_labels=[[[1]] * len(chunk)], return_tensors="pt")
                        out = model(image_embeddings=emb, multimask_output=True,
                                    input_points=enc["input_points"].to(dev), input_labels=enc["input_labels"].to(dev))
                        logits.append(out.pred_masks[0].flatten(0, 1))
                        scores.append(out.iou_scores[0].flatten())
                with tm.stage("postprocess"):
                    lg, sc = torch.cat(logits), torch.cat(scores).float()
                    stability = (lg > 1.0).flatten(1).sum(1) / (lg > -1.0).flatten(1).sum(1).clamp_min(1)
                    keep = (sc >= iou_thr) & (stability >= stab_thr)
                    lg, sc = lg[keep], sc[keep]
                    if not len(sc):
                        return Detections((h, w), np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                                          np.zeros(0, np.int32), CATEGORIES, masks=MaskSet((h, w), (), np.zeros((0, 2))))
                    full = self.processor.post_process_masks(lg[None, None].cpu(), sizes, binarize=True)[0][0]
                    nonempty = full.flatten(1).any(1)
                    full, sc = full[nonempty], sc.cpu()[nonempty]
                    masks = MaskSet.from_full(full.numpy())
                    boxes = torch.from_numpy(masks.crop_boxes())
                    order = nms(boxes, sc, float(extra.get("nms_iou", 0.7)))[: int(params.max_detections)].numpy()
                    masks = masks.select(order)
                    return Detections((h, w), boxes.numpy()[order], sc.numpy()[order], np.zeros(len(order), np.int32),
                                      CATEGORIES, masks=masks)
        except torch.cuda.OutOfMemoryError as err:
            raise self._oom(err, img) from err

    # ------------------------------------------------------------------ video

    def _video_parts(self) -> tuple[Any, Any]:
        """``Sam2VideoModel`` and its processor, from the same checkpoint (loaded on first use)."""
        if self._video is not None:
            return self._video
        from transformers import (
            Sam2ImageProcessor,
            Sam2VideoModel,
            Sam2VideoProcessor,
            Sam2VideoVideoProcessor,
        )

        _, dev = self._require_loaded()
        folder = self.weights_path
        if folder is None:
            from transformers import Sam2VideoConfig

            model = Sam2VideoModel(Sam2VideoConfig())
            proc = Sam2VideoProcessor(image_processor=self.processor.image_processor,
                                      video_processor=Sam2VideoVideoProcessor())
        else:
            config = check_checkpoint_dir(folder, self.model_types, self.card.id)
            if config.get("model_type") != "sam2_video":
                raise CheckpointMismatchError(
                    f"{folder.name} is an image-only SAM 2 checkpoint (model_type sam2); tracking through a video "
                    "needs a sam2_video checkpoint (its memory modules), as facebook/sam2.1-* are")
            model = load_pretrained(Sam2VideoModel, folder, self.card.id)
            image_proc = Sam2ImageProcessor.from_pretrained(str(folder), local_files_only=True)
            proc = Sam2VideoProcessor(image_processor=image_proc, video_processor=Sam2VideoVideoProcessor(
                size=dict(image_proc.size), image_mean=image_proc.image_mean, image_std=image_proc.image_std))
        model.eval().to(dev)
        self._video = (model, proc)
        return self._video

    def track(self, frames: Iterable[np.ndarray], prompts: Sequence[ObjectPrompt],
              timings: Timings | None = None) -> Iterator[tuple[int, Detections]]:
        """Each frame from the first prompted one on, with the prompted objects' masks.

        ``frames`` is consumed in order (a list or a reader's iterator; frames are never all held).
        Yields ``(frame_index, Detections)``: one detection per object SAM sees on that frame
        (objects it judges absent are left out), ``instance_ids`` the prompts' ``obj_id``, scores
        the object presence probability.
        """
        import torch

        if not prompts:
            raise SegviewerError("tracking needs at least one prompt (points or a box on a frame)")
        model, proc = self._video_parts()
        _, dev = self._require_loaded()
        tm = timings if timings is not None else Timings()
        by_frame: dict[int, list[ObjectPrompt]] = {}
        for p in prompts:
            by_frame.setdefault(int(p.frame), []).append(p)
        first = min(by_frame)
        with torch.inference_mode():
            session = proc.init_video_session(inference_device=dev)
            for idx, frame in enumerate(frames):
                if idx < first:
                    continue
                img = check_image(frame)
                h, w = img.shape[:2]
                with tm.stage("preprocess"):
                    inputs = proc(images=img, device=dev, return_tensors="pt", input_data_format="channels_last")
                size = [int(v) for v in inputs["original_sizes"][0]]
                here = by_frame.get(idx, ())
                for p in here:
                    kw = _prompt_lists(p.points, p.box)
                    # the streaming session numbers the frames it has been given, from 0
                    proc.add_inputs_to_inference_session(session, frame_idx=idx - first, obj_ids=int(p.obj_id),
                                                         original_size=size, **kw)
                if here:  # each call replaces the session's list of newly prompted objects: name them all
                    session.obj_with_new_inputs = [int(p.obj_id) for p in here]
                with tm.stage("model"):
                    out = model(inference_session=session, frame=inputs["pixel_values"][0])
                with tm.stage("postprocess"):
                    full = proc.post_process_masks([out.pred_masks.cpu()], original_sizes=[size], binarize=True)[0]
                    present = (out.object_score_logits.float().flatten().cpu() > 0).numpy()
                    full = full[:, 0].numpy()
                    keep = present & full.reshape(len(full), -1).any(1)
                    masks = MaskSet.from_full(full[keep])
                    ids = np.asarray(out.object_ids, np.int64)[keep]
                    prob = torch.sigmoid(out.object_score_logits.float().flatten()).cpu().numpy()[keep]
                yield idx, Detections((h, w), masks.crop_boxes(), prob, np.zeros(len(ids), np.int32), CATEGORIES,
                                      masks=masks, instance_ids=ids)
