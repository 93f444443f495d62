"""Each numpy upsampling equals its torch operator on the same input."""

import numpy as np
import pytest

from segviewer.analysis import upsampling as up

torch = pytest.importorskip("torch")
F = torch.nn.functional


@pytest.fixture
def scores() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(4, 5, 7)).astype(np.float32)


def test_nearest_is_interpolate_nearest(scores: np.ndarray) -> None:
    ref = F.interpolate(torch.from_numpy(scores)[None], scale_factor=2, mode="nearest")[0].numpy()
    np.testing.assert_array_equal(up.nearest(scores, 2), ref)


def test_bed_of_nails_is_a_one_hot_transposed_conv(scores: np.ndarray) -> None:
    c = scores.shape[0]
    w = torch.zeros(c, 1, 2, 2)
    w[:, 0, 0, 0] = 1
    ref = F.conv_transpose2d(torch.from_numpy(scores)[None], w, stride=2, groups=c)[0].numpy()
    got = up.bed_of_nails(scores, 2)
    np.testing.assert_array_equal(got, ref)
    assert (got[:, 1::2, :] == 0).all() and (got[:, ::2, ::2] == scores).all()


def test_max_unpool_is_torch_max_unpool_with_a_pools_switches() -> None:
    rng = np.random.default_rng(1)
    feat = torch.from_numpy(rng.normal(size=(1, 3, 10, 14)).astype(np.float32))
    pooled, idx = F.max_pool2d(feat, 2, return_indices=True)
    ref = F.max_unpool2d(pooled, idx, 2, output_size=(10, 14))[0].numpy()
    got = up.max_unpool(pooled[0].numpy(), idx[0].numpy(), (10, 14))
    np.testing.assert_array_equal(got, ref)
    # every value went back where the pool found it
    assert np.allclose(np.sort(got[got != 0]), np.sort(pooled.numpy().ravel()))


def test_strongest_switch_broadcast_unpools_the_class_scores_as_torch() -> None:
    rng = np.random.default_rng(2)
    feat = torch.from_numpy(rng.normal(size=(1, 6, 8, 12)).astype(np.float32))
    pooled, idx = F.max_pool2d(feat, 2, return_indices=True)
    sw = up.strongest_switches(idx[0].numpy(), pooled[0].numpy())
    best = pooled[0].numpy().argmax(0)
    assert sw[1, 2] == idx[0, best[1, 2], 1, 2].item()
    scores = rng.normal(size=(3, 4, 6)).astype(np.float32)
    ref = F.max_unpool2d(torch.from_numpy(scores)[None], torch.from_numpy(np.broadcast_to(sw, scores.shape).copy())[None],
                         2, output_size=(8, 12))[0].numpy()
    np.testing.assert_array_equal(up.max_unpool(scores, np.broadcast_to(sw, scores.shape), (8, 12)), ref)


@pytest.mark.parametrize("size", [(10, 14), (16, 16), (13, 9), (32, 56)])
def test_bilinear_is_interpolate_bilinear(scores: np.ndarray, size: tuple[int, int]) -> None:
    ref = F.interpolate(torch.from_numpy(scores)[None], size=size, mode="bilinear", align_corners=False)[0].numpy()
    np.testing.assert_allclose(up.bilinear(scores, size), ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("k,stride,pad", [(4, 2, 1), (3, 1, 1), (2, 2, 0), (16, 8, 4)])
def test_conv_transpose_is_torch_conv_transpose2d(scores: np.ndarray, k: int, stride: int, pad: int) -> None:
    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 3, k, k)).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    ref = F.conv_transpose2d(torch.from_numpy(scores)[None], torch.from_numpy(w), torch.from_numpy(b),
                             stride=stride, padding=pad)[0].numpy()
    got = up.conv_transpose(scores, w, stride, pad, b)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4)


def test_bilinear_kernel_is_the_fcn_one_and_upsamples_bilinearly_inside() -> None:
    from segviewer.adapters.nets.common import bilinear_kernel

    np.testing.assert_array_equal(up.bilinear_kernel(3, 4), bilinear_kernel(3, 4).numpy())
    x = np.random.default_rng(4).normal(size=(3, 6, 6)).astype(np.float32)
    deconv = up.conv_transpose(x, up.bilinear_kernel(3, 4), 2, 1)
    interp = up.bilinear(x, (12, 12))
    # the same operator away from the border (the transposed conv pads with zeros, interpolate clamps)
    np.testing.assert_allclose(deconv[:, 1:-1, 1:-1], interp[:, 1:-1, 1:-1], atol=1e-5)
    assert np.abs(deconv[:, 0] - interp[:, 0]).max() > 0.01


def test_compare_kernels_and_maps() -> None:
    b = up.bilinear_kernel(3, 4)
    same = up.compare_kernels(b, b)
    assert same.max_abs == 0 and same.rel_l2 == 0 and same.off_diagonal_share == 0
    assert same.diagonal_corr == pytest.approx(1.0)
    moved = b.copy()
    moved[0, 1] = 0.5
    cmp = up.compare_kernels(moved, b)
    assert cmp.max_abs == pytest.approx(0.5) and cmp.off_diagonal_share > 0
    m = np.zeros((2, 2, 2), np.float32)
    m[0] = 1
    n = m.copy()
    n[1, 0, 0] = 2
    mc = up.compare_maps(n, m)
    assert mc.max_abs == 2 and mc.label_agreement == 0.75
    with pytest.raises(ValueError):
        up.max_unpool(np.zeros((1, 2, 2)), np.full((1, 2, 2), 99), (4, 4))
