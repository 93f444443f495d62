"""What a ``segviewer predict`` run will write, decided before any model runs.

* Output names keep each image's path relative to the input root (the folder given, or the
  common folder of all inputs), so ``a/x.png`` and ``b/x.png`` never write the same file, and a
  folder's subfolders reappear under ``--out``.
* A run refuses to replace outputs already in ``--out`` unless ``--overwrite`` is given.
* Image and category ids: from a COCO dataset JSON (``--gt``, or the ``annotations/`` file found
  beside the images the way the window finds ground truth), so that what is written scores
  against that dataset as it is; else the image's 1-based position in the run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from segviewer.core.errors import SegviewerError

if TYPE_CHECKING:  # pragma: no cover
    from segviewer.core.coco_results import DatasetIds

#: Per-image outputs (suffix after the image's relative stem) any kind of model may write.
PER_IMAGE = ("_overlay.png", "_labels.png", "_panoptic.png", "_segments.json")
#: An input with one of these suffixes is a list of images, one path per line.
LIST_SUFFIXES = (".txt", ".lst")
#: Files written once per run.
PER_RUN = ("results.json", "images.json", "categories.json", "panoptic.json")


def collect(inputs: Sequence[str]) -> tuple[list[Path], Path | None, list[str]]:
    """(image files, the input root, problems): folders give the images directly inside them, in
    natural order; a ``.txt`` / ``.lst`` file the images it lists (:func:`list_file`), a ``.json``
    file a COCO dataset's images (:func:`coco_images`); a file given twice counts once. The root
    is the deepest folder holding every input (a single folder: itself; a list: its folder)."""
    from segviewer.core.imageio import list_images

    images: list[Path] = []
    seen: set[str] = set()
    anchors: list[str] = []
    problems: list[str] = []
    for raw in inputs:
        p = Path(raw).expanduser()
        if p.is_dir():
            found = list_images(p)
            if not found:
                problems.append(f"{p}: no images in this folder")
            anchors.append(os.path.abspath(p))
        elif p.is_file() and p.suffix.lower() in LIST_SUFFIXES + (".json",):
            try:
                found, anchor = list_file(p) if p.suffix.lower() in LIST_SUFFIXES else coco_images(p)
            except SegviewerError as err:
                problems.append(f"{p}: {err}")
                continue
            missing = [f for f in found if not f.is_file()]
            if missing:
                problems.append(f"{p}: {len(missing)} listed image(s) missing ({missing[0]})")
                found = [f for f in found if f.is_file()]
            # every image's folder (not the list's): names relative to the images, never above --out
            anchors += sorted({os.path.dirname(os.path.abspath(f)) for f in found} or {os.path.abspath(anchor)})
        elif p.is_file():
            found = [p]
            anchors.append(os.path.dirname(os.path.abspath(p)))
        else:
            problems.append(f"{p}: no such file or folder")
            continue
        for f in found:
            key = os.path.abspath(f)
            if key not in seen:
                seen.add(key)
                images.append(f)
    try:
        root = Path(os.path.commonpath(anchors)) if anchors else None
    except ValueError:  # different drives (Windows): no common folder
        root = None
    return images, root, problems


def list_file(path: Path) -> tuple[list[Path], Path]:
    """The images a list file names (one path per line, relative to the list's folder; blank
    lines and ``#`` comments skipped) and the folder they are relative to."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise SegviewerError(f"cannot read the list ({err})") from None
    names = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    return [(path.parent / n) for n in names], path.parent


def coco_images(path: Path) -> tuple[list[Path], Path]:
    """The images of a COCO JSON (its ``images[].file_name``), in its order, found where the
    window looks for a dataset's annotations the other way round: ``ROOT/annotations/x.json``
    with the images in ``ROOT/images/`` or ``ROOT/``; else beside the JSON."""
    from segviewer.core.fileio import read_json_object

    data = read_json_object(path, "COCO JSON")
    try:
        names = [str(im["file_name"]) for im in data["images"]]
    except (KeyError, TypeError) as err:
        raise SegviewerError(f"not a COCO JSON with images[].file_name ({err})") from None
    root = path.parent.parent if path.parent.name == "annotations" else path.parent
    bases = [root / "images", root, path.parent]
    base = next((b for b in bases if names and (b / names[0]).is_file()), bases[0])
    return [base / n for n in names], base


def output_stems(images: Sequence[Path], root: Path | None) -> list[str]:
    """Each image's relative path without its suffix (posix); ``a.png`` and ``a.jpg`` in one
    folder keep their suffix (``a_png``, ``a_jpg``) so that neither overwrites the other."""
    rels: list[PurePosixPath] = []
    for p in images:
        if root is not None:
            rel = Path(os.path.relpath(os.path.abspath(p), root))
            rels.append(PurePosixPath(*rel.parts))
        else:
            rels.append(PurePosixPath(p.name))
    stems = [str(r.with_suffix("")) for r in rels]
    clash = {s for s in stems if stems.count(s) > 1}
    out = [str(r.with_name(f"{r.stem}_{r.suffix[1:]}")) if s in clash else s for r, s in zip(rels, stems)]
    if len(set(out)) != len(out):  # only if a name like "a_png.png" also exists
        raise SegviewerError("two inputs would write the same output names; rename one or predict them separately")
    return out


def existing_outputs(out: Path, stems: Sequence[str]) -> list[Path]:
    """Files this run could write that are already in ``out`` (run-level files first)."""
    if not out.is_dir():
        return []
    found = [out / n for n in PER_RUN if (out / n).exists()]
    for s in stems:
        found += [out / f"{s}{suf}" for suf in PER_IMAGE if (out / f"{s}{suf}").exists()]
        if (out / "panoptic" / f"{s}.png").exists():
            found.append(out / "panoptic" / f"{s}.png")
    return found


def refuse_overwrite(out: Path, stems: Sequence[str]) -> None:
    """One line naming what is there, unless nothing this run writes exists yet."""
    there = existing_outputs(out, stems)
    if there:
        more = f" and {len(there) - 1} more" if len(there) > 1 else ""
        raise SegviewerError(f"{out} already holds outputs of a run ({there[0].relative_to(out)}{more}); "
                             "pass --overwrite to replace them, or choose another --out")


def dataset_ids(images: Sequence[Path], gt: Path | None, json_name: str, auto: bool) -> tuple[DatasetIds | None, list[int]]:
    """``(DatasetIds or None, image id per image)``.

    ``gt`` given: every image must be listed in it (else one line naming the missing ones).
    Otherwise, when ``auto``, the ``annotations/<json_name>`` beside the images is used if one
    file lists them all; without one, ids are 1-based positions in the run.
    """
    positions = list(range(1, len(images) + 1))
    if gt is None and (not auto or not images):  # a semantic model or --no-gt: no dataset to read
        return None, positions
    from segviewer.core.coco_results import DatasetIds
    from segviewer.core.groundtruth import annotation_files_beside

    if gt is not None:
        ds = DatasetIds.read(gt)
        ids = [ds.image_id(p) for p in images]
        missing = [p.name for p, i in zip(images, ids) if i is None]
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            raise SegviewerError(f"{gt} does not list {len(missing)} of the {len(images)} images ({shown}); "
                                 "give only images of that dataset, or leave out --gt")
        return ds, [int(i) for i in ids if i is not None]
    cache: dict[Path, DatasetIds] = {}
    hits: list[tuple[Path, int] | None] = []
    for p in images:
        hit: tuple[Path, int] | None = None
        for f in annotation_files_beside(p, json_name):
            if f not in cache:
                try:
                    cache[f] = DatasetIds.read(f)
                except SegviewerError as err:
                    print(f"segviewer: ground truth beside the images not used: {err}", file=sys.stderr)
                    return None, positions
            i = cache[f].image_id(p)
            if i is not None:
                hit = (f, i)
                break
        hits.append(hit)
    files = {h[0] for h in hits if h is not None}
    if not files:
        return None, positions
    if len(files) > 1 or any(h is None for h in hits):
        print(f"segviewer: no one {json_name} beside the images lists all {len(images)} of them; image ids are "
              "positions in this run (images.json maps file names to them); --gt FILE names the dataset",
              file=sys.stderr)
        return None, positions
    chosen = files.pop()
    print(f"segviewer: image and category ids from {chosen} (found beside the images; --no-gt ignores it)",
          file=sys.stderr)
    return cache[chosen], [h[1] for h in hits if h is not None]
