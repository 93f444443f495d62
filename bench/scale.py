"""``segviewer predict``: single process against ``--engine ray``, and Ray on one against two nodes.

    nice -n 10 python bench/scale.py                     # 200 images, shapes_fcn, 1 thread per worker
    python bench/scale.py --n 200 --model shapes_maskrcnn --size 240x320

Workload: ``--n`` shapes-world scenes (``segviewer synth scenes``, ``--size``), written once to a
temporary folder; every run predicts the same images with the same bundled model on the CPU, one
torch thread per worker, and writes the same outputs (the test suite checks they are the same
bytes).

Runs, each ``segviewer.cli.main(["predict", ...])`` in this process:

* **single**: ``--engine single`` (the default);
* **ray local, 1 actor**: a one-node Ray (``ray.cluster_utils.Cluster``, 2 CPUs), one actor of
  1 CPU: the same one worker as single, so the difference is what Ray adds per image;
* **ray, 1 node / 2 nodes**: one or two simulated nodes of 1 CPU each (Ray wants whole CPUs per
  node), one actor of 0.75 CPU per node (the quarter left is for Ray Data's own tasks).

The steady throughput leaves out start-up (Ray, the actors' model loads): for Ray runs the rate
over the images after the first quarter (the run's own summary line; batches that finished
during start-up arrive in a burst, so not just the first batch is left out), for single the
marginal rate ``(n - warm) / (T_n - T_warm)`` of a run on all ``--n`` images over one on the
first ``--warm``; the whole-run rate is printed beside it. The driver's own ceiling is timed
too: writing the outputs of ``--n`` images (``write_image_output``, the call the driver makes per
image), decoding them (``decode``, done on the actors), and one actor's own work per image
(``decode`` + ``predict_image`` in this process): Ray's per-image overhead is the one-actor run's
steady ms/image minus that work.

On one 2-core machine two "nodes" share two cores, so the 1 -> 2 node scaling measured here is
bounded by the cores, not by Ray; the per-actor rate is what a GPU node multiplies (see README).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_line, machine_line, pin_threads, table  # noqa: E402


def _predict(model: str, images: Path, out: Path, extra: list[str]) -> tuple[float, float | None]:
    """(wall s, steady images/s from the run's summary: Ray runs only)."""
    import contextlib
    import io
    import re

    from segviewer.cli import main

    err = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(err):
        rc = main(["predict", "--model", model, "--device", "cpu", "--threads", "1", "--overwrite",
                   "--out", str(out), str(images), *extra])
    wall = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"predict failed ({rc}):\n{err.getvalue()[-2000:]}")
    m = re.search(r"\(([0-9.]+) after the first quarter\)", err.getvalue())
    return wall, float(m.group(1)) if m else None


def _single(model: str, sub: Path, full: Path, out: Path) -> tuple[float, float]:
    """(wall s over all images, steady images/s): the marginal rate of all images over the warm subset."""
    tw, _ = _predict(model, sub, out / "warm", [])
    tn, _ = _predict(model, full, out / "all", [])
    n, w = len(list(full.glob("*.png"))), len(list(sub.glob("*.png")))
    return tn, (n - w) / max(tn - tw, 1e-9)


def _cluster_run(model: str, full: Path, out: Path, node_cpus: list[int], actors: int,
                 actor_cpus: float, batch: int) -> tuple[float, float]:
    import ray
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": node_cpus[0], "include_dashboard": False})
    try:
        for cpus in node_cpus[1:]:
            c.add_node(num_cpus=cpus)
        c.wait_for_nodes(timeout=120)
        ray.init(address=c.address, log_to_driver=False)
        try:
            wall, steady = _predict(model, full, out, ["--engine", "ray", "--actors", str(actors),
                                                       "--actor-cpus", str(actor_cpus), "--batch-size", str(batch)])
        finally:
            ray.shutdown()
    finally:
        c.shutdown()
    if steady is None:
        raise SystemExit("the Ray run had no batch after its first quarter: give more images (--n)")
    return wall, steady


def _actor_work(model: str, images: Path) -> float:
    """Milliseconds per image of what one actor does (``decode`` + ``predict_image``: predict,
    render, encode), in this process with one thread, model loaded beforehand."""
    from segviewer.adapters.base import PredictParams
    from segviewer.adapters.registry import create_adapter
    from segviewer.commands.predict import decode, predict_image

    adapter = create_adapter(model)
    adapter.load("cpu")
    params = PredictParams(extras=False)
    paths = sorted(images.glob("*.png"))
    t0 = time.perf_counter()
    for k, p in enumerate(paths):
        image, tm = decode(p)
        predict_image(adapter, image, k + 1, params, 0.5, None, tm)
    return 1000.0 * (time.perf_counter() - t0) / len(paths)


def _driver_ceiling(out: Path, images: Path, tmp: Path) -> tuple[float, float]:
    """(images/s the driver writes, images/s one worker decodes) over the written outputs."""
    from segviewer.commands.predict import decode, write_image_output

    per_image: dict[str, dict[str, bytes]] = {}
    for p in sorted(out.glob("*_*.png")):
        stem, _, tail = p.name.rpartition("_")
        per_image.setdefault(stem, {})[f"_{tail}"] = p.read_bytes()
    t0 = time.perf_counter()
    for stem, files in per_image.items():
        write_image_output(tmp, stem, files)
    write = len(per_image) / (time.perf_counter() - t0)
    imgs = sorted(images.glob("*.png"))
    t0 = time.perf_counter()
    for p in imgs:
        decode(p)
    return write, len(imgs) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--warm", type=int, default=20, help="images of the short run (start-up is left out)")
    ap.add_argument("--model", default="shapes_fcn")
    ap.add_argument("--size", default="240x320")
    ap.add_argument("--batch-size", type=int, default=8)
    a = ap.parse_args()
    os.environ.setdefault("SEGVIEWER_OFFLINE", "1")
    pin_threads(1)
    from segviewer.cli import main as cli

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        if cli(["synth", "scenes", "--out", str(root / "ds"), "--n", str(a.n), "--size", a.size]) != 0:
            raise SystemExit("synth failed")
        full = root / "ds" / "images"
        sub = root / "sub"
        sub.mkdir()
        for p in sorted(full.glob("*.png"))[: a.warm]:
            (sub / p.name).symlink_to(p)
        res: dict[str, tuple[float, float]] = {}
        res["single"] = _single(a.model, sub, full, root / "single")
        res["ray local, 1 actor"] = _cluster_run(a.model, full, root / "ray1", [2], 1, 1.0, a.batch_size)
        res["ray, 1 node"] = _cluster_run(a.model, full, root / "node1", [1], 1, 0.75, a.batch_size)
        res["ray, 2 nodes"] = _cluster_run(a.model, full, root / "node2", [1, 1], 2, 0.75, a.batch_size)
        write, dec = _driver_ceiling(root / "single" / "all", full, root / "rewrite")
        work = _actor_work(a.model, full)
    rows = []
    marginal = {}
    for name, (tn, steady) in res.items():
        marginal[name] = steady
        rows.append([name, a.n, tn, a.n / tn, steady, 1000.0 / steady])
    print(f"segviewer predict --model {a.model}, {a.n} images {a.size}, 1 torch thread per worker")
    print(machine_line())
    print(table(rows, ["run", "images", "wall s", "images/s (whole run)", "images/s (steady)", "ms/image (steady)"]))
    over = 1000.0 / marginal["ray local, 1 actor"] - work
    print(f"one actor's own work (decode + predict + render + encode): {work:.1f} ms/image; Ray adds "
          f"{over:+.1f} ms/image over it (1 actor, steady); single also writes in the same loop, which Ray "
          "overlaps on the driver")
    print(f"1 -> 2 nodes: x{marginal['ray, 2 nodes'] / marginal['ray, 1 node']:.2f} (steady images/s)")
    print(f"driver ceiling: writes {write:.0f} images/s of outputs; one worker decodes {dec:.0f} images/s")
    print(load_line())


if __name__ == "__main__":
    main()
