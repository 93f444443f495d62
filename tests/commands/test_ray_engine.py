"""``predict`` / ``eval --engine ray`` on a two-node Ray cluster simulated on this host.

The cluster (``ray.cluster_utils.Cluster``: a head and one more node, one CPU each) is started
once for the module and shut down after it; actors and tasks take half a CPU each, so Ray Data's
own tasks always find a CPU (a pool that takes every CPU starves its feeders and hangs). Every
test runs under an alarm, and subprocesses under a timeout, so nothing can hang the suite.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason="the ray extra (pip install 'segviewer[ray]') is not installed")
pytest.importorskip("ray.data")

from ray.cluster_utils import Cluster  # noqa: E402

from segviewer.cli import main  # noqa: E402

pytestmark = pytest.mark.slow

RAY_OPTS = ["--engine", "ray", "--actors", "2", "--actor-cpus", "0.5", "--batch-size", "2"]
PREDICT = ["--device", "cpu", "--threads", "1"]


@pytest.fixture(autouse=True)
def _deadline() -> Iterator[None]:
    """A test that runs past 240 s fails instead of hanging the suite."""

    def expire(*_: object) -> None:
        raise TimeoutError("a Ray test ran past its 240 s deadline")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(240)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    os.environ["SEGVIEWER_OFFLINE"] = "1"
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        c.add_node(num_cpus=1)
        c.wait_for_nodes(timeout=120)
        ray.init(address=c.address, log_to_driver=False)
        try:
            yield c
        finally:
            ray.shutdown()
    finally:
        c.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shapes-world scenes with COCO instances, panoptic and semantic ground truth, plus a broken
    image (one bad image never stops a run)."""
    root = tmp_path_factory.mktemp("ray_data")
    assert main(["synth", "scenes", "--out", str(root / "ds"), "--n", "8", "--size", "96x128", "--seed", "3"]) == 0
    (root / "ds" / "images" / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    inst = root / "ds" / "annotations" / "instances.json"  # listed, so results use the dataset's ids
    gt = json.loads(inst.read_text())
    gt["images"].append({"id": 99, "file_name": "zz_broken.png", "height": 96, "width": 128})
    inst.write_text(json.dumps(gt))
    return root


@pytest.fixture(scope="module")
def single(data: Path) -> dict[str, Path]:
    """The single-process outputs the Ray runs must equal."""
    outs = {}
    for model in ("shapes_maskrcnn", "shapes_fcn"):
        out = data / f"single_{model}"
        assert main(["predict", "--model", model, *PREDICT, "--out", str(out), str(data / "ds" / "images")]) == 1
        outs[model] = out
    out = data / "single_panoptic"
    assert main(["predict", "--panoptic", "--model", "shapes_maskrcnn", "--model", "shapes_fcn", *PREDICT,
                 "--out", str(out), str(data / "ds" / "images")]) == 1
    outs["panoptic"] = out
    return outs


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".segviewer-ray" not in p.parts}


@pytest.mark.parametrize("model", ["shapes_maskrcnn", "shapes_fcn", "panoptic"])
def test_predict_on_two_nodes_writes_the_single_process_bytes(cluster: Cluster, data: Path, single: dict[str, Path],
                                                              model: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    out = data / f"ray_{model}"
    models = ["--panoptic", "--model", "shapes_maskrcnn", "--model", "shapes_fcn"] if model == "panoptic" else [
        "--model", model]
    rc = main(["predict", *models, *PREDICT, *RAY_OPTS, "--address", cluster.address,
               "--out", str(out), str(data / "ds" / "images")])
    err = capsys.readouterr().err
    assert rc == 1  # the broken image
    assert "zz_broken.png" in err and "skipped" in err
    assert "8 of 9 images written" in err and re.search(r"images/s( \(.*\))?; 1 failed", err)
    mine, ref = _files(out), _files(single[model])
    assert sorted(mine) == sorted(ref) and len(ref) >= 9
    if model == "panoptic":
        assert len(json.loads((out / "panoptic.json").read_text())["annotations"]) == 8
    for name in ref:
        assert mine[name] == ref[name], name
    if model == "shapes_maskrcnn":
        records = json.loads((out / "results.json").read_text())
        assert records and {r["image_id"] for r in records} <= set(range(1, 9))  # the dataset's ids
        assert json.loads((out / "images.json").read_text())[0]["id"] == 1
        assert len(list((out / ".segviewer-ray").glob("part-*.parquet"))) >= 2


def _close(a: Any, b: Any, path: str = "") -> None:
    """Equal JSON trees, numbers to 1e-12."""
    if isinstance(a, dict):
        assert sorted(a) == sorted(b), path
        for k in a:
            _close(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for k, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}/{k}")
    elif isinstance(a, float) or isinstance(b, float):
        assert b == pytest.approx(a, abs=1e-12, rel=0), path
    else:
        assert a == b, path


def _eval(args: list[str], out: Path) -> dict[str, Any]:
    assert main(["eval", *args, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_eval_on_two_nodes_equals_single(cluster: Cluster, data: Path, single: dict[str, Path], tmp_path: Path) -> None:
    ds = data / "ds"
    ray_opts = ["--engine", "ray", "--address", cluster.address, "--actors", "2", "--actor-cpus", "0.5",
                "--batch-size", "3"]
    cases = {
        "semantic": ["--task", "semantic", "--gt", str(ds), "--pred", str(single["shapes_fcn"])],
        "semantic_largest_label": ["--task", "semantic", "--gt", str(ds / "masks"), "--pred",
                                   str(single["shapes_fcn"])],
        "panoptic": ["--task", "panoptic", "--gt", str(ds / "annotations" / "panoptic.json"),
                     "--pred", str(single["panoptic"] / "panoptic.json")],
        "instance": ["--task", "instance", "--gt", str(ds / "annotations" / "instances.json"),
                     "--pred", str(single["shapes_maskrcnn"])],
    }
    # by name: the predictions' classes renamed and reordered (scored through SemanticAccumulator)
    renamed = tmp_path / "renamed"
    shutil.copytree(single["shapes_fcn"], renamed)
    cats = json.loads((renamed / "categories.json").read_text())
    (renamed / "categories.json").write_text(json.dumps([dict(c, name=f"{c['name']}_x") if c["id"] % 2 else c
                                                         for c in cats]))
    cases["semantic_by_name"] = ["--task", "semantic", "--gt", str(ds), "--pred", str(renamed)]
    for name, args in cases.items():
        ref = _eval(args, tmp_path / f"{name}_single.json")
        got = _eval(args + ray_opts, tmp_path / f"{name}_ray.json")
        _close(ref, got, name)
        assert got.get("images", 8) == 8
    by_name = json.loads((tmp_path / "semantic_by_name_ray.json").read_text())
    assert any(k.endswith("_x") for k in by_name["per_class"])  # the by-name path really ran


def test_eval_per_image_rows_and_tide_on_two_nodes_equal_single(cluster: Cluster, data: Path, single: dict[str, Path],
                                                                tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--per-image rows (and --errors' per-image TIDE classifications) are computed by Ray tasks:
    the CSV is the single-process CSV byte for byte, the TIDE counts and dAP equal to 1e-12."""
    ds = data / "ds"
    ray_opts = ["--engine", "ray", "--address", cluster.address, "--actors", "2", "--actor-cpus", "0.5",
                "--batch-size", "3"]
    cases = {  # the task's own statistics on Ray before this change: how many mapped runs now
        "instance": (["--task", "instance", "--gt", str(ds / "annotations" / "instances.json"),
                      "--pred", str(single["shapes_maskrcnn"]), "--errors"], 1),
        "panoptic": (["--task", "panoptic", "--gt", str(ds / "annotations" / "panoptic.json"),
                      "--pred", str(single["panoptic"] / "panoptic.json")], 2),
        "semantic": (["--task", "semantic", "--gt", str(ds), "--pred", str(single["shapes_fcn"])], 2),
    }
    for name, (args, mapped) in cases.items():
        ref_csv, ray_csv = tmp_path / f"{name}_single.csv", tmp_path / f"{name}_ray.csv"
        ref = _eval(args + ["--per-image", str(ref_csv)], tmp_path / f"{name}_single.json")
        capsys.readouterr()
        got = _eval(args + ["--per-image", str(ray_csv)] + ray_opts, tmp_path / f"{name}_ray.json")
        err = capsys.readouterr().err
        assert err.count(" images scored in ") == mapped, (name, err)  # the rows came from Ray tasks
        assert ray_csv.read_bytes() == ref_csv.read_bytes(), name
        assert len(ref_csv.read_text().splitlines()) == 1 + (9 if name == "instance" else 8), name
        _close(ref, got, name)
    errors = json.loads((tmp_path / "instance_ray.json").read_text())["errors"]
    assert set(errors) == {"bbox", "segm"} and sum(errors["segm"]["counts"].values()) > 0


def test_a_killed_run_resumes_where_it_stopped(cluster: Cluster, data: Path, single: dict[str, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = data / "ray_killed"
    cmd = [sys.executable, "-m", "segviewer", "predict", "--model", "shapes_maskrcnn", *PREDICT, "--engine", "ray",
           "--address", cluster.address, "--actors", "1", "--actor-cpus", "0.5", "--batch-size", "1",
           "--out", str(out), str(data / "ds" / "images")]
    env = dict(os.environ, SEGVIEWER_OFFLINE="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    shards = out / ".segviewer-ray"
    try:
        deadline = time.monotonic() + 150
        while len(list(shards.glob("part-*.parquet"))) < 2:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "no shard was committed in 150 s"
            time.sleep(0.02)
        proc.kill()  # SIGKILL: no clean-up of any kind
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()
    committed = len(list(shards.glob("part-*.parquet")))
    assert 2 <= committed < 8, committed  # stopped mid-run
    assert not (out / "results.json").exists()
    # the same command again: resumes, predicts only the rest, and writes what the single run writes
    rc = main(cmd[3:])
    err = capsys.readouterr().err
    assert rc == 1  # the broken image, tried again
    assert f"resuming: {committed} of 9 images already in" in err
    assert f"({committed} from a stopped run, {9 - committed} processed now)" in err
    mine, ref = _files(out), _files(single["shapes_maskrcnn"])
    assert sorted(mine) == sorted(ref)
    for name in ref:
        assert mine[name] == ref[name], name
    # a rerun with other options is refused, not mixed in
    rc = main(cmd[3:-3] + ["--score-thresh", "0.3", "--out", str(out), str(data / "ds" / "images")])
    assert rc == 2 and "other options" in capsys.readouterr().err


def test_ray_options_need_the_ray_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["predict", "--model", "shapes_fcn", "--actors", "2", "--out", str(tmp_path / "o"), str(tmp_path)])
    assert rc == 2 and "--actors only apply with --engine ray" in capsys.readouterr().err


def test_missing_ray_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    img = tmp_path / "in"
    assert main(["synth", "scenes", "--out", str(img), "--n", "1", "--size", "64x64", "--images-dir", "."]) == 0
    rc = main(["predict", "--model", "shapes_fcn", "--engine", "ray", "--out", str(tmp_path / "o"), str(img)])
    assert rc == 2 and "pip install 'segviewer[ray]'" in capsys.readouterr().err
    rc = main(["eval", "--task", "semantic", "--engine", "ray", "--gt", str(img), "--pred", str(img)])
    assert rc == 2 and "pip install 'segviewer[ray]'" in capsys.readouterr().err


def test_the_single_engine_never_imports_ray(tmp_path: Path) -> None:
    code = ("import sys\n"
            "from segviewer.cli import build_parser\n"
            "from segviewer.commands import predict, eval\n"
            "build_parser('predict'); build_parser('eval')\n"
            "assert 'ray' not in sys.modules, 'ray imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_an_actor_that_cannot_load_its_model_stops_the_run_with_the_cause(
        cluster: Cluster, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["predict", "--model", "shapes_fcn", *PREDICT, *RAY_OPTS, "--address", cluster.address,
               "--weights", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "o"), str(data / "ds" / "images")])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"the Ray run stopped: checkpoint {tmp_path / 'missing.pt'} does not exist" in err
