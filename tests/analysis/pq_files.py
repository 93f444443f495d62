"""Synthetic COCO panoptic files for the PQ tests: random segment maps and perturbed predictions.

(A plain module, not conftest.py: several conftest modules share that name under pytest.)
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

CATEGORIES = [
    {"id": 1, "name": "sky", "isthing": 0},
    {"id": 2, "name": "grass", "isthing": 0},
    {"id": 7, "name": "road", "isthing": 0},
    {"id": 11, "name": "circle", "isthing": 1},
    {"id": 12, "name": "square", "isthing": 1},
    {"id": 20, "name": "star", "isthing": 1},
]
STUFF_IDS = [1, 2, 7]
THING_IDS = [11, 12, 20]


def id2rgb(ids: np.ndarray) -> np.ndarray:
    ids = ids.astype(np.uint32)
    return np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], -1).astype(np.uint8)


def random_gt(rng: np.random.Generator, h: int, w: int, n_things: int = 8,
              crowd: bool = True) -> tuple[np.ndarray, list[dict]]:
    """Stuff bands plus random ellipses and boxes of things; some void; one crowd region."""
    ids = np.zeros((h, w), np.int64)
    segs: list[dict] = []
    next_id = int(rng.integers(1, 5000))

    def new(cat: int, iscrowd: int = 0) -> int:
        nonlocal next_id
        next_id += int(rng.integers(1, 70000))  # ids spread over the 24-bit range
        segs.append({"id": next_id, "category_id": cat, "iscrowd": iscrowd})
        return next_id

    cuts = np.sort(rng.integers(h // 5, h - h // 5, 2))
    ids[: cuts[0]] = new(STUFF_IDS[0])
    ids[cuts[0]: cuts[1]] = new(STUFF_IDS[1])
    ids[cuts[1]:] = new(STUFF_IDS[2])
    for k in range(n_things):
        cat = int(rng.choice(THING_IDS))
        sid = new(cat, int(crowd and k == 0))
        m = np.zeros((h, w), np.uint8)
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        ax, ay = int(rng.integers(3, w // 4)), int(rng.integers(3, h // 4))
        if rng.random() < 0.5:
            cv2.ellipse(m, (cx, cy), (ax, ay), float(rng.uniform(0, 180)), 0, 360, 1, -1)
        else:
            cv2.rectangle(m, (cx - ax, cy - ay), (cx + ax, cy + ay), 1, -1)
        ids[m > 0] = sid
    # void: a thin stripe and a blob
    ids[:, int(rng.integers(0, w - 3)): None][:, :2] = 0
    ids[int(rng.integers(0, h - 6)):][:6, int(rng.integers(0, w - 6)):][:, :6] = 0
    present = set(np.unique(ids).tolist())
    segs = [s for s in segs if s["id"] in present]
    for s in segs:
        s["area"] = int((ids == s["id"]).sum())
    return ids, segs


def perturb(rng: np.random.Generator, gt: np.ndarray, segs: list[dict]) -> tuple[np.ndarray, list[dict]]:
    """A plausible prediction: eroded/dilated segments, a merge, a drop, a spurious one, relabels,
    void patches, and new ids."""
    h, w = gt.shape
    pred = gt.copy()
    cats = {s["id"]: s["category_id"] for s in segs}
    things = [s["id"] for s in segs if s["category_id"] in THING_IDS]
    k = np.ones((5, 5), np.uint8)
    for sid in things:
        r = rng.random()
        m = (gt == sid).astype(np.uint8)
        if r < 0.25:
            pred[(cv2.dilate(m, k, iterations=int(rng.integers(1, 4))) > 0)] = sid
        elif r < 0.5:
            er = cv2.erode(m, k, iterations=int(rng.integers(1, 4))) > 0
            pred[(m > 0) & ~er] = rng.choice([s["id"] for s in segs])
        elif r < 0.6:  # dropped: painted with the stuff under it
            pred[m > 0] = segs[0]["id"]
    if len(things) >= 2:  # merge two things
        a, b = things[-2], things[-1]
        pred[pred == b] = a
    nid = int(gt.max()) + 17
    # spurious segment
    x, y = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
    pred[y: y + int(rng.integers(5, 20)), x: x + int(rng.integers(5, 20))] = nid
    cats[nid] = int(rng.choice(THING_IDS))
    # spurious mostly-void segment in prediction on GT void stripe
    pred[gt == 0] = np.where(rng.random() < 0.5, nid + 1, 0)
    cats[nid + 1] = int(rng.choice(THING_IDS))
    # void patch in the prediction
    pred[int(rng.integers(0, h - 8)):][:8, :10] = 0
    # relabel a category now and then
    present = [int(v) for v in np.unique(pred) if v]
    remap = {v: (v * 7919 + 13) % (1 << 24) or 1 for v in present}
    out = np.zeros_like(pred)
    segs_out = []
    for v in present:
        out[pred == v] = remap[v]
        cat = cats[v]
        if rng.random() < 0.1:
            cat = int(rng.choice(STUFF_IDS + THING_IDS))
        segs_out.append({"id": remap[v], "category_id": cat})
    return out, segs_out


def write_panoptic(json_path: Path, items: list[tuple[int, np.ndarray, list[dict]]],
                   categories: list[dict] = CATEGORIES) -> Path:
    """Write ``json_path`` and the PNG folder beside it (same stem); returns the folder."""
    folder = json_path.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    anns = []
    for image_id, ids, segs in items:
        name = f"{image_id:06d}.png"
        cv2.imwrite(str(folder / name), cv2.cvtColor(id2rgb(ids), cv2.COLOR_RGB2BGR))
        anns.append({"image_id": image_id, "file_name": name, "segments_info": segs})
    json_path.write_text(json.dumps({"annotations": anns, "categories": categories,
                                     "images": [{"id": i, "file_name": f"{i:06d}.jpg",
                                                 "height": int(m.shape[0]), "width": int(m.shape[1])}
                                                for i, m, _ in items]}))
    return folder


def make_panoptic_files(tmp_path: Path) -> tuple[Path, Path]:
    """Six GT/prediction image pairs as COCO panoptic files: (gt_json, pred_json)."""
    rng = np.random.default_rng(1234)
    gts, preds = [], []
    for i in range(6):
        g, gs = random_gt(rng, 72 + 8 * i, 96, n_things=6 + i)
        p, ps = perturb(rng, g, gs)
        gts.append((i + 1, g, gs))
        preds.append((i + 1, p, ps))
    gj, pj = tmp_path / "gt" / "panoptic.json", tmp_path / "pred" / "panoptic.json"
    write_panoptic(gj, gts)
    write_panoptic(pj, preds)
    return gj, pj
