"""Benchmark: our PQ vs the reference ``pq_compute`` and torchmetrics, on the same files, same run.

Ground truth: shapes-world scenes (640x480, about 20 segments each) with a few void strips and one
crowd segment per image now and then. Predictions: the ground truth perturbed (things eroded or
dilated, merged, dropped, spurious segments, void patches, now and then a wrong class).

Reference: cityscapesscripts' ``evalPanopticSemanticLabeling`` (panopticapi's ``pq_compute``
adapted), timed as shipped (a ``multiprocessing`` pool of ``cpu_count()`` workers) and in one
process. The "matching and counting" rows start both sides from decoded id maps. Ours end to end
reads OpenCV-written PNGs as runs (zlib-ng inflate, no libpng) and counts run by run.

    nice -n 10 python bench/pq.py            # 50 images
    nice -n 10 python bench/pq.py --n 100 --keep /tmp/pqbench

Needs ``pip install cityscapesscripts`` (and ``torchmetrics`` for its row; skipped if missing).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from segviewer.analysis.matching import IdIndexer
from segviewer.analysis.pq import PQAccumulator, pq_compute, read_panoptic_png
from segviewer.core.coco_io import category_entries
from segviewer.core.panoptic_io import (
    panoptic_annotation,
    read_panoptic_runs,
    write_panoptic_json,
    write_panoptic_png,
)
from segviewer.core.results import PanopticMap, PanopticSegment
from segviewer.synth.classes import CATEGORIES, ISTHING
from segviewer.synth.dataset import scene_panoptic
from segviewer.synth.generate import generate_scene


@contextlib.contextmanager
def quiet():
    """Silence stdout at the file-descriptor level (the reference's worker processes print too)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def _with_gt_void_and_crowd(pm: PanopticMap, rng: np.random.Generator) -> PanopticMap:
    ids = np.array(pm.segment_ids)
    h, w = ids.shape
    for _ in range(2):  # void strips (unlabelled borders)
        x = int(rng.integers(0, w - 8))
        ids[:, x:x + int(rng.integers(2, 8))] = 0
    segs = list(pm.segments)
    things = [s for s in segs if s.isthing]
    if things and rng.random() < 0.5:  # one thing becomes crowd
        k = segs.index(things[int(rng.integers(len(things)))])
        s = segs[k]
        segs[k] = PanopticSegment(s.id, s.category_id, True, s.area, iscrowd=True)
    present = set(np.unique(ids).tolist())
    segs = [PanopticSegment(s.id, s.category_id, s.isthing, int((ids == s.id).sum()), iscrowd=s.iscrowd)
            for s in segs if s.id in present]
    return PanopticMap(ids, tuple(segs), pm.categories, pm.isthing)


def perturb(gt: PanopticMap, rng: np.random.Generator) -> PanopticMap:
    """A plausible prediction made from the ground truth."""
    ids = np.array(gt.segment_ids)
    pred = ids.copy()
    cat = {s.id: s.category_id for s in gt.segments}
    stuff = [s.id for s in gt.segments if not s.isthing] or [s.id for s in gt.segments]
    things = [s.id for s in gt.segments if s.isthing]
    kernel = np.ones((3, 3), np.uint8)
    for sid in things:
        m = (ids == sid).astype(np.uint8)
        r = rng.random()
        if r < 0.3:
            pred[cv2.dilate(m, kernel, iterations=int(rng.integers(1, 5))) > 0] = sid
        elif r < 0.6:
            er = cv2.erode(m, kernel, iterations=int(rng.integers(1, 5))) > 0
            pred[(m > 0) & ~er] = stuff[int(rng.integers(len(stuff)))]
        elif r < 0.7:
            pred[m > 0] = stuff[int(rng.integers(len(stuff)))]  # dropped
    by_cat: dict[int, list[int]] = {}
    for sid in things:
        by_cat.setdefault(cat[sid], []).append(sid)
    for group in by_cat.values():  # merge two instances of a class
        if len(group) >= 2 and rng.random() < 0.5:
            pred[pred == group[1]] = group[0]
    h, w = ids.shape
    nid = int(ids.max()) + 1
    thing_cats = [c for c, t in enumerate(ISTHING) if t]
    for _ in range(int(rng.integers(1, 4))):  # spurious segments
        x, y = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        cv2.circle(pred, (x + 20, y + 20), int(rng.integers(5, 20)), nid, -1)
        cat[nid] = int(rng.choice(thing_cats))
        nid += 1
    for _ in range(int(rng.integers(1, 4))):  # void patches
        x, y = int(rng.integers(0, w - 30)), int(rng.integers(0, h - 30))
        pred[y:y + int(rng.integers(5, 30)), x:x + int(rng.integers(5, 30))] = 0
    segs = []
    counts = dict(zip(*np.unique(pred, return_counts=True)))
    for sid, n in counts.items():
        sid = int(sid)
        if sid == 0:
            continue
        c = cat[sid]
        if rng.random() < 0.05:
            c = int(rng.integers(len(CATEGORIES)))
        segs.append(PanopticSegment(sid, c, ISTHING[c], int(n)))
    return PanopticMap(pred.astype(np.int32), tuple(segs), CATEGORIES, ISTHING)


def make_files(root: Path, n: int, seed: int) -> tuple[Path, Path]:
    cats = category_entries(CATEGORIES, ISTHING)
    g_anns, p_anns, images = [], [], []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        scene = generate_scene(seed * 100003 + i, (480, 640), n_things=(14, 18))
        gt = _with_gt_void_and_crowd(scene_panoptic(scene), rng)
        pred = perturb(gt, rng)
        name = f"img_{i:04d}.png"
        write_panoptic_png(root / "gt" / name, gt.segment_ids)
        write_panoptic_png(root / "pred" / name, pred.segment_ids)
        images.append({"id": i + 1, "file_name": name, "height": 480, "width": 640})
        g_anns.append(panoptic_annotation(i + 1, name, gt))
        p_anns.append(panoptic_annotation(i + 1, name, pred))
    write_panoptic_json(root / "gt.json", images, g_anns, cats)
    write_panoptic_json(root / "pred.json", images, p_anns, cats)
    return root / "gt.json", root / "pred.json"


CPU: dict[str, float] = {}  # CPU seconds of this process per row (meaningless for the worker pool)


def timed(fn, repeat: int = 1, name: str | None = None):
    """Best wall time of ``repeat`` runs (and, under ``name``, the CPU time of that run)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        if wall < best:
            best = wall
            if name:
                CPU[name] = cpu
    return best, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs per row")
    ap.add_argument("--keep", type=Path, help="write the files here and keep them")
    ap.add_argument("--reuse", action="store_true", help="with --keep: reuse files already there")
    ap.add_argument("--no-torchmetrics", action="store_true", help="skip the (slow) torchmetrics row")
    args = ap.parse_args()
    try:
        from cityscapesscripts.evaluation import evalPanopticSemanticLabeling as ref
    except Exception as err:  # noqa: BLE001
        print(f"the reference (pip install cityscapesscripts) is not importable: {err}")
        return 1
    tmp = None
    if args.keep:
        root = args.keep
        root.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory()
        root = Path(tmp.name)
    t0 = time.perf_counter()
    if args.reuse and (root / "gt.json").is_file() and (root / "pred.json").is_file():
        gj, pj = root / "gt.json", root / "pred.json"
    else:
        gj, pj = make_files(root, args.n, args.seed)
    gd, pd = json.loads(gj.read_text()), json.loads(pj.read_text())
    nseg = np.mean([len(a["segments_info"]) for a in gd["annotations"]])
    print(f"{args.n} image pairs 640x480, {nseg:.1f} GT segments/image on average "
          f"(made in {time.perf_counter() - t0:.1f} s); cpu_count={os.cpu_count()}")
    gf, pf = root / "gt", root / "pred"
    cats = {c["id"]: c for c in gd["categories"]}
    preds = {a["image_id"]: a for a in pd["annotations"]}
    pairs = [(g, preds[g["image_id"]]) for g in gd["annotations"]]

    rows: dict[str, float] = {}

    def row(name: str, fn, repeat: int = args.repeat):
        rows[name], out = timed(fn, repeat, name)
        return out

    threads = max(2, os.cpu_count() or 1)
    ours = row("ours end to end (1 thread)", lambda: pq_compute(gj, pj, gf, pf, workers=1))
    ours2 = row(f"ours end to end ({threads} threads)", lambda: pq_compute(gj, pj, gf, pf, workers=threads))

    def ref_shipped():
        with quiet():
            return ref.evaluatePanoptic(str(gj), str(gf), str(pj), str(pf), str(root / "ref_results.json"))

    def ref_one_process():
        with quiet():
            stat = ref.pq_compute_single_core(0, pairs, str(gf), str(pf), cats)
        return ref.average_pq(stat, cats)

    theirs = row("reference as shipped (pool of workers)", ref_shipped)
    theirs1 = row("reference in one process", ref_one_process)

    # Matching and counting alone: both sides start from decoded id maps.
    gmaps = [read_panoptic_png(gf / g["file_name"]) for g, _ in pairs]
    pmaps = [read_panoptic_png(pf / p["file_name"]) for _, p in pairs]

    def ours_count():
        acc = PQAccumulator(gd["categories"])
        ix = IdIndexer()
        for (g, p), gm, pm in zip(pairs, gmaps, pmaps):
            acc.add(gm, g["segments_info"], pm, p["segments_info"], indexer=ix)
        return acc.results()

    cache = {str(gf / g["file_name"]): m for (g, _), m in zip(pairs, gmaps)}
    cache.update({str(pf / p["file_name"]): m for (_, p), m in zip(pairs, pmaps)})

    class _Decoded:  # stands in for PIL.Image inside the reference: returns the decoded id map
        @staticmethod
        def open(path):
            return cache[str(path)]

    def ref_count():
        saved = ref.Image, ref.rgb2id
        ref.Image, ref.rgb2id = _Decoded, (lambda a: a)
        try:
            with quiet():
                stat = ref.pq_compute_single_core(0, pairs, str(gf), str(pf), cats)
        finally:
            ref.Image, ref.rgb2id = saved
        return ref.average_pq(stat, cats)

    ours_c = row("ours matching+counting", ours_count)
    theirs_c = row("reference matching+counting", ref_count)
    row("decode PNGs only, libpng (2 per image)",
        lambda: [read_panoptic_png(gf / g["file_name"]) for g, _ in pairs]
        + [read_panoptic_png(pf / p["file_name"]) for _, p in pairs])
    if read_panoptic_runs(gf / pairs[0][0]["file_name"]) is not None:
        row("decode PNGs only, to runs (ours, 2 per image)",
            lambda: [read_panoptic_runs(gf / g["file_name"]) for g, _ in pairs]
            + [read_panoptic_runs(pf / p["file_name"]) for _, p in pairs])
    else:
        print("(PNGs decoded by libpng: install zlib-ng for the faster runs path)")

    tm_pq = None
    try:
        if args.no_torchmetrics:
            raise ImportError("--no-torchmetrics")
        import torch
        from torchmetrics.detection import PanopticQuality

        torch.set_num_threads(1)
        things = {c["id"] for c in gd["categories"] if c["isthing"]}
        stuffs = {c["id"] for c in gd["categories"] if not c["isthing"]}

        def tm_input(m: np.ndarray, segs: list[dict]) -> torch.Tensor:
            catmap = np.zeros(m.shape, np.int64)  # 0 is no category: torchmetrics' void
            inst = np.zeros(m.shape, np.int64)
            for s in segs:
                sel = m == s["id"]
                catmap[sel] = s["category_id"]
                inst[sel] = s["id"] if s["category_id"] in things else 0
            return torch.from_numpy(np.stack([catmap, inst], -1)[None])

        def tm_run():
            metric = PanopticQuality(things=things, stuffs=stuffs, allow_unknown_preds_category=True)
            for g, p in pairs:
                gm, pm = read_panoptic_png(gf / g["file_name"]), read_panoptic_png(pf / p["file_name"])
                metric.update(tm_input(pm, p["segments_info"]), tm_input(gm, g["segments_info"]))
            return float(metric.compute())

        tm_pq = row("torchmetrics PanopticQuality", tm_run, 1)
    except ImportError as err:
        print(f"(torchmetrics row skipped: {err})")

    # Identical numbers?
    worst = 0.0
    for res in (theirs, theirs1, theirs_c):
        for a, b in (("all", "All"), ("things", "Things"), ("stuff", "Stuff")):
            for k in ("pq", "sq", "rq"):
                for o in (ours, ours2, ours_c):
                    worst = max(worst, abs(o[a][k] - res[b][k]))
        per = {r["id"]: r for r in ours["per_class"].values()}
        for cid, r in res["per_class"].items():
            for k in ("pq", "sq", "rq"):
                worst = max(worst, abs(per[cid][k] - r[k]))

    r_ship = rows["reference as shipped (pool of workers)"]
    r_one = rows["reference in one process"]
    o1 = rows["ours end to end (1 thread)"]
    on = rows[f"ours end to end ({threads} threads)"]
    print(f"\nend to end vs the reference as shipped ({os.cpu_count()} worker processes): "
          f"{r_ship / on:.1f}x faster with {threads} threads, {r_ship / o1:.1f}x with 1 thread")
    print(f"end to end, both in one thread: {r_one / o1:.1f}x faster")
    print(f"matching+counting: {rows['reference matching+counting'] / rows['ours matching+counting']:.1f}x faster")
    print(f"largest difference from the reference (PQ/SQ/RQ, all/things/stuff/per class): {worst:.2e}")
    print(f"PQ all: ours {ours['all']['pq']:.6f}, reference {theirs['All']['pq']:.6f}"
          + ("" if tm_pq is None else f", torchmetrics {tm_pq:.6f} (no crowd handling; removes "
             "prediction-void pixels from the union)"))
    if "ours matching+counting" in CPU and "reference matching+counting" in CPU:
        print(f"matching+counting by CPU time of this process: "
              f"{CPU['reference matching+counting'] / CPU['ours matching+counting']:.1f}x faster")
    print(f"\n{'what':44s} {'wall s':>8s} {'ms/image':>9s} {'CPU ms/image':>13s}")
    for k, v in rows.items():
        cpu = f"{1000 * CPU[k] / args.n:13.2f}" if k in CPU and "pool" not in k else f"{'-':>13s}"
        print(f"{k:44s} {v:8.3f} {1000 * v / args.n:9.2f} {cpu}")
    if tmp is not None:
        tmp.cleanup()
    return 0 if worst <= 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
