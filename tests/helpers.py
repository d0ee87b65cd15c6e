"""Helpers every test module shares (tests import them from here, never from each other or from conftest)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "astronaut.png"
CAT = ROOT / "tests" / "data" / "cat.png"
PLUGIN_FIXTURES = ROOT / "tests" / "plugins_d"
VIDEO = ROOT / "samples" / "face.mp4"


def faces_dir() -> Path | None:
    """The development photos (../shared/faces beside the repo, or FACESYNTH_FACES_DIR)."""
    folder = Path(os.environ.get("FACESYNTH_FACES_DIR", ROOT.parent / "shared" / "faces"))
    return folder if folder.is_dir() else None



def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI run: no user settings, no key, no stray plugin folders."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FACESYNTH_") and k not in ("SEGMIND_API_KEY",)}
    env["XDG_CONFIG_HOME"] = str(ROOT / "tests" / "data" / "no-config")
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 180) -> subprocess.CompletedProcess:
    """Run `facesynth ARGS` as a subprocess, the way a user does."""
    return subprocess.run([sys.executable, "-m", "engine", *map(str, args)], capture_output=True, text=True,
                          env=env or clean_env(), cwd=cwd or ROOT, timeout=timeout)


def json_lines(text: str) -> list[dict]:
    """Parse JSON-lines output."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """stderr holds a one-line reason (no traceback) containing each fragment."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("facesynth:")]
    assert lines, result.stderr
    for fragment in fragments:
        assert any(fragment in line for line in lines), (fragment, result.stderr)



def start_xvfb(base: int, need: tuple[str, ...] = ("Xvfb",)):
    """Start a virtual X display for a test; yields its DISPLAY name (skips where the tools are missing)."""
    import shutil
    import time

    if any(shutil.which(tool) is None for tool in need):
        pytest.skip(f"{' and '.join(need)} not installed (.ci/run installs them)")
    number = base + os.getpid() % 8
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1700x1100x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    try:
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(5)


def clip(path: Path, frames: int = 30) -> Path:
    """The first `frames` frames of the sample video as a new file."""
    return write_video(path, read_video(VIDEO, frames))


def read_video(path: Path, limit: int = 0) -> list:
    """The frames of a video file (the first `limit` of them), as BGR images."""
    from engine.video import VideoReader

    frames = []
    with VideoReader(path) as reader:
        for frame in reader:
            frames.append(frame.image)
            if limit and len(frames) >= limit:
                break
    return frames


def write_video(path: Path, frames: list, fps: float = 30.0) -> Path:
    """Frames as an H.264 video file."""
    from engine.video import VideoWriter

    height, width = frames[0].shape[:2]
    with VideoWriter(path, (width, height), fps) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def png_header(width: int, height: int) -> bytes:
    """A PNG file's header and end only: it claims `width` x `height` without any pixel data."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    iend = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return b"\x89PNG\r\n\x1a\n" + chunk + iend


def audio_tracks(path: Path) -> list:
    """Each audio stream of a media file: codec, start time (s), its samples (first channel) and sample rate."""
    import av
    import numpy as np

    with av.open(str(path)) as container:
        count = len(container.streams.audio)
    tracks = []
    for number in range(count):
        with av.open(str(path)) as container:
            stream = container.streams.audio[number]
            start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
            chunks = []
            for frame in container.decode(audio=number):
                samples = frame.to_ndarray()
                chunks.append(samples[0] if frame.format.is_planar
                              else samples.reshape(-1, frame.layout.nb_channels)[:, 0])
            tracks.append((stream.codec_context.name, start, np.concatenate(chunks).astype(np.float64),
                           stream.codec_context.sample_rate))
    return tracks


def sweep(count: int, rate: int, start_hz: float = 300.0, rise_hz_per_s: float = 400.0):
    """`count` samples of a tone rising steadily from `start_hz`: no stretch of it sounds like another."""
    import numpy as np

    seconds = np.arange(count) / rate
    return (0.5 * np.sin(2 * np.pi * (start_hz * seconds + rise_hz_per_s * seconds ** 2 / 2))).astype(np.float32)


def where_in(whole, part) -> int:
    """The sample at which `part` best matches `whole` (cross-correlation, normalised by the stretch's loudness)."""
    import numpy as np

    size = 1 << int(np.ceil(np.log2(len(whole) + len(part))))
    product = np.fft.irfft(np.fft.rfft(whole, size) * np.conj(np.fft.rfft(part, size)), size)[:len(whole) - len(part)]
    running = np.concatenate([[0.0], np.cumsum(np.asarray(whole, np.float64) ** 2)])
    energy = np.sqrt(np.maximum(running[len(part):len(part) + len(product)] - running[:len(product)], 0)) + 1e-9
    return int(np.argmax(product / energy))
