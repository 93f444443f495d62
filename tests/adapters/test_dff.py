"""Deep Feature Flow: the torch warp equals the numpy formula, splits equal the whole nets, and the
per-frame pipeline keys, warps and reports as documented."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from segviewer.adapters.dff import (  # noqa: E402
    DeepFeatureFlow,
    speedup_bound,
    split_shapes_fcn,
    split_shapes_unet,
    split_torchvision,
    warp_features,
)
from segviewer.analysis.flow import warp  # noqa: E402
from segviewer.core.errors import SegviewerError  # noqa: E402
from segviewer.core.results import FlowField  # noqa: E402
from segviewer.video.keyframes import AdaptiveSchedule, FixedInterval  # noqa: E402

torch.set_num_threads(1)


@pytest.mark.parametrize("h,w", [(9, 13), (1, 7), (6, 1)])
def test_grid_sample_warp_equals_the_numpy_formula(h: int, w: int) -> None:
    rng = np.random.default_rng(h * 100 + w)
    feats = rng.normal(size=(2, 3, h, w)).astype(np.float32)
    flow = rng.uniform(-2.5, 2.5, size=(h, w, 2)).astype(np.float32)
    got = warp_features(torch.from_numpy(feats), flow).numpy()
    for n in range(2):
        np.testing.assert_allclose(got[n], warp(feats[n].astype(np.float64), flow.astype(np.float64)), atol=1e-5)


def test_warp_features_with_scale_and_float64() -> None:
    rng = np.random.default_rng(1)
    f = torch.from_numpy(rng.normal(size=(1, 2, 5, 6)))
    flow = rng.uniform(-1, 1, size=(5, 6, 2))
    s = torch.full((1, 1, 5, 6), 0.5, dtype=torch.float64)
    out = warp_features(f, flow, s)
    assert out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy()[0], warp(f.numpy()[0], flow) * 0.5, atol=1e-12)
    with pytest.raises(SegviewerError, match="flow"):
        warp_features(f, flow[:4])


def _tv(name: str):  # noqa: ANN202
    from torchvision.models import get_model

    torch.manual_seed(0)
    return get_model(name, weights=None, weights_backbone=None, num_classes=5, aux_loss=False).eval()


@pytest.mark.parametrize("name,splits", [
    ("deeplabv3_mobilenet_v3_large", ("after_aspp", "before_aspp")),
    ("fcn_resnet50", ("after_conv", "before_head")),
])
def test_torchvision_splits_equal_the_whole_model(name: str, splits: tuple[str, str]) -> None:
    import torch.nn.functional as F

    model = _tv(name)
    x = torch.randn(1, 3, 64, 80)
    with torch.inference_mode():
        ref = model(x)["out"]
        for at in splits:
            net = split_torchvision(model, [str(i) for i in range(5)], at)
            feats = net.n_feat(x)
            out = F.interpolate(net.n_task(feats), size=(64, 80), mode="bilinear", align_corners=False)
            torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    if name.startswith("deeplab"):
        assert split_torchvision(model, "abcde").n_feat(x)[0].shape[1] == 256  # ASPP's output is warped
    with pytest.raises(SegviewerError, match="splits"):
        split_torchvision(model, "abcde", "middle")


def _moving_frames(n: int, h: int = 64, w: int = 96) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    big = (rng.random((h, w + 4 * n, 3)) * 255).astype(np.uint8)
    big = np.ascontiguousarray(np.repeat(np.repeat(big[::4, ::4], 4, 0), 4, 1)[:h])
    return [np.ascontiguousarray(big[:, 2 * i : 2 * i + w]) for i in range(n)]


def test_interval_one_is_the_whole_model_on_every_frame() -> None:
    net = split_torchvision(_tv("deeplabv3_mobilenet_v3_large"), "abcde")
    frames = _moving_frames(3)
    dff = DeepFeatureFlow(net, schedule=FixedInterval(1), reference=True)
    for i, f in enumerate(frames):
        out = dff.step(i, f)
        assert out.is_key and out.agreement == 1.0 and out.flow is None
        np.testing.assert_array_equal(out.result.labels, dff.full_labels(f))
        assert set(out.times) == {"features", "task"}


def test_fixed_interval_propagates_between_key_frames() -> None:
    net = split_torchvision(_tv("deeplabv3_mobilenet_v3_large"), "abcde")
    frames = _moving_frames(6)
    dff = DeepFeatureFlow(net, schedule=FixedInterval(3), reference=True)
    outs = [dff.step(i, f) for i, f in enumerate(frames)]
    assert [o.is_key for o in outs] == [True, False, False, True, False, False]
    assert [o.key_index for o in outs] == [0, 0, 0, 3, 3, 3]
    prop = outs[1]
    assert set(prop.times) == {"flow", "warp", "task"} and prop.flow is not None
    assert prop.result.labels.shape == (64, 96) and 0.0 <= prop.agreement <= 1.0
    # a jump needs the key frame; with get_frame it computes it (untimed) and goes on
    fresh = DeepFeatureFlow(net, schedule=FixedInterval(3))
    with pytest.raises(SegviewerError, match="key frame 3"):
        fresh.step(4, frames[4])
    jumped = fresh.step(4, frames[4], get_frame=lambda k: frames[k])
    np.testing.assert_array_equal(jumped.result.labels, outs[4].result.labels)


def test_zero_motion_propagation_equals_the_key_frame() -> None:
    net = split_torchvision(_tv("deeplabv3_mobilenet_v3_large"), "abcde")

    class NoMotion:
        name = "zero"

        def estimate(self, a: np.ndarray, b: np.ndarray, timings: object = None) -> FlowField:
            return FlowField(np.zeros((*a.shape[:2], 2), np.float32))

    f = _moving_frames(1)[0]
    dff = DeepFeatureFlow(net, flow=NoMotion(), schedule=FixedInterval(5))  # type: ignore[arg-type]
    a, b = dff.step(0, f), dff.step(1, f)
    np.testing.assert_array_equal(a.result.labels, b.result.labels)


def test_adaptive_schedule_keys_on_large_motion() -> None:
    net = split_torchvision(_tv("deeplabv3_mobilenet_v3_large"), "abcde")
    frames = _moving_frames(5)
    dff = DeepFeatureFlow(net, schedule=AdaptiveSchedule(max_mean_flow=3.0, max_residual_share=1.0))
    keys = [dff.step(i, f).is_key for i, f in enumerate(frames)]
    # 2 px per frame: frame 1 is 2 px from key 0 (kept), frame 2 is 4 px (new key), and so on
    assert keys == [True, False, True, False, True]


def test_speedup_bound() -> None:
    assert speedup_bound(1, 0.1, 1.0) == 1.0
    assert speedup_bound(10, 0.0, 1.0) == 10.0
    assert speedup_bound(10, 0.1, 1.0) == pytest.approx(10 / 1.9)


def _nets():  # noqa: ANN202
    return pytest.importorskip("segviewer.adapters.nets.fcn"), pytest.importorskip("segviewer.adapters.nets.unet")


def test_shapes_fcn_and_unet_splits_equal_the_whole_nets() -> None:
    fcn_mod, unet_mod = _nets()
    torch.manual_seed(0)
    fcn = fcn_mod.FCN(9).eval()
    unet = unet_mod.UNet(9).eval()
    with torch.no_grad():  # random BN statistics so the check is not trivial
        for m in list(fcn.modules()) + list(unet.modules()):
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        ref = fcn(x)
        for stage in ("8s", "16s", "32s"):
            net = split_shapes_fcn(fcn, "abcdefghi", stage)
            low = net.n_task(net.n_feat(x))
            up = torch.nn.functional.interpolate(low, size=(64, 96), mode="bilinear", align_corners=False)
            torch.testing.assert_close(up, ref[stage])
        for at in ("before_head", "bottleneck"):
            net = split_shapes_unet(unet, "abcdefghi", at)
            torch.testing.assert_close(net.n_task(net.n_feat(x)), unet(x))
    frames = _moving_frames(3, 48, 80)  # not multiples of 32: padded and cropped
    dff = DeepFeatureFlow(split_shapes_fcn(fcn, "abcdefghi"), schedule=FixedInterval(2), reference=True)
    outs = [dff.step(i, f) for i, f in enumerate(frames)]
    assert outs[1].result.labels.shape == (48, 80) and not outs[1].is_key


def test_torchvision_model_builder_weights_and_names(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from segviewer.adapters.dff import torchvision_segmentation_model
    from segviewer.core.errors import WeightsUnavailableError

    m = torchvision_segmentation_model("deeplabv3_mobilenet_v3_large", 9, random_init=True)
    assert not m.training and m.aux_classifier is None
    monkeypatch.setenv("SEGVIEWER_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsUnavailableError, match="deeplabv3_mobilenet_v3_large"):
        torchvision_segmentation_model("deeplabv3_mobilenet_v3_large")
    with pytest.raises(SegviewerError, match="21 classes"):
        torchvision_segmentation_model("deeplabv3_mobilenet_v3_large", 9)
    with pytest.raises(SegviewerError, match="splits torchvision"):
        torchvision_segmentation_model("maskrcnn_resnet50_fpn", 9, random_init=True)
