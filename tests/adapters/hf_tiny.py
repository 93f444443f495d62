"""Tiny random-weight transformers checkpoints, built from configs and written with save_pretrained
(model + processor), so the transformers families are tested offline in well under a second each.

Each builder returns the folder; the model is seeded so a folder is the same on every run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

transformers = pytest.importorskip("transformers")

CATS = ("cat", "dog", "sky", "grass")
DETR_CATS = ("N/A", "cat", "dog", "bird")


def _labels(names: tuple[str, ...]) -> dict[str, Any]:
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


def _save(model: Any, processor: Any, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _swin() -> Any:
    return transformers.SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4,
                                   out_features=["stage1", "stage2", "stage3", "stage4"])


def detr(folder: Path, seed: int = 0) -> Path:
    import torch

    torch.manual_seed(seed)
    bb = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 32], depths=[1, 1, 1, 1],
                                   layer_type="basic", out_features=["stage4"])
    cfg = transformers.DetrConfig(backbone_config=bb, d_model=32, encoder_layers=1, decoder_layers=2,
                                  encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                                  decoder_ffn_dim=32, num_queries=12, **_labels(DETR_CATS))
    proc = transformers.DetrImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})
    return _save(transformers.DetrForObjectDetection(cfg).eval(), proc, folder)


def rt_detr(folder: Path, seed: int = 0) -> Path:
    import torch

    torch.manual_seed(seed)
    bb = transformers.RTDetrResNetConfig(embedding_size=8, hidden_sizes=[16, 16, 32, 32], depths=[1, 1, 1, 1],
                                         out_features=["stage2", "stage3", "stage4"])
    cfg = transformers.RTDetrConfig(
        backbone_config=bb, d_model=32, encoder_hidden_dim=32, encoder_in_channels=[16, 32, 32],
        encoder_ffn_dim=32, decoder_ffn_dim=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, num_queries=10, decoder_in_channels=[32, 32, 32], num_denoising=0,
        **_labels(CATS))
    proc = transformers.RTDetrImageProcessor(size={"height": 64, "width": 64})
    return _save(transformers.RTDetrForObjectDetection(cfg).eval(), proc, folder)


def rt_detr_v2(folder: Path, seed: int = 0) -> Path:
    import torch

    torch.manual_seed(seed)
    bb = transformers.RTDetrResNetConfig(embedding_size=8, hidden_sizes=[16, 16, 32, 32], depths=[1, 1, 1, 1],
                                         out_features=["stage2", "stage3", "stage4"])
    cfg = transformers.RTDetrV2Config(
        backbone_config=bb, d_model=32, encoder_hidden_dim=32, encoder_in_channels=[16, 32, 32],
        encoder_ffn_dim=32, decoder_ffn_dim=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, num_queries=10, decoder_in_channels=[32, 32, 32], num_denoising=0,
        **_labels(CATS))
    proc = transformers.RTDetrImageProcessor(size={"height": 64, "width": 64})
    return _save(transformers.RTDetrV2ForObjectDetection(cfg).eval(), proc, folder)


def _confident(model: Any, names: tuple[str, ...], factor: float = 40.0) -> Any:
    """Scale the class and mask heads so that a random model's queries are sure of themselves
    (probabilities near 0 or 1), as trained ones are: the panoptic merge then keeps segments."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(names) and name.endswith("weight"):
                p.mul_(factor)
    return model


def mask2former(folder: Path, seed: int = 0) -> Path:
    import torch

    torch.manual_seed(seed)
    cfg = transformers.Mask2FormerConfig(
        backbone_config=_swin(), feature_size=32, mask_feature_size=32, hidden_dim=32, encoder_feedforward_dim=64,
        dim_feedforward=64, encoder_layers=1, decoder_layers=3, num_attention_heads=2, num_queries=8,
        **_labels(CATS))
    proc = transformers.Mask2FormerImageProcessor(size={"shortest_edge": 64, "longest_edge": 128})
    model = _confident(transformers.Mask2FormerForUniversalSegmentation(cfg).eval(),
                       ("class_predictor.weight", "mask_embedder.2.0.weight"))
    return _save(model, proc, folder)


def oneformer(folder: Path, seed: int = 0) -> Path:
    import torch

    torch.manual_seed(seed)
    cfg = transformers.OneFormerConfig(
        backbone_config=_swin(), conv_dim=32, mask_dim=32, hidden_dim=32, encoder_feedforward_dim=64,
        dim_feedforward=64, encoder_layers=1, decoder_layers=3, num_attention_heads=2, num_queries=8,
        text_encoder_width=32, text_encoder_num_layers=1, text_encoder_vocab_size=100,
        text_encoder_context_length=16, task_seq_len=16, is_training=False, **_labels(CATS))
    image_proc = transformers.OneFormerImageProcessor(size={"shortest_edge": 64, "longest_edge": 128}, num_text=4)
    proc = transformers.OneFormerProcessor(image_processor=image_proc, tokenizer=transformers.CLIPTokenizer(),
                                           max_seq_length=16, task_seq_length=16)
    model = _confident(transformers.OneFormerForUniversalSegmentation(cfg).eval(),
                       ("decoder.class_embed.weight", "mask_embed.layers.2.0.weight"))
    return _save(model, proc, folder)


def segformer(folder: Path, seed: int = 0) -> Path:
    import torch

    torch.manual_seed(seed)
    cfg = transformers.SegformerConfig(
        num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16], num_attention_heads=[1, 1],
        patch_sizes=[7, 3], strides=[4, 2], decoder_hidden_size=16, **_labels(CATS))
    proc = transformers.SegformerImageProcessor(size={"height": 64, "width": 64})
    return _save(transformers.SegformerForSemanticSegmentation(cfg).eval(), proc, folder)


SAM_SIZE = 128


def sam2(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers.models.sam2.configuration_sam2 import (
        Sam2HieraDetConfig,
        Sam2MaskDecoderConfig,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    torch.manual_seed(seed)
    s = SAM_SIZE
    bb = Sam2HieraDetConfig(hidden_size=16, image_size=[s, s], blocks_per_stage=[1, 1, 2, 1],
                            embed_dim_per_stage=[16, 32, 64, 128], num_attention_heads_per_stage=[1, 1, 1, 1],
                            window_size_per_stage=[8, 4, 4, 2], global_attention_blocks=[3],
                            window_positional_embedding_background_size=[2, 2])
    vc = Sam2VisionConfig(backbone_config=bb, backbone_channel_list=[128, 64, 32, 16],
                          backbone_feature_sizes=[[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
                          fpn_hidden_size=32)
    cfg = transformers.Sam2Config(
        vision_config=vc,
        prompt_encoder_config=Sam2PromptEncoderConfig(hidden_size=32, image_size=s, patch_size=16, mask_input_channels=4),
        mask_decoder_config=Sam2MaskDecoderConfig(hidden_size=32, mlp_dim=64, num_attention_heads=2,
                                                  iou_head_hidden_dim=32))
    image_proc = transformers.Sam2ImageProcessor(size={"height": s, "width": s},
                                                 mask_size={"height": s // 4, "width": s // 4})
    return _save(transformers.Sam2Model(cfg).eval(), transformers.Sam2Processor(image_processor=image_proc), folder)


BUILDERS = {"detr": detr, "rt_detr": rt_detr, "rt_detr_v2": rt_detr_v2, "mask2former": mask2former, "oneformer": oneformer,
            "segformer": segformer, "sam2": sam2}


def sam2_video(folder: Path, seed: int = 0) -> Path:
    """A tiny SAM 2 *video* checkpoint (memory attention and encoder), as ``facebook/sam2.1-*`` are.

    Widths: the memory encoder's 64 output channels are fixed in transformers, and the hidden size
    must exceed them (object pointers are split into hidden / 64 tokens), hence 128.
    """
    import torch
    from transformers.models.sam2.configuration_sam2 import (
        Sam2HieraDetConfig,
        Sam2MaskDecoderConfig,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    torch.manual_seed(seed)
    s, d = SAM_SIZE, 128
    bb = Sam2HieraDetConfig(hidden_size=16, image_size=[s, s], blocks_per_stage=[1, 1, 2, 1],
                            embed_dim_per_stage=[16, 32, 64, 128], num_attention_heads_per_stage=[1, 1, 1, 1],
                            window_size_per_stage=[8, 4, 4, 2], global_attention_blocks=[3],
                            window_positional_embedding_background_size=[2, 2])
    vc = Sam2VisionConfig(backbone_config=bb, backbone_channel_list=[128, 64, 32, 16],
                          backbone_feature_sizes=[[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
                          fpn_hidden_size=d)
    cfg = transformers.Sam2VideoConfig(
        vision_config=vc.to_dict(),
        prompt_encoder_config=Sam2PromptEncoderConfig(hidden_size=d, image_size=s, patch_size=16,
                                                      mask_input_channels=4).to_dict(),
        mask_decoder_config=Sam2MaskDecoderConfig(hidden_size=d, mlp_dim=64, num_attention_heads=2,
                                                  iou_head_hidden_dim=32).to_dict(),
        image_size=s, num_maskmem=3, memory_attention_hidden_size=d, memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64, memory_attention_rope_feat_sizes=[s // 16, s // 16],
        memory_encoder_hidden_size=d, memory_encoder_output_channels=64, mask_downsampler_embed_dim=d,
        memory_fuser_embed_dim=d, memory_fuser_intermediate_dim=64)
    image_proc = transformers.Sam2ImageProcessor(size={"height": s, "width": s},
                                                 mask_size={"height": s // 4, "width": s // 4})
    proc = transformers.Sam2VideoProcessor(image_processor=image_proc,
                                           video_processor=transformers.Sam2VideoVideoProcessor(size={"height": s, "width": s}))
    model = transformers.Sam2VideoModel(cfg).eval()
    with torch.no_grad():  # a random model judges every object absent: make it see them
        model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(10.0)
    return _save(model, proc, folder)


BUILDERS["sam2_video"] = sam2_video
