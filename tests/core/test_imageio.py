"""read_image / list_images on awkward files, all generated in tmp_path."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from segviewer.core import imageio
from segviewer.core.errors import BadImageError, SegviewerError
from segviewer.core.imageio import IMAGE_SUFFIXES, image_size, list_images, read_image


def _rgb(h: int = 24, w: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 127 // (w + h)], -1).astype(np.uint8)
    img[:, : w // 2] = (250, 10, 10)  # left half red: orientation checks need a landmark
    return img


def _write(path: Path, rgb: np.ndarray) -> Path:
    ok, buf = cv2.imencode(path.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG signature and a valid IHDR claiming w x h, then a tiny IDAT and IEND."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".webp", ".tiff", ".ppm"])
def test_round_trip_and_header_size(tmp_path: Path, suffix: str) -> None:
    img = _rgb(24, 32)
    p = _write(tmp_path / f"a{suffix}", img)
    assert image_size(p) == (24, 32)
    back = read_image(p)
    assert back.dtype == np.uint8 and back.shape == (24, 32, 3)
    tol = 16 if suffix in (".jpg", ".webp") else 0  # lossy codecs
    assert np.abs(back.astype(int) - img).mean() <= tol / 4
    assert back[12, 4, 0] > 200 and back[12, 4, 1] < 60  # still red on the left: RGB, not BGR


def test_gif_and_palette_png(tmp_path: Path) -> None:
    from PIL import Image

    idx = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    pal = [10, 20, 30, 200, 100, 0, 0, 0, 255] + [0] * (768 - 9)
    for suffix in (".png", ".gif"):
        im = Image.fromarray(idx, "P")
        im.putpalette(pal)
        p = tmp_path / f"pal{suffix}"
        im.save(p)
        out = read_image(p)
        assert out.shape == (2, 3, 3)
        assert out[0, 0].tolist() == [10, 20, 30] and out[0, 1].tolist() == [200, 100, 0]


def test_sixteen_bit_png_scales_to_eight_bits(tmp_path: Path) -> None:
    gray16 = np.array([[0, 100 * 256, 65535]], np.uint16)
    p = tmp_path / "g16.png"
    p.write_bytes(cv2.imencode(".png", gray16)[1].tobytes())
    assert read_image(p)[0, :, 0].tolist() == [0, 100, 255]
    color16 = np.zeros((1, 1, 3), np.uint16)
    color16[0, 0] = (7 * 256, 0, 65535)  # BGR on disk
    p2 = tmp_path / "c16.png"
    p2.write_bytes(cv2.imencode(".png", color16)[1].tobytes())
    assert read_image(p2)[0, 0].tolist() == [255, 0, 7]


def test_grayscale_and_rgba(tmp_path: Path) -> None:
    p = tmp_path / "g.png"
    p.write_bytes(cv2.imencode(".png", np.full((3, 4), 77, np.uint8))[1].tobytes())
    g = read_image(p)
    assert g.shape == (3, 4, 3) and (g == 77).all()
    bgra = np.zeros((2, 2, 4), np.uint8)
    bgra[0, 0] = (1, 2, 3, 0)  # fully transparent pixel keeps its stored color
    bgra[1, 1] = (30, 20, 10, 255)
    p2 = tmp_path / "rgba.png"
    p2.write_bytes(cv2.imencode(".png", bgra)[1].tobytes())
    out = read_image(p2)
    assert out.shape == (2, 2, 3)
    assert out[0, 0].tolist() == [3, 2, 1] and out[1, 1].tolist() == [10, 20, 30]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    from PIL import Image

    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = (255, 0, 0)  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be turned 90 degrees clockwise for display
    p = tmp_path / "rot.jpg"
    Image.fromarray(img).save(p, "JPEG", exif=exif.tobytes(), quality=95)
    out = read_image(p)
    assert out.shape == (40, 20, 3)
    assert out[2, 10, 0] > 200 and out[-3, 10, 0] < 60  # red half is now on top


def test_not_an_image(tmp_path: Path) -> None:
    p = tmp_path / "notes.png"
    p.write_text("this is not a picture\n" * 20)
    with pytest.raises(BadImageError, match="notes.png is not an image"):
        read_image(p)


def test_empty_and_missing(tmp_path: Path) -> None:
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(BadImageError, match=r"empty \(0 bytes\)"):
        read_image(p)
    with pytest.raises(BadImageError, match="does not exist"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(BadImageError, match="folder"):
        read_image(tmp_path)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_files_are_refused(tmp_path: Path, suffix: str) -> None:
    full = _write(tmp_path / f"full{suffix}", _rgb(64, 64)).read_bytes()
    for cut in (len(full) // 2, len(full) - 2):
        p = tmp_path / f"cut{suffix}"
        p.write_bytes(full[:cut])
        with pytest.raises(BadImageError, match="truncated"):
            read_image(p)


def test_damaged_body_is_refused(tmp_path: Path) -> None:
    data = bytearray(_write(tmp_path / "x.png", _rgb(64, 64)).read_bytes())
    data[60:200] = b"\x00" * 140  # inside the compressed stream; header and IEND intact
    p = tmp_path / "bad.png"
    p.write_bytes(bytes(data))
    with pytest.raises(BadImageError):
        read_image(p)


def test_decompression_bomb_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_header_only(30000, 30000))
    assert p.stat().st_size < 200
    assert image_size(p) == (30000, 30000)

    def no_decode(*_a: object, **_k: object) -> None:
        raise AssertionError("decoded a bomb")

    monkeypatch.setattr(imageio.cv2, "imdecode", no_decode)
    with pytest.raises(BadImageError, match="30000x30000.*decompression bomb"):
        read_image(p)
    with pytest.raises(BadImageError, match="limit"):
        read_image(_write(tmp_path / "small.png", _rgb(24, 32)), max_pixels=24 * 32 - 1)


def test_jpeg_bomb_header(tmp_path: Path) -> None:
    data = bytearray(_write(tmp_path / "x.jpg", _rgb(16, 16)).read_bytes())
    i = 2
    while not (data[i] == 0xFF and data[i + 1] in (0xC0, 0xC1, 0xC2)):  # find the frame header
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    data[i + 5:i + 9] = struct.pack(">HH", 40000, 40000)
    p = tmp_path / "bomb.jpg"
    p.write_bytes(bytes(data))
    with pytest.raises(BadImageError, match="40000x40000"):
        read_image(p)


def test_twelve_by_nine_thousand_passes_the_limit(tmp_path: Path) -> None:
    # The header check admits 108 MP; the body here is fake, so decoding then fails politely.
    p = tmp_path / "big.png"
    p.write_bytes(_png_header_only(12000, 9000))
    with pytest.raises(BadImageError) as err:
        read_image(p)
    assert "limit" not in str(err.value) and "damaged" in str(err.value)


@pytest.mark.slow
def test_twelve_by_nine_thousand_really_opens(tmp_path: Path) -> None:
    img = np.zeros((9000, 12000), np.uint8)
    img[4500:, 6000:] = 200
    p = tmp_path / "big.png"
    p.write_bytes(cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes())
    del img
    out = read_image(p)
    assert out.shape == (9000, 12000, 3) and out[8999, 11999, 1] == 200 and out[0, 0, 0] == 0


def test_list_images_natural_order_and_filter(tmp_path: Path) -> None:
    for name in ["img10.png", "img2.PNG", "img1.jpg", "notes.txt", ".hidden.png", "b.tiff"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["b.tiff", "img1.jpg", "img2.PNG", "img10.png"]
    assert ".png" in IMAGE_SUFFIXES and ".jpg" in IMAGE_SUFFIXES
    with pytest.raises(SegviewerError, match="not a folder"):
        list_images(tmp_path / "img1.jpg")


def test_imageio_does_not_use_pillow() -> None:
    # Pillow stays out of segviewer.core.imageio (tests may use it to make files).
    import ast

    tree = ast.parse(Path(imageio.__file__).read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "PIL" not in names
