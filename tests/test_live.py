"""Live mode: real video files through the real pipeline, a vanishing camera, the window under Xvfb."""

import json
import os
import time

import cv2
import numpy as np
import pytest

from engine.capture import FrameSource, SourceLost
from engine.config import load_settings
from engine.errors import UsageError
from engine.live import LivePipeline, LiveState
from engine.plugins import load_plugins
from tests.helpers import SAMPLE, VIDEO, assert_one_line_error, clean_env, clip, json_lines, run_cli, start_xvfb


def smile(landmarker, image):
    faces = landmarker.detect(image)
    return faces[0].blendshapes["mouthSmileLeft"] + faces[0].blendshapes["mouthSmileRight"] if faces else None


def test_headless_run_with_stats_and_recording(tmp_path, landmarker):
    stats, record = tmp_path / "s.json", tmp_path / "out.mp4"
    result = run_cli("live", "--source", VIDEO, "--headless", "--max-frames", 60, "--stats-json", stats,
                     "--record", record, "--emotion", "surprised")
    assert result.returncode == 0, result.stderr
    figures = json.loads(stats.read_text())
    assert figures["frames"] == 60 and figures["frames_with_face"] == 60 and figures["dropped"] == 0
    assert figures["fps"] > 5 and 0 < figures["latency_ms"]["median"] <= figures["latency_ms"]["p95"]
    assert set(figures["stages_ms"]) == {"preprocess", "synthesize", "render"}
    assert all(set(v) == {"median", "p95"} for v in figures["stages_ms"].values())
    video = cv2.VideoCapture(str(record))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 60
    assert (int(video.get(cv2.CAP_PROP_FRAME_WIDTH)), int(video.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (640, 480)
    video.set(cv2.CAP_PROP_POS_FRAMES, 30)
    ok, edited = video.read()
    original = cv2.VideoCapture(str(VIDEO))
    original.set(cv2.CAP_PROP_POS_FRAMES, 30)
    _, source = original.read()
    before, after = landmarker.detect(source)[0], landmarker.detect(edited)[0]
    assert after.blendshapes["jawOpen"] > before.blendshapes["jawOpen"] + 0.15  # the recording shows it


def test_still_image_as_a_stream(tmp_path):
    stats = tmp_path / "s.json"
    result = run_cli("live", "--source", SAMPLE, "--headless", "--max-frames", 10, "--stats-json", stats)
    assert result.returncode == 0, result.stderr
    assert json.loads(stats.read_text())["frames_with_face"] == 10


def test_camera_that_cannot_open():
    result = run_cli("live", "--source", "7", "--headless", "--max-frames", 5)
    assert result.returncode == 1
    assert_one_line_error(result, "cannot open camera 7")


def test_video_file_frames_come_in_order_and_loop(tmp_path):
    path = clip(tmp_path / "ten.mp4", 10)
    expected = []
    plain = cv2.VideoCapture(str(path))
    for _ in range(10):
        expected.append(plain.read()[1])
    source = FrameSource(str(path))
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    assert source.read() is None  # the end stays the end
    source.close()
    assert [f.index for f in frames] == list(range(10))
    assert all(np.array_equal(f.image, e) for f, e in zip(frames, expected))
    looping = FrameSource(str(path), loop=True)
    indices = [looping.read().index for _ in range(25)]
    assert indices == list(range(25))
    started = time.perf_counter()
    looping.close()  # the decoding thread stops while it is ahead of the reader
    assert time.perf_counter() - started < 2.5
    assert not looping._video._thread.is_alive()


def test_truncated_video_ends_with_a_message(tmp_path):
    data = clip(tmp_path / "whole.mp4", 90).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    result = run_cli("live", "--source", cut, "--headless")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "decoding stopped at frame" in result.stderr or "cannot open" in result.stderr


def test_usage_errors():
    result = run_cli("live", "--source", "nowhere.mp4", "--headless")
    assert result.returncode == 2
    assert_one_line_error(result, "no such file")
    env = clean_env()
    env.pop("DISPLAY", None)
    result = run_cli("live", "--source", VIDEO, "--window", env=env)
    assert result.returncode == 2
    assert_one_line_error(result, "no display")


class VanishingCamera:
    """A stand-in for a webcam (none exists here): some frames, then it is unplugged for good."""

    opened = 0

    def __init__(self, target, frames=150):  # 2.5 s: the landmarker starts meanwhile (up to a second)
        VanishingCamera.opened += 1
        self.first = VanishingCamera.opened == 1
        self.left = frames if self.first else 0
        self.image = cv2.resize(cv2.imread(str(SAMPLE))[0:270, 45:405], (640, 480))

    def isOpened(self):  # noqa: N802 - OpenCV's name
        return self.first

    def get(self, prop):
        return {cv2.CAP_PROP_FPS: 30, cv2.CAP_PROP_FRAME_WIDTH: 640, cv2.CAP_PROP_FRAME_HEIGHT: 480}.get(prop, 0)

    def read(self):
        time.sleep(1 / 60)
        if self.left > 0:
            self.left -= 1
            return True, self.image.copy()
        return False, None

    def release(self):
        pass


def test_camera_that_disappears_mid_stream():
    VanishingCamera.opened = 0
    settings = load_settings({}, {"XDG_CONFIG_HOME": "/nonexistent"})
    registry = load_plugins(settings)
    source = FrameSource("0", retries=2, retry_wait=0.05, opener=VanishingCamera)
    pipeline = LivePipeline(registry, settings, LiveState([("happy", 1.0)]))
    figures = pipeline.run(source)
    source.close()
    assert figures["frames"] >= 5
    assert "did not come back after 2 tries" in pipeline.error
    assert VanishingCamera.opened == 3  # opened once, then two tries to reconnect


def test_a_file_source_under_the_home_folder_may_be_named_with_a_tilde(tmp_path, monkeypatch):
    clip(tmp_path / "clip.mp4", 3)
    monkeypatch.setenv("HOME", str(tmp_path))  # typed as ~/clip.mp4 in the panel's source field
    source = FrameSource("~/clip.mp4")
    try:
        assert source.kind == "file" and source.read().image.shape == (480, 640, 3)
    finally:
        source.close()


def test_source_must_exist():
    with pytest.raises(UsageError):
        FrameSource("nope.avi")
    with pytest.raises(SourceLost, match="cannot open"):
        FrameSource("3")


def test_apply_a_video_file(tmp_path):
    video = clip(tmp_path / "short.mp4", 24)
    result = run_cli("apply", video, "--emotion", "happy", "--out", tmp_path / "out", "--json")
    assert result.returncode == 0, result.stderr
    (record,) = json_lines(result.stdout)
    assert record["status"] == "ok" and record["frames"] == 24 and record["frames_with_face"] == 24
    output = cv2.VideoCapture(os.path.join(record["output_dir"], "output.mp4"))
    assert int(output.get(cv2.CAP_PROP_FRAME_COUNT)) == 24 and round(output.get(cv2.CAP_PROP_FPS)) == 30
    assert int(output.get(cv2.CAP_PROP_FRAME_WIDTH)) == 640
    assert sorted(os.listdir(record["output_dir"])) == ["compare.png", "input.png", "meta.json", "output.mp4",
                                                        "output.png"]
    text = run_cli("apply", video, "--emotion", "happy", "--out", tmp_path / "out")
    assert text.returncode == 0 and "(24 frames, 24 with a face, landmark-warp" in text.stdout, text.stdout


@pytest.fixture
def display():
    """A virtual X display (Xvfb), started for the test, once it answers."""
    import shutil
    import subprocess

    for name in start_xvfb(90):
        if shutil.which("xdotool"):
            env = {**os.environ, "DISPLAY": name}
            for _ in range(100):
                if subprocess.run(["xdotool", "getdisplaygeometry"], env=env, capture_output=True).returncode == 0:
                    break
                time.sleep(0.2)
            time.sleep(0.5)  # the server resets when its last client (that check) leaves
        yield name


def test_window_mode_under_xvfb(tmp_path, display):
    stats = tmp_path / "s.json"
    result = run_cli("live", "--source", VIDEO, "--window", "--max-frames", 45, "--stats-json", stats,
                     env=clean_env(DISPLAY=display))
    assert result.returncode == 0, result.stderr
    assert json.loads(stats.read_text())["frames"] == 45


def test_window_keys_reach_every_emotion_and_a_file_plays_at_its_own_rate(tmp_path, display):
    import shutil
    import subprocess
    import sys

    from tests.helpers import ROOT

    if shutil.which("xdotool") is None:
        pytest.skip("xdotool not installed")
    video, stats, out = tmp_path / "ten_fps.mp4", tmp_path / "s.json", tmp_path / "captures"
    frames = cv2.VideoCapture(str(VIDEO))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (640, 480))
    for _ in range(80):  # 8 s at 10 fps: faster than the pipeline here only if it is not paced
        writer.write(frames.read()[1])
    writer.release()
    env = clean_env(DISPLAY=display)
    started = time.time()
    process = subprocess.Popen([sys.executable, "-m", "engine", "live", "--source", str(video), "--window", "--out",
                                str(out), "--stats-json", str(stats)], env=env, cwd=ROOT, stderr=subprocess.PIPE,
                               text=True)
    try:
        def window():
            found = subprocess.run(["xdotool", "search", "--name", "FaceSynth live"], env=env, capture_output=True,
                                   text=True)
            return found.stdout.split()[0] if found.returncode == 0 and found.stdout.strip() else None
        deadline = time.time() + 30
        while (wid := window()) is None and time.time() < deadline:
            time.sleep(0.2)
        assert wid, "the live window never opened"
        time.sleep(2.5)  # the first frames shown (a snapshot needs one), on a loaded machine too
        subprocess.run(["xdotool", "windowfocus", wid], env=env, check=False)
        for key in ("5", "space"):  # the fifth emotion (the drop-in in plugins.d), then a snapshot
            subprocess.run(["xdotool", "key", key], env=env, check=True)
            time.sleep(0.5)
        assert process.wait(90) == 0, process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
    elapsed = time.time() - started
    figures = json.loads(stats.read_text())
    assert figures["frames"] == 80 and figures["fps"] <= 11, figures  # its own 10 fps, not as fast as it decodes
    assert elapsed >= 8.0
    metas = [json.loads((folder / "meta.json").read_text()) for folder in out.iterdir()]
    assert len(metas) == 1 and metas[0]["status"] == "ok", metas
    assert metas[0]["emotion"] == [{"name": "skeptical", "weight": 1.0}]
    assert metas[0]["faces"] and metas[0]["timings_ms"]["synthesize"] > 0 and metas[0]["output_estimate"]
