"""Speed and accuracy of the bundled detectors side by side (the papers' speed/accuracy trade-off),
then the same timing for torchvision's zoo one-stage and two-stage detectors with random weights.

    nice -n 10 python bench/one_stage.py                    # 1 thread, 200 unseen scenes, 5 rounds
    python bench/one_stage.py --n 50 --rounds 3 --no-zoo

* **bundled** (``shapes_maskrcnn``, ``shapes_yolact``, ``shapes_yolo``, ``shapes_centernet``;
  whichever have a card in ``models/``): ``adapter.predict(image, PredictParams(extras=False))`` on one 640x480 shapes-world
  scene (``generate_scene(1000, (480, 640))``; the adapters scale it to a 256 px short side as they
  were trained), all models round-robin (``bench/_common.time_both``), median wall and process CPU
  ms; and COCO box AP / AP50 (pycocotools) of the same adapters' boxes at their default
  ``min_score`` on the ``--n`` unseen validation scenes (seeds 10000000 upward, 256 x 256), scored by
  one function for all (``training.centernet_task.evaluate_adapter_boxes``); for the two instance
  segmenters (Mask R-CNN, two-stage; YOLACT, one-stage) also mask AP on the same scenes
  (``training.evaluate.evaluate_adapter``, pycocotools): the slides' one-stage vs two-stage trade-off.
* **zoo** (``--no-zoo`` leaves it out): torchvision's RetinaNet, FCOS, SSDlite and Faster R-CNN at
  their released architecture with random weights through our adapters, and SSD300-VGG16 built
  with torchvision directly (no adapter of ours; 300 x 300). Input size: ``--zoo-size native`` (the
  default) runs the 640x480 image as it is (``min_size`` 480, ``max_size`` 640), ``released`` at the
  released transform (short side 800: 4 x ResNet-50-FPN's work, minutes per round on a loaded
  2-core machine); SSDlite and SSD always resize to 320 / 300. ``--zoo-rounds`` timed calls after
  one warm-up, round-robin. Random weights give the network's cost, not its accuracy: no AP.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_line, machine_line, pin_threads, table, time_both  # noqa: E402

BUNDLED = ("shapes_maskrcnn", "shapes_yolact", "shapes_yolo", "shapes_centernet")
ZOO = ("retinanet_resnet50_fpn", "fcos_resnet50_fpn", "ssdlite320_mobilenet_v3_large", "fasterrcnn_resnet50_fpn")
ZOO_KIND = {"retinanet_resnet50_fpn": "one-stage", "fcos_resnet50_fpn": "one-stage", "ssd300_vgg16": "one-stage",
            "ssdlite320_mobilenet_v3_large": "one-stage", "fasterrcnn_resnet50_fpn": "two-stage"}


def _image() -> Any:
    from segviewer.synth.generate import generate_scene

    return generate_scene(1000, (480, 640)).image


def _ssd300() -> Any:
    """torchvision's SSD300-VGG16, random weights, timed as ``model([image tensor])``."""
    import torch
    from torchvision.models.detection import ssd300_vgg16

    model = ssd300_vgg16(weights=None, weights_backbone=None).eval()
    x = torch.from_numpy(_image()).permute(2, 0, 1).float().div(255)

    def run() -> None:
        with torch.inference_mode():
            model([x])
    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per model (after one warm-up)")
    ap.add_argument("--n", type=int, default=200, help="unseen validation scenes for the box AP")
    ap.add_argument("--no-zoo", action="store_true", help="leave out torchvision's random-weight models")
    ap.add_argument("--zoo-size", choices=("native", "released"), default="native",
                    help="zoo input: the 640x480 image as is, or the released transform's short side 800")
    ap.add_argument("--zoo-rounds", type=int, default=1, help="timed rounds of the zoo models (after one warm-up)")
    a = ap.parse_args(argv)
    pin_threads(a.threads)

    from segviewer.adapters.base import PredictParams
    from segviewer.adapters.registry import create_adapter, list_cards
    from segviewer.training.centernet_task import evaluate_adapter_boxes
    from segviewer.training.data import val_seeds
    from segviewer.training.evaluate import evaluate_adapter

    print(machine_line(), f"· torch threads {a.threads}")
    img = _image()
    params = PredictParams(extras=False)
    have = {c.id for c in list_cards()}
    bundled = [m for m in BUNDLED if m in have]
    missing = [m for m in BUNDLED if m not in have]
    adapters: dict[str, Any] = {}
    for m in bundled:
        ad = create_adapter(m)
        ad.load("cpu")
        adapters[m] = ad
    n_det = {m: len(ad.predict(img, params).boxes) for m, ad in adapters.items()}
    t = time_both({m: (lambda ad=ad: ad.predict(img, params)) for m, ad in adapters.items()}, repeats=a.rounds,
                  warmup=1)
    rows = []
    for m, ad in adapters.items():
        t0 = time.perf_counter()
        ap_ = evaluate_adapter_boxes(ad, val_seeds(a.n))
        eval_s = time.perf_counter() - t0
        mask_ap = f"{evaluate_adapter(ad, ad.model_kind, a.n)['mask_ap']:.3f}" if ad.card.task == "instance" else "-"
        lo, hi = t.spread(m)
        rows.append([m, ad.card.family.split(",")[0].split(":")[0], f"{t[m][0]:.0f} ({lo:.0f}-{hi:.0f})",
                     f"{t[m][1]:.0f}", n_det[m], f"{ap_['box_ap']:.3f}", f"{ap_['box_ap50']:.3f}", mask_ap,
                     f"{1000 * eval_s / a.n:.0f}"])
    print(f"\nBundled detectors: one 640x480 scene (median of {a.rounds} interleaved rounds), box AP on {a.n} "
          "unseen 256x256 scenes")
    if rows:
        print(table(rows, ["model", "family", "wall ms (range)", "CPU ms", "boxes", "box AP", "AP50",
                           "mask AP", "ms/scene in box AP run"]))
    if missing:
        print("not bundled (no card in models/): " + ", ".join(missing))
    print(load_line())

    if not a.no_zoo:
        fns: dict[str, Any] = {}
        zp = params if a.zoo_size == "released" else PredictParams(extras=False, extra=(("min_size", 480),
                                                                                       ("max_size", 640)))
        for m in ZOO:
            ad = create_adapter(m, random_init=True)
            ad.load("cpu")
            fns[m] = lambda ad=ad: ad.predict(img, zp)
        fns["ssd300_vgg16"] = _ssd300()
        tz = time_both(fns, repeats=a.zoo_rounds, warmup=1)
        zrows = []
        for m in fns:
            lo, hi = tz.spread(m)
            zrows.append([m, ZOO_KIND[m], f"{tz[m][0]:.0f} ({lo:.0f}-{hi:.0f})", f"{tz[m][1]:.0f}"])
        size = "as is (480 x 640)" if a.zoo_size == "native" else "short side 800"
        print(f"\ntorchvision zoo, random weights: one 640x480 scene {size}, SSDlite 320 / SSD 300 (median of "
              f"{a.zoo_rounds} interleaved rounds after a warm-up)")
        print(table(zrows, ["model", "kind", "wall ms (range)", "CPU ms"]))
        print(load_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
