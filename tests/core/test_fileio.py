import numpy as np
import pytest

from segviewer.core.fileio import atomic_path, write_image_atomic, write_json_atomic


def test_failed_write_leaves_nothing_and_keeps_old(tmp_path):
    target = tmp_path / "out.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == '{"a": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_image_round_trip_is_rgb(tmp_path):
    import cv2

    img = np.zeros((4, 5, 3), np.uint8)
    img[..., 0] = 200  # red in RGB
    write_image_atomic(tmp_path / "x.png", img)
    back = cv2.imread(str(tmp_path / "x.png"))
    assert back[0, 0].tolist() == [0, 0, 200]  # BGR on disk


def test_written_file_has_umask_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "p.json", [1])
    finally:
        os.umask(mask)
    assert (tmp_path / "p.json").stat().st_mode & 0o777 == 0o644


def test_output_under_a_regular_file_is_one_output_error(tmp_path):
    from segviewer.core.fileio import OutputError, check_output_dir, ensure_dir

    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match=r"cannot write .*f/sub/a\.json: .*/f is a file, not a folder"):
        write_json_atomic(tmp_path / "f" / "sub" / "a.json", [1])
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_output_dir(tmp_path / "f" / "out")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        ensure_dir(tmp_path / "f")
    check_output_dir(tmp_path / "new" / "deeper")  # creatable: no error, and nothing created
    assert not (tmp_path / "new").exists()


def test_a_refused_write_is_an_output_error_and_leaves_nothing(tmp_path, monkeypatch):
    import errno
    import os
    from pathlib import Path

    from segviewer.core.fileio import OutputError

    def full(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OutputError, match=r"cannot write .*x\.json: no space left on device"):
        write_json_atomic(tmp_path / "x.json", [1])
    assert list(tmp_path.iterdir()) == []
