"""Write the shapes world's validation scenes (the unseen seeds 10000000.. every bundled model's
card reports on) as a COCO dataset, so the CLI scores a model on exactly those scenes:

    python bench/val_scenes.py --n 200 --out runs/val200
    segviewer predict --model shapes_msrcnn runs/val200/images --out runs/val200_msrcnn
    segviewer eval --task instance --gt runs/val200/annotations/instances.json --pred runs/val200_msrcnn

Images are ``images/val_XXXX.png`` (lossless, the very pixels ``training.data.shapes_instance``
gives the models); ``annotations/instances.json`` holds each scene's things with RLE masks and
the detection classes' names (category id = index + 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_val_scenes(out: Path, n: int, offset: int = 0) -> Path:
    """``out/images`` + ``out/annotations/instances.json`` of validation scenes; returns the JSON."""
    from segviewer.core.coco_io import category_entries, image_entry, instance_annotation, write_instances
    from segviewer.core.fileio import write_image_atomic
    from segviewer.synth.classes import DETECTION_CATEGORIES
    from segviewer.training.data import VAL_SEED, shapes_instance

    things = list(DETECTION_CATEGORIES[1:])
    images, anns = [], []
    for i in range(n):
        smp = shapes_instance(VAL_SEED + offset + i)
        name = f"val_{offset + i:04d}.png"
        write_image_atomic(out / "images" / name, smp.image)
        h, w = smp.image.shape[:2]
        images.append(image_entry(i + 1, name, h, w))
        for lab, mask in zip(smp.labels, smp.masks):
            anns.append(instance_annotation(len(anns) + 1, i + 1, int(lab), mask))
    path = out / "annotations" / "instances.json"
    write_instances(path, images, anns, category_entries(things, [True] * len(things)))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    print(write_val_scenes(a.out, a.n, a.offset))


if __name__ == "__main__":
    main()
