"""An on-disk store of predictions and per-image metrics, so a dataset is never scored twice.

SQLite from the standard library, one file (``<dataset>/.segviewer/results.sqlite`` by default),
write-ahead logged and committed after every image: a run that is killed loses at most the image
it was on and resumes where it stopped. Rows are keyed by

* the image's CONTENT hash (BLAKE2b of the file bytes, so renaming or moving a dataset keeps
  its results and an edited image is scored again),
* the model id (a registry name, or ``results:<file>`` for predictions read from a file),
* the weights hash (of the checkpoint, or of the results file),

and metrics additionally by a ground-truth key (the annotation file's hash), so editing the
ground truth re-scores without re-predicting. Predictions are kept compact: instance masks as
their bit-packed crops, semantic labels as they are, all in one ``np.savez_compressed`` blob
(only the fields the metrics and the error layer need: no logits, no probabilities); a panoptic
model's map as its segment ids and segment table; a panoptic pair (an instance and a semantic
model run together) is one blob holding both.
No Qt, no torch.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.core.errors import SegviewerError
from segviewer.core.results import Detections, MaskSet, PanopticMap, PanopticSegment, SemanticMap

__all__ = ["ResultStore", "file_hash", "pack_result", "unpack_result", "default_store_path", "Pair"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
  image_hash TEXT NOT NULL, model_id TEXT NOT NULL, weights_hash TEXT NOT NULL,
  kind TEXT NOT NULL, blob BLOB NOT NULL, infer_ms REAL,
  PRIMARY KEY (image_hash, model_id, weights_hash));
CREATE TABLE IF NOT EXISTS metrics (
  image_hash TEXT NOT NULL, model_id TEXT NOT NULL, weights_hash TEXT NOT NULL, gt_key TEXT NOT NULL,
  row TEXT NOT NULL,
  PRIMARY KEY (image_hash, model_id, weights_hash, gt_key));
CREATE TABLE IF NOT EXISTS hashes (
  path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, hash TEXT NOT NULL);
"""


def file_hash(path: str | os.PathLike[str]) -> str:
    """BLAKE2b-128 hex digest of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_store_path(dataset_root: str | os.PathLike[str]) -> Path:
    return Path(dataset_root) / ".segviewer" / "results.sqlite"


#: A panoptic pair: an instance model's and a semantic model's results for one image, stored
#: together (kind "pair") and merged when scored, as ``predict --panoptic`` merges them.
Pair = tuple[Detections, SemanticMap]


def _arrays(result: Detections | SemanticMap | PanopticMap) -> tuple[str, dict[str, np.ndarray]]:
    arrays: dict[str, np.ndarray] = {}
    if isinstance(result, Detections):
        kind = "instances"
        arrays.update(boxes=result.boxes, scores=result.scores, class_ids=result.class_ids,
                      size=np.array(result.image_size, np.int64))
        if result.masks is not None:
            crops = result.masks.crops
            arrays["offsets"] = result.masks.offsets
            arrays["shapes"] = np.array([c.shape for c in crops], np.int64).reshape(-1, 2)
            arrays["bits"] = np.packbits(np.concatenate([c.ravel() for c in crops])) if crops else np.zeros(0, np.uint8)
        if result.keypoints is not None:  # a keypoint model's (x, y, score), names and skeleton
            arrays["keypoints"] = result.keypoints
            arrays["keypoint_meta"] = np.array(json.dumps({"names": list(result.keypoint_names),
                                                           "skeleton": [list(p) for p in result.skeleton]}))
    elif isinstance(result, SemanticMap):
        kind = "semantic"
        arrays["labels"] = result.labels
        arrays["ignore"] = np.array([-1 if result.ignore_index is None else result.ignore_index], np.int64)
    elif isinstance(result, PanopticMap):  # a panoptic model's own output
        kind = "panoptic"
        arrays["segment_ids"] = result.segment_ids
        arrays["segments"] = np.array([(s.id, s.category_id, s.isthing, s.area, s.score, s.iscrowd)
                                       for s in result.segments], np.float64).reshape(-1, 6)
        arrays["isthing"] = np.array(result.isthing, bool)
    else:
        raise SegviewerError(f"cannot store a {type(result).__name__} result")
    arrays["categories"] = np.array(json.dumps(list(result.categories)))
    return kind, arrays


def pack_result(result: Detections | SemanticMap | PanopticMap | Pair) -> tuple[str, bytes]:
    """``(kind, blob)``: the compact form of a prediction (see the module docstring); a
    :data:`Pair` is kind "pair", its two halves' arrays prefixed ``i_`` and ``s_``."""
    if isinstance(result, tuple):
        if len(result) != 2 or not isinstance(result[0], Detections) or not isinstance(result[1], SemanticMap):
            raise SegviewerError("a stored pair is (Detections, SemanticMap)")
        arrays = {f"i_{k}": v for k, v in _arrays(result[0])[1].items()}
        arrays.update({f"s_{k}": v for k, v in _arrays(result[1])[1].items()})
        kind = "pair"
    else:
        kind, arrays = _arrays(result)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return kind, buf.getvalue()


def _build(kind: str, z: Any) -> Detections | SemanticMap | PanopticMap:
    cats = tuple(json.loads(str(z["categories"])))
    if kind == "panoptic":
        segs = tuple(PanopticSegment(int(r[0]), int(r[1]), bool(r[2]), int(r[3]), float(r[4]), bool(r[5]))
                     for r in z["segments"])
        return PanopticMap(z["segment_ids"], segs, cats, tuple(bool(v) for v in z["isthing"]))
    if kind == "semantic":
        ig = int(z["ignore"][0])
        return SemanticMap(z["labels"], cats, ignore_index=None if ig < 0 else ig)
    h, w = (int(v) for v in z["size"])
    masks = None
    if "shapes" in z:
        shapes = z["shapes"]
        n = int((shapes[:, 0] * shapes[:, 1]).sum()) if len(shapes) else 0
        flat = np.unpackbits(z["bits"], count=n).astype(bool) if n else np.zeros(0, bool)
        crops, pos = [], 0
        for ch, cw in shapes:
            crops.append(flat[pos:pos + ch * cw].reshape(ch, cw))
            pos += ch * cw
        masks = MaskSet((h, w), tuple(crops), z["offsets"])
    kps: dict[str, Any] = {}
    if "keypoints" in z:
        meta = json.loads(str(z["keypoint_meta"]))
        kps = {"keypoints": z["keypoints"], "keypoint_names": tuple(meta["names"]),
               "skeleton": tuple(tuple(p) for p in meta["skeleton"])}
    return Detections((h, w), z["boxes"], z["scores"], z["class_ids"], cats, masks=masks, **kps)


def unpack_result(kind: str, blob: bytes) -> Detections | SemanticMap | PanopticMap | Pair:
    """The inverse of :func:`pack_result`."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        if kind == "pair":
            arrays = {k: z[k] for k in z.files}
            inst = _build("instances", {k[2:]: v for k, v in arrays.items() if k.startswith("i_")})
            sem = _build("semantic", {k[2:]: v for k, v in arrays.items() if k.startswith("s_")})
            return inst, sem  # type: ignore[return-value]
        return _build(kind, {k: z[k] for k in z.files})


class ResultStore:
    """The SQLite store (see the module docstring). Thread-safe: one connection, one lock."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as err:
            raise SegviewerError(f"{self.path} is not a segviewer results store ({err})") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- image hashes, remembered by path, size and mtime so reopening does not re-read every file
    def image_hash(self, path: str | os.PathLike[str]) -> str:
        p = Path(path)
        st = p.stat()
        key = str(p.resolve())
        with self._lock:
            row = self._db.execute("SELECT size, mtime_ns, hash FROM hashes WHERE path = ?", (key,)).fetchone()
        if row is not None and row[0] == st.st_size and row[1] == st.st_mtime_ns:
            return str(row[2])
        h = file_hash(p)
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?)", (key, st.st_size, st.st_mtime_ns, h))
        return h

    # -- predictions
    def put_prediction(self, image_hash: str, model_id: str, weights_hash: str,
                       result: Detections | SemanticMap | PanopticMap | Pair, infer_ms: float | None = None) -> None:
        kind, blob = pack_result(result)
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?, ?, ?)",
                             (image_hash, model_id, weights_hash, kind, blob, infer_ms))

    def get_prediction(self, image_hash: str, model_id: str, weights_hash: str
                       ) -> tuple[Detections | SemanticMap | PanopticMap | Pair, float | None] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT kind, blob, infer_ms FROM predictions WHERE image_hash=? AND model_id=? AND weights_hash=?",
                (image_hash, model_id, weights_hash)).fetchone()
        if row is None:
            return None
        return unpack_result(row[0], row[1]), row[2]

    # -- per-image metrics (a flat dict: one dataset-table row)
    def put_metrics(self, image_hash: str, model_id: str, weights_hash: str, gt_key: str,
                    row: dict[str, Any]) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?, ?)",
                             (image_hash, model_id, weights_hash, gt_key, json.dumps(row)))

    def put_both(self, image_hash: str, model_id: str, weights_hash: str, gt_key: str,
                 result: Detections | SemanticMap | PanopticMap | Pair, infer_ms: float | None, row: dict[str, Any]) -> None:
        """Prediction and metrics of one image in ONE transaction (a kill leaves both or neither)."""
        kind, blob = pack_result(result)
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?, ?, ?)",
                             (image_hash, model_id, weights_hash, kind, blob, infer_ms))
            self._db.execute("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?, ?)",
                             (image_hash, model_id, weights_hash, gt_key, json.dumps(row)))

    def metrics(self, model_id: str, weights_hash: str, gt_key: str,
                image_hashes: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """``{image_hash: row}`` of what is stored for this model, weights and ground truth."""
        want = None if image_hashes is None else list(dict.fromkeys(image_hashes))
        sql = "SELECT image_hash, row FROM metrics WHERE model_id=? AND weights_hash=? AND gt_key=?"
        with self._lock:
            if want is not None and len(want) <= 400:  # a few images: ask for them only
                rows = self._db.execute(sql + f" AND image_hash IN ({','.join('?' * len(want))})",
                                        (model_id, weights_hash, gt_key, *want)).fetchall()
            else:
                rows = self._db.execute(sql, (model_id, weights_hash, gt_key)).fetchall()
        if want is not None and len(want) > 400:
            keep = set(want)
            rows = [(h, r) for h, r in rows if h in keep]
        return {h: json.loads(r) for h, r in rows}

    def runs(self) -> list[tuple[str, str, int]]:
        """``(model_id, weights_hash, images)`` of every stored run (for a results picker)."""
        with self._lock:
            return [(str(a), str(b), int(c)) for a, b, c in self._db.execute(
                "SELECT model_id, weights_hash, COUNT(*) FROM predictions GROUP BY model_id, weights_hash")]
