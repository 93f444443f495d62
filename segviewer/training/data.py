"""Training data: the shapes world generated on the fly, or a dataset folder on disk.

Samples are plain numpy (no torch here), in two kinds:

* :class:`SemanticSample` -- an RGB image and a label map (``VOID`` = 255 is ignored), plus the
  instance masks when known (the PCV net needs them);
* :class:`InstanceSample` -- an RGB image, boxes, 1-based detection labels and full masks.

Seeds: training scenes use ``seed * 1_000_000 + i``; validation uses seeds from
:data:`VAL_SEED` upward, which no training run ever reaches (``seed`` < 10 enforced).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segviewer.core.errors import BadDatasetError

VAL_SEED = 10_000_000
TRAIN_SEEDS_PER_RUN = 1_000_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True, eq=False)
class SemanticSample:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    labels: np.ndarray  # (H, W) uint8, 255 = void
    instances: tuple[np.ndarray, ...] = ()  # (H, W) bool masks of things, if known
    name: str = ""


@dataclass(frozen=True, eq=False)
class InstanceSample:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    boxes: np.ndarray  # (N, 4) float32 xyxy, pixel-edge coordinates
    labels: np.ndarray  # (N,) int64, 1-based (0 is background)
    masks: np.ndarray  # (N, H, W) bool
    name: str = ""


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """Tight xyxy box of a boolean mask in continuous pixel coordinates (edges, not centres)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)


def _scene(seed: int, size: tuple[int, int]):
    from segviewer.synth.generate import generate_scene

    return generate_scene(seed, size)


def shapes_semantic(seed: int, size: tuple[int, int] = (256, 256)) -> SemanticSample:
    sc = _scene(seed, size)
    return SemanticSample(sc.image, sc.semantic.astype(np.uint8),
                          tuple(i.mask for i in sc.instances), f"seed {seed}")


def shapes_instance(seed: int, size: tuple[int, int] = (256, 256)) -> InstanceSample:
    from segviewer.synth.classes import semantic_to_detection

    sc = _scene(seed, size)
    inst = [i for i in sc.instances if i.mask.any()]
    h, w = size
    boxes = np.array([mask_box(i.mask) for i in inst], np.float32).reshape(-1, 4)
    labels = np.array([semantic_to_detection(i.category) for i in inst], np.int64)
    masks = np.stack([i.mask for i in inst]) if inst else np.zeros((0, h, w), bool)
    return InstanceSample(sc.image, boxes, labels, masks, f"seed {seed}")


def train_seeds(seed: int, start: int = 0) -> Iterator[int]:
    """The endless stream of scene seeds of training run ``seed``, from position ``start``."""
    if not 0 <= seed < VAL_SEED // TRAIN_SEEDS_PER_RUN:
        raise BadDatasetError(f"--seed must lie in [0, {VAL_SEED // TRAIN_SEEDS_PER_RUN}) so training never "
                              "sees validation scenes")
    i = start
    while True:
        yield seed * TRAIN_SEEDS_PER_RUN + (i % TRAIN_SEEDS_PER_RUN)
        i += 1


def val_seeds(n: int, offset: int = 0) -> list[int]:
    return [VAL_SEED + offset + i for i in range(n)]


# ----------------------------------------------------------------------------- dataset folders


def _read_image(path: Path, flags: int) -> np.ndarray | None:
    import cv2

    try:
        buf = np.fromfile(str(path), np.uint8)
    except OSError:
        return None
    if buf.size == 0:
        return None
    return cv2.imdecode(buf, flags)


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    img = _read_image(path, cv2.IMREAD_COLOR)
    if img is None:
        raise BadDatasetError(f"{path}: not a readable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_label(path: Path) -> np.ndarray:
    import cv2

    m = _read_image(path, cv2.IMREAD_UNCHANGED)
    if m is None:
        raise BadDatasetError(f"{path}: not a readable mask image")
    if m.ndim == 3:  # a mask saved as RGB(A) with equal channels
        if not (np.array_equal(m[..., 0], m[..., 1]) and np.array_equal(m[..., 1], m[..., 2])):
            raise BadDatasetError(f"{path}: a mask must be single-channel class ids, got colors")
        m = m[..., 0]
    if m.dtype != np.uint8:
        if m.max() > 255:
            raise BadDatasetError(f"{path}: mask values above 255 are not class ids")
        m = m.astype(np.uint8)
    return m


def _resolve(root: Path, name: str, folders: tuple[str, ...]) -> Path:
    p = root / name
    if p.is_file():
        return p
    for f in folders:
        q = root / f / name
        if q.is_file():
            return q
    return p  # missing: the caller reports it


#: What each kind of training reads from a dataset folder, for messages.
KIND_FILES = {"semantic": "metadata.csv (Image,Mask rows)", "instance": "annotations/instances.json (COCO instances)"}


def dataset_kinds(root: Path) -> list[str]:
    """The kinds of ground truth a dataset folder holds: ``"semantic"`` (``metadata.csv``) and/or
    ``"instance"`` (``annotations/instances.json``). A ``synth scenes`` folder holds both."""
    if not root.is_dir():
        raise BadDatasetError(f"{root}: no such dataset folder")
    found = []
    if (root / "metadata.csv").is_file():
        found.append("semantic")
    if (root / "annotations" / "instances.json").is_file():
        found.append("instance")
    return found


def dataset_kind(root: Path, want: str | None = None) -> str:
    """The kind of ground truth to train on: ``want`` (the model's task decides) when the folder has
    it; without ``want``, the only kind there. The error says what the folder holds."""
    found = dataset_kinds(root)
    if want is not None and want in found:
        return want
    if want is None and len(found) == 1:
        return found[0]
    have = " and ".join(KIND_FILES[k] for k in found) if found else "neither " + " nor ".join(KIND_FILES.values())
    if want is None:
        raise BadDatasetError(f"{root}: found {have}; say which kind to train on")
    hint = f"it holds {have}" if found else f"found {have}"
    raise BadDatasetError(f"{root}: {want} training needs {KIND_FILES[want]}; {hint}")


def load_semantic_folder(root: Path, *, num_classes: int | None = None, skip_bad: bool = False,
                         warn: Callable[[str], None] | None = None) -> tuple[list[SemanticSample], int, bool]:
    """Read every ``Image,Mask`` pair of ``metadata.csv``; returns (samples, num_classes, binary).

    Masks hold class ids (255 = void). A dataset whose masks only hold 0 and 255 (or are JPEG,
    whose edges blur) is binary: the mask is thresholded at 128 into classes 0 and 1, as the
    flood-area data needs. A bad item raises :class:`BadDatasetError` naming it, unless
    ``skip_bad`` (then it is reported through ``warn`` and left out).
    """
    meta = root / "metadata.csv"
    try:
        with meta.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise BadDatasetError(f"{meta}: cannot be read as CSV ({err})") from err
    if not rows or not {"Image", "Mask"} <= set(rows[0]):
        raise BadDatasetError(f"{meta}: needs a header 'Image,Mask' and at least one row")
    pairs = []
    bad: list[str] = []
    for r in rows:
        try:
            ip = _resolve(root, r["Image"], ("images", "Image", "Images"))
            mp = _resolve(root, r["Mask"], ("masks", "Mask", "Masks"))
            if not mp.is_file():
                raise BadDatasetError(f"{mp}: mask file is missing")
            img, lab = read_rgb(ip), read_label(mp)
            if lab.shape != img.shape[:2]:
                raise BadDatasetError(f"{mp}: mask is {lab.shape[1]}x{lab.shape[0]} but its image is "
                                      f"{img.shape[1]}x{img.shape[0]}")
            pairs.append((img, lab, mp))
        except BadDatasetError as err:
            if not skip_bad:
                raise
            bad.append(str(err))
    if bad and warn:
        for b in bad:
            warn(f"skipped: {b}")
    if not pairs:
        raise BadDatasetError(f"{root}: no usable image/mask pairs")
    values = set()
    for _, lab, _ in pairs:
        values.update(np.unique(lab).tolist())
    binary = values <= {0, 255} or any(mp.suffix.lower() in (".jpg", ".jpeg") for _, _, mp in pairs)
    samples = []
    if binary:
        n = 2
        for img, lab, mp in pairs:
            samples.append(SemanticSample(img, (lab >= 128).astype(np.uint8), (), mp.name))
        return samples, n, True
    labelled = [v for v in values if v != 255]
    n = num_classes or (max(labelled) + 1 if labelled else 1)
    for img, lab, mp in pairs:
        over = np.unique(lab[(lab >= n) & (lab != 255)])
        if over.size:
            err = BadDatasetError(f"{mp}: label {int(over[0])} is outside the {n} classes")
            if not skip_bad:
                raise err
            if warn:
                warn(f"skipped: {err}")
            continue
        samples.append(SemanticSample(img, lab, (), mp.name))
    if not samples:
        raise BadDatasetError(f"{root}: no usable image/mask pairs")
    return samples, n, False


def load_coco_instances(root: Path, *, skip_bad: bool = False,
                        warn: Callable[[str], None] | None = None) -> tuple[list[InstanceSample], list[str]]:
    """Read ``annotations/instances.json`` (COCO) and ``images/``; returns (samples, categories).

    Categories are renumbered 1..K in the order of their COCO ids; ``categories[0]`` is
    ``"__background__"`` as torchvision's detection label space wants.
    """
    from pycocotools import mask as mask_utils

    ann_path = root / "annotations" / "instances.json"
    try:
        coco = json.loads(ann_path.read_text(encoding="utf-8"))
        cats = sorted(coco["categories"], key=lambda c: c["id"])
        images = coco["images"]
        anns = coco["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise BadDatasetError(f"{ann_path}: not a COCO instances file ({err})") from err
    from segviewer.core.coco_io import check_annotated_images

    try:
        check_annotated_images(coco, str(ann_path))
    except BadDatasetError as err:
        if not skip_bad:
            raise
        if warn:
            warn(f"skipped: {err}")
    cat_index = {c["id"]: i + 1 for i, c in enumerate(cats)}
    by_image: dict[int, list[dict]] = {}
    for a in anns:
        by_image.setdefault(a.get("image_id"), []).append(a)
    samples = []
    for im in images:
        try:
            ip = _resolve(root, str(im["file_name"]), ("images",))
            img = read_rgb(ip)
            h, w = img.shape[:2]
            if (int(im.get("height", h)), int(im.get("width", w))) != (h, w):
                raise BadDatasetError(f"{ip}: image is {w}x{h} but instances.json says "
                                      f"{im.get('width')}x{im.get('height')}")
            boxes, labels, masks = [], [], []
            for a in by_image.get(im["id"], []):
                if a.get("iscrowd", 0):
                    continue
                if a.get("category_id") not in cat_index:
                    raise BadDatasetError(f"{ann_path}: annotation {a.get('id')} has unknown category "
                                          f"{a.get('category_id')}")
                seg = a["segmentation"]
                if isinstance(seg, list):
                    rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
                elif isinstance(seg.get("counts"), list):
                    rle = mask_utils.frPyObjects(seg, h, w)
                else:
                    rle = seg
                m = mask_utils.decode(rle).astype(bool)
                if m.shape != (h, w):
                    raise BadDatasetError(f"{ann_path}: annotation {a.get('id')} mask is not {w}x{h}")
                if not m.any():
                    continue
                boxes.append(mask_box(m))
                labels.append(cat_index[a["category_id"]])
                masks.append(m)
            samples.append(InstanceSample(
                img, np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64),
                np.stack(masks) if masks else np.zeros((0, h, w), bool), ip.name))
        except (BadDatasetError, KeyError, TypeError, ValueError) as err:
            e = err if isinstance(err, BadDatasetError) else BadDatasetError(
                f"{ann_path}: image entry {im.get('id')} is malformed ({err})")
            if not skip_bad:
                raise e from err
            if warn:
                warn(f"skipped: {e}")
    if not samples:
        raise BadDatasetError(f"{root}: no usable images")
    return samples, ["__background__"] + [str(c["name"]) for c in cats]
