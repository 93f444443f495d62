"""The comparison half of the dataset view: a second stored run beside the shown one.

These run on a worker thread (no Qt here): :func:`compare_rows` gives the table its ``d_<key>``
columns (B - A per image, so "where B is worse" is one sort), :func:`compare_image` the
disagreement layer of one image (B scored against A, each side's class on hover), and
:func:`truth_like` the ground truth as B (a run against the ground truth).
"""

from __future__ import annotations

from typing import Any


def stored_rows(store: Any, index: Any, run: tuple[str, str]) -> dict[int, dict[str, Any]]:
    """A stored run's rows by dataset image index."""
    hashes = [store.image_hash(p) for p in index.paths]
    rows = store.metrics(run[0], run[1], index.gt_key)
    return {i: rows[h] for i, h in enumerate(hashes) if h in rows}


def compare_rows(store: Any, index: Any, run_a: tuple[str, str], run_b: tuple[str, str]
                 ) -> tuple[dict[int, dict[str, Any]], list[str]]:
    """Rows of A with B's deltas merged in, and the delta keys (in table order)."""
    from segviewer.analysis.compare import delta_key, row_deltas
    from segviewer.analysis.dataset_eval import ROW_KEYS

    a, b = stored_rows(store, index, run_a), stored_rows(store, index, run_b)
    deltas = row_deltas(a, b, [k for k in ROW_KEYS if k != "infer_ms"])
    merged = {i: dict(r, **deltas.get(i, {})) for i, r in a.items()}
    keys = [delta_key(k) for k in ROW_KEYS if any(delta_key(k) in d for d in deltas.values())]
    return merged, keys


def compare_image(store: Any, index: Any, i: int, run_a: tuple[str, str], run_b: tuple[str, str]
                  ) -> tuple[Any, Any] | None:
    """``(B's prediction as drawn, disagreement ImageEval)`` of image i, None when a side is not
    stored. A panoptic pair is drawn as its merged map; two pairs disagree where their instance
    halves do (a pair against a single run: that run's kind of half); a panoptic model's map has
    no disagreement layer (None), only its side in A | B."""
    from segviewer.analysis.compare import disagreement
    from segviewer.analysis.dataset_eval import shown_result
    from segviewer.core.results import Detections, PanopticMap

    h = store.image_hash(index.paths[i])
    a, b = store.get_prediction(h, *run_a), store.get_prediction(h, *run_b)
    if a is None or b is None:
        return None
    pa, pb = a[0], b[0]
    if isinstance(pa, PanopticMap) or isinstance(pb, PanopticMap):  # no disagreement map of segments: A | B only
        return shown_result(pb), None
    if isinstance(pa, tuple) or isinstance(pb, tuple):
        want = Detections if isinstance(pa, tuple) and isinstance(pb, tuple) else type(
            pb if isinstance(pa, tuple) else pa)
        pa = next(x for x in pa if isinstance(x, want)) if isinstance(pa, tuple) else pa
        pb = next(x for x in pb if isinstance(x, want)) if isinstance(pb, tuple) else pb
    return shown_result(b[0]), disagreement(pa, pb)


def truth_like(shown: Any, gt: Any) -> Any:
    """The ground truth of the kind a run's drawn result is (B when comparing with the ground
    truth): panoptic for a merged pair, instances for Detections, semantic for a label map; None
    when the dataset has none of that kind."""
    from segviewer.core.results import Detections, PanopticMap, SemanticMap

    if isinstance(shown, PanopticMap):
        return gt.panoptic
    if isinstance(shown, Detections):
        return gt.instances
    if isinstance(shown, SemanticMap):
        return gt.semantic
    return None
