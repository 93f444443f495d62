"""SegFormer (Hugging Face transformers): a semantic map from a Mix Transformer and an all-MLP head.

The processor resizes the image to its fixed input (512 x 512 for the ADE20K checkpoints, aspect
not kept, as the model was trained); the head predicts class logits at a quarter of that. Labels
are what the processor's ``post_process_semantic_segmentation`` computes -- the logits upsampled
bilinearly (half-pixel centres) to the image, then the argmax -- done one class at a time with a
running maximum (:func:`~segviewer.adapters._convert.labels_from_logits`): the processor holds all
150 ADE20K classes at full resolution (184 MB of float32 for 640 x 480) and took 0.6 s where this
takes 0.08 s on one CPU thread; the labels agree but for float rounding at exact ties (1 pixel in
300 000, measured). With ``params.extras`` the softmax probabilities and the logits (float16) are
kept at the head's resolution (long side at most 512), as the torchvision segmenters keep theirs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from segviewer.adapters._convert import cap_probs, check_image, compact_logits, labels_from_logits
from segviewer.adapters.base import ModelCard, PredictParams
from segviewer.adapters.hf_base import HFAdapter
from segviewer.core.results import SemanticMap
from segviewer.core.timing import Timings

__all__ = ["HFSegformer"]

PROBS_MAX_SIDE = 512


class HFSegformer(HFAdapter):
    """SegFormer behind the adapter interface."""

    model_types = ("segformer",)

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)

    def _model_class(self) -> Any:
        from transformers import SegformerForSemanticSegmentation

        return SegformerForSemanticSegmentation

    def _load_processor(self, folder: Path, allow_download: bool | None) -> Any:
        from transformers import SegformerImageProcessor

        if not (folder / "preprocessor_config.json").is_file() and not (folder / "processor_config.json").is_file():
            return self._default_processor()
        return SegformerImageProcessor.from_pretrained(str(folder), local_files_only=True)

    def _default_processor(self) -> Any:
        from transformers import SegformerImageProcessor

        return SegformerImageProcessor(**dict(self._base_card.extra.get("processor", {})))

    def _random_config(self) -> Any:
        """MiT-B0 (the transformers default) with ``num_labels`` classes."""
        from transformers import SegformerConfig

        n = int(self._base_card.extra.get("num_labels", 150))
        return SegformerConfig(id2label={i: f"class {i}" for i in range(n)})

    def predict(self, image: np.ndarray, params: PredictParams | None = None,
                timings: Timings | None = None) -> SemanticMap:
        """Labels at the image's resolution (probabilities and logits only when ``params.extras``)."""
        import torch

        model, dev = self._require_loaded()
        img = check_image(image)
        params = params or PredictParams()
        tm = timings if timings is not None else Timings()
        h, w = img.shape[:2]
        try:
            with torch.inference_mode():
                with tm.stage("preprocess"):
                    inputs = self._inputs(img)
                with tm.stage("model"):
                    out = model(**inputs)
                    if dev.startswith("cuda"):
                        torch.cuda.synchronize()
                with tm.stage("postprocess"):
                    lg = out.logits[0].float()
                    lab = labels_from_logits(lg.cpu().numpy(), (h, w))
                    if not params.extras:
                        return SemanticMap(lab, self.card.categories)
                    probs = cap_probs(torch.softmax(lg, 0).cpu().numpy(), PROBS_MAX_SIDE)
                    return SemanticMap(lab, self.card.categories, probs=probs,
                                       logits=compact_logits(lg.cpu().numpy(), PROBS_MAX_SIDE))
        except torch.cuda.OutOfMemoryError as err:
            raise self._oom(err, img) from err
