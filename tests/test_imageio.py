"""Reading images: every bad file gets a clear InputError; odd formats are handled."""

import os
import struct

import cv2
import numpy as np
import pytest

from engine.errors import InputError, UsageError
from engine.imageio import decode_image, read_image, sniff, write_atomic
from tests.helpers import SAMPLE, png_header


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
    header = png_header(10000, 6000)  # 60 MP declared; there is no pixel data at all
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


# --- photos: orientation, metadata kept, trailing data, odd files, memory, file modes ---------------------

def make_exif(orientation: int, make: bytes = b"FaceSynthTest\x00", note: bytes = b"") -> bytes:
    """Little-endian TIFF-structured EXIF: Make, Orientation and (optionally) a MakerNote blob."""
    entries = [(0x010F, 2, make), (0x0112, 3, struct.pack("<HH", orientation, 0))]
    if note:
        entries.append((0x927C, 7, note))
    ifd_size = 2 + 12 * len(entries) + 4
    data_at, table, blobs = 8 + ifd_size, b"", b""
    for tag, kind, value in entries:
        count = len(value) if kind != 3 else 1
        if kind == 3:
            table += struct.pack("<HHI", tag, kind, count) + value
        else:
            table += struct.pack("<HHII", tag, kind, count, data_at + len(blobs))
            blobs += value
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)) + table + b"\x00" * 4 + blobs


def fake_icc(size: int) -> bytes:
    """An ICC profile header that libpng accepts (size, class, colour spaces, 'acsp', D50), then filler."""
    header = struct.pack(">I4sI4s4s4s12s4s", size, b"none", 0x02100000, b"mntr", b"RGB ", b"XYZ ", bytes(12), b"acsp")
    header += bytes(64 - len(header)) + struct.pack(">I3i", 0, 0xF6D6, 0x10000, 0xD32D)
    header += bytes(128 - len(header)) + struct.pack(">I", 0)  # no tags
    return header + np.random.default_rng(3).integers(0, 255, size - len(header), np.uint8).tobytes()


def tagged_jpeg(image, exif: bytes) -> bytes:
    """A JPEG of `image` with an APP1 segment carrying `exif` right after SOI, as cameras write it."""
    data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    return data[:2] + _app1(exif) + data[2:]


def _app1(exif: bytes) -> bytes:
    # written by hand here so the reading test does not depend on encode_image
    payload = b"Exif\x00\x00" + exif
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def test_exif_orientation_6_read_upright(tmp_path):
    from engine.imageio import read_photo

    upright = cv2.imread(str(SAMPLE))
    stored = cv2.rotate(upright, cv2.ROTATE_90_COUNTERCLOCKWISE)  # as a phone held sideways stores it
    path = tmp_path / "phone.jpg"
    path.write_bytes(tagged_jpeg(stored, make_exif(6)))
    photo = read_photo(path)
    assert photo.orientation == 6 and photo.format == "jpeg" and photo.exif is not None
    assert photo.image.shape == upright.shape
    assert np.abs(photo.image.astype(int) - upright).mean() < 3
    # OpenCV's imread (default flags) applies EXIF orientation itself: an independent reference
    assert np.array_equal(read_image(path), cv2.imread(str(path)))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_opencv(tmp_path, orientation):
    stored = cv2.resize(cv2.imread(str(SAMPLE)), (96, 64))
    path = tmp_path / f"o{orientation}.jpg"
    path.write_bytes(tagged_jpeg(stored, make_exif(orientation)))
    assert np.array_equal(read_image(path), cv2.imread(str(path)))


@pytest.mark.parametrize("fmt", ["jpg", "png", "webp"])
def test_encode_image_keeps_exif_and_icc_with_orientation_reset(tmp_path, fmt):
    from engine.imageio import encode_image, exif_orientation, read_photo

    icc = fake_icc(150_000)  # three APP2 pieces in a JPEG
    image = cv2.imread(str(SAMPLE))
    path = tmp_path / f"out.{fmt}"
    path.write_bytes(encode_image(image, fmt, 95, exif=make_exif(6), icc=icc))
    photo = read_photo(path)
    assert photo.icc == icc
    assert exif_orientation(photo.exif) == 1 and b"FaceSynthTest" in photo.exif and photo.orientation == 1
    assert photo.image.shape == image.shape and np.abs(photo.image.astype(int) - image).mean() < 4
    assert cv2.imread(str(path)) is not None  # still a file other readers decode


def test_jpeg_stays_small():
    from engine.imageio import encode_image, output_format_for

    image = cv2.imread(str(SAMPLE))
    jpeg, png = encode_image(image, "jpg"), encode_image(image, "png")
    assert sniff(jpeg)[0] == "jpeg" and len(jpeg) < len(png) / 2
    assert output_format_for("jpeg") == "jpg" and output_format_for("tiff") == "png"
    with pytest.raises(UsageError, match="png, jpg, webp"):
        encode_image(image, "gif")


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_data_after_the_end_marker_is_accepted(tmp_path, suffix):
    image = cv2.imread(str(SAMPLE))
    data = cv2.imencode(suffix, image)[1].tobytes()
    video = b"\x00\x00\x00\x18ftypmp42" + np.random.default_rng(5).integers(0, 255, 200_000, np.uint8).tobytes()
    path = tmp_path / f"motion{suffix}"
    path.write_bytes(data + video)  # as a phone's "motion photo" appends its clip
    assert np.array_equal(read_image(path), cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))


def test_truncated_jpeg_with_exif_thumbnail_still_truncated(tmp_path):
    thumbnail = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))[1].tobytes()  # ends with its own EOI
    data = tagged_jpeg(cv2.imread(str(SAMPLE)), make_exif(1, note=thumbnail))
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError, match="truncated"):
        read_image(path)


def _finishes(call, seconds=5.0):
    """Run `call` on a thread; its exception (or None) if it finished in time, else 'hung'."""
    import threading

    outcome = []

    def run():
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # handed back to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    return outcome[0] if outcome else "hung"


def test_fifo_device_and_huge_file_refused_before_reading(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    try:
        outcome = _finishes(lambda: read_image(fifo))
        assert isinstance(outcome, InputError) and "named pipe" in str(outcome), outcome
    finally:
        descriptor = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # frees a reader blocked on it (before the fix)
        os.close(descriptor)
    outcome = _finishes(lambda: read_image("/dev/zero"))
    assert isinstance(outcome, InputError) and "character device" in str(outcome), outcome
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as handle:
        handle.truncate(5 * 1024 ** 3)  # sparse: 5 GB long, no disk used
    outcome = _finishes(lambda: read_image(huge, max_megapixels=50))
    assert isinstance(outcome, InputError) and "too large" in str(outcome), outcome


def test_sixteen_bit_conversion_is_exact_rounding():
    from engine.imageio import to_bgr8

    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    out = to_bgr8(np.dstack([values, values, values]))
    assert np.array_equal(out[:, :, 0], np.round(values / 257.0).astype(np.uint8))
    rgba = np.random.default_rng(2).integers(0, 256, (300, 200, 4), np.uint8)
    alpha = rgba[:, :, 3:4] / 255.0
    expected = np.round(rgba[:, :, :3] * alpha + 255 * (1 - alpha))
    assert np.abs(to_bgr8(rgba).astype(int) - expected).max() <= 1


MEMORY_PROBE = """
import sys
from engine.imageio import read_image

def status(field):
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(field))

read_image(sys.argv[2])  # a small image first: libraries loaded, allocators warm
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # resets the peak resident size (VmHWM) to the current one
before = status("VmRSS:")
image = read_image(sys.argv[1], max_megapixels=50)
print((status("VmHWM:") - before) * 1024 / (image.shape[0] * image.shape[1]))
"""


def test_peak_memory_per_pixel_of_a_deep_rgba_png(tmp_path):
    import subprocess
    import sys

    from tests.helpers import ROOT

    # a 12-megapixel 16-bit RGBA PNG (the photo, scaled up, with a gradient alpha)
    width, height = 4000, 3000
    photo = cv2.resize(cv2.imread(str(SAMPLE)), (width, height)).astype(np.uint16) * 257
    alpha = np.tile(np.linspace(0, 65535, width, dtype=np.uint16), (height, 1))
    path = tmp_path / "deep.png"
    path.write_bytes(cv2.imencode(".png", np.dstack([photo, alpha]), [cv2.IMWRITE_PNG_COMPRESSION, 1])[1])
    del photo, alpha
    result = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(path), str(SAMPLE)], capture_output=True,
                            text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    per_pixel = float(result.stdout.split()[-1])
    # the file's bytes + the decoded 8 bytes a pixel + the 3-byte result, and small bands: well under 60
    assert per_pixel < 60, per_pixel
    print("peak bytes per pixel:", round(per_pixel, 1), "file bytes per pixel:", path.stat().st_size / 12e6)


def test_write_atomic_honours_the_umask(tmp_path):
    import stat as stat_module

    previous = os.umask(0o022)
    try:
        plain = write_atomic(tmp_path / "plain.png", b"x")
        os.umask(0o077)
        private = write_atomic(tmp_path / "private.png", b"x")
    finally:
        os.umask(previous)
    assert stat_module.S_IMODE(plain.stat().st_mode) == 0o644
    assert stat_module.S_IMODE(private.stat().st_mode) == 0o600


def test_apply_edits_a_sideways_phone_jpeg_upright_and_keeps_it_a_jpeg(tmp_path):
    import json

    from engine.imageio import read_photo
    from tests.helpers import json_lines, run_cli

    upright = cv2.imread(str(SAMPLE))
    path = tmp_path / "phone.jpg"
    path.write_bytes(tagged_jpeg(cv2.rotate(upright, cv2.ROTATE_90_COUNTERCLOCKWISE), make_exif(6)))
    result = run_cli("apply", path, "--emotion", "happy", "--out", tmp_path / "out", "--json")
    assert result.returncode == 0, result.stderr
    [record] = json_lines(result.stdout)
    assert record["status"] == "ok" and sum(face["edited"] for face in record["faces"]) == 1  # found: upright
    folder = tmp_path / "out" / record["output_dir"].split("/")[-1]
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["orientation"] == 6 and meta["input_format"] == "jpeg" and meta["export"] == "output.jpg"
    for name in ("input.png", "output.png"):
        assert cv2.imread(str(folder / name)).shape == upright.shape  # stored upright
    export = read_photo(folder / "output.jpg")
    assert export.format == "jpeg" and export.orientation == 1 and export.image.shape == upright.shape
    assert b"FaceSynthTest" in export.exif  # the camera's EXIF carried over
    assert (folder / "output.jpg").stat().st_size < 0.5 * (folder / "output.png").stat().st_size
    png = run_cli("apply", path, "--emotion", "happy", "--out", tmp_path / "png", "--format", "png", "--json")
    assert "export" not in json_lines(png.stdout)[0]  # output.png is the export when PNG is asked for
