"""``segviewer train`` end to end on tiny dataset folders, bad items, interruption and resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from segviewer.cli import build_parser
from segviewer.commands import train as train_cmd
from segviewer.core.errors import BadDatasetError
from segviewer.training import checkpoint
from segviewer.training.loop import LoopConfig, Trainer
from segviewer.training.tasks import make_task


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _write(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix, img if img.ndim == 2 else img[..., ::-1])
    assert ok
    path.write_bytes(buf.tobytes())


def _semantic_folder(root: Path, n: int = 4, size: int = 40, binary: bool = True) -> Path:
    rng = np.random.default_rng(0)
    rows = ["Image,Mask"]
    for i in range(n):
        img = rng.integers(0, 255, (size, size + 8, 3), dtype=np.uint8)
        lab = np.zeros((size, size + 8), np.uint8)
        lab[5:20, 8:30] = 255 if binary else 2
        lab[25:, :10] = 255 if binary else 1
        img[lab > 0] = 250
        _write(root / "images" / f"{i}.png", img)
        _write(root / "masks" / f"{i}.png", lab)
        rows.append(f"{i}.png,{i}.png")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


def _args(*argv: str):
    return build_parser("train").parse_args(list(argv))


def test_train_unet_on_a_binary_folder_writes_checkpoint_csv_and_png(tmp_path: Path) -> None:
    data = _semantic_folder(tmp_path / "flood")
    out = tmp_path / "run"
    rc = train_cmd.run(_args("--model", "unet", "--data", str(data), "--out", str(out), "--steps", "3",
                             "--crop", "32", "--batch-size", "2"))
    assert rc == 0
    ck = checkpoint.load(out / "model.pt")
    assert ck["model"] == "unet" and ck["step"] == 3 and ck["categories"] == ["background", "foreground"]
    assert all(v.dtype in (torch.float16, torch.int64) for v in ck["state_dict"].values())
    with (out / "loss.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [1, 2, 3] and all(float(r["loss"]) > 0 for r in rows)
    png = cv2.imread(str(out / "loss.png"))
    assert png is not None and png.shape[0] > 100 and len(np.unique(png.reshape(-1, 3), axis=0)) > 3
    # the shipped half-precision weights rebuild the net
    model = make_task("unet", ck["categories"], ck["config"]).build()
    checkpoint.load_weights(model, ck["state_dict"], "model.pt")


def test_train_fcn_on_an_index_folder_with_num_classes(tmp_path: Path) -> None:
    data = _semantic_folder(tmp_path / "d", binary=False)
    out = tmp_path / "run"
    assert train_cmd.run(_args("--model", "fcn", "--data", str(data), "--out", str(out), "--steps", "2",
                               "--crop", "32", "--batch-size", "2", "--num-classes", "4")) == 0
    assert checkpoint.load(out / "model.pt")["categories"] == ["class 0", "class 1", "class 2", "class 3"]


def test_train_maskrcnn_on_a_coco_folder(tmp_path: Path) -> None:
    from pycocotools import mask as mask_utils

    root = tmp_path / "coco"
    rng = np.random.default_rng(0)
    images, anns = [], []
    for i in range(2):
        img = rng.integers(0, 80, (64, 64, 3), dtype=np.uint8)
        m = np.zeros((64, 64), np.uint8)
        m[10:40, 12 + i:44] = 1
        img[m > 0] = (240, 30, 30)
        _write(root / "images" / f"{i}.png", img)
        rle = mask_utils.encode(np.asfortranarray(m))
        rle["counts"] = rle["counts"].decode()
        images.append({"id": i + 1, "file_name": f"{i}.png", "height": 64, "width": 64})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 7, "segmentation": rle, "iscrowd": 0,
                     "area": int(m.sum()), "bbox": [12, 10, 32, 30]})
    (root / "annotations").mkdir()
    (root / "annotations" / "instances.json").write_text(json.dumps(
        {"images": images, "annotations": anns, "categories": [{"id": 7, "name": "blob"}]}))
    out = tmp_path / "run"
    assert train_cmd.run(_args("--model", "maskrcnn", "--data", str(root), "--out", str(out), "--steps", "1",
                               "--batch-size", "2")) == 0
    ck = checkpoint.load(out / "model.pt")
    assert ck["categories"] == ["__background__", "blob"] and (out / "loss.csv").is_file()


@pytest.mark.parametrize("breakage,named", [
    ("missing_mask", "1.png"), ("wrong_size", "2.png"), ("bad_label", "3.png"),
])
def test_bad_semantic_items_name_the_file(tmp_path: Path, breakage: str, named: str) -> None:
    data = _semantic_folder(tmp_path / "d", binary=False)
    if breakage == "missing_mask":
        (data / "masks" / "1.png").unlink()
    elif breakage == "wrong_size":
        _write(data / "masks" / "2.png", np.zeros((10, 10), np.uint8))
    else:
        _write(data / "masks" / "3.png", np.full((40, 48), 7, np.uint8))
    args = ["--model", "unet", "--data", str(data), "--out", str(tmp_path / "run"), "--steps", "1",
            "--crop", "32", "--batch-size", "2", "--num-classes", "3"]
    with pytest.raises(BadDatasetError, match=named):
        train_cmd.run(_args(*args))
    assert not (tmp_path / "run" / "model.pt").exists()  # no training on half a dataset
    assert train_cmd.run(_args(*args, "--skip-bad")) == 0  # unless asked to


def test_corrupt_coco_json_is_named(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances.json").write_text('{"images": [')
    with pytest.raises(BadDatasetError, match="instances.json"):
        train_cmd.run(_args("--model", "maskrcnn", "--data", str(root), "--out", str(tmp_path / "r")))


def _tiny_trainer(out: Path, on_step=None, steps: int = 5) -> Trainer:
    from segviewer.training.data import SemanticSample

    rng = np.random.default_rng(0)
    samples = [SemanticSample(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
                              rng.integers(0, 3, (32, 32)).astype(np.uint8)) for _ in range(4)]
    task = make_task("unet", ["a", "b", "c"])
    cfg = LoopConfig(steps=steps, batch_size=2, lr=1e-3, warmup=1, ckpt_every=2)
    return Trainer(task, cfg, out, lambda step: samples[(2 * step) % 4:(2 * step) % 4 + 2], on_step=on_step)


def test_ctrl_c_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    def boom(trainer: Trainer, step: int) -> None:
        if step == 3:
            raise KeyboardInterrupt

    t = _tiny_trainer(tmp_path, boom)
    assert t.run() == "interrupted"
    ck = checkpoint.load(tmp_path / "last.pt")
    assert ck["step"] == 2  # the checkpoint written at step 2 is intact
    assert checkpoint.load(tmp_path / "model.pt")["step"] == 2
    assert not list(tmp_path.glob(".*part*"))  # no half-written temp files left
    assert (tmp_path / "loss.csv").read_text().count("\n") == 4  # header + 3 steps logged


def test_clean_stop_saves_and_resume_continues(tmp_path: Path) -> None:
    def stop(trainer: Trainer, step: int) -> None:
        if step == 3:
            trainer.stop_requested = True  # what the first Ctrl-C does

    assert _tiny_trainer(tmp_path, stop).run() == "stopped"
    assert checkpoint.load(tmp_path / "last.pt")["step"] == 3
    t2 = _tiny_trainer(tmp_path)
    assert t2.resume() and t2.step == 3
    assert t2.run() == "done"
    ck = checkpoint.load(tmp_path / "last.pt")
    assert ck["step"] == 5 and [r["step"] for r in ck["log"]] == [1, 2, 3, 4, 5]


def test_degrade_shifts_blurs_and_keeps_size_and_type() -> None:
    from segviewer.training.augment import degrade

    img = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    rng = np.random.default_rng(1)
    assert degrade(img, rng, 0.0) is img
    outs = [degrade(img, rng, 1.0) for _ in range(8)]
    assert all(o.shape == img.shape and o.dtype == np.uint8 for o in outs)
    # sub-pixel resampling and blur take away fine texture (lower Laplacian energy), never content
    lap = lambda a: float(cv2.Laplacian(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())  # noqa: E731
    assert all(lap(o) < 0.9 * lap(img) for o in outs)
    assert all(abs(float(o.mean()) - float(img.mean())) < 3 for o in outs)


def test_fine_tune_from_a_checkpoint_with_degraded_images(tmp_path: Path) -> None:
    data = _semantic_folder(tmp_path / "d", binary=False)
    base = ("--data", str(data), "--crop", "32", "--batch-size", "2", "--num-classes", "4")
    # another seed than the fine-tuning run below, so its weights differ from that run's own init
    assert train_cmd.run(_args("--model", "fcn", "--out", str(tmp_path / "a"), "--steps", "2", "--seed", "1", *base)) == 0
    first = checkpoint.load(tmp_path / "a" / "model.pt")["state_dict"]
    seen: list[np.ndarray] = []
    orig = train_cmd._degraded

    def spy(next_batch, p, seed):  # noqa: ANN001, ANN202
        batch = orig(next_batch, p, seed)
        return lambda step: [seen.append(s.image) or s for s in batch(step)]

    import unittest.mock as um
    with um.patch.object(train_cmd, "_degraded", spy):
        rc = train_cmd.run(_args("--model", "fcn", "--out", str(tmp_path / "b"), "--steps", "1", "--lr", "1e-9",
                                 "--init", str(tmp_path / "a" / "model.pt"), "--degrade", "1", *base))
    assert rc == 0 and len(seen) == 2
    tuned = checkpoint.load(tmp_path / "b" / "model.pt")
    # started from the first run's weights: with a vanishing learning rate they barely move
    # (BatchNorm's running statistics do move: they are not learned)
    for k, v in first.items():
        if v.is_floating_point() and "running_" not in k:
            torch.testing.assert_close(tuned["state_dict"][k].float(), v.float(), atol=2e-3, rtol=0)
    assert tuned["train"]["init"].endswith("model.pt")
    # a checkpoint of another family is one clear error
    from segviewer.core.errors import CheckpointMismatchError

    with pytest.raises(CheckpointMismatchError, match="fcn"):
        train_cmd.run(_args("--model", "unet", "--out", str(tmp_path / "c"), "--steps", "1",
                            "--init", str(tmp_path / "a" / "model.pt"), *base))
    # same family and class count, other class names: refused rather than silently mislabelled
    other = tmp_path / "other.pt"
    ck = checkpoint.load(tmp_path / "a" / "model.pt")
    ck["categories"] = ["w", "x", "y", "z"]
    checkpoint.save(other, ck)
    with pytest.raises(CheckpointMismatchError, match="classes"):
        train_cmd.run(_args("--model", "fcn", "--out", str(tmp_path / "e"), "--steps", "1", "--init", str(other), *base))
    with pytest.raises(Exception, match="probability"):
        train_cmd.run(_args("--model", "fcn", "--out", str(tmp_path / "d2"), "--steps", "1", "--degrade", "2", *base))
