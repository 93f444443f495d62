"""Start-up to the first image, and where the time goes: ``segviewer predict`` and the window.

    python bench/startup.py [--rounds 3] [--models shapes_fcn shapes_maskrcnn] [--no-app]

Every candidate is a fresh interpreter (a subprocess), timed from just before it is launched;
candidates run round-robin (A B C A B C ..., the order rotated each round), so a burst of load
from other jobs hits them all. One untimed launch of each comes first: it writes the bytecode
cache (as installing a package does) and warms the disk cache. ``--uncached`` adds, interleaved,
each ``predict`` run from a copy of the package without bytecode and ``PYTHONDONTWRITEBYTECODE=1``
(segviewer's modules compiled at every launch; torch's and the others' keep their bytecode).
By default every bundled model (``segviewer models``, weights present) is timed.
Wall seconds and the child's CPU seconds (user + system, all its threads) are reported, with
the load average: on a machine shared with other jobs wall-clock mostly measures the scheduler,
CPU time what the program does.

* ``predict MODEL``: ``python -m segviewer predict ONE_IMAGE --model MODEL --threads 1`` (a
  640x480 shapes-world PNG) until its first image's line ("... -> *_overlay.png"). A probe
  around the real command (this file with ``--child predict``) stamps where the time goes:
  interpreter start, segviewer's imports, ``import torch``, the model load (``torch.load`` and
  building the net, without the torch import), and the first image (decode, network, render,
  writing the files).
* ``window``: ``segviewer`` (the window on the first sample scene, offscreen Qt, a throwaway
  settings file) until the canvas first paints the image; the probe says whether torch was
  imported by then (the model listing and the models start after that paint).
* floors: ``python -c pass`` (the interpreter) and ``python -c "import torch"``.

Target: under 2 s from launch to the first image (the predict command's result, the window's
paint). Ratios to the ``import torch`` floor are printed only for candidates timed interleaved.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

T0_ENV = "SEGVIEWER_BENCH_T0"


def _child_predict(argv: list[str]) -> int:
    """Run ``segviewer predict`` with stamps; they go to stderr as one JSON line at exit."""
    import builtins
    import json

    t0 = float(os.environ[T0_ENV])
    marks: dict[str, float] = {"interpreter up": time.time() - t0}
    real_import = builtins.__import__
    state = {"depth": 0}

    def timed_import(name, *a, **k):  # the outermost "import torch", however it is reached
        if state["depth"] or "torch" in sys.modules or not (name == "torch" or name.startswith("torch.")):
            return real_import(name, *a, **k)
        state["depth"] = 1
        s = time.time() - t0
        try:
            return real_import(name, *a, **k)
        finally:
            state["depth"] = 0
            marks["torch import start"], marks["torch import end"] = s, time.time() - t0

    builtins.__import__ = timed_import
    from segviewer import cli
    from segviewer.commands import predict

    marks["segviewer imported"] = time.time() - t0
    real_load = predict._load

    def load(*a, **k):
        marks["load start"] = time.time() - t0
        try:
            return real_load(*a, **k)
        finally:
            marks["load end"] = time.time() - t0

    predict._load = load
    try:
        return cli.main(["predict", *argv])
    finally:
        marks["cpu s"] = time.process_time()
        print("STAMPS " + json.dumps(marks), file=sys.stderr, flush=True)


def _child_app(argv: list[str]) -> int:
    """Open the window; at the canvas' first paint of an image print the stamps and leave."""
    import json

    t0 = float(os.environ[T0_ENV])
    marks: dict[str, object] = {"interpreter up": time.time() - t0}
    from PySide6.QtCore import QEvent, QObject, QTimer

    import segviewer.ui.canvas.view as view

    marks["Qt and pyqtgraph imported"] = time.time() - t0
    real_set_image = view.ImageCanvas.set_image

    class FirstPaint(QObject):
        def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
            if event.type() == QEvent.Type.Paint and "painted" not in marks:
                QTimer.singleShot(0, done)  # once this paint has finished
                marks["painted"] = -1.0
            return False

    def done() -> None:
        marks["painted"] = time.time() - t0
        marks["torch imported by then"] = "torch" in sys.modules
        marks["cpu s"] = time.process_time()
        print("STAMPS " + json.dumps(marks), flush=True)
        sys.stdout.flush()
        os._exit(0)

    watcher = FirstPaint()

    def set_image(self, image, fit=True):
        if image is not None and "image set" not in marks:
            marks["image set"] = time.time() - t0
            self.viewport().installEventFilter(watcher)
        return real_set_image(self, image, fit)

    view.ImageCanvas.set_image = set_image
    from segviewer import cli

    return cli.main(argv)


def bundled_models() -> list[str]:
    """Every bundled model whose weights are present (a card can land before its checkpoint)."""
    from segviewer.adapters.registry import list_cards

    out = []
    for c in list_cards():
        if c.weights_source != "bundled":
            continue
        if Path(str(c.extra.get("checkpoint_path", ""))).is_file():
            out.append(c.id)
        else:
            print(f"{c.id}: its checkpoint is missing from models/; left out")
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    import statistics
    import subprocess
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
    from _common import NotInterleaved, Timings, machine_line, ratio, table

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="fresh interpreters per candidate (default 3)")
    ap.add_argument("--models", nargs="*", default=None,
                    help="model ids (default: every bundled model whose weights are present)")
    ap.add_argument("--uncached", action="store_true",
                    help="also time each predict with segviewer's modules compiled at every launch")
    ap.add_argument("--warmup", type=int, default=1, help="untimed launches of each candidate first (default 1)")
    ap.add_argument("--no-app", action="store_true", help="leave the window out")
    ap.add_argument("--compare-tree", type=Path, default=None, metavar="DIR",
                    help="also time the segviewer in DIR (e.g. an older commit: git archive REV | tar -x -C DIR)")
    args = ap.parse_args(argv)
    root = Path(__file__).resolve().parents[1]
    me = str(Path(__file__).resolve())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode cached, as in an installed package
    models = args.models if args.models is not None else bundled_models()
    print(machine_line(), f"· {args.rounds} fresh interpreters per candidate, interleaved, after {args.warmup} "
          "untimed · bytecode cached")

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        import cv2

        from segviewer.synth.generate import generate_scene

        one = tmp / "one"
        one.mkdir()
        cv2.imwrite(str(one / "scene.png"), cv2.cvtColor(generate_scene(1000, (480, 640)).image, cv2.COLOR_RGB2BGR))
        cands: dict[str, tuple[list[str], str, dict[str, str]]] = {
            "python -c pass": ([sys.executable, "-c", "print('up', flush=True)"], "up", env),
            "import torch": ([sys.executable, "-c", "import torch; print('imported', flush=True)"], "imported", env),
        }
        for m in models:
            cands[f"predict {m}"] = ([sys.executable, me, "--child", "predict", str(one), "--model", m, "--out",
                                      str(tmp / f"out_{m}"), "--overwrite", "--no-gt", "--device", "cpu",
                                      "--threads", "1"], "->", env)
        if not args.no_app:
            cands["window (first paint)"] = ([sys.executable, me, "--child", "app"], "STAMPS", {
                **env, "QT_QPA_PLATFORM": "offscreen", "SEGVIEWER_SETTINGS_FILE": str(tmp / "settings.ini")})
        if args.uncached:  # the same commands, segviewer's modules compiled at every launch
            import shutil

            src = tmp / "uncached"
            shutil.copytree(root / "segviewer", src / "segviewer", ignore=shutil.ignore_patterns("__pycache__"))
            for m in models:
                cmd, until, e = cands[f"predict {m}"]
                cands[f"predict {m} (uncached)"] = (
                    [c.replace(str(tmp / "out_"), str(tmp / "uncached_out_")) for c in cmd], until,
                    {**e, "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1",
                     "SEGVIEWER_MODELS": str(root / "models")})
        if args.compare_tree is not None:  # the same probes over another checkout's package
            other = {**env, "PYTHONPATH": str(args.compare_tree.resolve())}
            for k in [k for k in cands if k.startswith(("predict", "window"))]:
                cmd, until, e = cands[k]
                cands[f"{k} @ {args.compare_tree}"] = (
                    [c.replace(str(tmp / "out_"), str(tmp / "other_out_")) for c in cmd], until,
                    {**e, "PYTHONPATH": other["PYTHONPATH"]})

        walls: dict[str, list[float]] = {k: [] for k in cands}
        cpus: dict[str, list[float]] = {k: [] for k in cands}
        stamps: dict[str, list[dict]] = {k: [] for k in cands}
        names = list(cands)
        for r in range(-args.warmup, args.rounds):
            for k in (names[r % len(names):] + names[:r % len(names)]) if r >= 0 else names:
                cmd, until, e = cands[k]
                before = os.times()
                e = {**e, T0_ENV: repr(time.time())}
                t0 = time.perf_counter()
                with tempfile.TemporaryFile("w+") as err_file:
                    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err_file, text=True, env=e)
                    first, out = float("nan"), ""
                    assert p.stdout is not None
                    for line in p.stdout:
                        if until in line and first != first:
                            first = time.perf_counter() - t0
                        out += line
                    p.wait()
                    err_file.seek(0)
                    err = err_file.read()
                after = os.times()
                if first != first:
                    raise RuntimeError(f"{k}: no {until!r} line (exit {p.returncode}):\n{err[-2000:]}")
                if r < 0:  # the untimed launch
                    continue
                walls[k].append(first)
                cpus[k].append((after.children_user - before.children_user)
                               + (after.children_system - before.children_system))
                for line in (out + err).splitlines():
                    if line.startswith("STAMPS "):
                        stamps[k].append(json.loads(line[len("STAMPS "):]))

    tm = Timings({k: (statistics.median(walls[k]), statistics.median(cpus[k])) for k in cands},
                 interleaved=len({len(v) for v in walls.values()}) == 1, walls=walls, cpus=cpus)

    def vs_torch(k: str, clock: str) -> str:
        try:
            return f"{ratio(tm, k, 'import torch', clock):.2f}"
        except NotInterleaved:
            return "refused: not interleaved"

    rows = []
    for k in cands:
        rows.append((k, f"{tm[k][0]:.2f} [{min(walls[k]):.2f}-{max(walls[k]):.2f}]",
                     f"{tm[k][1]:.2f} [{min(cpus[k]):.2f}-{max(cpus[k]):.2f}]",
                     vs_torch(k, "wall"), vs_torch(k, "cpu")))
    print("\nlaunch to first result (s): median [range] of", args.rounds)
    print(table(rows, ["candidate", "wall s", "CPU s (whole run)", "wall / import torch", "CPU / import torch"]))

    print("\nwhere it goes (wall s from launch, medians of the probe's stamps):")
    for k, runs in stamps.items():
        if not runs:
            continue

        def med(name: str, runs: list[dict] = runs) -> float:
            vals = [r[name] for r in runs if isinstance(r.get(name), (int, float))]
            return statistics.median(vals) if vals else float("nan")

        if k.startswith("predict"):
            up, imp = med("interpreter up"), med("segviewer imported")
            ts, te, ls, le = med("torch import start"), med("torch import end"), med("load start"), med("load end")
            torch_in_load = ls <= ts <= le
            parts = [("interpreter start", up), ("segviewer's imports (CLI, predict)", imp - up),
                     ("import torch", te - ts),
                     ("model load (torch.load, build)", (le - ls) - ((te - ts) if torch_in_load else 0.0)),
                     ("first image (decode, network, render, write)", tm[k][0] - le)]
            other = tm[k][0] - sum(v for _, v in parts)
            parts.insert(4, ("other (arguments, inputs, checks)", other))
        else:
            up, qt, st, pt = med("interpreter up"), med("Qt and pyqtgraph imported"), med("image set"), med("painted")
            parts = [("interpreter start", up), ("PySide6 + pyqtgraph imports", qt - up),
                     ("window built, image decoded and set", st - qt), ("first paint", pt - st)]
            torch_by = [bool(r.get("torch imported by then")) for r in runs]
            parts.append((f"(torch imported before the paint: {sum(torch_by)} of {len(runs)} runs)", float("nan")))
        total = tm[k][0]
        print(f"  {k}: {total:.2f} s")
        for name, v in parts:
            print(f"    {name:46s} {v:6.2f} s" + (f"  {100 * v / total:4.0f}%" if v == v else ""))

    print()
    for k in cands:
        if k.startswith(("predict", "window")) and " @ " not in k and "(uncached)" not in k:
            ok = tm[k][0] < 2.0
            print(f"{k}: first image after {tm[k][0]:.2f} s wall ({tm[k][1]:.2f} s CPU) -> "
                  f"{'under' if ok else 'NOT under'} 2 s; import torch alone: {tm['import torch'][0]:.2f} s wall, "
                  f"{tm['import torch'][1]:.2f} s CPU")
    print(machine_line(), "(after)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        sys.exit(_child_predict(sys.argv[3:]) if sys.argv[2] == "predict" else _child_app(sys.argv[3:]))
    raise SystemExit(main())
