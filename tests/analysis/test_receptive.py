"""Receptive fields: theory vs a brute-force propagation, and the numpy gradient vs torch autograd."""

import numpy as np
import pytest

from segviewer.analysis import receptive as rf
from segviewer.analysis.receptive import Layer

CHAINS = {
    "three 3x3": [Layer("a", 3, padding=1), Layer("b", 3, padding=1), Layer("c", 3, padding=1)],
    "dilated 1-2-4": [Layer("a", 3, padding=1), Layer("b", 3, padding=2, dilation=2), Layer("c", 3, padding=4, dilation=4)],
    "vgg-ish": [Layer("c1", 3, padding=1), Layer("p1", 2, 2), Layer("c2", 3, padding=1), Layer("p2", 2, 2),
                Layer("c3", 3, padding=1), Layer("c4", 3, padding=1), Layer("p3", 2, 2), Layer("fc", 3, padding=1)],
    "strided conv": [Layer("a", 5, 2, 2), Layer("b", 3, 2, 0, 2), Layer("c", 1)],
}


def _brute_force_1d(layers: list[Layer], n: int, unit: int) -> set[int]:
    """Input positions (inside [0, n)) whose delta reaches ``unit``: run the layer list forward with
    all-ones kernels on each one-hot input, zero padding, loops only."""
    reach = set()
    for q in range(n):
        x = [0.0] * n
        x[q] = 1.0
        for ly in layers:
            size = (len(x) + 2 * ly.padding - ly.effective_kernel) // ly.stride + 1
            x = [sum(x[j] for t in range(ly.kernel)
                     if 0 <= (j := o * ly.stride - ly.padding + ly.dilation * t) < len(x)) for o in range(size)]
        if unit < len(x) and x[unit] > 0:
            reach.add(q)
    return reach


@pytest.mark.parametrize("name", list(CHAINS))
def test_theoretical_field_equals_brute_force(name: str) -> None:
    layers, n = CHAINS[name], 64
    out = rf.output_sizes(layers, n)[-1]
    for unit in sorted({0, 1, out // 2, out - 1}):
        brute = _brute_force_1d(layers, n, unit)
        taps = set(int(t) for t in rf.taps_1d(layers, unit))
        assert taps & set(range(n)) == brute
        lo, hi = rf.unit_interval(layers, unit)
        assert (lo, hi) == (min(taps), max(taps))
        assert min(brute) == max(lo, 0) and max(brute) == min(hi, n - 1)
    assert rf.field_size(layers) == hi - lo + 1


def test_dilated_taps_have_holes_and_the_reference_sizes() -> None:
    d = CHAINS["dilated 1-2-4"]
    assert [rf.field_size(d[:i]) for i in (1, 2, 3)] == [3, 7, 15]  # REFERENCE.md
    one = rf.taps_1d([Layer("d2", 3, padding=2, dilation=2)], 10)
    assert one.tolist() == [8, 10, 12]
    assert rf.field_size([Layer("c", 3, padding=1)] * 4) == 9  # 1 + 2n


def test_unit_at_and_field_box() -> None:
    layers = CHAINS["vgg-ish"]
    i = rf.unit_at(layers, 64, 30.0)
    lo, hi = rf.unit_interval(layers, i)
    assert lo <= 30 <= hi
    assert rf.field_box(layers, 1, 2) == (*rf.unit_interval(layers, 1), *rf.unit_interval(layers, 2))


def _torch_chain(seed: int = 0):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=2, dilation=2, bias=False), nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 5, 1))
    with torch.no_grad():
        bn = net[1]
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
    return torch, net.eval()


def _record(torch, net, x) -> rf.ChainNet:
    """The chain as the adapters record it: BN folded, ReLU masks, pool switches."""
    F = torch.nn.functional
    steps, units = [], {}
    h = x
    mods = list(net)
    i = 0
    while i < len(mods):
        m = mods[i]
        if isinstance(m, torch.nn.Conv2d):
            w = m.weight.detach()
            inp = h
            h = m(h)
            if i + 1 < len(mods) and isinstance(mods[i + 1], torch.nn.BatchNorm2d):
                bn = mods[i + 1]
                w = w * (bn.weight / torch.sqrt(bn.running_var + bn.eps))[:, None, None, None]
                h = bn(h)
                i += 1
            steps.append(rf.Step("conv", Layer(f"conv{i}", m.kernel_size[0], m.stride[0], m.padding[0], m.dilation[0]),
                                 weight=w.numpy().astype(np.float32), in_size=tuple(inp.shape[-2:])))
        elif isinstance(m, torch.nn.ReLU):
            h = m(h)
            steps.append(rf.Step("relu", mask=(h[0] > 0).numpy()))
        elif isinstance(m, torch.nn.MaxPool2d):
            inp = h
            h, idx = F.max_pool2d(h, 2, return_indices=True)
            steps.append(rf.Step("pool", Layer(f"pool{i}", 2, 2), indices=idx[0].numpy().astype(np.int32),
                                 in_size=tuple(inp.shape[-2:])))
        units[f"u{i}"] = (len(steps) - 1, h[0].argmax(0).numpy())
        i += 1
    return rf.ChainNet(tuple(x.shape[1:]), steps, units)


@pytest.mark.parametrize("unit", ["u2", "u5", "u7", "u9"])
def test_numpy_gradient_equals_autograd_and_stays_in_the_theoretical_field(unit: str) -> None:
    torch, net = _torch_chain()
    x0 = torch.randn(1, 3, 40, 48)
    with torch.no_grad():
        chain = _record(torch, net, x0)
    end = int(unit[1:])
    c, row, col = chain.pick(unit, 25.0, 17.0)
    x = x0.clone().requires_grad_(True)
    out = net[:end + 1](x)
    out[0, c, row, col].backward()
    ref = x.grad[0].numpy()
    g, (y0, x0_) = chain.gradient(unit, c, row, col)
    full = np.zeros_like(ref)
    full[:, y0:y0 + g.shape[1], x0_:x0_ + g.shape[2]] = g
    np.testing.assert_allclose(full, ref, rtol=1e-4, atol=1e-6)
    assert np.abs(ref).sum() > 0  # the picked (strongest) unit is alive
    by0, by1, bx0, bx1 = rf.field_box(chain.layers_upto(unit), row, col)
    ys, xs = np.nonzero(np.abs(ref).sum(0))
    assert ys.min() >= by0 and ys.max() <= by1 and xs.min() >= bx0 and xs.max() <= bx1
    taps_y = set(rf.taps_1d(chain.layers_upto(unit), row).tolist())
    assert set(ys.tolist()) <= taps_y


def test_mass_side() -> None:
    e = np.zeros((9, 9))
    e[4, 4] = 1.0
    assert rf.mass_side(e, (0, 0), (4, 4)) == 1
    e[4, 8] = 1.0  # half the mass 4 pixels right of the centre
    assert rf.mass_side(e, (10, 20), (14, 24), 0.9) == 9 and rf.mass_side(e, (10, 20), (14, 24), 0.5) == 1
    assert rf.mass_side(np.zeros((3, 3)), (0, 0), (1, 1)) == 0
