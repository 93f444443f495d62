"""Reading images from disk: RGB uint8 out, a one-sentence :class:`BadImageError` for anything else.

What :func:`read_image` does with awkward files (each case has a test):

* 16-bit images are scaled to 8 bits (``v >> 8``); grayscale and palette images are expanded to
  RGB; an alpha channel is dropped (the color channels are shown as stored).
* The EXIF orientation tag is applied, so photos stand the way the camera held them.
* Empty files, files that are not images, and images whose header we cannot read are refused.
* Truncated files are refused, not half shown: a JPEG without its end-of-image marker after the
  scan data, a PNG without its ``IEND`` chunk. A partial picture would silently feed a model half
  an image; a clear message lets the person re-copy the file.
* Decompression bombs: the pixel count is read from the file header (PNG, JPEG, BMP, GIF, WebP,
  TIFF, PNM) and checked against ``max_pixels`` *before* anything is decoded. The default admits
  a 12000 x 9000 (108 MP) scan; a 30000 x 30000 header is refused.

Files are read as bytes and decoded with ``cv2.imdecode`` (works with any path on any OS). Pillow
is not used here.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import cv2
import numpy as np

from segviewer.core.errors import BadImageError, SegviewerError

__all__ = ["IMAGE_SUFFIXES", "DEFAULT_MAX_PIXELS", "image_size", "read_image", "list_images"]

IMAGE_SUFFIXES: frozenset[str] = frozenset({
    ".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".gif", ".webp", ".tif", ".tiff",
    ".ppm", ".pgm", ".pbm", ".pnm",
})
DEFAULT_MAX_PIXELS = 250_000_000

_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class _Truncated(ValueError):
    """The file ends inside its own header."""


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24:
        raise _Truncated("ends inside IHDR")
    if data[12:16] != b"IHDR":
        raise ValueError("no IHDR chunk")
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def _jpeg_scan(data: bytes) -> tuple[int, int, int]:
    """(width, height, offset of the first scan) from the JPEG marker segments."""
    i, n, size = 2, len(data), None
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise ValueError("bad marker")
        m = data[i + 1]
        if m == 0xFF:  # fill byte
            i += 1
            continue
        if m == 0x01 or 0xD0 <= m <= 0xD8:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if m in _JPEG_SOF:
            if i + 9 > n:
                break
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            size = (w, h)
        if m == 0xDA:
            if size is None:
                raise ValueError("scan before frame header")
            return size[0], size[1], i
        if m == 0xD9:
            break
        i += 2 + length
    if i + 4 > n:
        raise _Truncated("ends before the first scan")
    raise ValueError("no frame header and scan")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    raise ValueError("unknown WebP chunk")


def _tiff_size(data: bytes) -> tuple[int, int]:
    e = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(e + "I", data[4:8])
    (count,) = struct.unpack(e + "H", data[ifd:ifd + 2])
    vals: dict[int, int] = {}
    for k in range(count):
        tag, typ, _, raw = struct.unpack(e + "HHI4s", data[ifd + 2 + 12 * k: ifd + 14 + 12 * k])
        if tag in (256, 257):
            vals[tag] = struct.unpack(e + ("H" if typ == 3 else "I"), raw[:2] if typ == 3 else raw)[0]
    return vals[256], vals[257]


def _pnm_size(data: bytes) -> tuple[int, int]:
    text = re.sub(rb"#[^\n]*", b" ", data[2:512])
    w, h = text.split()[:2]
    return int(w), int(h)


def _header(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the first bytes; ValueError when unknown or unreadable."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ("PNG", *_png_size(data))
    if data[:2] == b"\xff\xd8":
        w, h, _ = _jpeg_scan(data)
        return "JPEG", w, h
    if data[:2] == b"BM":
        (dib,) = struct.unpack("<I", data[14:18])
        if dib == 12:
            w, h = struct.unpack("<HH", data[18:22])
        else:
            w, h = struct.unpack("<ii", data[18:26])
        return "BMP", abs(w), abs(h)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return ("GIF", *struct.unpack("<HH", data[6:10]))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ("WebP", *_webp_size(data))
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return ("TIFF", *_tiff_size(data))
    if len(data) > 2 and data[:1] == b"P" and data[1:2] in b"123456" and data[2:3].isspace():
        return ("PNM", *_pnm_size(data))
    raise ValueError("unknown format")


def _truncated(fmt: str, data: bytes) -> bool:
    if fmt == "PNG":
        return data.rfind(b"IEND\xaeB`\x82", max(0, len(data) - 64)) == -1  # IEND type + its fixed CRC
    if fmt == "JPEG":
        return data.find(b"\xff\xd9", _jpeg_scan(data)[2]) == -1
    return False


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(height, width)`` as stored in the file header (before any EXIF rotation), without decoding."""
    p = Path(path)
    with open(p, "rb") as f:
        head = f.read(1 << 20)
    try:
        _, w, h = _header(head)
    except (ValueError, struct.error, IndexError, KeyError) as exc:
        raise BadImageError(f"{p.name} is not an image segviewer can read (unrecognised or damaged header).") from exc
    return h, w


def read_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as RGB uint8 ``(H, W, 3)`` with its EXIF orientation applied.

    Raises :class:`BadImageError` (one sentence naming the file) for missing, empty, unknown,
    damaged or truncated files and for images over ``max_pixels`` pixels (checked from the header
    before decoding).
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise BadImageError(f"{p.name} does not exist.") from None
    except IsADirectoryError:
        raise BadImageError(f"{p.name} is a folder, not an image.") from None
    except OSError as exc:
        raise BadImageError(f"{p.name} could not be read ({exc.strerror or exc}).") from None
    if not data:
        raise BadImageError(f"{p.name} is empty (0 bytes).")
    try:
        fmt, w, h = _header(data)
    except _Truncated:
        raise BadImageError(f"{p.name} is a truncated file (it ends inside its header); copy or download it again.") from None
    except (ValueError, struct.error, IndexError, KeyError):
        raise BadImageError(f"{p.name} is not an image segviewer can read (unrecognised or damaged header).") from None
    if w <= 0 or h <= 0:
        raise BadImageError(f"{p.name} declares an empty {w}x{h} {fmt} image.")
    if w * h > max_pixels:
        raise BadImageError(
            f"{p.name} declares {w}x{h} pixels ({w * h / 1e6:.0f} MP), over the {max_pixels / 1e6:.0f} MP limit; "
            "refusing to decode a possible decompression bomb.")
    if _truncated(fmt, data):
        raise BadImageError(f"{p.name} is a truncated {fmt} file (its data ends early); copy or download it again.")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)
    except cv2.error:
        img = None
    if img is None:
        raise BadImageError(f"{p.name} is a damaged {fmt} file that could not be decoded.")
    return img


def _natural_key(p: Path) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name.casefold())]


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files directly inside ``folder`` (by suffix, hidden files skipped), in natural order
    (``img2`` before ``img10``)."""
    d = Path(folder)
    if not d.is_dir():
        raise SegviewerError(f"{d} is not a folder.")
    files = [p for p in d.iterdir()
             if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()]
    return sorted(files, key=_natural_key)
