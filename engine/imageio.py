"""Reading and writing images safely: size checked before decoding, truncation caught, writes atomic."""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

import cv2
import numpy as np

from engine.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            pos += 1
            continue
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            pos += 1 if marker == 0xFF else 2
            continue
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        pos += 2 + length
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    order = "<" if data[:2] == b"II" else ">"
    offset = struct.unpack(order + "I", data[4:8])[0]
    if offset + 2 > len(data):
        return None
    count = struct.unpack(order + "H", data[offset:offset + 2])[0]
    found: dict[int, int] = {}
    for index in range(count):
        entry = data[offset + 2 + 12 * index: offset + 14 + 12 * index]
        if len(entry) < 12:
            break
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):
            found[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), entry[8:10 if kind == 3 else 12])[0]
    return (found[256], found[257]) if 256 in found and 257 in found else None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def sniff(data: bytes) -> tuple[str, tuple[int, int] | None]:
    """The format of an encoded image and its (width, height) read from the header, without decoding."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png", struct.unpack(">II", data[16:24]) if len(data) >= 24 else None
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg", _jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp", _webp_size(data)
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return "bmp", (abs(width), abs(height))
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff", _tiff_size(data)
    return "", None


def _truncated(kind: str, data: bytes) -> bool:
    if kind == "png":
        return b"IEND" not in data[-64:]
    if kind == "jpeg":
        return b"\xff\xd9" not in data[-4096:]
    return False


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any decoded image (grayscale, 16-bit, float, with alpha) as 8-bit BGR; alpha is composited on white."""
    if image.dtype == np.uint16:
        image = (image / 257.0).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        scale = 255.0 if image.dtype.kind == "f" and float(np.nanmax(image)) <= 1.0 else 1.0
        image = np.clip(np.nan_to_num(image.astype(np.float32)) * scale, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        blended = image[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return blended.round().astype(np.uint8)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(image[:, :, :3])


def decode_image(data: bytes, name: str = "image", max_megapixels: float = 50.0) -> np.ndarray:
    """Decode encoded image bytes to 8-bit BGR, refusing empty, truncated, unknown or oversized images."""
    if not data:
        raise InputError(f"{name}: the file is empty")
    kind, size = sniff(data)
    if not kind:
        raise InputError(f"{name}: not an image FaceSynth can read (PNG, JPEG, WebP, BMP or TIFF)")
    if size is not None and size[0] * size[1] > max_megapixels * 1e6:
        raise InputError(f"{name}: {size[0]}x{size[1]} is {size[0] * size[1] / 1e6:.1f} megapixels, over the "
                         f"limit of {max_megapixels:g} megapixels (setting max_megapixels); downscale it first")
    if _truncated(kind, data):
        raise InputError(f"{name}: the {kind.upper()} file is truncated (incomplete download or copy?)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise InputError(f"{name}: the {kind.upper()} data is damaged and cannot be decoded")
    if size is None and image.shape[0] * image.shape[1] > max_megapixels * 1e6:
        raise InputError(f"{name}: over the limit of {max_megapixels:g} megapixels (setting max_megapixels)")
    return to_bgr8(image)


def read_image(path: str | Path, max_megapixels: float = 50.0) -> np.ndarray:
    """Read an image file as 8-bit BGR with a clear `InputError` for every way it can be bad."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not an image") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror})") from None
    return decode_image(data, str(path), max_megapixels)


def downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """A copy no larger than `max_side` on its longer side, and the factor used (1.0: the image itself).

    Large reductions go through an integer-factor area average first (OpenCV's fast path), which is several
    times quicker on a 12-megapixel photo than one arbitrary-factor area resize.
    """
    height, width = image.shape[:2]
    factor = min(1.0, max_side / max(height, width))
    if factor == 1.0:
        return image, 1.0
    step = int(1.0 / factor)
    if step >= 2:
        image = cv2.resize(image, (width // step, height // step), interpolation=cv2.INTER_AREA)
    target = (max(1, round(width * factor)), max(1, round(height * factor)))
    if (image.shape[1], image.shape[0]) != target:
        image = cv2.resize(image, target, interpolation=cv2.INTER_AREA if step < 2 else cv2.INTER_LINEAR)
    return image, target[0] / width


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a BGR image."""
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buffer.tobytes()


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write bytes to `path` through a temporary file in the same folder, then rename: never a half file."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def list_images(paths: list[str]) -> list[Path]:
    """Expand inputs: files stay as given, folders give the files in them with image suffixes (sorted)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.iterdir()
                            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
            # (videos in a folder are left alone: name a video explicitly to edit it)
        else:
            found.append(path)
    return found
