"""Write shapes-world datasets in the formats the rest of the field reads.

Layout under ``out_dir``::

    images/<name>.png                 RGB image (``images_dir`` may move these, e.g. to the top)
    masks/<name>.png                  semantic labels, uint8 CATEGORIES indices (no void)
    metadata.csv                      ``Image,Mask`` with relative paths (the flood-area layout)
    annotations/instances.json        COCO instances: RLE masks, things only, category id = index + 1
    annotations/panoptic.json         COCO panoptic segments_info, categories with ``isthing``
    annotations/panoptic/<name>.png   COCO panoptic id PNGs (the folder named like the JSON, as COCO does)

Image ``i`` uses a seed derived from ``(seed, i)`` alone, so the same arguments give the same
bytes, and a prefix of a larger dataset equals the smaller one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segviewer.core.coco_io import category_entries, image_entry, instance_annotation, write_instances
from segviewer.core.errors import SegviewerError
from segviewer.core.fileio import write_image_atomic, write_text_atomic
from segviewer.core.panoptic_io import panoptic_annotation, write_panoptic_json, write_panoptic_png
from segviewer.core.results import PanopticMap, PanopticSegment
from segviewer.synth.classes import CATEGORIES, ISTHING
from segviewer.synth.generate import generate_scene
from segviewer.synth.scene import Scene

__all__ = ["scene_seed", "segment_id", "scene_panoptic", "write_dataset", "DatasetSummary", "ID_DIVISOR"]

#: Panoptic segment ids: ``(category index + 1) * ID_DIVISOR + instance id`` (0 for stuff), as
#: panopticapi's ``category_id * 1000 + instance`` convention; decodable by eye and by division.
ID_DIVISOR = 1000


def scene_seed(seed: int, index: int) -> int:
    """The seed of image ``index`` in a dataset made with ``seed`` (a 63-bit hash of both)."""
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, int(index)])
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))


def segment_id(category: int, instance_id: int = 0) -> int:
    """Panoptic segment id of a stuff class (``instance_id`` 0) or of a thing instance."""
    if ISTHING[category] and not 0 < instance_id < ID_DIVISOR:
        raise ValueError(f"thing instance ids must lie in 1..{ID_DIVISOR - 1}, got {instance_id}")
    return (category + 1) * ID_DIVISOR + (instance_id if ISTHING[category] else 0)


def scene_panoptic(scene: Scene) -> PanopticMap:
    """The scene's panoptic ground truth: one segment per stuff class present, one per thing."""
    sem = scene.semantic
    ids = np.zeros(sem.shape, np.int32)
    counts = np.bincount(sem.ravel(), minlength=len(CATEGORIES))
    segs = []
    for c in range(len(CATEGORIES)):
        if not ISTHING[c] and counts[c]:
            sid = segment_id(c)
            ids[sem == c] = sid
            segs.append(PanopticSegment(sid, c, False, int(counts[c])))
    for inst in scene.instances:
        sid = segment_id(inst.category, inst.instance_id)
        ids[inst.mask] = sid
        segs.append(PanopticSegment(sid, inst.category, True, int(inst.mask.sum())))
    return PanopticMap(ids, tuple(segs), CATEGORIES, ISTHING)


@dataclass(frozen=True)
class DatasetSummary:
    out_dir: Path
    names: tuple[str, ...]
    n_instances: int


def write_dataset(out_dir: str | os.PathLike[str], n: int, seed: int, size: tuple[int, int] = (256, 256),
                  prefix: str = "scene_", progress: Callable[[int, int], None] | None = None,
                  images_dir: str = "images", **options: object) -> DatasetSummary:
    """Generate ``n`` scenes and write them with full ground truth (see the module docstring).

    ``options`` go to :func:`generate_scene`. ``progress(done, n)`` is called after each image.
    ``images_dir="."`` puts the images at the top of ``out_dir`` (the bundled samples do this
    so a folder-of-images reader sees only them).
    """
    img_rel = Path(images_dir)
    if img_rel.is_absolute() or ".." in img_rel.parts:
        raise SegviewerError(f"images_dir must be a folder inside the dataset, got {images_dir!r}")
    if n < 1:
        raise SegviewerError(f"the number of scenes must be at least 1, got {n}")
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise SegviewerError(f"{root} exists and is not a folder")
    h, w = (int(v) for v in size)
    width = max(3, len(str(n - 1)))
    cats = category_entries(CATEGORIES, ISTHING)
    images, instances, panoptic, rows, names = [], [], [], ["Image,Mask"], []
    ann_id = 0
    for i in range(n):
        name = f"{prefix}{i:0{width}d}"
        s_seed = scene_seed(seed, i)
        scene = generate_scene(s_seed, (h, w), **options)
        write_image_atomic(root / img_rel / f"{name}.png", scene.image)
        write_image_atomic(root / "masks" / f"{name}.png", scene.semantic)
        pm = scene_panoptic(scene)
        write_panoptic_png(root / "annotations" / "panoptic" / f"{name}.png", pm.segment_ids)
        entry = image_entry(i + 1, f"{name}.png", h, w)
        entry["seed"] = s_seed
        images.append(entry)
        for inst in scene.instances:
            ann_id += 1
            instances.append(instance_annotation(ann_id, i + 1, inst.category + 1, inst.mask))
        panoptic.append(panoptic_annotation(i + 1, f"{name}.png", pm))
        rows.append(f"{(img_rel / f'{name}.png').as_posix()},masks/{name}.png")
        names.append(name)
        if progress is not None:
            progress(i + 1, n)
    info = {"description": "segviewer shapes world", "seed": int(seed), "size": [h, w], "n": n,
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(options.items())}}
    write_instances(root / "annotations" / "instances.json", images, instances, cats, info)
    write_panoptic_json(root / "annotations" / "panoptic.json", images, panoptic, cats, info)
    write_text_atomic(root / "metadata.csv", "\n".join(rows) + "\n")
    return DatasetSummary(root, tuple(names), ann_id)
