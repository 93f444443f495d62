"""CenterNet's targets and loss: the Gaussian peaks at the centre cell, offset and size targets
decode back to the box, the focal loss equals the paper's formula written out, and a few steps
on the shapes world lower the loss; the CLI's task table builds the same net."""

from __future__ import annotations

import numpy as np
import torch

from segviewer.analysis import centernet as dec
from segviewer.training import centernet_task as T


def test_targets_decode_back_to_the_boxes() -> None:
    boxes = np.array([[10, 20, 50, 44], [100, 101, 131, 180]], np.float32)
    labels = np.array([2, 5])
    t = T.make_targets(boxes, labels, 5, (64, 64), 4)
    # the Gaussian peaks (exactly 1) sit at the centre cells of the right channels
    assert t.heat[1, t.ys[0], t.xs[0]] == 1.0 and t.heat[4, t.ys[1], t.xs[1]] == 1.0
    assert (t.heat == 1.0).sum() == 2
    assert set(map(tuple, dec.find_peaks(t.heat, 10).all_cyx.tolist())) >= {(1, t.ys[0], t.xs[0]), (4, t.ys[1], t.xs[1])}
    # offset and size targets, put in the heads at those cells, decode back to the box exactly
    off = np.zeros((2, 64, 64), np.float32)
    size = np.zeros((2, 64, 64), np.float32)
    off[:, t.ys, t.xs] = t.offset.T
    size[:, t.ys, t.xs] = t.size.T
    np.testing.assert_allclose(dec.decode_boxes(t.ys, t.xs, off, size, 4), boxes, atol=1e-4)
    assert np.all((t.offset >= 0) & (t.offset < 1))


def test_gaussian_radius_is_centernets() -> None:
    # CenterNet's gaussian_radius (its code, CornerNet's three cases): 10 x 10 at 0.7 -> 2.733
    assert abs(T.gaussian_radius(10, 10, 0.7) - 2.7332) < 1e-3
    assert T.gaussian_radius(8, 30, 0.7) < T.gaussian_radius(16, 60, 0.7)


def test_focal_loss_equals_the_formula() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 6, 6, generator=g) * 3
    gt = torch.rand(2, 3, 6, 6, generator=g) * 0.9
    gt[0, 1, 2, 3] = 1.0
    gt[1, 0, 5, 5] = 1.0
    p = torch.sigmoid(logits).double()
    pos = gt == 1
    ref = -(torch.where(pos, (1 - p) ** 2 * torch.log(p), (1 - gt.double()) ** 4 * p ** 2 * torch.log(1 - p))).sum() / 2
    assert abs(float(T.focal_loss(logits, gt)) - float(ref)) < 1e-4


def test_a_few_steps_lower_the_loss_and_the_table_builds_the_same_net() -> None:
    from segviewer.synth.classes import DETECTION_CATEGORIES
    from segviewer.training.data import shapes_instance
    from segviewer.training.tasks import make_task

    torch.manual_seed(0)
    task = make_task("centernet", list(DETECTION_CATEGORIES))
    assert isinstance(task, T.CenterNetTask) and task.kind == "instance"
    model = task.build()
    assert sum(p.numel() for p in model.parameters()) < 4_000_000
    batch = [shapes_instance(s, (64, 64)) for s in range(2)]
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    first = None
    for _ in range(3):
        loss, parts = task.loss(model, batch, "cpu")
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else float(loss.detach())
    assert float(loss.detach()) < first and set(parts) == {"heat", "offset", "size"}
    model.eval()
    m = task.evaluate(model, batch[:1], "cpu")
    assert set(m) >= {"box_ap", "box_ap50"} and 0.0 <= m["box_ap"] <= 1.0


def test_log_size_head_returns_exp_of_its_raw_output() -> None:
    from segviewer.adapters.nets.centernet import build_centernet

    torch.manual_seed(0)
    net = build_centernet({"num_classes": 5}).eval()
    raw = []
    net.size.register_forward_hook(lambda m, i, o: raw.append(o))
    with torch.no_grad():
        out = net(torch.zeros(1, 3, 32, 32))
    assert out["heatmap"].shape == (1, 5, 8, 8) and out["offset"].shape == out["size"].shape == (1, 2, 8, 8)
    torch.testing.assert_close(out["size"], torch.exp(raw[0]))
    assert abs(float(torch.log(out["size"]).mean()) - 2.0) < 0.5  # starts near a typical size (~7 cells)
    paper = build_centernet({"num_classes": 5, "log_size": False}).eval()
    raw.clear()
    paper.size.register_forward_hook(lambda m, i, o: raw.append(o))
    with torch.no_grad():
        assert torch.equal(paper(torch.zeros(1, 3, 32, 32))["size"], raw[0])
