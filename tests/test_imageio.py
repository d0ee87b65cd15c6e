"""Reading images: every bad file gets a clear InputError; odd formats are handled."""

import struct
import zlib

import cv2
import numpy as np
import pytest

from engine.errors import InputError
from engine.imageio import decode_image, read_image, sniff, write_atomic
from tests.helpers import SAMPLE


def _png_header(width, height):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    iend = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return b"\x89PNG\r\n\x1a\n" + chunk + iend


def test_empty_missing_folder_and_text(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_image(empty)
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(InputError, match="is a folder"):
        read_image(tmp_path)
    text = tmp_path / "notes.png"
    text.write_text("hello, not a picture")
    with pytest.raises(InputError, match="not an image"):
        read_image(text)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_files(tmp_path, suffix):
    data = cv2.imencode(suffix, cv2.imread(str(SAMPLE)))[1].tobytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        read_image(cut)


def test_huge_image_refused_before_decoding():
    header = _png_header(10000, 6000)  # 60 MP declared; there is no pixel data at all
    with pytest.raises(InputError, match=r"60.0 megapixels, over the limit of 50 megapixels"):
        decode_image(header, "huge.png", 50)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".bmp", ".tiff"])
def test_sniff_reads_sizes(suffix):
    image = np.zeros((37, 53, 3), np.uint8)
    data = cv2.imencode(suffix, image)[1].tobytes()
    kind, size = sniff(data)
    assert size == (53, 37), (kind, size)


def test_grayscale_sixteen_bit_and_alpha():
    gray = cv2.imencode(".png", np.full((8, 8), 100, np.uint8))[1].tobytes()
    assert decode_image(gray).shape == (8, 8, 3)
    deep = cv2.imencode(".png", np.full((8, 8, 3), 65535, np.uint16))[1].tobytes()
    out = decode_image(deep)
    assert out.dtype == np.uint8 and out.max() == 255
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 3] = 0  # fully transparent: composited on white
    out = decode_image(cv2.imencode(".png", rgba)[1].tobytes())
    assert out.shape == (8, 8, 3) and out.min() == 255


def test_write_atomic_leaves_no_temporary(tmp_path):
    target = write_atomic(tmp_path / "a.bin", b"abc")
    assert target.read_bytes() == b"abc"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]
