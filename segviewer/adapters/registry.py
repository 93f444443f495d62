"""The model registry: the torchvision zoo, the Hugging Face transformers families
(:data:`HF_ZOO`, optional extra), the bundled cards in ``models/*.toml`` (ONNX models among them)
and the cards third-party packages register through the ``segviewer.adapters`` entry-point group
(:mod:`segviewer.adapters.plugins`).

Importing this module does not import torch. The zoo's cards come from torchvision's weight-enum
metadata (categories, keypoint names, file names, metrics; nothing is downloaded); reading it
imports torchvision once, after which it is cached as JSON per torchvision version in
:func:`cache_dir`, so listing models stays instant. Bundled cards are plain TOML. ``create_adapter`` imports the adapter class
named by the card (``module:Class``) and calls ``Class(card)``.

Bundled card schema (``models/<id>.toml``)::

    id = "shapes_maskrcnn"
    task = "instance"           # detection | instance | keypoint | semantic | panoptic | voting
    family = "Mask R-CNN, ResNet-18 FPN (narrow), trained on the shapes world"
    adapter = "segviewer.adapters.shapes:ShapesMaskRCNN"
    categories = ["__background__", "circle", ...]
    isthing = []                # optional, per category
    input_size = [256, 256]     # optional [H, W]
    checkpoint = "shapes_maskrcnn.pt"   # file in models/
    sha256 = "<hex>"
    file_size_mb = 11.2
    description = "one line"
    [training]                  # free-form, kept in card.extra["training"]
    [metrics]                   # name = float
    [onnx]                      # an ONNX model's input and output layout (segviewer.adapters.onnx_runtime)

A card whose family needs an optional extra that is not installed is still listed
(:func:`missing_extra` says which extra), so ``segviewer models`` can say what to install.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any, get_args

from segviewer.adapters.base import ModelAdapter, ModelCard, Task, WeightState
from segviewer.core.errors import SegviewerError
from segviewer.core.fileio import write_json_atomic

__all__ = [
    "ZOO",
    "list_cards",
    "get_card",
    "create_adapter",
    "weight_state",
    "models_dir",
    "bundled_card_problems",
    "parse_card_file",
    "cache_dir",
    "HF_ZOO",
    "missing_extra",
]

_DET = "segviewer.adapters.torchvision_detection:TorchvisionDetector"
_SEG = "segviewer.adapters.torchvision_segmentation:TorchvisionSegmenter"

#: torchvision builder name -> (task, family, adapter). Categories and files come from the weights' meta.
ZOO: dict[str, tuple[Task, str, str]] = {
    "maskrcnn_resnet50_fpn": ("instance", "Mask R-CNN, ResNet-50 FPN", _DET),
    "maskrcnn_resnet50_fpn_v2": ("instance", "Mask R-CNN v2, ResNet-50 FPN", _DET),
    "fasterrcnn_resnet50_fpn": ("detection", "Faster R-CNN, ResNet-50 FPN", _DET),
    "fasterrcnn_resnet50_fpn_v2": ("detection", "Faster R-CNN v2, ResNet-50 FPN", _DET),
    "fasterrcnn_mobilenet_v3_large_fpn": ("detection", "Faster R-CNN, MobileNetV3-Large FPN", _DET),
    "retinanet_resnet50_fpn": ("detection", "RetinaNet, ResNet-50 FPN", _DET),
    "retinanet_resnet50_fpn_v2": ("detection", "RetinaNet v2, ResNet-50 FPN", _DET),
    "fcos_resnet50_fpn": ("detection", "FCOS, ResNet-50 FPN", _DET),
    "ssdlite320_mobilenet_v3_large": ("detection", "SSDlite 320, MobileNetV3-Large", _DET),
    "keypointrcnn_resnet50_fpn": ("keypoint", "Keypoint R-CNN, ResNet-50 FPN", _DET),
    "fcn_resnet50": ("semantic", "FCN, ResNet-50", _SEG),
    "fcn_resnet101": ("semantic", "FCN, ResNet-101", _SEG),
    "deeplabv3_resnet50": ("semantic", "DeepLabV3, ResNet-50", _SEG),
    "deeplabv3_resnet101": ("semantic", "DeepLabV3, ResNet-101", _SEG),
    "deeplabv3_mobilenet_v3_large": ("semantic", "DeepLabV3, MobileNetV3-Large", _SEG),
    "lraspp_mobilenet_v3_large": ("semantic", "LR-ASPP, MobileNetV3-Large", _SEG),
}

_HF_DET = "segviewer.adapters.hf_detr:HFDetector"
_HF_UNI = "segviewer.adapters.hf_universal:HFUniversalSegmenter"
_HF_SEG = "segviewer.adapters.hf_segformer:HFSegformer"
_HF_SAM = "segviewer.adapters.hf_sam2:HFSam2"

#: Hugging Face transformers families (the ``transformers`` extra): id -> task, family, adapter, hub
#: repository, the transformers family, the class count and processor settings a ``--random-init``
#: build gets (the released checkpoint's own config and processor win once it is loaded).
HF_ZOO: dict[str, dict[str, Any]] = {
    "mask2former_swin_tiny_coco_panoptic": {
        "task": "panoptic", "family": "Mask2Former, Swin-T (COCO panoptic, transformers)", "adapter": _HF_UNI,
        "repo": "facebook/mask2former-swin-tiny-coco-panoptic", "hf_family": "mask2former", "num_labels": 133,
        "processor": {"size": {"shortest_edge": 384, "longest_edge": 1333}}},
    "oneformer_swin_tiny_ade20k": {
        "task": "panoptic", "family": "OneFormer, Swin-T (ADE20K, transformers)", "adapter": _HF_UNI,
        "repo": "shi-labs/oneformer_ade20k_swin_tiny", "hf_family": "oneformer", "num_labels": 150,
        "processor": {"size": {"shortest_edge": 512, "longest_edge": 2048}}},
    "detr_resnet50": {
        "task": "detection", "family": "DETR, ResNet-50 (COCO, transformers)", "adapter": _HF_DET,
        "repo": "facebook/detr-resnet-50", "hf_family": "detr", "num_labels": 91,
        "processor": {"size": {"shortest_edge": 800, "longest_edge": 1333}}},
    "rtdetr_r50vd": {
        "task": "detection", "family": "RT-DETR, ResNet-50-vd (COCO, transformers)", "adapter": _HF_DET,
        "repo": "PekingU/rtdetr_r50vd", "hf_family": "rt_detr", "num_labels": 80,
        "processor": {"size": {"height": 640, "width": 640}}},
    "rtdetr_v2_r50vd": {
        "task": "detection", "family": "RT-DETRv2, ResNet-50-vd (COCO, transformers)", "adapter": _HF_DET,
        "repo": "PekingU/rtdetr_v2_r50vd", "hf_family": "rt_detr_v2", "num_labels": 80,
        "processor": {"size": {"height": 640, "width": 640}}},
    "segformer_b0_ade": {
        "task": "semantic", "family": "SegFormer-B0 (ADE20K 512, transformers)", "adapter": _HF_SEG,
        "repo": "nvidia/segformer-b0-finetuned-ade-512-512", "hf_family": "segformer", "num_labels": 150,
        "processor": {"size": {"height": 512, "width": 512}}},
    "sam2_hiera_tiny": {
        "task": "instance", "family": "SAM 2.1, Hiera-T (promptable masks; points or a box, transformers)",
        "adapter": _HF_SAM, "repo": "facebook/sam2.1-hiera-tiny", "hf_family": "sam2", "num_labels": 1,
        "processor": {"size": {"height": 1024, "width": 1024}}},
}

#: optional extra -> the module that tells whether it is installed
_EXTRAS = {"transformers": "transformers", "onnx": "onnxruntime"}

# COCO person skeleton (keypoint index pairs, 0-based, in torchvision's keypoint order).
_COCO_PERSON_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)


def models_dir() -> Path:
    """The repository's top-level ``models/`` folder (cards and small checkpoints); env ``SEGVIEWER_MODELS`` overrides."""
    env = os.environ.get("SEGVIEWER_MODELS")
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / "models"


# --------------------------------------------------------------------------- torchvision zoo


_ZOO_CACHE_SCHEMA = 1


def cache_dir() -> Path:
    """segviewer's own cache folder: ``$SEGVIEWER_CACHE``, else ``$XDG_CACHE_HOME/segviewer``, else ``~/.cache/segviewer``."""
    env = os.environ.get("SEGVIEWER_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "segviewer"


def _meta_from_torchvision(model_id: str) -> dict[str, Any]:
    from segviewer.adapters.runtime import import_torchvision

    import_torchvision()  # without TorchDynamo (1.2 s), which the metadata never needs
    from torchvision.models import get_model_weights

    weights = get_model_weights(model_id).DEFAULT
    meta = weights.meta
    metrics: dict[str, float] = {}
    for values in meta.get("_metrics", {}).values():
        metrics.update({k: float(v) for k, v in values.items()})
    return {
        "categories": list(meta["categories"]),
        "keypoint_names": list(meta.get("keypoint_names", ())),
        "url": weights.url,
        "file_size_mb": float(meta["_file_size"]) if "_file_size" in meta else None,
        "metrics": metrics,
        "datasets": list(meta.get("_metrics", {})),
        "weights_enum": str(weights),
        "num_params": int(meta.get("num_params", 0)),
        "recipe": str(meta.get("recipe", "")),
    }


def _zoo_cache_file() -> Path | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return cache_dir() / f"torchvision-zoo-{version('torchvision')}-v{_ZOO_CACHE_SCHEMA}.json"
    except PackageNotFoundError:
        return None


def _zoo_meta() -> dict[str, dict[str, Any]]:
    """torchvision's weight metadata for the zoo, cached as JSON per torchvision version.

    Reading the metadata imports torchvision (seconds); the cache lets ``segviewer models`` and the
    window's model picker list the zoo without importing torch at all.
    """
    return _zoo_meta_at(_zoo_cache_file())


@functools.lru_cache(maxsize=4)
def _zoo_meta_at(path: Path | None) -> dict[str, dict[str, Any]]:
    if path is not None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and set(ZOO) <= set(data):
                return data
        except (OSError, ValueError):
            pass
    data = {mid: _meta_from_torchvision(mid) for mid in ZOO}
    if path is not None:
        with contextlib.suppress(OSError):  # a read-only cache folder only costs speed
            write_json_atomic(path, data)
    return data


def _zoo_card(model_id: str) -> ModelCard:
    from segviewer.adapters.weights import weights_file_name

    task, family, adapter = ZOO[model_id]
    meta = _zoo_meta()[model_id]
    kps = tuple(meta["keypoint_names"])
    datasets = meta["datasets"]
    dataset = datasets[0] if datasets else "COCO"
    trained_on = "COCO subset, VOC classes" if "VOC" in dataset else "COCO"
    metrics = {str(k): float(v) for k, v in meta["metrics"].items()}
    return ModelCard(
        id=model_id,
        task=task,
        family=f"{family} ({trained_on})",
        categories=tuple(meta["categories"]),
        weights_source="torchvision",
        weights_file=weights_file_name(meta["url"]),
        weights_url=meta["url"],
        keypoint_names=kps,
        skeleton=_COCO_PERSON_SKELETON if len(kps) == 17 else (),
        input_size=(320, 320) if model_id.startswith("ssdlite320") else None,
        file_size_mb=meta["file_size_mb"],
        metrics=metrics,
        description=f"torchvision {meta['weights_enum']}; {dataset}: "
        + ", ".join(f"{k} {v:g}" for k, v in metrics.items()),
        extra={"adapter": adapter, "builder": model_id, "weights_enum": meta["weights_enum"],
               "num_params": meta["num_params"], "metrics_dataset": dataset, "recipe": meta["recipe"]},
    )


# --------------------------------------------------------------------------- bundled cards


def _toml_loads(text: str) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib.loads(text)


def parse_card_file(path: Path) -> ModelCard:
    """Read one bundled card; raises SegviewerError naming the file and the first problem."""
    def bad(msg: str) -> SegviewerError:
        return SegviewerError(f"model card {path.name}: {msg}")

    try:
        data = _toml_loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise bad(f"cannot be read ({err})") from err
    except ValueError as err:  # tomllib.TOMLDecodeError
        raise bad(f"is not valid TOML ({err})") from err
    for key in ("id", "task", "family", "adapter", "categories"):
        if key not in data:
            raise bad(f"the required key {key!r} is missing")
    if data["task"] not in get_args(Task):
        raise bad(f"task {data['task']!r} is not one of {', '.join(get_args(Task))}")
    if ":" not in str(data["adapter"]):
        raise bad(f"adapter {data['adapter']!r} must be 'module:Class'")
    cats = data["categories"]
    if not isinstance(cats, list) or not cats or not all(isinstance(c, str) for c in cats):
        raise bad("categories must be a non-empty list of names")
    isthing = tuple(bool(v) for v in data.get("isthing", ()))
    if isthing and len(isthing) != len(cats):
        raise bad(f"isthing has {len(isthing)} entries for {len(cats)} categories")
    size = data.get("input_size")
    if size is not None and (not isinstance(size, list) or len(size) != 2):
        raise bad("input_size must be [H, W]")
    metrics = data.get("metrics", {})
    try:
        metrics = {str(k): float(v) for k, v in metrics.items()}
    except (TypeError, ValueError, AttributeError):
        raise bad("[metrics] must map names to numbers") from None
    ckpt = data.get("checkpoint")
    extra: dict[str, Any] = {"adapter": str(data["adapter"]), "training": dict(data.get("training", {})),
                             "card_path": str(path)}
    if "onnx" in data:
        if not isinstance(data["onnx"], dict):
            raise bad("[onnx] must be a table (layout, outputs, ...)")
        extra["onnx"] = dict(data["onnx"])
        extra["needs_extra"] = "onnx"
    if ckpt:
        extra["checkpoint_path"] = str((path.parent / str(ckpt)).resolve())
    return ModelCard(
        id=str(data["id"]),
        task=data["task"],
        family=str(data["family"]),
        categories=tuple(cats),
        weights_source="bundled" if ckpt else "none",
        weights_file=str(ckpt) if ckpt else None,
        sha256=data.get("sha256") or None,
        isthing=isthing,
        keypoint_names=tuple(str(k) for k in data.get("keypoint_names", ())),
        input_size=(int(size[0]), int(size[1])) if size else None,
        file_size_mb=float(data["file_size_mb"]) if "file_size_mb" in data else None,
        metrics=metrics,
        description=str(data.get("description", "")),
        extra=extra,
    )


def _bundled() -> tuple[list[ModelCard], list[str]]:
    cards: list[ModelCard] = []
    problems: list[str] = []
    folder = models_dir()
    if not folder.is_dir():
        return cards, problems
    seen: set[str] = set(ZOO) | set(HF_ZOO)
    for path in sorted(folder.glob("*.toml")):
        try:
            card = parse_card_file(path)
        except SegviewerError as err:
            problems.append(str(err))
            continue
        if card.id in seen:
            problems.append(f"model card {path.name}: id {card.id!r} is already taken")
            continue
        seen.add(card.id)
        cards.append(card)
    return cards, problems


def bundled_card_problems() -> list[str]:
    """One line per card in ``models/`` that could not be read, and per plugin that could not be
    loaded (those cards are left out of listings)."""
    cards, problems = _bundled()
    return problems + _plugins({c.id for c in cards})[1]


def _hf_card(model_id: str) -> ModelCard:
    spec = HF_ZOO[model_id]
    repo = str(spec["repo"])
    return ModelCard(
        id=model_id,
        task=spec["task"],
        family=str(spec["family"]),
        categories=(),  # the checkpoint's config.id2label, once loaded
        weights_source="huggingface",
        weights_file=repo,
        weights_url=f"https://huggingface.co/{repo}",
        description=f"Hugging Face transformers, {repo}; class names come from the checkpoint's config",
        extra={"adapter": spec["adapter"], "hf_repo": repo, "hf_family": spec["hf_family"],
               "num_labels": int(spec["num_labels"]), "processor": dict(spec["processor"]),
               "needs_extra": "transformers"},
    )


def _plugins(taken: set[str]) -> tuple[list[ModelCard], list[str]]:
    from segviewer.adapters.plugins import plugin_cards

    return plugin_cards(taken | set(ZOO) | set(HF_ZOO))


def missing_extra(card: ModelCard) -> str | None:
    """The optional extra (``"transformers"``, ``"onnx"``) ``card`` needs and this install lacks, else None."""
    extra = card.extra.get("needs_extra")
    module = _EXTRAS.get(str(extra)) if extra else None
    if module is None:
        return None
    return None if importlib.util.find_spec(module) is not None else str(extra)


# --------------------------------------------------------------------------- public API


def list_cards() -> list[ModelCard]:
    """Every model: the torchvision zoo (in :data:`ZOO` order), the transformers families
    (:data:`HF_ZOO` order), the bundled cards by file name, then plugin cards."""
    bundled = _bundled()[0]
    return ([_zoo_card(mid) for mid in ZOO] + [_hf_card(mid) for mid in HF_ZOO] + bundled
            + _plugins({c.id for c in bundled})[0])


def get_card(model_id: str) -> ModelCard:
    """The card for ``model_id``; an unknown id raises SegviewerError pointing to ``segviewer models``."""
    if model_id in ZOO:
        return _zoo_card(model_id)
    if model_id in HF_ZOO:
        return _hf_card(model_id)
    cards, problems = _bundled()
    for card in cards:
        if card.id == model_id:
            return card
    for p in problems:
        if f"{model_id}.toml" in p:
            raise SegviewerError(p)
    plugged, plugin_problems = _plugins({c.id for c in cards})
    for card in plugged:
        if card.id == model_id:
            return card
    for p in plugin_problems:
        if repr(model_id) in p:
            raise SegviewerError(p)
    raise SegviewerError(f"unknown model {model_id!r}; run `segviewer models` to list the available ones")


def create_adapter(model_id_or_card: str | ModelCard, *, random_init: bool = False) -> ModelAdapter:
    """An unloaded adapter for a model (``load`` it next). ``random_init``: no weights at all."""
    card = get_card(model_id_or_card) if isinstance(model_id_or_card, str) else model_id_or_card
    if random_init:
        card = dataclasses.replace(card, weights_source="none")
    needed = missing_extra(card)
    if needed is not None:
        raise SegviewerError(f"{card.id} needs the {needed} extra, which is not installed: "
                             f"pip install 'segviewer[{needed}]'")
    target = str(card.extra.get("adapter", ""))
    module_name, _, class_name = target.partition(":")
    if not module_name or not class_name:
        raise SegviewerError(f"model {card.id!r} names no adapter class ('module:Class')")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise SegviewerError(f"model {card.id!r}: adapter {target} cannot be imported ({err})") from err
    return cls(card)


def weight_state(card: ModelCard) -> WeightState:
    """Where ``card``'s weights would come from now (``"user file"`` is the caller's to track)."""
    if card.weights_source == "none":
        return "random"
    if card.weights_source == "bundled":
        path = card.extra.get("checkpoint_path")
        return "bundled" if path and Path(path).is_file() else "missing"
    if card.weights_source == "huggingface":
        from segviewer.adapters.hf_loading import cached_snapshot

        repo = card.extra.get("hf_repo")
        return "cached" if repo and cached_snapshot(str(repo)) is not None else "needs download"
    from segviewer.adapters.weights import cached_weights

    return "cached" if card.weights_url and cached_weights(card.weights_url) else "needs download"
