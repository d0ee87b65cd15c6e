"""Reading and writing images safely: size checked before decoding, truncation caught, writes atomic.

Photos come in upright: the EXIF orientation (JPEG APP1, PNG eXIf, WebP EXIF) is applied on reading.
`read_image(path, max_megapixels)` gives the upright 8-bit BGR array; `read_photo(path, max_megapixels)` gives a
`Photo` with it the format, EXIF and ICC profile bytes and the orientation found, so an edit can be saved as the
input was (`encode_image(image, fmt, quality, exif, icc)`, the orientation tag reset to 1). A file that is
not a regular file, or too large for the megapixel limit, is refused before a byte is read. Converting a deep
or transparent image to 8-bit BGR works in bands of rows, so the peak memory of a read stays near the decoded
image plus the result (about 20 bytes a pixel for a 16-bit RGBA PNG, measured in tests/test_imageio.py).
"""

from __future__ import annotations

import os
import stat
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import structlog

from engine.errors import InputError, UsageError

log = structlog.get_logger()

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
OUTPUT_FORMATS = ("png", "jpg", "webp")
# The most bytes a file may hold per pixel allowed: 16-bit RGBA stored raw is 8, float TIFF up to 16; the
# slack covers headers, thumbnails and the video a phone's "motion photo" appends.
_BYTES_PER_PIXEL_CAP = 16
_FILE_SLACK = 64 * 1024 * 1024
_BAND_PIXELS = 1 << 20  # rows converted at a time: about a megapixel, so temporaries stay a few MB


def _jpeg_segments(data: bytes):
    """(marker, payload start, payload end) of each JPEG header segment, up to and including the first SOS."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return  # not at a marker: damaged
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if length < 2:
            return
        yield marker, pos + 4, pos + 2 + length
        if marker == 0xDA:
            return
        pos += 2 + length


_SOF_MARKERS = (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    for marker, start, end in _jpeg_segments(data):
        if marker in _SOF_MARKERS and end - start >= 5 and end <= len(data):
            height, width = struct.unpack(">HH", data[start + 1:start + 5])
            return width, height
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


def _png_chunks(data: bytes):
    """(type, payload start, payload end) of each PNG chunk, in order; stops at IEND or where the data ends."""
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        yield kind, pos + 8, pos + 8 + length
        if kind == b"IEND":
            return
        pos += 12 + length


def _riff_chunks(data: bytes):
    """(fourcc, payload start, payload end) of each chunk of a WebP (RIFF) file."""
    pos = 12
    while pos + 8 <= len(data):
        kind, length = struct.unpack("<4sI", data[pos:pos + 8])
        yield kind, pos + 8, pos + 8 + length
        pos += 8 + length + (length & 1)


def _truncated(kind: str, data: bytes) -> bool:
    # Truncated means the end marker is missing. Data after it is fine: phones append a video to a "motion
    # photo" after the JPEG's EOI, and tools append to PNGs after IEND.
    if kind == "png":
        return not any(chunk == b"IEND" and end <= len(data) for chunk, _, end in _png_chunks(data))
    if kind == "jpeg":
        scan = [end for marker, _, end in _jpeg_segments(data) if marker == 0xDA]
        # EOI cannot occur inside entropy-coded data (0xFF is stuffed there), so the first one after the
        # first scan's header ends the image (an EXIF thumbnail's own EOI sits before it, in APP1)
        return not scan or data.find(b"\xff\xd9", scan[0]) < 0
    return False


def _band_rows(width: int) -> int:
    return max(1, _BAND_PIXELS // max(1, width))


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any decoded image (grayscale, 16-bit, float, with alpha) as 8-bit BGR; alpha is composited on white.

    Deep and transparent images are converted a band of rows at a time into one preallocated result, so no
    full-size temporary (a float64 copy of a 49-megapixel RGBA image is 1.5 GB) is ever made.
    """
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 2:
        image = image[:, :, None]
    height, width, channels = image.shape
    scale = 1.0
    if image.dtype.kind == "f":
        top = float(np.nanmax(image)) if image.size else 0.0  # a reduction, no copy
        scale = 255.0 if top <= 1.0 else 1.0
    result = np.empty((height, width, 3), np.uint8)
    step = _band_rows(width)
    for row in range(0, height, step):
        result[row:row + step] = _band_to_bgr8(image[row:row + step], channels, scale)
    return result


def _band_to_bgr8(band: np.ndarray, channels: int, scale: float) -> np.ndarray:
    if band.dtype == np.uint16:
        band = cv2.convertScaleAbs(band, alpha=1 / 257.0)  # round(x / 257), straight to 8 bits
    elif band.dtype != np.uint8:
        band = np.clip(np.nan_to_num(band.astype(np.float32)) * scale, 0, 255).round().astype(np.uint8)
    if band.ndim == 2:
        band = band[:, :, None]
    if channels == 1:
        return cv2.cvtColor(band[:, :, 0], cv2.COLOR_GRAY2BGR)
    if channels == 2:  # gray + alpha
        band = np.concatenate([np.repeat(band[:, :, :1], 3, axis=2), band[:, :, 1:2]], axis=2)
    if band.shape[2] >= 4:
        # (colour * alpha + white * (255 - alpha)) / 255, rounded, in 16-bit integers (at most 65025)
        alpha = band[:, :, 3:4].astype(np.uint16)
        mixed = band[:, :, :3].astype(np.uint16) * alpha + 255 * (255 - alpha) + 127
        return (mixed // 255).astype(np.uint8)
    return band[:, :, :3]


# EXIF orientation (1-8): the turn or mirror that shows the stored pixels upright.
_ORIENT = {
    2: lambda image: cv2.flip(image, 1),
    3: lambda image: cv2.rotate(image, cv2.ROTATE_180),
    4: lambda image: cv2.flip(image, 0),
    5: lambda image: cv2.transpose(image),
    6: lambda image: cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE),
    7: lambda image: cv2.flip(cv2.transpose(image), -1),
    8: lambda image: cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE),
}


def _orientation_offset(exif: bytes) -> tuple[str, int] | None:
    """Byte order and offset of the orientation value (tag 0x0112 in IFD0) in TIFF-structured EXIF data."""
    if len(exif) < 8 or exif[:2] not in (b"II", b"MM"):
        return None
    order = "<" if exif[:2] == b"II" else ">"
    ifd = struct.unpack(order + "I", exif[4:8])[0]
    if ifd + 2 > len(exif):
        return None
    for index in range(struct.unpack(order + "H", exif[ifd:ifd + 2])[0]):
        entry = ifd + 2 + 12 * index
        if entry + 12 > len(exif):
            return None
        tag, kind = struct.unpack(order + "HH", exif[entry:entry + 4])
        if tag == 0x0112 and kind == 3:  # SHORT
            return order, entry + 8
    return None


def exif_orientation(exif: bytes | None) -> int:
    """The EXIF orientation (1-8) of TIFF-structured EXIF data; 1 (as stored) when absent or odd."""
    found = _orientation_offset(exif) if exif else None
    if found is None or exif is None:
        return 1
    value = struct.unpack(found[0] + "H", exif[found[1]:found[1] + 2])[0]
    return value if 1 <= value <= 8 else 1


def exif_with_orientation(exif: bytes, orientation: int = 1) -> bytes:
    """A copy of the EXIF data with its orientation tag set (to 1, "as stored", for an image saved upright)."""
    found = _orientation_offset(exif)
    if found is None:
        return exif
    order, offset = found
    return exif[:offset] + struct.pack(order + "H", orientation) + exif[offset + 2:]


_EXIF_HEADER = b"Exif\x00\x00"
_ICC_HEADER = b"ICC_PROFILE\x00"


def image_metadata(kind: str, data: bytes) -> tuple[bytes | None, bytes | None]:
    """The EXIF (TIFF-structured, without the "Exif" header) and ICC profile bytes an encoded image carries."""
    exif, icc = None, None
    if kind == "jpeg":
        parts: dict[int, bytes] = {}
        for marker, start, end in _jpeg_segments(data):
            payload = data[start:end]
            if marker == 0xE1 and exif is None and payload.startswith(_EXIF_HEADER):
                exif = payload[len(_EXIF_HEADER):]
            elif marker == 0xE2 and payload.startswith(_ICC_HEADER) and len(payload) > 14:
                parts[payload[12]] = payload[14:]  # the profile in numbered pieces of at most 64 KB
        icc = b"".join(parts[key] for key in sorted(parts)) or None
    elif kind == "png":
        for chunk, start, end in _png_chunks(data):
            if chunk == b"eXIf":
                exif = data[start:end]
            elif chunk == b"iCCP":
                name_end = data.find(b"\x00", start, end)
                try:
                    icc = zlib.decompress(data[name_end + 2:end])
                except zlib.error:
                    icc = None
            elif chunk == b"IDAT":
                break  # both come before the image data
    elif kind == "webp":
        for chunk, start, end in _riff_chunks(data):
            if chunk == b"EXIF":
                exif = data[start:end]
                exif = exif[len(_EXIF_HEADER):] if exif.startswith(_EXIF_HEADER) else exif
            elif chunk == b"ICCP":
                icc = data[start:end]
    return exif, icc


@dataclass(frozen=True)
class Photo:
    """A decoded photo, upright, with what is needed to save an edit of it as the original was saved.

    `format` is the encoded format read ("jpeg", "png", "webp", "bmp", "tiff"); `exif` the TIFF-structured EXIF
    bytes (or None), `icc` the ICC colour profile (or None), `orientation` the EXIF orientation found (1-8;
    already applied to `image`).
    """

    image: np.ndarray
    format: str
    exif: bytes | None
    icc: bytes | None
    orientation: int


def _decode(data: bytes, name: str, max_megapixels: float) -> Photo:
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
    # UNCHANGED keeps 16 bits and alpha; it also skips OpenCV's own EXIF rotation, done below for every format
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise InputError(f"{name}: the {kind.upper()} data is damaged and cannot be decoded")
    if size is None and image.shape[0] * image.shape[1] > max_megapixels * 1e6:
        raise InputError(f"{name}: over the limit of {max_megapixels:g} megapixels (setting max_megapixels)")
    image = to_bgr8(image)
    exif, icc = image_metadata(kind, data)
    orientation = exif_orientation(exif)
    if orientation != 1:
        image = _ORIENT[orientation](image)
    return Photo(image, kind, exif, icc, orientation)


def decode_image(data: bytes, name: str = "image", max_megapixels: float = 50.0) -> np.ndarray:
    """Decode encoded image bytes to upright 8-bit BGR, refusing empty, truncated, unknown or oversized images."""
    return _decode(data, name, max_megapixels).image


def _read_bytes(path: Path, max_megapixels: float) -> bytes:
    # stat first: opening a FIFO would block, and a device or a huge file would be read whole
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{path}: is a folder, not an image")
    if not stat.S_ISREG(info.st_mode):
        what = ("a named pipe (FIFO)" if stat.S_ISFIFO(info.st_mode) else
                "a character device" if stat.S_ISCHR(info.st_mode) else
                "a block device" if stat.S_ISBLK(info.st_mode) else
                "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file")
        raise InputError(f"{path}: is {what}, not an image file")
    cap = max_megapixels * 1e6 * _BYTES_PER_PIXEL_CAP + _FILE_SLACK
    if info.st_size > cap:
        raise InputError(f"{path}: {info.st_size / 1e6:.0f} MB is too large for an image of at most "
                         f"{max_megapixels:g} megapixels (setting max_megapixels)")
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not an image") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror})") from None


def read_image(path: str | Path, max_megapixels: float = 50.0) -> np.ndarray:
    """Read an image file as upright 8-bit BGR with a clear `InputError` for every way it can be bad."""
    return read_photo(path, max_megapixels).image


def read_photo(path: str | Path, max_megapixels: float = 50.0) -> Photo:
    """Read an image file as a `Photo`: upright 8-bit BGR plus its format, EXIF, ICC profile and orientation."""
    path = Path(path)
    return _decode(_read_bytes(path, max_megapixels), str(path), max_megapixels)


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


def output_format_for(photo_format: str) -> str:
    """The format an edit is saved in by default: the input's own (a JPEG stays a JPEG), PNG for BMP/TIFF."""
    return {"jpeg": "jpg", "jpg": "jpg", "webp": "webp"}.get(photo_format, "png")


def encode_image(image: np.ndarray, fmt: str, quality: int = 95, exif: bytes | None = None,
                 icc: bytes | None = None) -> bytes:
    """Encode a BGR image as png, jpg or webp, carrying over EXIF (orientation reset to 1) and an ICC profile.

    OpenCV writes neither, so they are spliced into its output: JPEG APP1/APP2 segments, PNG eXIf/iCCP chunks,
    WebP EXIF/ICCP chunks (with the VP8X header they need). All three keep both. `quality` (1-100) applies to
    JPEG and WebP; PNG is lossless.
    """
    fmt = fmt.lower().lstrip(".")
    fmt = "jpg" if fmt == "jpeg" else fmt
    if fmt not in OUTPUT_FORMATS:
        raise UsageError(f"--format {fmt}: images are written as {', '.join(OUTPUT_FORMATS)}")
    if not 1 <= quality <= 100:
        raise UsageError(f"quality {quality}: out of range (1-100)")
    exif = exif_with_orientation(exif, 1) if exif else None
    if fmt == "jpg":
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        splice = _jpeg_with_metadata
    elif fmt == "webp":
        ok, buffer = cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, quality])
        splice = _webp_with_metadata
    else:
        ok, buffer = cv2.imencode(".png", image)
        splice = _png_with_metadata
    if not ok:
        raise ValueError(f"{fmt.upper()} encoding failed")
    data = buffer.tobytes()
    return splice(data, exif, icc) if exif or icc else data


def _jpeg_with_metadata(data: bytes, exif: bytes | None, icc: bytes | None) -> bytes:
    segments = []
    if exif:
        if len(_EXIF_HEADER) + len(exif) + 2 <= 0xFFFF:  # one APP1 segment holds at most 64 KB
            segments.append(b"\xff\xe1" + struct.pack(">H", len(_EXIF_HEADER) + len(exif) + 2) + _EXIF_HEADER + exif)
        else:
            log.warning("exif_dropped", reason="over the 64 KB a JPEG APP1 segment holds", bytes=len(exif))
    if icc:
        # ICC.1 Annex B: "ICC_PROFILE\0", piece number (from 1), piece count, then up to 65519 bytes a piece
        size = 0xFFFF - 2 - len(_ICC_HEADER) - 2
        pieces = [icc[start:start + size] for start in range(0, len(icc), size)]
        for number, piece in enumerate(pieces, 1):
            payload = _ICC_HEADER + bytes([number, len(pieces)]) + piece
            segments.append(b"\xff\xe2" + struct.pack(">H", len(payload) + 2) + payload)
    # after SOI and OpenCV's JFIF APP0 (JFIF wants APP0 first; EXIF readers accept APP1 after it)
    insert = 2
    if data[2:4] == b"\xff\xe0":
        insert = 4 + struct.unpack(">H", data[4:6])[0]
    return data[:insert] + b"".join(segments) + data[insert:]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_with_metadata(data: bytes, exif: bytes | None, icc: bytes | None) -> bytes:
    chunks = b""
    if icc:  # iCCP: a profile name, compression method 0, the zlib-compressed profile; before PLTE and IDAT
        chunks += _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    if exif:  # eXIf: the TIFF-structured EXIF data as it is; before IDAT
        chunks += _png_chunk(b"eXIf", exif)
    after_header = 8 + 12 + struct.unpack(">I", data[8:12])[0]  # the signature, then IHDR
    return data[:after_header] + chunks + data[after_header:]


def _riff_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) & 1 else b"")


def _webp_with_metadata(data: bytes, exif: bytes | None, icc: bytes | None) -> bytes:
    # A simple WebP (one VP8/VP8L chunk) becomes an extended one: VP8X (flags, canvas size), ICCP, the
    # image chunk(s) as OpenCV wrote them, EXIF, in the order the container specification requires.
    image_chunks = [data[start - 8:end + ((end - start) & 1)] for kind, start, end in _riff_chunks(data)
                    if kind != b"VP8X"]
    width, height = _webp_size(data) or (1, 1)
    flags = (0x20 if icc else 0) | (0x08 if exif else 0)
    if any(chunk[:4] == b"ALPH" for chunk in image_chunks):
        flags |= 0x10
    header = _riff_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little")
                         + (height - 1).to_bytes(3, "little"))
    body = header + (_riff_chunk(b"ICCP", icc) if icc else b"") + b"".join(image_chunks)
    body += _riff_chunk(b"EXIF", exif) if exif else b""
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _umask() -> int:
    """The process's umask, read without changing it (Linux); os.umask's set-and-restore elsewhere."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write bytes to `path` through a temporary file in the same folder, then rename: never a half file.

    The file gets the mode a plain `open()` would give (0644 under the usual umask 022), not mkstemp's 0600.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def list_images(paths: list[str], suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    """Expand inputs: files stay as given, folders give the files in them with one of `suffixes` (sorted)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.iterdir()
                            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes)
        else:
            found.append(path)
    return found
