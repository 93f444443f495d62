"""The FCN's one hooked pass for the Upsampling and Receptive-field views: every upsampling equals
its torch operator on the captured scores, the learned one equals the model's own layer output,
the numpy effective field equals torch autograd on the real FCN, and the PCV head's taps."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from segviewer.adapters.base import PredictParams
from segviewer.adapters.internals_upsample import FCNPass, PCVVotes, model_frame
from segviewer.adapters.one_pass import internals_nbytes, predict_with_internals
from segviewer.adapters.registry import create_adapter
from segviewer.analysis import receptive as rf
from segviewer.analysis import upsampling as up
from segviewer.core.imageio import read_image

torch = pytest.importorskip("torch")
F = torch.nn.functional
SCENE = Path(__file__).resolve().parents[2] / "assets" / "scenes" / "scene_000.png"
SMALL = PredictParams(extra=(("min_size", 96),))  # a 128 x 96 frame: fast, still 3 x 4 stride-32 cells


@pytest.fixture(scope="module")
def fcn():
    a = create_adapter("shapes_fcn")
    a.load("cpu")
    return a


@pytest.fixture(scope="module")
def captured(fcn):
    """One pass with a counter and the input tensor the FCN saw."""
    seen: list = []
    h = fcn.module.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    try:
        image = read_image(SCENE)
        result, bundle = predict_with_internals(fcn, image, SMALL)
    finally:
        h.remove()
    return image, result, bundle, seen


def test_one_pass_gives_stages_and_captures(captured) -> None:
    image, result, bundle, seen = captured
    assert len(seen) == 1  # the stages, the upsampling and the receptive captures: one forward
    assert isinstance(bundle, FCNPass) and list(bundle) == ["32s", "16s", "8s"] and bundle.why == ""
    assert result is bundle["8s"]
    u = bundle.upsampling
    frame = seen[0].shape[-2:]
    assert u.scores.shape[1:] == (frame[0] // 32, frame[1] // 32)
    assert u.valid == model_frame(image.shape[:2], 96) and u.image_size == image.shape[:2]
    assert internals_nbytes(bundle) > bundle.upsampling.nbytes() + bundle.receptive.nbytes()
    back = pickle.loads(pickle.dumps(bundle))  # the worker's model process sends it over a pipe
    assert isinstance(back, FCNPass) and back.upsampling.scores.shape == u.scores.shape


def test_model_frame_is_the_adapters_resize() -> None:
    from segviewer.adapters.shapes import _resize_short

    for h, w in ((480, 640), (100, 3000), (257, 255), (720, 1280)):
        assert model_frame((h, w), 256) == _resize_short(np.zeros((h, w, 3), np.uint8), 256).shape[:2]


def test_each_upsampling_equals_its_torch_operator_on_the_captured_scores(fcn, captured) -> None:
    _, _, bundle, seen = captured
    u = bundle.upsampling
    s = torch.from_numpy(u.scores)[None]
    size = u.pool_size
    with torch.no_grad():
        # the scores are the model's own score_fr output
        m = fcn.module
        x = seen[0]
        for b in m.blocks:
            x = b(x)
        pool5_in = m.blocks[4][:-1](m.blocks[3](m.blocks[2](m.blocks[1](m.blocks[0](seen[0])))))
        np.testing.assert_allclose(u.scores, m.score_fr(m.fc(x))[0].numpy(), atol=1e-4)
        learned = F.conv_transpose2d(s, m.upscore2.weight, stride=2, padding=1)[0].numpy()
        _, idx = F.max_pool2d(pool5_in, 2, return_indices=True)
    np.testing.assert_array_equal(up.nearest(u.scores, 2), F.interpolate(s, scale_factor=2, mode="nearest")[0].numpy())
    np.testing.assert_allclose(u.upsample("bilinear"),
                               F.interpolate(s, size=size, mode="bilinear", align_corners=False)[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(u.upsample(up.METHODS[4]), learned, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(u.upsample(up.METHODS[4]), u.model_up, rtol=1e-5, atol=1e-4)  # the layer's output
    # max-unpooling: the model's own pool5 switches (strongest channel per cell), as torch unpools them
    sw = up.strongest_switches(idx[0].numpy(), F.max_pool2d(pool5_in, 2)[0].numpy())
    np.testing.assert_array_equal(sw, u.switches)
    ref = F.max_unpool2d(s, torch.from_numpy(np.broadcast_to(sw, u.scores.shape).astype(np.int64))[None], 2,
                         output_size=size)[0].numpy()
    np.testing.assert_array_equal(u.upsample("max-unpooling"), ref)
    nails = u.upsample("bed of nails")
    assert (nails[:, ::2, ::2] == u.scores).all() and np.count_nonzero(nails[:, 1::2]) == 0
    # the learned kernel left bilinear in training: the comparison reports it
    k = u.kernel_vs_bilinear()
    assert k.max_abs == pytest.approx(float(np.abs(u.weight - up.bilinear_kernel(u.weight.shape[0], 4)).max()))


def test_effective_field_equals_autograd_on_the_fcn(fcn, captured) -> None:
    _, _, bundle, seen = captured
    chain = bundle.receptive
    m = fcn.module
    by_name = {"conv2_1": m.blocks[1][0], "pool3": m.blocks[2][-1], "conv4_2": m.blocks[3][1],
               "score_fr": m.score_fr}
    for name, module in by_name.items():
        c, row, col = chain.pick(name, 40.0, 50.0)
        got: list = []
        h = module.register_forward_hook(lambda mod, a, out, got=got: got.append(out))
        x = seen[0].clone().requires_grad_(True)
        try:
            m(x)
        finally:
            h.remove()
        got[0][0, c, row, col].backward()
        ref = x.grad[0].numpy()
        g, (y0, x0) = chain.gradient(name, c, row, col)
        full = np.zeros_like(ref)
        full[:, y0:y0 + g.shape[1], x0:x0 + g.shape[2]] = g
        np.testing.assert_allclose(full, ref, rtol=1e-3, atol=1e-5 * float(np.abs(ref).max()))
        assert np.abs(ref).max() > 0
        by0, by1, bx0, bx1 = rf.field_box(chain.layers_upto(name), row, col)
        ys, xs = np.nonzero(np.abs(ref).sum(0))
        assert by0 <= ys.min() and ys.max() <= by1 and bx0 <= xs.min() and xs.max() <= bx1


def test_fcn_layer_list_matches_its_modules(captured) -> None:
    chain = captured[2].receptive
    layers = chain.layers_upto("score_fr")
    assert [ly.name for ly in layers if ly.name.startswith("pool")] == [f"pool{i}" for i in range(1, 6)]
    assert np.prod([ly.stride for ly in layers]) == 32
    assert rf.field_size(chain.layers_upto("conv1_1")) == 3
    assert rf.field_size(layers) > 200  # fc6 (3 x 3 at stride 32) alone adds 64 pixels


def test_pcv_pass_names_its_dilated_head() -> None:
    a = create_adapter("shapes_pcv")
    a.load("cpu")
    sem, vp = predict_with_internals(a, read_image(SCENE), SMALL)
    assert isinstance(vp, PCVVotes) and sem is vp.semantic and vp.stride == 4
    assert [ly.dilation for ly in vp.head_layers] == [2, 4, 1]
    assert rf.taps_1d(vp.head_layers, 10).tolist() == list(range(4, 17, 2))  # {-2,0,2} + {-4,0,4}
    assert isinstance(pickle.loads(pickle.dumps(vp)), PCVVotes)


def test_hooks_leave_no_trace_and_another_layout_says_why(fcn) -> None:
    m = fcn.module
    mods = [m.score_fr, m.upscore2, m.blocks[0][0][0], m.blocks[4][-1]]
    assert all(not mod._forward_hooks and not mod._forward_pre_hooks for mod in mods)

    class Other:  # an adapter whose network is not laid out as the bundled FCN
        card = fcn.card
        module = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1))

        def predict_stages(self, image, params, tm):  # noqa: ANN001, ANN202
            return {"32s": 1, "16s": 2, "8s": 3}

    from segviewer.adapters.internals_upsample import fcn_stages_pass
    from segviewer.core.timing import Timings

    got = fcn_stages_pass(Other(), np.zeros((64, 64, 3), np.uint8), SMALL, Timings())
    assert dict(got) == {"32s": 1, "16s": 2, "8s": 3} and got.upsampling is None and got.receptive is None
    assert "not the bundled FCN's layout" in got.why
