"""Benchmark: our PQ vs the reference ``pq_compute`` (and torchmetrics), same files, same run.

Workloads (each: ground truth and a prediction made from it, both PNG + JSON):

* ``shapes-cv``: shapes-world scenes, 640x480, about 20 segments, a few void strips and now and
  then a crowd segment; predictions perturb them (things eroded or dilated, merged, dropped,
  spurious segments, void patches, a wrong class now and then). Written by OpenCV, as ours are.
* ``shapes-pil``: the very same maps written by PIL (``Image.save`` of ``id2rgb``, as
  panopticapi's converters and COCO's files are): adaptive row filters (Up, Paeth ...).
* ``coco-pil``: 640x480, COCO-like: 10-18 segments with random 24-bit ids over all three bytes,
  polygonal stuff regions and convex things, predictions shifted by a few pixels; PIL-written.
* ``large-pil``: 1280x720, a few (4-7) big segments covering the frame; PIL-written.

Reference: cityscapesscripts' ``evalPanopticSemanticLabeling`` (panopticapi's ``pq_compute``,
same decode with PIL and same counting), timed as shipped (a ``multiprocessing`` pool of
``cpu_count()`` workers) and in one process. Ours: as ``segviewer eval`` runs it (``cpu_count()``
forked worker processes, ``pq_compute(..., processes=True)``), in as many threads, and in one
thread; the target (issue #13) is ours as ``segviewer eval`` runs it >= 3x the reference as
shipped. Forked workers' CPU time is not this process's, so that column shows "-" for them. All candidates of a workload are timed
interleaved (A B C D A B C D ...), medians reported with their range, and every ratio comes from
that one interleaved run (``bench/_common.ratio`` refuses any other). The load average is printed
before and after. ``--cli`` also times ``segviewer eval`` against the reference's
``evaluatePanoptic`` as whole processes (interpreter start and imports included).

    nice -n 10 python bench/pq.py                 # 50 images per workload
    nice -n 10 python bench/pq.py --n 100 --keep /tmp/pqbench --cli

Needs ``pip install -e ".[bench]"`` (cityscapesscripts; torchmetrics for ``--torchmetrics``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_line, machine_line, ratio, time_both  # noqa: E402

from segviewer.analysis.matching import IdIndexer  # noqa: E402
from segviewer.analysis.pq import PQAccumulator, pq_compute, read_panoptic_png  # noqa: E402
from segviewer.core.coco_io import category_entries  # noqa: E402
from segviewer.core.panoptic_io import (  # noqa: E402
    id2rgb,
    panoptic_annotation,
    read_panoptic_runs,
    write_panoptic_json,
    write_panoptic_png,
)
from segviewer.core.results import PanopticMap, PanopticSegment  # noqa: E402
from segviewer.synth.classes import CATEGORIES, ISTHING  # noqa: E402
from segviewer.synth.dataset import scene_panoptic  # noqa: E402
from segviewer.synth.generate import generate_scene  # noqa: E402


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


def write_pil(root: Path, side: str, name: str, ids: np.ndarray) -> None:
    """Write an id map as panopticapi's converters do: PIL ``Image.save`` of ``id2rgb``."""
    from PIL import Image

    (root / side).mkdir(parents=True, exist_ok=True)
    Image.fromarray(id2rgb(ids)).save(root / side / name)


def pil_copy(src: Path, dst: Path) -> tuple[Path, Path]:
    """The same maps and JSONs as ``src``, the PNGs rewritten by PIL."""
    for side in ("gt", "pred"):
        for png in sorted((src / side).glob("*.png")):
            write_pil(dst, side, png.name, read_panoptic_png(png))
    for j in ("gt.json", "pred.json"):
        (dst / j).write_bytes((src / j).read_bytes())
    return dst / "gt.json", dst / "pred.json"


COCO_CATS = [{"id": 1 + k, "name": f"{'thing' if k < 6 else 'stuff'}{k}", "isthing": int(k < 6)}
             for k in range(14)]


def _polygon_map(h: int, w: int, rng: np.random.Generator, n_stuff: int, n_things: int
                 ) -> tuple[np.ndarray, dict[int, int]]:
    """Stuff: nearest-seed (Voronoi) regions; things: convex polygons on top; void strips.
    Ids are random 24-bit values (all three bytes vary, as in COCO's files)."""
    ids_used: set[int] = set()

    def new_id() -> int:
        while True:
            v = int(rng.integers(1, 256**3))
            if v not in ids_used:
                ids_used.add(v)
                return v

    cat: dict[int, int] = {}
    seeds = rng.uniform((0, 0), (w, h), (n_stuff, 2))
    yy, xx = np.mgrid[0:h:8, 0:w:8]
    near = np.argmin((xx[..., None] - seeds[:, 0]) ** 2 + (yy[..., None] - seeds[:, 1]) ** 2, axis=-1)
    near = cv2.resize(near.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    stuff_ids = [new_id() for _ in range(n_stuff)]
    for s_id in stuff_ids:
        cat[s_id] = 7 + int(rng.integers(0, 8))
    out = np.array(stuff_ids, np.int32)[near]
    for _ in range(n_things):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), min(h, w) * rng.uniform(0.04, 0.25)
        ang = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(5, 12))))
        pts = np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], 1).astype(np.int32)
        t_id = new_id()
        cat[t_id] = 1 + int(rng.integers(0, 6))
        cv2.fillPoly(out, [pts], t_id)
    x = int(rng.integers(0, w - 8))
    out[:, x:x + int(rng.integers(2, 8))] = 0  # a void strip
    return out, cat


def _segments(ids: np.ndarray, cat: dict[int, int], rng: np.random.Generator, relabel: float) -> list[dict]:
    vals, counts = np.unique(ids, return_counts=True)
    out = []
    for v, n in zip(vals.tolist(), counts.tolist()):
        if v == 0:
            continue
        c = cat[v]
        if rng.random() < relabel:
            c = 1 + int(rng.integers(0, 14))
        ys, xs = np.nonzero(ids == v)
        out.append({"id": v, "category_id": c, "iscrowd": 0, "area": n,
                    "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]})
    return out


def make_coco_like(root: Path, n: int, seed: int, h: int, w: int, n_stuff: tuple[int, int],
                   n_things: tuple[int, int]) -> tuple[Path, Path]:
    """Ground truth and predictions (the map shifted by a few pixels, a thing dropped or added,
    a class wrong now and then), PIL-written, random 24-bit ids."""
    images, g_anns, p_anns = [], [], []
    for i in range(n):
        rng = np.random.default_rng([seed, i, h, w])
        gt, cat = _polygon_map(h, w, rng, int(rng.integers(*n_stuff)), int(rng.integers(*n_things)))
        dy, dx = (int(v) for v in rng.integers(-4, 5, 2))
        pred = np.roll(gt, (dy, dx), axis=(0, 1))
        things = [v for v in np.unique(pred).tolist() if v and cat[v] <= 6]
        if things and rng.random() < 0.5:  # a thing missed: the stuff to its left fills it
            m = pred == things[int(rng.integers(len(things)))]
            pred[m] = pred[0, 0] or next(v for v in np.unique(pred).tolist() if v)
        if rng.random() < 0.5:  # a spurious thing
            sid = int(rng.integers(1, 256**3))
            while sid in cat:
                sid = int(rng.integers(1, 256**3))
            cat[sid] = 1 + int(rng.integers(0, 6))
            cv2.circle(pred, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(min(h, w) * 0.05), sid, -1)
        name = f"img_{i:04d}.png"
        write_pil(root, "gt", name, gt)
        write_pil(root, "pred", name, pred)
        images.append({"id": i + 1, "file_name": name, "height": h, "width": w})
        g_anns.append({"image_id": i + 1, "file_name": name, "segments_info": _segments(gt, cat, rng, 0.0)})
        p_anns.append({"image_id": i + 1, "file_name": name, "segments_info": _segments(pred, cat, rng, 0.05)})
    write_panoptic_json(root / "gt.json", images, g_anns, COCO_CATS)
    write_panoptic_json(root / "pred.json", images, p_anns, COCO_CATS)
    return root / "gt.json", root / "pred.json"


def _worst_difference(ours: dict, theirs: dict) -> float:
    """Largest |ours - reference| over PQ/SQ/RQ of all/things/stuff and every class."""
    worst = 0.0
    for a, b in (("all", "All"), ("things", "Things"), ("stuff", "Stuff")):
        for k in ("pq", "sq", "rq"):
            worst = max(worst, abs(ours[a][k] - theirs[b][k]))
    per = {r["id"]: r for r in ours["per_class"].values()}
    for cid, r in theirs["per_class"].items():
        for k in ("pq", "sq", "rq"):
            worst = max(worst, abs(per[cid][k] - r[k]))
    return worst


REF_CLI = """import sys
from cityscapesscripts.evaluation import evalPanopticSemanticLabeling as ref
gj, gf, pj, pf, out = sys.argv[1:]
ref.evaluatePanoptic(gj, gf, pj, pf, out)
"""


def run_workload(name: str, root: Path, args: argparse.Namespace, ref, threads: int,
                 counting: bool, cli: bool) -> tuple[list[tuple], float]:
    """Time every candidate of one workload interleaved; returns table rows and the worst difference."""
    gj, pj, gf, pf = root / "gt.json", root / "pred.json", root / "gt", root / "pred"
    gd, pd = json.loads(gj.read_text()), json.loads(pj.read_text())
    cats = {c["id"]: c for c in gd["categories"]}
    preds = {a["image_id"]: a for a in pd["annotations"]}
    pairs = [(g, preds[g["image_id"]]) for g in gd["annotations"]]
    n = len(pairs)
    first = read_panoptic_png(gf / pairs[0][0]["file_name"])
    nseg = np.mean([len(a["segments_info"]) for a in gd["annotations"]])
    path = "runs" if read_panoptic_runs(gf / pairs[0][0]["file_name"]) is not None else "libpng"
    print(f"\n== {name}: {n} image pairs {first.shape[1]}x{first.shape[0]}, {nseg:.1f} GT segments/image, "
          f"ours reads them as {path}")

    def ref_shipped():
        with quiet():
            return ref.evaluatePanoptic(str(gj), str(gf), str(pj), str(pf), str(root / "ref_results.json"))

    def ref_one_process():
        with quiet():
            stat = ref.pq_compute_single_core(0, pairs, str(gf), str(pf), cats)
        return ref.average_pq(stat, cats)

    mine, one_t, many_t = f"ours, {threads} processes (segviewer eval)", "ours, 1 thread", f"ours, {threads} threads"
    ship, one = f"reference as shipped ({os.cpu_count()} processes)", "reference in one process"
    fns = {
        mine: lambda: pq_compute(gj, pj, gf, pf, workers=threads, processes=True),
        one_t: lambda: pq_compute(gj, pj, gf, pf, workers=1),
        many_t: lambda: pq_compute(gj, pj, gf, pf, workers=threads),
        ship: ref_shipped,
        one: ref_one_process,
    }
    outs = {k: f() for k, f in fns.items()}
    worst = max(_worst_difference(outs[o], outs[r]) for o in (mine, one_t, many_t) for r in (ship, one))
    t = time_both(fns, repeats=args.repeat, warmup=0, interleave=True)
    rows = [(name, k, t[k][0], t[k][0] / n, t[k][1] / n, *t.spread(k)) for k in fns]
    print(f"end to end vs the reference as shipped: {ratio(t, ship, mine):.2f}x faster with {threads} "
          f"processes (as segviewer eval runs; target >= 3x), {ratio(t, ship, many_t):.2f}x with {threads} "
          f"threads, {ratio(t, ship, one_t):.2f}x with 1 thread; both in one process: {ratio(t, one, one_t):.2f}x")
    print(f"largest difference from the reference (PQ/SQ/RQ, all/things/stuff/per class): {worst:.2e}; "
          f"PQ all {outs[mine]['all']['pq']:.6f}")

    if counting:  # matching and counting alone: both sides start from decoded id maps
        gmaps = [read_panoptic_png(gf / g["file_name"]) for g, _ in pairs]
        pmaps = [read_panoptic_png(pf / p["file_name"]) for _, p in pairs]
        cache = {str(gf / g["file_name"]): m for (g, _), m in zip(pairs, gmaps)}
        cache.update({str(pf / p["file_name"]): m for (_, p), m in zip(pairs, pmaps)})

        def ours_count():
            acc = PQAccumulator(gd["categories"])
            ix = IdIndexer()
            for (g, p), gm, pm in zip(pairs, gmaps, pmaps):
                acc.add(gm, g["segments_info"], pm, p["segments_info"], indexer=ix)
            return acc.results()

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

        cfns = {"ours matching+counting": ours_count, "reference matching+counting": ref_count,
                "decode only, ours (runs, 2/image)":
                    lambda: [read_panoptic_runs(gf / g["file_name"]) for g, _ in pairs]
                    + [read_panoptic_runs(pf / p["file_name"]) for _, p in pairs],
                "decode only, libpng (2/image)":
                    lambda: [cv2.imread(str(gf / g["file_name"]), cv2.IMREAD_UNCHANGED) for g, _ in pairs]
                    + [cv2.imread(str(pf / p["file_name"]), cv2.IMREAD_UNCHANGED) for _, p in pairs]}
        ct = time_both(cfns, repeats=args.repeat, warmup=1, interleave=True)
        rows += [(name, k, ct[k][0], ct[k][0] / n, ct[k][1] / n, *ct.spread(k)) for k in cfns]
        print(f"matching+counting: {ratio(ct, 'reference matching+counting', 'ours matching+counting'):.2f}x "
              f"faster (wall), {ratio(ct, 'reference matching+counting', 'ours matching+counting', 'cpu'):.2f}x "
              f"(CPU)")

    if cli:  # whole processes: interpreter start, imports, JSON, PNGs, printing
        exe = sys.executable
        seg = [exe, "-m", "segviewer", "eval", "--task", "panoptic", "--gt", str(gj), "--pred", str(pj)]
        refc = [exe, "-c", REF_CLI, str(gj), str(gf), str(pj), str(pf), str(root / "ref_cli.json")]
        bare = [exe, "-c", "pass"]

        def proc(cmd):
            return lambda: subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        pfns = {"segviewer eval (process)": proc(seg), "reference pq_compute (process)": proc(refc),
                "python -c pass (process)": proc(bare)}
        pt = time_both(pfns, repeats=args.repeat, warmup=1, interleave=True)
        rows += [(name, k, pt[k][0], pt[k][0] / n, float("nan"), *pt.spread(k)) for k in pfns]
        print(f"as processes: segviewer eval {ratio(pt, 'reference pq_compute (process)', 'segviewer eval (process)'):.2f}x "
              f"faster than the reference's pq_compute run the same way; a bare interpreter takes "
              f"{pt['python -c pass (process)'][0]:.0f} ms of each")
    return rows, worst


def torchmetrics_pq(root: Path) -> float | None:
    """torchmetrics' PanopticQuality on the same files (its number, not timed against ours)."""
    try:
        import torch
        from torchmetrics.detection import PanopticQuality
    except ImportError as err:
        print(f"(torchmetrics row skipped: {err})")
        return None
    torch.set_num_threads(1)
    gd = json.loads((root / "gt.json").read_text())
    preds = {a["image_id"]: a for a in json.loads((root / "pred.json").read_text())["annotations"]}
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

    metric = PanopticQuality(things=things, stuffs=stuffs, allow_unknown_preds_category=True)
    for g in gd["annotations"]:
        p = preds[g["image_id"]]
        gm, pm = read_panoptic_png(root / "gt" / g["file_name"]), read_panoptic_png(root / "pred" / p["file_name"])
        metric.update(tm_input(pm, p["segments_info"]), tm_input(gm, g["segments_info"]))
    return float(metric.compute())


WORKLOADS = ("shapes-cv", "shapes-pil", "coco-pil", "large-pil")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50, help="image pairs per workload")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=5, help="interleaved rounds (medians over these)")
    ap.add_argument("--keep", type=Path, help="write the files here and keep them")
    ap.add_argument("--reuse", action="store_true", help="with --keep: reuse files already there")
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset of " + ", ".join(WORKLOADS))
    ap.add_argument("--cli", action="store_true", help="also time whole processes (segviewer eval vs the reference)")
    ap.add_argument("--torchmetrics", action="store_true", help="also print torchmetrics' PQ (slow, not timed)")
    args = ap.parse_args()
    try:
        from cityscapesscripts.evaluation import evalPanopticSemanticLabeling as ref
    except Exception as err:  # noqa: BLE001
        print(f"the reference (pip install cityscapesscripts) is not importable: {err}")
        return 1
    cv2.setNumThreads(1)
    tmp = None
    if args.keep:
        base = args.keep
        base.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory()
        base = Path(tmp.name)
    print(f"{machine_line()} (before)")
    threads = max(2, os.cpu_count() or 1)
    chosen = [w for w in args.workloads.split(",") if w]
    rows: list[tuple] = []
    worst = 0.0
    for name in chosen:
        root = base / name
        if not (args.reuse and (root / "gt.json").is_file() and (root / "pred.json").is_file()):
            t0 = time.perf_counter()
            if name == "shapes-cv":
                make_files(root, args.n, args.seed)
            elif name == "shapes-pil":
                src = base / "shapes-cv"
                if not (src / "gt.json").is_file():
                    make_files(src, args.n, args.seed)
                pil_copy(src, root)
            elif name == "coco-pil":
                make_coco_like(root, args.n, args.seed, 480, 640, (4, 7), (6, 12))
            elif name == "large-pil":
                make_coco_like(root, args.n, args.seed, 720, 1280, (3, 5), (1, 3))
            else:
                raise SystemExit(f"unknown workload {name!r}")
            print(f"({name}: files made in {time.perf_counter() - t0:.1f} s)")
        r, w = run_workload(name, root, args, ref, threads, counting=name == chosen[0],
                            cli=args.cli and name == "shapes-pil")
        rows += r
        worst = max(worst, w)
        if args.torchmetrics and name == chosen[0]:
            print(f"torchmetrics PanopticQuality: PQ {torchmetrics_pq(root)} (no crowd handling; removes "
                  f"prediction-void pixels from the union)")
    print(f"\n{'workload':11s} {'what':46s} {'wall s':>8s} {'ms/image':>9s} {'CPU ms/img':>11s} {'range s':>15s}")
    for wl, k, ms, per, cpu, lo, hi in rows:
        cpu_s = "-" if "shipped" in k or "process" in k or cpu != cpu else f"{cpu:.2f}"
        print(f"{wl:11s} {k:46s} {ms / 1000:8.3f} {per:9.2f} {cpu_s:>11s} {lo / 1000:7.3f}-{hi / 1000:.3f}")
    print(f"\nlargest difference from the reference over all workloads: {worst:.2e}")
    print(f"{load_line()} (after); every ratio above is from candidates timed interleaved, medians of "
          f"{args.repeat} rounds")
    if tmp is not None:
        tmp.cleanup()
    return 0 if worst <= 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
