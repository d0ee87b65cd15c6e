"""The Dear PyGui panel, for real: under Xvfb, clicked with xdotool, its frame buffer read back."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from plugins.segmind.fake_server import FakeSegmind
from tests.helpers import PLUGIN_FIXTURES, ROOT, clean_env, clip, start_xvfb


@pytest.fixture
def display():
    """A virtual X display with xdotool to click on it."""
    yield from start_xvfb(70, ("Xvfb", "xdotool"))


def cloud_panel(display, tmp_path, server):
    """The panel on the sample photo, pointed at the loopback Segmind server; returns it and its capture folder."""
    env = clean_env(SEGMIND_API_KEY=server.api_key, FACESYNTH_SEGMIND_URL=server.base_url,
                    FACESYNTH_SEGMIND_RPM="600", FACESYNTH_CACHE_DIR=str(tmp_path / "cache"))
    out = tmp_path / "captures"
    return Panel(display, tmp_path, "--source", ROOT / "samples" / "astronaut.png", "--out", out, env=env), out


def settled(out, count=1):
    """Wait until `count` captures in `out` are no longer pending; return their metadata."""
    return wait_for(lambda: (lambda done: done if len(done) >= count else None)(
        [m for m in captures(out) if m["status"] != "pending"]), 60)


def wait_for(condition, timeout=60.0, step=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out")


class Panel:
    """A running launcher process, with its widget layout, and clicks."""

    def __init__(self, display, tmp_path, *args, env=None):
        self.display, self.tmp = display, tmp_path
        self.layout_file, self.frames_file = tmp_path / "layout.json", tmp_path / "frames.json"
        self.dump_file = tmp_path / "frame.png"
        self.env = env or clean_env()
        self.env["DISPLAY"] = display
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "launcher.py"), "--layout", str(self.layout_file), "--frame-log",
             str(self.frames_file), "--dump-on-signal", str(self.dump_file), *map(str, args)],
            env=self.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: self.layout_file.exists() or self.process.poll() is not None)
        assert self.process.poll() is None, self.process.stderr.read()
        self.layout = json.loads(self.layout_file.read_text())

    def click(self, tag, fresh=False):
        if fresh:  # the current layout (a widget can move once previews and status text fill in)
            self.frame_buffer()
        box = self.layout[tag]
        x = int(self.layout["viewport"]["pos"][0] + box["min"][0] + box["size"][0] / 2)
        y = int(self.layout["viewport"]["pos"][1] + box["min"][1] + box["size"][1] / 2)
        env = {**os.environ, "DISPLAY": self.display}
        subprocess.run(["xdotool", "mousemove", str(x), str(y)], env=env, check=True)
        time.sleep(0.15)
        subprocess.run(["xdotool", "click", "1"], env=env, check=True)
        time.sleep(0.3)

    def frame_buffer(self):
        """The panel's frame buffer as an image (the layout is refreshed at the same time)."""
        self.dump_file.unlink(missing_ok=True)
        self.process.send_signal(signal.SIGUSR1)
        wait_for(self.dump_file.exists, 20)
        self.layout = json.loads(self.layout_file.read_text())
        return cv2.imread(str(self.dump_file))

    def region(self, image, tag):
        box = self.layout[tag]
        x, y = int(box["min"][0]), int(box["min"][1])
        return image[y:y + int(box["size"][1]), x:x + int(box["size"][0])]

    def close(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(20)
        return json.loads(self.frames_file.read_text()) if self.frames_file.exists() else []


def captures(folder):
    if not folder.exists():
        return []
    return [json.loads((p / "meta.json").read_text()) for p in sorted(folder.iterdir()) if (p / "meta.json").exists()]


def test_screenshot_shows_plugins_sliders_and_previews(display, tmp_path):
    shot, layout = tmp_path / "shot.png", tmp_path / "layout.json"
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(PLUGIN_FIXTURES / "broken" / "syntax_error.py", broken)
    env = clean_env(DISPLAY=display)
    result = subprocess.run([sys.executable, "launcher.py", "--screenshot", shot, "--layout", layout,
                             "--plugins-dir", broken], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr
    image = cv2.imread(str(shot))
    boxes = json.loads(layout.read_text())
    assert image.shape[1] >= 1500 and image.shape[0] >= 900
    for tag in ("emotion_happy", "emotion_angry", "emotion_sleepy", "emotion_surprised",
                "backend_landmark-warp", "backend_segmind", "intensity", "capture", "param_smile", "param_aaa"):
        assert tag in boxes, tag
    panes = []
    for tag in ("preview_input", "preview_output"):
        box = boxes[tag]
        x, y, w, h = (int(v) for v in (*box["min"], *box["size"]))
        pane = image[y:y + h, x:x + w].astype(int)
        assert pane.std() > 30, tag  # a picture, not an empty pane
        panes.append(pane)
    assert panes[0].shape == panes[1].shape  # both previews whole on screen
    assert np.abs(panes[0] - panes[1]).mean() > 1.0  # the output is the edited input
    left = image[:, :450].astype(int)
    red = (left[..., 2] > 200) & (left[..., 1] < 120) & (left[..., 0] < 120)
    assert red.sum() > 30  # the broken plugin is listed in red


def test_no_display_is_a_clear_message():
    env = clean_env()
    env.pop("DISPLAY", None)
    result = subprocess.run([sys.executable, "launcher.py"], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "no display" in result.stderr and "Traceback" not in result.stderr


def test_clicks_to_a_stored_surprised_capture_of_a_video(display, tmp_path):
    video = clip(tmp_path / "face.mp4", 90)
    out = tmp_path / "captures"
    panel = Panel(display, tmp_path, "--source", video, "--out", out)
    try:
        panel.click("start")
        time.sleep(2.0)
        panel.click("emotion_surprised", fresh=True)
        time.sleep(1.0)
        image = panel.frame_buffer()
        left, right = panel.region(image, "preview_input"), panel.region(image, "preview_output")
        assert left.astype(int).std() > 30 and np.abs(left.astype(int) - right).mean() > 1.0
        panel.click("capture")
        try:
            stored = wait_for(lambda: [m for m in captures(out) if m["status"] == "ok"], 30)
        except AssertionError:
            cv2.imwrite("/tmp/after_capture.png", panel.frame_buffer())
            raise AssertionError(f"no capture stored in {out}: {captures(out)}")
        meta = stored[0]
        assert meta["backend"] == "landmark-warp" and meta["parameters"]["aaa"] == 72, meta
        folder = [p for p in out.iterdir() if p.is_dir()][0]
        assert sorted(x.name for x in folder.iterdir()) == ["compare.png", "input.png", "meta.json", "output.png"]
    finally:
        panel.close()


def test_panel_keeps_drawing_during_a_slow_cloud_call(display, tmp_path):
    with FakeSegmind(api_key="k", generation_time=3.0) as server:
        panel, out = cloud_panel(display, tmp_path, server)
        try:
            panel.click("backend_segmind")
            clicked = time.time()
            panel.click("capture")
            stored = settled(out)
            finished = time.time()
        finally:
            frames = panel.close()
    assert stored[0]["status"] == "ok" and stored[0]["backend"] == "segmind", stored
    assert finished - clicked >= 3.0
    during = [elapsed for stamp, elapsed in frames if clicked + 0.5 <= stamp <= clicked + 3.0]
    assert len(during) >= 60  # it kept drawing: 2.5 s at up to 60 frames a second
    assert np.percentile(np.array(during) * 1000, 95) <= 50


def test_backend_failing_mid_session_falls_back_and_the_panel_lives(display, tmp_path):
    with FakeSegmind(api_key="k", credits=0.0) as server:
        panel, out = cloud_panel(display, tmp_path, server)
        try:
            panel.click("backend_auto")
            panel.click("capture")
            stored = settled(out)
            assert stored[0]["status"] == "ok" and stored[0]["backend"] == "landmark-warp"
            assert "out of credits" in stored[0]["fallback"]
            panel.click("backend_segmind")
            panel.click("capture")
            settled(out, 2)
            failed = [m for m in captures(out) if m["status"] == "failed"]
            assert failed and "out of credits" in failed[0]["errors"][0]
            assert panel.process.poll() is None and panel.frame_buffer() is not None  # still drawing
        finally:
            panel.close()


def test_no_camera_the_panel_still_opens(display, tmp_path):
    panel = Panel(display, tmp_path, "--source", "7", "--autostart", "--out", tmp_path / "captures")
    try:
        time.sleep(2)
        assert panel.process.poll() is None
        image = panel.frame_buffer()
        assert image is not None and image.shape[0] > 500
    finally:
        panel.close()


def test_rescan_picks_up_a_new_drop_in_without_restarting(display, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    out = tmp_path / "captures"
    panel = Panel(display, tmp_path, "--source", ROOT / "samples" / "astronaut.png", "--out", out,
                  "--plugins-dir", drop)
    try:
        assert "emotion_calm" not in panel.layout
        shutil.copy(PLUGIN_FIXTURES / "good" / "calm.py", drop / "calm.py")
        panel.click("rescan")
        panel.frame_buffer()
        assert "emotion_calm" in panel.layout
        panel.click("emotion_calm")
        panel.click("capture")
        (meta,) = settled(out)
        assert meta["status"] == "ok" and meta["emotion"] == [{"name": "calm", "weight": 1.0}]
        assert meta["parameters"]["blink"] == -4 and meta["parameters"]["smile"] == 0.2
    finally:
        panel.close()
