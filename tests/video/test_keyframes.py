"""Key-frame schedules: the fixed interval's range and the adaptive triggers."""

import numpy as np
import pytest

from segviewer.core.errors import SegviewerError
from segviewer.video.keyframes import AdaptiveSchedule, FixedInterval, KeyFrameError, warp_residual


@pytest.mark.parametrize("bad", [0, -1, 61, 2.5, "x", None])
def test_interval_out_of_range_is_one_clear_error(bad: object) -> None:
    with pytest.raises(KeyFrameError, match="from 1 to 60") as exc:
        FixedInterval(bad)  # type: ignore[arg-type]
    assert isinstance(exc.value, SegviewerError) and "\n" not in str(exc.value)


def test_fixed_interval_keys() -> None:
    s = FixedInterval(5)
    assert s.keys(12) == [0, 5, 10]
    assert [s.key_for(i) for i in (0, 4, 5, 9, 11)] == [0, 0, 5, 5, 10]
    assert s.is_key(10) and not s.is_key(11)
    d = s.decide(7)
    assert (d.is_key, d.key_index) == (False, 5)
    assert FixedInterval(1).keys(3) == [0, 1, 2] and FixedInterval(60).keys(61) == [0, 60]


def _scene(shift: int, size: tuple[int, int] = (40, 60)) -> np.ndarray:
    img = np.zeros((*size, 3), np.uint8)
    img[10:30, 10 + shift : 25 + shift] = 200
    return img


def test_warp_residual_is_zero_for_a_correct_flow_and_large_for_a_wrong_one() -> None:
    key, frame = _scene(0), _scene(4)
    right = np.zeros((40, 60, 2), np.float32)
    right[..., 0] = -4.0  # frame pixel p shows what the key frame has at p - 4
    assert warp_residual(key, frame, right) == 0.0
    assert warp_residual(key, frame, np.zeros_like(right)) > 0.05
    with pytest.raises(KeyFrameError):
        warp_residual(key, frame[:10], right)


def test_adaptive_schedule_triggers() -> None:
    s = AdaptiveSchedule(max_mean_flow=3.0, max_residual_share=0.02, max_interval=4)
    assert s.decide(0).reason == "first"
    small = np.full((40, 60, 2), 0.5, np.float32)
    assert not s.decide(1, small).is_key
    big = np.full((40, 60, 2), 3.0, np.float32)  # mean magnitude 4.24 > 3
    d = s.decide(2, big)
    assert d.is_key and d.reason == "flow" and d.mean_flow == pytest.approx(np.sqrt(18), rel=1e-6)
    # a zero flow that fails to explain a moved object -> residual trigger
    d = s.decide(3, np.zeros((40, 60, 2), np.float32), _scene(4), _scene(0))
    assert d.is_key and d.reason == "residual" and d.residual_share > 0.02
    ok = s.decide(4, np.zeros((40, 60, 2), np.float32), _scene(0), _scene(0))
    assert not ok.is_key and ok.key_index == 3 and ok.residual_share == 0.0
    assert not s.decide(5).is_key and not s.decide(6).is_key
    assert s.decide(7).reason == "cap"  # 4 frames after key 3
    assert s.decide(2).reason == "first"  # seeking back restarts
    with pytest.raises(KeyFrameError):
        AdaptiveSchedule(max_mean_flow=0)
    with pytest.raises(KeyFrameError):
        AdaptiveSchedule(max_interval=0)
