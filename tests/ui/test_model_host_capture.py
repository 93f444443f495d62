"""The app's model process answers a capture request with both the result and the internals of
one pass (real bundled models; the child is spawned as in the app)."""

from __future__ import annotations

import functools

import numpy as np

from segviewer.adapters.base import PredictParams
from segviewer.adapters.one_pass import InternalsUnavailable
from segviewer.core.timing import Timings
from segviewer.ui.model_host import ProcessHost, registry_factory


def test_process_host_capture_returns_result_and_internals() -> None:
    host = ProcessHost(functools.partial(registry_factory, torch_threads=1), nice=0)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    states: list[str] = []
    try:
        t = Timings()
        sem, stages = host.predict_capture("shapes_fcn", "cpu", None, img, PredictParams(), t, states.append)
        assert set(stages) == {"32s", "16s", "8s"} and "model" in t
        np.testing.assert_array_equal(sem.labels, stages["8s"].labels)
        plain = host.predict("shapes_fcn", "cpu", None, img, PredictParams(), Timings(), states.append)
        np.testing.assert_array_equal(plain.labels, sem.labels)  # the same as a plain pass
        sem, vp = host.predict_capture("shapes_pcv", "cpu", None, img, PredictParams(), Timings(), states.append)
        assert vp.votes.shape[0] == 18 and vp.semantic.labels.shape == (96, 128)
        dets, it = host.predict_capture("shapes_maskrcnn", "cpu", None, img, PredictParams(), Timings(),
                                        states.append)
        assert it.replay_matches and len(it.detections) == len(dets)
        # a model without internals still answers, with the reason
        _, none = host.predict_capture("shapes_unet", "cpu", None, img, PredictParams(), Timings(), states.append)
        assert isinstance(none, InternalsUnavailable) and "semantic model" in none.message
    finally:
        host.close()
    assert states.count("loaded") == 4
