"""``segviewer predict`` against a plain torch loop over the same bundled model, same images, same run.

    nice -n 10 python bench/predict.py                      # every bundled model: 10 images, 5 rounds, 1 thread
    python bench/predict.py --n 20 --threads 2 --models shapes_fcn shapes_maskrcnn

Workload: ``--n`` shapes-world scenes, 640x480 RGB PNGs (``generate_scene``, seeds 1000...),
written once to a temporary folder. Every bundled model runs on the CPU with ``--threads``
threads (torch and OpenCV) on both sides.

Three comparisons per model, each timed round-robin (A B A B ..., ``bench/_common.time_both``);
"model" rounds are one image per candidate (``--repeats`` x ``--n`` rounds, the same image for all
in a round), "command" rounds one pass over the ``--n`` images (``--repeats`` rounds):

* **model** (in memory, the same decoded images): segviewer is what ``predict`` calls per image,
  the adapter's ``predict(image, PredictParams(extras=False))`` (preprocess, forward, labels or
  boxes + scores + pasted masks); "window" is the same call with ``extras=True`` (probabilities,
  logits, mask logits: what the GUI shows and what ``predict`` computed before). The plain loop
  does the same preprocessing with OpenCV, calls the same ``torch.nn.Module`` under
  ``inference_mode`` and converts only to what is written: semantic labels at the image size
  (each class map resized bilinearly with ``cv2.resize``, a running maximum: the fastest way
  found; one multi-channel ``cv2.resize`` + ``argmax`` is slower on real logits and
  ``F.interpolate`` + ``argmax`` several times slower on a CPU), or detections: boxes in image
  pixels, scores, classes (``predict``'s defaults: score >= 0.05, at most 100), and masks where
  the model has them, full-frame:

  - Mask R-CNN: its own post-processing, torchvision's ``paste_masks_in_image``; Mask Scoring
    R-CNN (``shapes_msrcnn``, the same net on its own copy) adds the MaskIoU head on the mask RoI
    features (a forward hook on ``mask_roi_pool``) and the 28 x 28 mask probabilities the net
    returns: score = box score x predicted IoU, both kept for the records;
  - YOLO: YOLOv2's decoding in torch over the cells of the real image, boxes clipped to the model
    frame, at most 1000 candidates, ``torchvision.ops.batched_nms`` (IoU 0.5); YOLACT the same
    plus ``sigmoid(P c)`` of each kept box, one ``F.interpolate`` (bilinear) to the image and
    YOLACT's crop to the box (pixel centres inside it), >= 0.5;
  - CenterNet: sigmoid heatmap, 3 x 3 ``max_pool2d`` peaks, ``topk`` 100, boxes from the offset
    and size heads at the output stride.

  Before timing, every image's outputs of both are compared (``outputs`` column): labels equal
  pixel for pixel, detections matched one to one (same class, box within 0.01 px, score within
  1e-4, masks differing on at most 0.1 % of their pixels); a plain loop that computes something
  else is reported as such (a ratio against it would mean nothing).
* **command** (files to files, model already loaded): segviewer is ``segviewer.cli.main
  ["predict", folder, ...]`` run in this process (an in-process function call, not a
  subprocess), with the adapter it creates swapped for the one loaded beforehand, so the model
  load is left out (it is part of the start-up below). It writes what ``predict`` writes:
  ``*_overlay.png`` and ``*_labels.png``, or ``results.json`` (COCO, RLE masks) and
  ``images.json``/``categories.json`` (Mask Scoring R-CNN's records with ``box_score`` and
  ``mask_iou``). The plain loop reads each PNG with ``cv2.imread``, runs
  the model loop above and writes the same files its plain way (``cv2.imwrite``; an overlay that
  blends a palette at 0.5 and draws boxes and "name score" labels; RLE by pycocotools).
* **start-up** (fresh interpreter each time, subprocesses): wall seconds from launch to the first
  image written, for ``python -m segviewer predict`` on one image, for a plain script that
  imports torch, builds the net and loads the checkpoint the usual way (``torch.load``,
  ``load_state_dict``; for Mask Scoring R-CNN the MaskIoU head's checkpoint too) and writes that
  image's outputs, and for ``python -c "import torch"``
  (the floor); with ``--compare-tree DIR`` also for the segviewer of another checkout (before/after).

Ratios use process CPU time (robust on a machine shared with other jobs; with torch on N threads
it counts all of them), wall-clock is printed beside it. ``ratio`` refuses candidates not timed
interleaved. Target: segviewer within 10 % of the plain loop (ratio <= 1.10), start-up < 2 s.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_line, machine_line, pin_threads, ratio, table, time_both  # noqa: E402

BUNDLED = ("shapes_fcn", "shapes_unet", "shapes_pcv", "shapes_maskrcnn", "shapes_msrcnn", "shapes_yolo",
           "shapes_yolact", "shapes_centernet")
TARGET = 1.10  # segviewer / plain loop, at most
START_TARGET = 2.0  # seconds to the first image
SHORT = 256  # the bundled models' training scale (segviewer.adapters.shapes.TRAIN_SHORT_SIDE)
SEG, SEG_FULL, PLAIN = "segviewer", "segviewer window (extras)", "plain torch loop"


# --------------------------------------------------------------------------- the plain loop


def _resize_short(img: np.ndarray, short: int = SHORT) -> np.ndarray:
    h, w = img.shape[:2]
    s = short / min(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)


SEMANTIC = ("fcn", "unet", "pcv")
MASKS = ("maskrcnn", "msrcnn", "yolact")  # detectors whose records carry masks
NMS_IOU = 0.5  # the YOLO detectors' class-wise NMS (segviewer.adapters.yolo.NMS_IOU)
MAX_CANDIDATES = 1000  # boxes entering the YOLO detectors' NMS, best first


class PlainLoop:
    """What a person would write around the same ``torch.nn.Module``: no segviewer code runs.

    ``kind`` is the checkpoint's model kind, or "msrcnn" for the Mask R-CNN with its MaskIoU
    ``head``; ``min_score`` and ``max_detections`` are ``predict``'s defaults."""

    def __init__(self, module: Any, kind: str, categories: tuple[str, ...], head: Any = None,
                 min_score: float = 0.05, max_detections: int = 100) -> None:
        self.module, self.kind, self.categories, self.head = module, kind, categories, head
        self.min_score, self.max_detections = min_score, max_detections
        rng = np.random.default_rng(0)
        self.palette = rng.integers(0, 256, (max(len(categories), 1), 3), dtype=np.uint8)
        self._features: Any = None
        if kind in ("maskrcnn", "msrcnn"):  # (torchvision's defaults; set so that they are predict's)
            module.roi_heads.score_thresh, module.roi_heads.detections_per_img = min_score, max_detections
        if kind == "msrcnn":  # the mask RoI features of the final detections, as the pass computes them
            module.roi_heads.mask_roi_pool.register_forward_hook(self._keep_features)

    def _keep_features(self, _mod: Any, _inp: Any, out: Any) -> None:
        self._features = out

    def run(self, img: np.ndarray) -> dict[str, Any]:
        """RGB uint8 -> labels ``(H, W)``, or boxes (image pixels) / scores / labels (class ids)
        and, for Mask R-CNN, Mask Scoring R-CNN and YOLACT, full-frame masks ``(N, H, W)``."""
        import torch

        h, w = img.shape[:2]
        small = _resize_short(img)
        rh, rw = small.shape[:2]
        with torch.inference_mode():
            if self.kind in ("maskrcnn", "msrcnn"):
                return self._maskrcnn(small, (h, w), (rh, rw))
            if self.kind == "centernet":
                return self._centernet(small, (h, w), (rh, rw))
            d = int(getattr(self.module, "divisor", 16 if self.kind in ("unet", "pcv") else 32))
            small = cv2.copyMakeBorder(small, 0, -rh % d, 0, -rw % d, cv2.BORDER_REPLICATE)
            # (1, 3, H, W) over the HWC bytes: channels-last strides, 1.6x faster convolutions on a
            # CPU than a contiguous NCHW copy (measured); segviewer feeds the nets the same layout
            x = torch.from_numpy(small[None]).permute(0, 3, 1, 2).float()
            x = (x / 255.0 - 0.5) / 0.25  # segviewer.training.tasks.MEAN, STD
            out = self.module(x)
            if self.kind in ("yolo", "yolact"):
                return self._yolo(out, (h, w), (rh, rw))
            logits = {"fcn": lambda o: o["8s"], "pcv": lambda o: o["semantic"]}.get(self.kind, lambda o: o)(out)
            lg = np.ascontiguousarray(logits[0, :, :rh, :rw].numpy())  # (C, h, w) planes for OpenCV
            # argmax of the bilinearly upsampled class maps, one class at a time with a running
            # maximum: faster on real logits than one multi-channel cv2.resize + argmax, and much
            # faster than F.interpolate + argmax (measured)
            best = cv2.resize(lg[0], (w, h), interpolation=cv2.INTER_LINEAR)
            labels = np.zeros((h, w), np.uint8)
            for k in range(1, lg.shape[0]):
                plane = cv2.resize(lg[k], (w, h), interpolation=cv2.INTER_LINEAR)
                better = plane > best
                np.copyto(best, plane, where=better)  # (faster than best[better] = plane[better])
                np.copyto(labels, k, where=better)
            return {"labels": labels}

    def _maskrcnn(self, small: np.ndarray, size: tuple[int, int], rsize: tuple[int, int]) -> dict[str, Any]:
        import torch
        from torchvision.models.detection.image_list import ImageList
        from torchvision.models.detection.roi_heads import paste_masks_in_image

        m = self.module
        (h, w), (rh, rw) = size, rsize
        t = torch.from_numpy(small).permute(2, 0, 1).float() / 255.0
        mean = torch.tensor(m.transform.image_mean)[:, None, None]
        std = torch.tensor(m.transform.image_std)[:, None, None]
        x = torch.nn.functional.pad((t - mean) / std, (0, -rw % 32, 0, -rh % 32))[None]
        images = ImageList(x, [(rh, rw)])
        feats = m.backbone(images.tensors)
        proposals, _ = m.rpn(images, feats)
        det = m.roi_heads(feats, proposals, images.image_sizes)[0][0]
        boxes = det["boxes"] * torch.tensor([w / rw, h / rh, w / rw, h / rh])
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        masks = paste_masks_in_image(det["masks"], boxes, (h, w))[:, 0] > 0.5
        res = {"boxes": boxes.numpy(), "scores": det["scores"].numpy(), "labels": det["labels"].numpy(),
               "masks": masks.numpy()}
        if self.kind == "msrcnn":  # Mask Scoring R-CNN: score = box score x the class's predicted mask IoU
            iou = torch.zeros(0)
            if len(det["labels"]):  # the hooked RoI features and the class's mask probabilities (28 x 28)
                iou = self.head.predict_iou(self._features, det["masks"][:, 0], det["labels"])
            res.update(box_scores=res["scores"], mask_iou=iou.numpy(), scores=(det["scores"] * iou).numpy())
        return res

    def _yolo(self, out: Any, size: tuple[int, int], rsize: tuple[int, int]) -> dict[str, Any]:
        """YOLOv2's decoding of the grid, boxes clipped to the model frame, ``batched_nms``; for
        YOLACT each kept box's mask ``sigmoid(P c)``, bilinearly upsampled to the image, cut to its box."""
        import torch
        import torch.nn.functional as F
        from torchvision.ops import batched_nms

        m = self.module
        (h, w), (rh, rw) = size, rsize
        raw = out["out"] if self.kind == "yolact" else out
        s, nb = int(m.stride), int(m.num_priors)
        gh, gw = -(-rh // s), -(-rw // s)  # the cells over the real image
        g = raw[0, :, :gh, :gw]
        t = g[: 5 * nb].reshape(nb, 5, gh, gw)
        cy, cx = torch.meshgrid(torch.arange(gh, dtype=torch.float32), torch.arange(gw, dtype=torch.float32),
                                indexing="ij")
        pri = torch.tensor(m.priors, dtype=torch.float32)[:, :, None, None]
        bx, by = (t[:, 0].sigmoid() + cx) * s, (t[:, 1].sigmoid() + cy) * s
        bw, bh = pri[:, 0] * t[:, 2].exp(), pri[:, 1] * t[:, 3].exp()
        boxes = torch.stack([bx - bw / 2, by - bh / 2, bx + bw / 2, by + bh / 2], -1)  # (B, gh, gw, 4)
        scores = t[:, 4].sigmoid()[:, None] * g[5 * nb:].softmax(0)[None]  # (B, C, gh, gw)
        b, c, yy, xx = torch.nonzero(scores >= self.min_score, as_tuple=True)
        sc = scores[b, c, yy, xx]
        if len(sc) > MAX_CANDIDATES:
            top = sc.topk(MAX_CANDIDATES).indices
            b, c, yy, xx, sc = b[top], c[top], yy[top], xx[top], sc[top]
        bb = boxes[b, yy, xx]
        bb[:, 0::2] = bb[:, 0::2].clamp(0, rw)
        bb[:, 1::2] = bb[:, 1::2].clamp(0, rh)
        keep = batched_nms(bb, sc, c, NMS_IOU)[: self.max_detections]
        bb = bb[keep] * torch.tensor([w / rw, h / rh, w / rw, h / rh])
        bb[:, 0::2] = bb[:, 0::2].clamp(0, w)
        bb[:, 1::2] = bb[:, 1::2].clamp(0, h)
        res = {"boxes": bb.numpy(), "scores": sc[keep].numpy(), "labels": (c[keep] + 1).numpy()}
        if self.kind == "yolact":
            k = int(m.num_prototypes)
            ps = s * raw.shape[-1] / out["proto"].shape[-1]  # model pixels per prototype cell
            proto = out["proto"][0, :, : int(np.ceil(rh / ps)), : int(np.ceil(rw / ps))]
            kb, ky, kx = b[keep], yy[keep], xx[keep]
            coef = out["coef"][0].reshape(nb, k, *out["coef"].shape[-2:])[kb, :, ky, kx]  # (n, k)
            prob = torch.einsum("nk,khw->nhw", coef, proto).sigmoid()[None]
            # one bilinear resampling to the image (align_corners=False at the given scale: sample
            # positions (x + 0.5) / scale - 0.5); a replicated last row / column if rounding falls short
            scale = (ps * h / rh, ps * w / rw)
            if int(prob.shape[-2] * scale[0]) < h or int(prob.shape[-1] * scale[1]) < w:
                prob = F.pad(prob, (0, 1, 0, 1), mode="replicate")
            full = F.interpolate(prob, scale_factor=scale, mode="bilinear", align_corners=False)[0, :, :h, :w]
            ys, xs = torch.arange(h) + 0.5, torch.arange(w) + 0.5  # pixel centres inside the box
            inx = (xs[None] >= bb[:, 0:1]) & (xs[None] <= bb[:, 2:3])
            iny = (ys[None] >= bb[:, 1:2]) & (ys[None] <= bb[:, 3:4])
            res["masks"] = ((full >= 0.5) & iny[:, :, None] & inx[:, None, :]).numpy()
        return res

    def _centernet(self, small: np.ndarray, size: tuple[int, int], rsize: tuple[int, int]) -> dict[str, Any]:
        """The paper's decoding: 3 x 3 max-pool peaks of the sigmoid heatmap, top 100, boxes from
        the offset and size heads at the output stride."""
        import torch
        import torch.nn.functional as F

        m = self.module
        (h, w), (rh, rw) = size, rsize
        x = (torch.from_numpy(small[None]).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.25
        out = m(F.pad(x, (0, -rw % 16, 0, -rh % 16)))  # zeros: the mean colour
        heat = out["heatmap"][0].sigmoid()  # (C, H, W)
        hh, hw = heat.shape[1:]
        peaks = torch.where(F.max_pool2d(heat[None], 3, 1, 1)[0] == heat, heat, 0.0).flatten()
        sc, idx = peaks.topk(min(100, self.max_detections, peaks.numel()))
        sel = sc >= self.min_score
        sc, idx = sc[sel], idx[sel]
        c, yy, xx = idx // (hh * hw), idx % (hh * hw) // hw, idx % hw
        off, wh = out["offset"][0][:, yy, xx], out["size"][0][:, yy, xx]
        cx, cy = xx + off[0], yy + off[1]
        s = int(m.stride)
        boxes = s * torch.stack([cx - wh[0] / 2, cy - wh[1] / 2, cx + wh[0] / 2, cy + wh[1] / 2], 1)
        boxes = boxes * torch.tensor([w / rw, h / rh, w / rw, h / rh])
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        return {"boxes": boxes.numpy(), "scores": sc.numpy(), "labels": (c + 1).numpy()}

    def write(self, out: Path, name: str, img: np.ndarray, res: dict[str, Any], image_id: int,
              records: list[dict[str, Any]]) -> None:
        """The outputs ``predict`` writes, the plain way."""
        bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        if "labels" in res and "boxes" not in res:
            labels = res["labels"]
            cv2.imwrite(str(out / f"{name}_labels.png"), labels)
            colored = cv2.cvtColor(self.palette[labels], cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(out / f"{name}_overlay.png"), cv2.addWeighted(bgr, 0.5, colored, 0.5, 0.0))
            return
        from pycocotools import mask as mask_utils

        masks = res.get("masks")
        for i, (box, score, cls) in enumerate(zip(res["boxes"], res["scores"], res["labels"])):
            x0, y0, x1, y1 = (float(v) for v in box)
            rec: dict[str, Any] = {"image_id": image_id, "category_id": int(cls),
                                   "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(score)}
            if masks is not None:
                rle = mask_utils.encode(np.asfortranarray(masks[i].astype(np.uint8)))
                rec["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
            if "mask_iou" in res:  # Mask Scoring R-CNN: both rules' numbers, as predict writes them
                rec["box_score"], rec["mask_iou"] = float(res["box_scores"][i]), float(res["mask_iou"][i])
            records.append(rec)
            if score >= 0.5:
                color = tuple(int(c) for c in self.palette[int(cls) % len(self.palette)][::-1])
                if masks is not None:
                    m = masks[i]
                    bgr[m] = (bgr[m] * 0.5 + np.asarray(color) * 0.5).astype(np.uint8)
                cv2.rectangle(bgr, (int(x0), int(y0)), (int(x1), int(y1)), color, 2)
                cv2.putText(bgr, f"{self.categories[int(cls)]} {score:.2f}", (int(x0), max(int(y0) - 4, 10)),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1, cv2.LINE_AA)
        cv2.imwrite(str(out / f"{name}_overlay.png"), bgr)


def plain_files(loop: PlainLoop, files: list[Path], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    entries = []
    for i, f in enumerate(files, 1):
        img = cv2.cvtColor(cv2.imread(str(f), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        loop.write(out, f.stem, img, loop.run(img), i, records)
        entries.append({"id": i, "file_name": f.name, "height": img.shape[0], "width": img.shape[1]})
    if loop.kind not in SEMANTIC:
        (out / "results.json").write_text(json.dumps(records))
        (out / "images.json").write_text(json.dumps(entries))


# --------------------------------------------------------------------------- start-up

_PLAIN_SCRIPT = textwrap.dedent('''
    import sys
    import cv2, torch
    torch.set_num_threads(int(sys.argv[4])); cv2.setNumThreads(int(sys.argv[4]))
    from segviewer.training.tasks import make_task  # the network's definition; nothing else of segviewer
    ck = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
    model = make_task(ck["model"], list(ck["categories"]), dict(ck.get("config") or {})).build()
    model.load_state_dict(ck["state_dict"])
    model.eval()
    head = None
    if len(sys.argv) > 6:  # Mask Scoring R-CNN: the MaskIoU head's own checkpoint
        from segviewer.adapters.nets.maskiou import build_maskiou
        hk = torch.load(sys.argv[6], map_location="cpu", weights_only=True)
        head = build_maskiou(dict(hk.get("config") or {}))
        head.load_state_dict(hk["state_dict"])
        head.eval()
    sys.path.insert(0, sys.argv[5])
    from predict import PlainLoop
    loop = PlainLoop(model, "msrcnn" if head is not None else ck["model"], tuple(ck["categories"]), head)
    img = cv2.cvtColor(cv2.imread(sys.argv[2]), cv2.COLOR_BGR2RGB)
    res = loop.run(img)
    records = []
    loop.write(__import__("pathlib").Path(sys.argv[3]), "first", img, res, 1, records)
    print("first image written", flush=True)
''')


def _first_line_s(cmd: list[str], until: str, env: dict[str, str] | None = None, cwd: Path | None = None
                  ) -> tuple[float, float]:
    """(wall seconds from launch to the first stdout line containing ``until``, child CPU seconds)."""
    before = os.times()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=cwd)
    first = float("nan")
    assert p.stdout is not None
    for line in p.stdout:
        if until in line and first != first:
            first = time.perf_counter() - t0
    p.wait()
    after = os.times()
    if p.returncode != 0 or first != first:
        raise RuntimeError(f"{' '.join(cmd[:4])}... failed (exit {p.returncode})")
    return first, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def startup(model_id: str, checkpoint: Path, image: Path, tmp: Path, threads: int, rounds: int,
            compare_tree: Path | None = None, head_checkpoint: Path | None = None
            ) -> dict[str, list[tuple[float, float]]]:
    """Launch-to-first-image seconds, interleaved segviewer / plain / ``import torch`` (/ the
    segviewer of another checkout: ``compare_tree``, its package first on ``PYTHONPATH``, threads
    through ``OMP_NUM_THREADS`` since an older ``predict`` may lack ``--threads``);
    ``head_checkpoint``: Mask Scoring R-CNN's MaskIoU head, which the plain script loads too."""
    script = tmp / "plain_first_image.py"
    script.write_text(_PLAIN_SCRIPT)
    one = tmp / "one"
    one.mkdir(exist_ok=True)
    if not (one / image.name).exists():
        (one / image.name).write_bytes(image.read_bytes())
    cmds = {
        SEG: ([sys.executable, "-m", "segviewer", "predict", str(one), "--model", model_id, "--out", str(tmp / "s_out"),
               "--overwrite", "--no-gt", "--device", "cpu", "--threads", str(threads)], "->"),
        PLAIN: ([sys.executable, str(script), str(checkpoint), str(image), str(tmp), str(threads),
                 str(Path(__file__).resolve().parent)] + ([str(head_checkpoint)] if head_checkpoint else []),
                "first image written"),
        "import torch": ([sys.executable, "-c", "import torch; print('imported')"], "imported"),
    }
    envs: dict[str, dict[str, str] | None] = dict.fromkeys(cmds)
    if compare_tree is not None:
        key = f"segviewer at {compare_tree}"
        cmds[key] = ([sys.executable, "-m", "segviewer", "predict", str(one), "--model", model_id,
                      "--out", str(tmp / "c_out"), "--overwrite", "--no-gt", "--device", "cpu"], "->")
        envs[key] = {**os.environ, "PYTHONPATH": str(compare_tree.resolve()), "OMP_NUM_THREADS": str(threads)}
    out: dict[str, list[tuple[float, float]]] = {k: [] for k in cmds}
    for _ in range(rounds):
        for k, (cmd, until) in cmds.items():
            # (in DIR: "python -m" puts the working folder first on sys.path)
            out[k].append(_first_line_s(cmd, until, envs[k], compare_tree if envs[k] is not None else None))
    return out


# --------------------------------------------------------------------------- main


def _images(folder: Path, n: int) -> list[Path]:
    from segviewer.synth.generate import generate_scene

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        f = folder / f"scene_{i:03d}.png"
        if not f.exists():
            cv2.imwrite(str(f), cv2.cvtColor(generate_scene(1000 + i, (480, 640)).image, cv2.COLOR_RGB2BGR))
        files.append(f)
    return files


def _agreement(segs: list[Any], plains: list[dict[str, Any]]) -> tuple[str, bool]:
    """How closely segviewer's and the plain loop's outputs agree over the images, and whether that
    is close enough to call them the same computation (labels: >= 99.9 % of pixels equal;
    detections: each one matched, same class, box within 0.01 px, score within 1e-4, masks
    differing on <= 0.1 % of their pixels: float rounding at a threshold, nothing more)."""
    if "boxes" not in plains[0]:
        eq = float(np.mean([np.mean(s.labels == p["labels"]) for s, p in zip(segs, plains)]))
        return f"labels {100.0 * eq:.2f}% equal", eq >= 0.999
    n_seg = n_plain = matched = 0
    box_d = score_d = 0.0
    mask_xor = mask_union = 0
    for s, p in zip(segs, plains):
        n_seg, n_plain = n_seg + len(s), n_plain + len(p["scores"])
        free = set(range(len(p["scores"])))
        for i in range(len(s)):  # the plain detection of the same class with the nearest box
            cand = [j for j in free if int(p["labels"][j]) == int(s.class_ids[i])]
            if not cand:
                continue
            j = min(cand, key=lambda j: float(np.abs(p["boxes"][j] - s.boxes[i]).max()))
            d = float(np.abs(p["boxes"][j] - s.boxes[i]).max())
            if d > 1.0:
                continue
            free.discard(j)
            matched += 1
            box_d, score_d = max(box_d, d), max(score_d, abs(float(p["scores"][j]) - float(s.scores[i])))
            if "masks" in p:
                a, b = s.masks.full(i), p["masks"][j]
                mask_xor, mask_union = mask_xor + int((a ^ b).sum()), mask_union + int((a | b).sum())
    text = f"{matched}/{n_seg} vs {n_plain} matched, box {box_d:.1g} px, score {score_d:.1g}"
    mask_frac = mask_xor / max(mask_union, 1)
    if "masks" in plains[0]:
        text += f", masks {100.0 * mask_frac:.3f}% px differ"
    ok = matched == n_seg == n_plain and box_d <= 0.01 and score_d <= 1e-4 and mask_frac <= 0.001
    return text, ok


def _row(model_id: str, level: str, tm: Any, k: str, n: int, note: str = "") -> tuple:
    rel = (1.0, 1.0) if k == PLAIN else (ratio(tm, k, PLAIN, "cpu"), ratio(tm, k, PLAIN))
    return (model_id, level, k, tm[k][1] / n, tm[k][0] / n, n * 1000.0 / tm[k][0], rel[0], rel[1], note)


def bench_model(model_id: str, files: list[Path], decoded: list[np.ndarray], tmp: Path, args: argparse.Namespace,
                ) -> tuple[list[tuple], list[tuple], list[tuple[str, str, float]]]:
    """(table rows, start-up rows, verdicts) of one bundled model."""
    import segviewer.adapters.registry as registry
    from segviewer.adapters.base import PredictParams
    from segviewer.cli import main as cli_main

    ad = registry.create_adapter(model_id)
    ad.load("cpu")
    head = getattr(ad, "head", None)  # Mask Scoring R-CNN's MaskIoU head
    # its own copy of the net (it sets options and a hook on it; nothing it does reaches segviewer's)
    loop = PlainLoop(copy.deepcopy(ad.module), "msrcnn" if head is not None else ad.model_kind, ad.card.categories,
                     copy.deepcopy(head))
    lean, full = PredictParams(extras=False), PredictParams()
    agree, same = _agreement([ad.predict(img, lean) for img in decoded], [loop.run(img) for img in decoded])
    if not same:
        print(f"  {model_id}: the plain loop does NOT compute what segviewer does ({agree})", flush=True)
    n = len(decoded)

    def one_image_each(fn: Any) -> Any:
        """A call per round on the next image: every round gives all candidates the same image,
        and rounds of one image each keep the interleaving fine (tens of ms) on a busy machine."""
        it = itertools.cycle(decoded)
        return lambda: fn(next(it))

    tm = time_both({SEG: one_image_each(lambda img: ad.predict(img, lean)),
                    SEG_FULL: one_image_each(lambda img: ad.predict(img, full)),
                    PLAIN: one_image_each(loop.run)}, repeats=args.repeats * n, warmup=1)
    rows = [_row(model_id, "model", tm, k, 1, agree if k == SEG else "") for k in (PLAIN, SEG, SEG_FULL)]
    verdicts = [(model_id, "outputs", float(same)), (model_id, "model", ratio(tm, SEG, PLAIN, "cpu"))]

    seg_out, plain_out = tmp / f"out_{model_id}_seg", tmp / f"out_{model_id}_plain"
    argv = ["predict", str(tmp / "images"), "--model", model_id, "--out", str(seg_out), "--overwrite", "--no-gt",
            "--device", "cpu", "--threads", str(args.threads)]

    def seg_command() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            if cli_main(argv) != 0:
                raise RuntimeError("segviewer predict failed")

    real_create = registry.create_adapter
    ad.load = lambda *a, **k: None  # already loaded: the command's own load is timed in the start-up
    registry.create_adapter = lambda *a, **k: ad  # type: ignore[assignment]
    try:
        tc = time_both({SEG: seg_command, PLAIN: lambda: plain_files(loop, files, plain_out)},
                       repeats=args.repeats, warmup=1)
    finally:
        registry.create_adapter = real_create  # type: ignore[assignment]
        del ad.load
    note = ""
    if loop.kind not in SEMANTIC:  # the files written: as many COCO records on both sides
        counts = [len(json.loads((o / "results.json").read_text())) for o in (seg_out, plain_out)]
        note = f"{counts[0]} vs {counts[1]} records"
    rows += [_row(model_id, "command", tc, k, n, note if k == SEG else "") for k in (PLAIN, SEG)]
    verdicts.append((model_id, "command", ratio(tc, SEG, PLAIN, "cpu")))

    start_rows = []
    if args.startup_rounds > 0:
        assert ad.weights_path is not None
        st = startup(model_id, ad.weights_path, files[0], tmp, args.threads, args.startup_rounds, args.compare_tree,
                     ad._maskiou_path() if head is not None else None)
        for k, v in st.items():
            walls = [w for w, _ in v]
            start_rows.append((model_id, k, statistics.median(walls), min(walls), max(walls),
                               statistics.median(c for _, c in v)))
        verdicts.append((model_id, "start-up s", statistics.median(w for w, _ in st[SEG])))
    return rows, start_rows, verdicts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10, help="images per timed pass (default 10)")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds (default 5)")
    ap.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads on both sides (default 1)")
    ap.add_argument("--startup-rounds", type=int, default=3, help="fresh interpreters per candidate (default 3)")
    ap.add_argument("--models", nargs="+", default=list(BUNDLED), choices=BUNDLED)
    ap.add_argument("--keep", type=Path, default=None, help="keep the images and outputs in this folder")
    ap.add_argument("--compare-tree", type=Path, default=None, metavar="DIR",
                    help="also time the start-up of the segviewer in DIR (e.g. an older commit: "
                         "git archive COMMIT | tar -x -C DIR)")
    args = ap.parse_args(argv)

    from segviewer.core.imageio import read_image

    pin_threads(args.threads)
    tmp_ctx = tempfile.TemporaryDirectory() if args.keep is None else contextlib.nullcontext(str(args.keep))
    with tmp_ctx as tmp_name:
        tmp = Path(tmp_name)
        files = _images(tmp / "images", args.n)
        decoded = [read_image(f) for f in files]
        print(machine_line(), f"· {args.threads} thread(s) each · {args.n} images 640x480 · "
              f"{args.repeats} interleaved rounds")
        rows, start_rows, verdicts = [], [], []
        for model_id in args.models:
            r, s, v = bench_model(model_id, files, decoded, tmp, args)
            rows += r
            start_rows += s
            verdicts += v
            print(f"  {model_id} done · {load_line()}", flush=True)

    print(f"\nper image (ms); ratio = candidate / plain loop (CPU, wall); {args.threads} thread(s)")
    print(table(rows, ["model", "level", "candidate", "CPU ms", "wall ms", "img/s", "ratio CPU", "ratio wall",
                       "outputs"]))
    if start_rows:
        print(f"\nstart-up: launch to first image written, {args.startup_rounds} fresh interpreters each "
              "(wall s median [min-max], CPU s of the whole run)")
        print(table([(m, k, f"{med:.2f} [{lo:.2f}-{hi:.2f}]", cpu) for m, k, med, lo, hi, cpu in start_rows],
                    ["model", "candidate", "wall s", "CPU s"]))
    print()
    for model_id, what, v in verdicts:
        if what == "outputs":
            if not v:
                print(f"{model_id:16s} outputs DIFFER from the plain loop's: its ratios compare different work")
        elif what == "start-up s":
            ok = v < START_TARGET
            print(f"{model_id:16s} start-up to first image {v:.2f} s: {'under' if ok else 'NOT under'} {START_TARGET} s")
        else:
            ok = v <= TARGET
            print(f"{model_id:16s} {what:8s} segviewer / plain = {v:.3f} (CPU): "
                  f"{'within' if ok else 'NOT within'} {100 * (TARGET - 1):.0f}%")
    print(load_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
