"""A small Mask R-CNN for the shapes world, trained from scratch on a CPU.

torchvision's :class:`~torchvision.models.detection.MaskRCNN` with

* a ResNet-18 cut after ``layer3`` (stride 16; ``layer4`` costs the most and our shapes are
  small), with *trainable* batch norm since there are no pretrained statistics to freeze;
* an FPN on strides 4, 8, 16 plus a max-pooled stride 32 level, ``fpn_channels`` wide;
* one anchor size per level matched to the shapes world's object sizes, three aspect ratios;
* fewer RPN proposals and sampled RoIs than COCO needs (a scene has at most a dozen things);
* a narrow box head (``representation`` wide) and a narrow mask head (``mask_channels``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

DEFAULT_CONFIG: dict[str, Any] = {
    "num_classes": 6,
    "fpn_channels": 128,
    "representation": 256,
    "mask_channels": 64,
    "anchor_sizes": [16, 32, 64, 128],
    "min_size": 256,
    "max_size": 256,
}


def build_maskrcnn(config: dict[str, Any] | None = None) -> nn.Module:
    """Build the network described by ``config`` (missing keys take :data:`DEFAULT_CONFIG`)."""
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.models.resnet import resnet18
    from torchvision.ops import MultiScaleRoIAlign
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    cfg = {**DEFAULT_CONFIG, **(config or {})}
    fpn = int(cfg["fpn_channels"])
    trunk = resnet18(weights=None)  # BatchNorm2d, trainable
    backbone = BackboneWithFPN(
        trunk, return_layers={"layer1": "0", "layer2": "1", "layer3": "2"},
        in_channels_list=[64, 128, 256], out_channels=fpn, extra_blocks=LastLevelMaxPool(),
    )
    sizes = tuple((int(s),) for s in cfg["anchor_sizes"])
    anchors = AnchorGenerator(sizes=sizes, aspect_ratios=((0.5, 1.0, 2.0),) * len(sizes))
    box_pool = MultiScaleRoIAlign(featmap_names=["0", "1", "2"], output_size=7, sampling_ratio=2)
    mask_pool = MultiScaleRoIAlign(featmap_names=["0", "1", "2"], output_size=14, sampling_ratio=2)
    rep = int(cfg["representation"])
    mc = int(cfg["mask_channels"])
    n = int(cfg["num_classes"])
    model = MaskRCNN(
        backbone,
        num_classes=None,
        min_size=int(cfg["min_size"]), max_size=int(cfg["max_size"]),
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100,
        rpn_batch_size_per_image=128,
        box_roi_pool=box_pool,
        box_head=TwoMLPHead(fpn * 7 * 7, rep),
        box_predictor=FastRCNNPredictor(rep, n),
        box_batch_size_per_image=128,
        box_detections_per_img=100,
        box_score_thresh=0.05,
        mask_roi_pool=mask_pool,
        mask_head=MaskRCNNHeads(fpn, (mc, mc, mc, mc), 1),
        mask_predictor=MaskRCNNPredictor(mc, mc, n),
    )
    return model
