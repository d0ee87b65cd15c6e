"""The Dear PyGui panel, for real: under Xvfb, clicked with xdotool, its frame buffer read back."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from plugins.segmind.fake_server import FakeSegmind
from tests.helpers import (
    PLUGIN_FIXTURES,
    ROOT,
    audio_tracks,
    clean_env,
    clip,
    read_video,
    run_cli,
    start_xvfb,
    sweep,
    where_in,
)


def ready(display):
    """Wait until the X server answers (on a busy machine it takes more than the second start_xvfb waits)."""
    env = {**os.environ, "DISPLAY": display}
    wait_for(lambda: subprocess.run(["xdotool", "getdisplaygeometry"], env=env, capture_output=True).returncode == 0,
             20, 0.2)
    time.sleep(0.5)  # the server resets when its last client (that check) leaves
    return display


@pytest.fixture
def display():
    """A virtual X display with xdotool to click on it."""
    for name in start_xvfb(110, ("Xvfb", "xdotool")):
        yield ready(name)


def cloud_panel(display, tmp_path, server):
    """The panel on the sample photo, pointed at the loopback Segmind server; returns it and its capture folder."""
    env = clean_env(SEGMIND_API_KEY=server.api_key, FACESYNTH_SEGMIND_URL=server.base_url,
                    FACESYNTH_SEGMIND_RPM="600", FACESYNTH_CACHE_DIR=str(tmp_path / "cache"))
    out = tmp_path / "captures"
    return Panel(display, tmp_path, "--source", ROOT / "samples" / "astronaut.png", "--out", out, env=env), out


def stored_in_panel(panel, out):
    """Wait until a capture is complete on disk (with the output's analysis) and shown in the gallery."""
    (meta,) = wait_for(lambda: [m for m in captures(out) if "output_estimate" in m] or None, 60)
    panel.wait_shows(lambda s, st: "gallery_item_0" in panel.layout)
    assert len(captures(out)) == 1  # one press, one capture (a key repeat made a second one once)
    return meta


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
    """A running panel process: its layout dump (boxes, what it shows, the live state), clicks and keys."""

    def __init__(self, display, tmp_path, *args, env=None, command=None, cwd=ROOT):
        self.display, self.tmp = display, tmp_path
        self.layout_file, self.frames_file = tmp_path / "layout.json", tmp_path / "frames.json"
        self.dump_file = tmp_path / "frame.png"
        self.env = env or clean_env()
        self.env["DISPLAY"] = display
        self.env.setdefault("XDG_CONFIG_HOME", str(tmp_path / "config"))  # Save as emotion writes there
        self.process = subprocess.Popen(
            [*(command or [sys.executable, str(ROOT / "launcher.py")]), "--layout", str(self.layout_file),
             "--frame-log", str(self.frames_file), "--dump-on-signal", str(self.dump_file), *map(str, args)],
            env=self.env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: self.layout_file.exists() or self.process.poll() is not None)
        assert self.process.poll() is None, self.process.stderr.read()
        self.layout = json.loads(self.layout_file.read_text())

    def xdotool(self, *args):
        subprocess.run(["xdotool", *map(str, args)], env={**os.environ, "DISPLAY": self.display}, check=True)

    def point(self, tag, share=0.5):
        box = self.layout[tag]
        x = int(self.layout["viewport"]["pos"][0] + box["min"][0] + box["size"][0] * share)
        y = int(self.layout["viewport"]["pos"][1] + box["min"][1] + box["size"][1] / 2)
        return x, y

    def click(self, tag, fresh=False, share=0.5):
        """Click a widget (at `share` of its width: a slider takes the value there)."""
        if fresh:  # the current layout (a widget can move once previews and status text fill in)
            self.frame_buffer()
        self.xdotool("mousemove", *self.point(tag, share))
        time.sleep(0.2)
        self.xdotool("click", "1")
        time.sleep(0.4)

    def key(self, *keys):
        """Press keys with the pointer over the panel (no window manager: focus follows the pointer)."""
        self.xdotool("mousemove", *self.point("preview_output"))
        time.sleep(0.2)
        for key in keys:
            self.press(key)

    def press(self, key):
        """One key or chord as a person types it: the modifier held while the key goes down and up."""
        *modifiers, last = key.split("+")
        for modifier in modifiers:
            self.xdotool("keydown", modifier)
            time.sleep(0.15)
        self.xdotool("key", last)
        time.sleep(0.15)
        for modifier in modifiers:
            self.xdotool("keyup", modifier)
        time.sleep(0.3)

    def type(self, text):
        self.xdotool("type", "--delay", "40", text)
        time.sleep(0.3)

    def frame_buffer(self):
        """The panel's frame buffer as an image (the layout is refreshed at the same time)."""
        self.dump_file.unlink(missing_ok=True)
        self.process.send_signal(signal.SIGUSR1)
        wait_for(self.dump_file.exists, 20)
        self.layout = json.loads(self.layout_file.read_text())
        return cv2.imread(str(self.dump_file))

    def shows(self):
        """What the panel shows now (texts, flags, controls) and its live state, from a fresh dump."""
        self.frame_buffer()
        return self.layout["shows"], self.layout["state"]

    def wait_shows(self, condition, timeout=40):
        """Dump until `condition(shows, state)` holds; returns (shows, state)."""
        def check():
            shows, state = self.shows()
            return (shows, state) if condition(shows, state) else None
        try:
            return wait_for(check, timeout, 0.3)
        except AssertionError:
            raise AssertionError(f"the panel never showed it: {self.layout['shows']} {self.layout['state']}")

    def click_at(self, x, y):
        """Click at a point of the frame buffer (what the panel drew there, where no widget box is known)."""
        left, top = self.layout["viewport"]["pos"]
        self.xdotool("mousemove", int(left + x), int(top + y))
        time.sleep(0.2)
        self.xdotool("click", "1")
        time.sleep(0.4)

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


def _panel_without_display(*args):
    """`facesynth panel ARGS` with no display at all: a bad option must be refused before any window."""
    env = clean_env()
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return run_cli("panel", *args, env=env, timeout=60)


def test_panel_refuses_a_missing_source_before_the_window():
    result = _panel_without_display("--source", "missing.mp4", "--screenshot", "x.png")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "facesynth panel: --source missing.mp4: no such file, and not a camera number or a stream URL"]
    assert not (ROOT / "x.png").exists()


def test_panel_refuses_an_unknown_backend_as_apply_does(tmp_path):
    result = _panel_without_display("--backend", "nope")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    apply = run_cli("apply", str(tmp_path / "none.jpg"), "--emotion", "happy", "--backend", "nope")
    assert apply.returncode == 2
    message = apply.stderr.strip().removeprefix("facesynth: error: ")
    assert "unknown backend 'nope'" in message
    assert lines == [f"facesynth panel: {message}"]


def test_panel_accepts_a_good_source_and_backend_then_wants_a_display():
    # A camera number, a stream URL and an existing file pass the check (nothing is opened for it); only the
    # missing display is left to report.
    for source in ("0", "rtsp://example.invalid/x", "samples/face.mp4"):
        result = _panel_without_display("--source", source, "--backend", "landmark-warp")
        assert result.returncode == 2 and "no display" in result.stderr, (source, result.stderr)
        assert "Traceback" not in result.stderr


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
            # (done when the panel has also written what it finds in the output: meta.json is written again
            # then, and a listing taken between the two writes caught its temporary file)
            stored = wait_for(lambda: [m for m in captures(out) if m["status"] == "ok" and "output_faces" in m], 30)
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
    stamps = [stamp for stamp, _ in frames if clicked + 0.5 <= stamp <= clicked + 3.0]
    during = [elapsed for stamp, elapsed in frames if clicked + 0.5 <= stamp <= clicked + 3.0]
    assert len(during) >= 20  # it kept drawing: 2.5 s at up to 60 frames a second
    # No stall (a call made on the render thread froze it for the whole 3 s): a frame costs 23 ms (median, 45 ms
    # p90) for an empty 1560x1000 viewport with two images under Xvfb on this 2-core machine when other jobs
    # load it (load average 7-8), and up to 0.3 s between two frames was seen then; so the bound is on gaps.
    assert max(np.diff(stamps)) <= 0.5 and np.percentile(np.array(during) * 1000, 95) <= 150


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


# --------------------------------------------------------------------------- what the panel says must be true


def image_panel(display, tmp_path, *extra, env=None):
    out = tmp_path / "captures"
    return Panel(display, tmp_path, "--source", ROOT / "samples" / "astronaut.png", "--out", out, *extra,
                 env=env), out


def no_float_noise(text):
    import re

    return not re.search(r"\d\.\d{4,}", text) and "{" not in text


def test_first_launch_shows_the_sample_not_black_panes(display, tmp_path):
    panel = Panel(display, tmp_path, "--out", tmp_path / "captures")  # the default source, not started
    try:
        shows, state = panel.wait_shows(lambda s, st: s["texts"]["output_estimate"].startswith("output looks"))
        image = panel.frame_buffer()
        for tag in ("preview_input", "preview_output"):
            assert panel.region(image, tag).astype(int).std() > 30, tag
        assert not state["running"] and shows["texts"]["source"] == "samples/face.mp4"
        assert shows["texts"]["input_estimate"].startswith("input looks")
    finally:
        panel.close()


def ten_fps_clip(path, frames=60):
    """The sample video's first frames at 10 frames a second (slower than the pipeline runs here)."""
    source = cv2.VideoCapture(str(ROOT / "samples" / "face.mp4"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (640, 480))
    for _ in range(frames):
        writer.write(source.read()[1])
    writer.release()
    return path


TITLE_ACTIVE = (135, 86, 15)  # BGR: the title bar of the window in front (Dear PyGui's default theme)


def file_dialog_lines(image, height):
    """The file dialog as a person sees it: found by its title bar, its lines of text top down, each as
    (y in the middle of the line, [(x0, x1) of each group of letters])."""
    title = np.all(np.abs(image.astype(int) - TITLE_ACTIVE) <= 8, axis=2)
    rows = np.nonzero(title.sum(axis=1) > 300)[0]
    assert len(rows), "no file dialog on screen"
    columns = np.nonzero(title[rows].any(axis=0))[0]
    left, right, top = columns.min(), columns.max(), rows.max() + 1
    body = image[top:rows.min() + height - 4, left:right].min(axis=2) > 190  # white letters
    inked = np.nonzero(body.any(axis=1))[0]
    lines, start = [], None
    for y, nxt in zip(inked, list(inked[1:]) + [None]):
        start = y if start is None else start
        if nxt is None or nxt - y > 2:
            xs = np.nonzero(body[start:y + 1].any(axis=0))[0]
            groups = np.split(xs, np.nonzero(np.diff(xs) > 8)[0] + 1)
            lines.append((int(top + (start + y) / 2), [(int(left + g[0]), int(left + g[-1])) for g in groups]))
            start = None
    return lines


def test_browse_opens_where_the_source_is_and_starts_what_it_picked(display, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    video = clip(clips / "talk.mp4", 60)
    (clips / "notes.txt").write_text("not a source")
    # Camera 0 (none here, not started) in the field: Browse... opens in the folder the panel was started from.
    panel = Panel(display, tmp_path, "--source", "0", "--out", tmp_path / "captures", cwd=clips)
    try:
        image = panel.frame_buffer()
        assert panel.region(image, "preview_input").max() < 40  # a camera not started: nothing shown yet
        panel.click("browse")
        shows, _ = panel.wait_shows(lambda s, st: s["flags"].get("file_dialog"))
        image = panel.frame_buffer()
        height = panel.layout["file_dialog"]["height"]
        lines = file_dialog_lines(image, height)
        # path buttons, search, column titles, the entries, the file name with the filter, Cancel (no OK yet)
        entries, footer = lines[3:-2], lines[-2:]
        assert len(entries) == 2, lines  # talk.mp4 and the parent folder; notes.txt is no source: not listed
        assert len(footer[1][1]) == 1, footer  # Cancel only: nothing chosen yet
        row = max(entries, key=lambda line: line[1][-1][1])  # the file's row: name, type, size, date
        panel.click_at(row[1][0][0] + 40, row[0])
        lines = file_dialog_lines(panel.frame_buffer(), height)
        ok_button = lines[-1][1]
        assert len(ok_button) == 2, lines  # OK appeared beside Cancel
        panel.click_at((ok_button[0][0] + ok_button[0][1]) // 2, lines[-1][0])
        shows, state = panel.wait_shows(lambda s, st: st["running"] and st["frames"] >= 10)
        assert shows["texts"]["source"] == "talk.mp4" and not shows["flags"]["file_dialog"]
        assert shows["texts"]["status"].startswith("running: talk.mp4 (file, 30 fps)"), shows["texts"]["status"]
        shows, _ = panel.wait_shows(lambda s, st: " fps, latency" in s["texts"]["fps_text"])
        shown = panel.region(panel.frame_buffer(), "preview_input")
        shown = cv2.resize(shown, (640, 480), interpolation=cv2.INTER_AREA).astype(int)
        assert min(np.abs(shown - frame).mean() for frame in read_video(video)) < 4  # a frame of the clip
        panel.click("browse")  # and Esc closes the dialog without changing anything
        panel.wait_shows(lambda s, st: s["flags"].get("file_dialog"))
        panel.press("Escape")
        shows, state = panel.shows()
        assert not shows["flags"]["file_dialog"] and state["running"] and shows["texts"]["source"] == "talk.mp4"
    finally:
        panel.close()


def test_stop_says_stopped_and_a_file_plays_at_its_own_rate(display, tmp_path):
    panel = Panel(display, tmp_path, "--source", ten_fps_clip(tmp_path / "face.mp4"), "--autostart", "--out",
                  tmp_path / "captures")
    try:
        panel.wait_shows(lambda s, st: " fps, latency" in s["texts"]["fps_text"])
        time.sleep(2.0)
        shows, _ = panel.shows()
        assert 7 <= float(shows["texts"]["fps_text"].split(" fps")[0]) <= 11, shows["texts"]["fps_text"]
        panel.click("stop")
        shows, state = panel.shows()
        assert not state["running"]
        assert shows["texts"]["status"].startswith("stopped: ") and "frames" in shows["texts"]["status"]
        assert shows["texts"]["fps_text"].startswith("stopped")
        assert any("stopped: " in line for line in shows["log"])
        time.sleep(1.0)
        again, _ = panel.shows()
        assert again["texts"]["fps_text"] == shows["texts"]["fps_text"]
    finally:
        panel.close()


def test_gallery_during_playback_says_it_stopped_and_back_to_live_resumes(display, tmp_path):
    out = tmp_path / "captures"
    panel = Panel(display, tmp_path, "--source", clip(tmp_path / "face.mp4", 90), "--autostart", "--out", out)
    try:
        panel.wait_shows(lambda s, st: " fps, latency" in s["texts"]["fps_text"])
        panel.key("space")  # space captures
        meta = stored_in_panel(panel, out)
        assert meta["status"] == "ok" and meta["faces"] and meta["timings_ms"]["synthesize"] > 0
        panel.click("gallery_item_0")
        shows, state = panel.shows()
        assert not state["running"] and shows["flags"]["back_to_live"]
        assert "showing capture" in shows["texts"]["status"] and "Back to live" in shows["texts"]["status"]
        detail = shows["texts"]["gallery_detail"]
        assert "happy 1" in detail and "parameters: " in detail and no_float_noise(detail), detail
        assert shows["texts"]["output_estimate"] == "output " + meta["output_estimate"]  # the stored output's own
        panel.click("back_to_live", fresh=True)
        shows, state = panel.wait_shows(lambda s, st: st["running"] and " fps" in s["texts"]["fps_text"])
        assert shows["texts"]["status"].startswith("running: ") and not shows["flags"]["back_to_live"]
    finally:
        panel.close()


def test_mix_sliders_and_the_effect_agree_after_a_rescan(display, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    panel, out = image_panel(display, tmp_path, "--plugins-dir", drop)
    try:
        panel.click("mix_surprised", share=0.3)  # about 0.6 on a 0..2 slider
        shows, state = panel.shows()
        weights = dict(state["emotions"])
        assert set(weights) == {"happy", "surprised"} and 0.3 < weights["surprised"] < 0.9, weights
        assert shows["mix"]["surprised"] == pytest.approx(weights["surprised"], abs=1e-3)
        assert any(line.endswith(f"mix: happy 1 + surprised {weights['surprised']:.2g}") for line in shows["log"])
        shutil.copy(PLUGIN_FIXTURES / "good" / "calm.py", drop / "calm.py")
        panel.click("rescan")
        shows, state = panel.shows()
        assert "calm" in shows["plugin_emotions"] and dict(state["emotions"]) == weights
        assert {e: w for e, w in shows["mix"].items() if w} == pytest.approx(weights, abs=1e-3)
        assert sorted(shows["active_emotions"]) == ["happy", "surprised"]
        assert shows["parameters"] == pytest.approx(state["parameters"], abs=1e-2)
        panel.click("capture")
        (meta,) = settled(out)
        assert {e["name"]: e["weight"] for e in meta["emotion"]} == pytest.approx(weights)
        assert meta["parameters"] == pytest.approx(state["parameters"], abs=1e-2)
    finally:
        panel.close()


def test_unavailable_backend_tells_why_on_hover_and_click(display, tmp_path):
    panel, _ = image_panel(display, tmp_path)
    try:
        before = panel.frame_buffer()
        panel.xdotool("mousemove", *panel.point("backend_segmind", 0.3))
        time.sleep(1.0)
        after = panel.frame_buffer()
        box = panel.layout["backend_segmind"]
        x, y = int(box["min"][0]), int(box["min"][1] + box["size"][1])
        below = (slice(y, y + 60), slice(x, x + 400))  # the tooltip opens under the pointer
        assert np.abs(after[below].astype(int) - before[below]).mean() > 5
        panel.click("backend_segmind")
        shows, state = panel.shows()
        assert shows["texts"]["status"].startswith("segmind is unavailable: no API key")
        assert state["backend"] == "landmark-warp"
    finally:
        panel.close()


def test_with_nothing_running_the_output_shows_the_edit_the_controls_show(display, tmp_path):
    from ui.previews import to_texture

    def output(panel):
        shown = panel.region(panel.frame_buffer(), "preview_output")
        return cv2.resize(shown, (640, 480), interpolation=cv2.INTER_AREA).astype(int)

    def as_shown(path):  # a stored picture as the preview shows it
        texture = to_texture(cv2.imread(str(path))).reshape(480, 640, 4)[..., :3] * 255
        return cv2.cvtColor(texture.astype(np.uint8), cv2.COLOR_RGB2BGR).astype(int)

    def face(picture, box, size):  # the face's box in the preview (a 640x480 texture, the picture letterboxed)
        scale = min(640 / size[0], 480 / size[1])
        x0, y0 = (640 - size[0] * scale) / 2, (480 - size[1] * scale) / 2
        x, y, w, h = (int(v * scale) for v in box)
        return picture[int(y0) + y:int(y0) + y + h, int(x0) + x:int(x0) + x + w]

    panel, out = image_panel(display, tmp_path)
    try:
        shows, _ = panel.wait_shows(lambda s, st: s["texts"]["output_estimate"].startswith("output looks"))
        before, size = output(panel), (512, 512)
        for key, emotion, count in (("2", "surprised", 1), ("3", "angry", 2)):
            if count == 2:  # the same after a clip played and was stopped: its last frame is edited again
                panel.click("source")
                panel.press("ctrl+a")
                panel.type(str(clip(tmp_path / "face.mp4", 60)))
                panel.press("Return")
                panel.wait_shows(lambda s, st: st["frames"] >= 10)
                panel.key("Escape")
                panel.wait_shows(lambda s, st: not st["running"])
                before, size = output(panel), (640, 480)
            panel.key(key)  # the source is not running: nothing else would redraw the output
            shows, _ = panel.wait_shows(lambda s, st: s["faces"] and np.abs(
                face(output(panel), s["faces"][0]["box"], size) - face(before, s["faces"][0]["box"], size)).mean() > 5)
            box = shows["faces"][0]["box"]
            shown = face(output(panel), box, size)
            panel.key("space")  # what Capture stores is what the output showed
            settled(out, count)
            (folder,) = [f for f in out.iterdir() if (f / "meta.json").exists()
                         and json.loads((f / "meta.json").read_text())["emotion"][0]["name"] == emotion]
            stored = face(as_shown(folder / "output.png"), box, size)
            assert np.abs(shown - stored).mean() < 6, emotion  # (the edit moved it by 25 grey levels here)
    finally:
        panel.close()


def test_keyboard_emotions_capture_undo_save_as_and_enter(display, tmp_path):
    panel, out = image_panel(display, tmp_path)
    try:
        image = panel.frame_buffer()
        idle = panel.region(image, "emotion_surprised").astype(int).mean(axis=(0, 1))
        panel.key("2")
        shows, state = panel.shows()
        assert state["emotions"] == [["surprised", 1.0]] and shows["active_emotions"] == ["surprised"]
        lit = panel.region(panel.frame_buffer(), "emotion_surprised").astype(int).mean(axis=(0, 1))
        assert lit[1] - idle[1] > 20  # the active button is green
        panel.key("5")  # the fifth button: the drop-in in plugins.d, beyond the old 1-4
        assert panel.shows()[1]["emotions"] == [[panel.layout["shows"]["emotion_order"][4], 1.0]]
        panel.key("ctrl+z")
        shows, state = panel.shows()
        assert state["emotions"] == [["surprised", 1.0]] and shows["texts"]["status"].startswith("undone")
        panel.key("space")
        (meta,) = settled(out)
        assert meta["emotion"] == [{"name": "surprised", "weight": 1.0}]
        panel.key("ctrl+s")
        shows, _ = panel.wait_shows(lambda s, st: s["flags"]["save_as_window"])
        target = tmp_path / "saved" / "smile.jpg"
        assert shows["texts"]["save_as_path"].endswith(f"{[p for p in out.iterdir()][0].name}.png")
        panel.click("save_as_path")
        panel.press("ctrl+a")
        panel.type(str(target))
        panel.press("Return")
        try:
            wait_for(target.exists, 10)
        except AssertionError:
            raise AssertionError(panel.shows())
        saved = cv2.imread(str(target))
        assert target.read_bytes()[:2] == b"\xff\xd8" and saved.shape == (512, 512, 3)
        assert not panel.shows()[0]["flags"]["save_as_window"]
        panel.click("source")
        panel.press("ctrl+a")
        panel.type(str(clip(tmp_path / "face.mp4", 60)))
        panel.press("Return")  # Enter in the source field starts it
        shows, state = panel.wait_shows(lambda s, st: st["running"])
        assert shows["texts"]["status"].startswith("running: ") and "face.mp4" in shows["texts"]["status"]
        panel.key("Escape")
        shows, state = panel.shows()
        assert not state["running"] and shows["texts"]["status"].startswith("stopped")
    finally:
        panel.close()


def test_save_as_emotion_and_use_these_parameters(display, tmp_path):
    env = clean_env(XDG_CONFIG_HOME=str(tmp_path / "config"))
    panel, out = image_panel(display, tmp_path, env=env)
    try:
        panel.key("3")  # angry
        panel.click("param_smile", share=0.8)
        _, angry = panel.shows()
        assert "smile" in angry["overrides"]
        panel.click("capture")
        meta = stored_in_panel(panel, out)
        panel.click("save_emotion")
        panel.wait_shows(lambda s, st: s["flags"]["save_emotion_window"])
        panel.click("save_emotion_name", fresh=True)
        panel.press("ctrl+a")
        panel.type("grinning_angry")
        panel.press("Return")
        shows, state = panel.wait_shows(lambda s, st: "grinning_angry" in s["plugin_emotions"])
        path = tmp_path / "config" / "facesynth" / "plugins.d" / "grinning_angry.py"
        assert path.exists() and state["emotions"] == [["grinning_angry", 1.0]] and not state["overrides"]
        assert state["parameters"] == pytest.approx(angry["parameters"], abs=0.01)  # the same face, now a preset
        assert shows["active_emotions"] == ["grinning_angry"] and "emotion_grinning_angry" in panel.layout
        listing = run_cli("plugins", "--json", env=env)
        assert any(row["id"] == "grinning_angry" and row["status"] == "loaded"
                   for row in json.loads(listing.stdout)["emotions"]), listing.stdout
        panel.click("param_eyebrow", share=0.6)  # edit the new preset and save it back under its own id
        _, edited = panel.shows()
        panel.click("save_emotion")
        shows, _ = panel.wait_shows(lambda s, st: s["flags"]["save_emotion_window"])
        assert shows["texts"]["save_emotion_name"] == "grinning_angry"
        panel.click("save_emotion_ok", fresh=True)
        shows, state = panel.wait_shows(lambda s, st: not s["flags"]["save_emotion_window"])
        assert state["emotions"] == [["grinning_angry", 1.0]] and not state["overrides"]
        assert edited["parameters"]["eyebrow"] > 0  # raised (angry lowers them to -10)
        assert state["parameters"]["eyebrow"] == pytest.approx(edited["parameters"]["eyebrow"], abs=0.01)
        assert f'"eyebrow": {round(edited["parameters"]["eyebrow"], 2):g}' in path.read_text()
        panel.key("1")
        panel.click("gallery_item_0", fresh=True)
        panel.click("use_parameters", fresh=True)
        shows, state = panel.shows()
        assert state["emotions"] == [["angry", 1.0]] and state["parameters"] == pytest.approx(meta["parameters"])
        assert shows["parameters"] == pytest.approx(meta["parameters"], abs=0.01)
    finally:
        panel.close()


def test_open_folder_and_save_as_on_a_capture(display, tmp_path):
    bin_dir, record = tmp_path / "bin", tmp_path / "opened.txt"
    bin_dir.mkdir()
    opener = bin_dir / "xdg-open"  # no desktop here: a stand-in file manager that notes what it was asked to open
    opener.write_text(f"#!/bin/sh\necho \"$1\" > {record}\n")
    opener.chmod(0o755)
    env = clean_env(PATH=f"{bin_dir}:{os.environ['PATH']}")
    panel, out = image_panel(display, tmp_path, env=env)
    try:
        panel.click("capture")
        stored_in_panel(panel, out)
        panel.click("gallery_item_0")
        panel.click("open_folder", fresh=True)
        wait_for(record.exists, 10)
        folder = [p for p in out.iterdir() if p.is_dir()][0]
        assert record.read_text().strip() == str(folder)
        assert panel.shows()[0]["texts"]["status"].startswith("opened ")
        panel.click("save_as")  # the button (Ctrl+S is tested elsewhere), a PNG this time, saved by clicking Save
        panel.wait_shows(lambda s, st: s["flags"]["save_as_window"])
        panel.click("save_as_path", fresh=True)
        panel.press("ctrl+a")
        target = tmp_path / "saved" / "edit.png"
        panel.type(str(target))
        panel.click("save_as_ok", fresh=True)
        wait_for(target.exists, 10)
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert np.array_equal(cv2.imread(str(target)), cv2.imread(str(folder / "output.png")))
        shows, _ = panel.shows()
        assert not shows["flags"]["save_as_window"] and shows["texts"]["status"].startswith("saved output.png of ")
    finally:
        panel.close()


def test_idle_panel_redraws_only_when_something_changes(display, tmp_path):
    panel, _ = image_panel(display, tmp_path)
    try:
        def cpu_seconds():
            fields = Path(f"/proc/{panel.process.pid}/stat").read_text().split()
            return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
        time.sleep(2)  # the start's own work (the first picture's edit, on a busy machine) is over: at rest now
        started, used = time.time(), cpu_seconds()
        time.sleep(5)
        ended = time.time()
        share = (cpu_seconds() - used) / (ended - started)
        frames = panel.close()
    finally:
        if panel.process.poll() is None:
            panel.close()
    assert share < 0.4, f"{share:.0%} of a core while nothing changes"
    recent = [stamp for stamp, _ in frames if started < stamp <= ended]
    assert len(recent) < 5 * 8  # a few frames a second at rest (one each 0.2 s), not sixty


def test_fits_a_1366x768_screen_and_previews_follow_the_window(tmp_path):
    if shutil.which("Xvfb") is None or shutil.which("xdotool") is None:
        pytest.skip("Xvfb and xdotool not installed")
    number = 120 + os.getpid() % 8
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1366x768x24", "-nolisten", "tcp", "-noreset"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        display = ready(f":{number}")
        shot, layout = tmp_path / "small.png", tmp_path / "small.json"
        result = subprocess.run([sys.executable, "launcher.py", "--screenshot", shot, "--layout", layout],
                                env=clean_env(DISPLAY=display), cwd=ROOT, capture_output=True, text=True,
                                timeout=180)
        assert result.returncode == 0, result.stderr
        boxes = json.loads(layout.read_text())
        viewport = boxes["viewport"]
        x0, y0 = viewport["pos"]
        assert x0 >= 0 and y0 >= 0 and x0 + viewport["width"] <= 1366 and y0 + viewport["height"] <= 768
        for tag in ("start", "stop", "capture", "preview_input", "preview_output", "status",
                    "source", "rescan", "emotion_happy"):
            (x, y), (w, h) = boxes[tag]["min"], boxes[tag]["size"]
            assert 0 <= x and x + w <= viewport["width"] and 0 <= y and y + h <= viewport["height"], tag
        inside = boxes["emotion_happy"]["min"][0] + boxes["left"]["inner_width"]  # the left pane's scroll bar: not on
        for tag in [t for t in boxes if t.startswith(("emotion_", "mix_", "param_", "reset", "save_emotion"))]:
            assert boxes[tag]["min"][0] + boxes[tag]["size"][0] <= inside, tag
        width, height = boxes["preview_input"]["size"]
        assert width >= 300 and width / height == pytest.approx(4 / 3, abs=0.02)
        assert cv2.imread(str(shot)).shape[:2] == (viewport["height"], viewport["width"])
        panel = Panel(display, tmp_path, "--source", ROOT / "samples" / "astronaut.png")
        try:
            big = panel.layout["preview_input"]["size"]
            panel.xdotool("search", "--name", "^FaceSynth$", "windowsize", "1000", "640")
            panel.wait_shows(lambda s, st: panel.layout["preview_input"]["size"][0] < big[0], 15)
            small = panel.layout["preview_input"]["size"]
            assert panel.layout["viewport"]["width"] == 1000 and small[0] / small[1] == pytest.approx(4 / 3, abs=0.02)
            assert panel.layout["preview_output"]["size"] == small
        finally:
            panel.close()
    finally:
        server.terminate()
        server.wait(5)


def test_facesynth_panel_runs_from_any_folder(display, tmp_path):
    command = Path(sys.executable).parent / "facesynth"
    if not command.exists():
        pytest.skip("the facesynth command is not installed in this environment")
    result = subprocess.run([str(command), "panel", "--screenshot", "shot.png"], env=clean_env(DISPLAY=display),
                            cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert cv2.imread(str(tmp_path / "shot.png")).std() > 30


def test_the_panel_s_parts_as_text():
    from types import SimpleNamespace

    from ui.app import App
    from ui.gallery import describe_capture

    meta = {"status": "ok", "backend": "landmark-warp", "emotion": [{"name": "happy", "weight": 1.0}],
            "intensity": 1.0, "parameters": {"blink": -1.4504998326301575, "smile": 0.8, "aaa": 0.0}}
    assert describe_capture("c1", meta) == ("c1: ok; with landmark-warp; happy 1, intensity 1; "
                                            "parameters: blink -1.45, smile 0.8")
    label = SimpleNamespace(output_label=(("live", 3), "looks happy (0.80)"), output_key=("live", 3))
    assert App.output_text(label) == "output looks happy (0.80)"
    label.output_key = ("live", 4)  # the edit changed since that frame was measured
    assert "stale" in App.output_text(label)


def test_a_failing_action_is_reported_and_the_panel_goes_on():
    from types import SimpleNamespace

    from ui.app import App, chosen_path, media_suffixes

    said, done = [], []
    panel = SimpleNamespace(status=lambda text, level="info": said.append((level, text)))
    jobs = [(lambda: 1 / 0, "browse", None, None), (lambda sender, data: done.append((sender, data)), "start", 7, None)]
    App.run_callbacks(panel, jobs)  # Dear PyGui's own loop stopped at the first failure and closed the window
    assert said == [("error", "that did not work: ZeroDivisionError: division by zero")] and done == [("start", 7)]
    # The file dialog's answer: what was clicked, or a full path typed as the name (it would be glued to the folder)
    assert chosen_path({"file_name": "talk.mp4", "file_path_name": "/clips/talk.mp4"}) == "/clips/talk.mp4"
    assert chosen_path({"file_name": "/else/where.mkv", "file_path_name": "/clips//else/where.mkv"}) == \
        "/else/where.mkv"
    assert {".mp4", ".MP4", ".JPG", ".webp"} <= set(media_suffixes())  # phones name files IMG_0001.JPG


def number_frame(image, number):
    """Write `number` on a picture as seven squares along its bottom left (white for a 1 bit), away from the face."""
    for bit in range(7):
        image[-28:-4, 4 + 28 * bit:28 + 28 * bit] = 255 if number >> bit & 1 else 0
    return image


def frame_number(image):
    """The number `number_frame` wrote (read back after H.264 and the edit)."""
    return sum(1 << bit for bit in range(7) if image[-22:-10, 10 + 28 * bit:22 + 28 * bit].mean() > 128)


def face_clip_with_sound(path, frames=75, fps=25):
    """The sample video's first frames, numbered, as H.264 with a rising tone (AAC), written with PyAV: any stretch
    of the sound tells where in the clip it comes from."""
    import av

    source = cv2.VideoCapture(str(ROOT / "samples" / "face.mp4"))
    output = av.open(str(path), "w")
    video = output.add_stream("libx264", rate=fps)
    video.width, video.height, video.pix_fmt = 640, 480, "yuv420p"
    audio = output.add_stream("aac", rate=44100)
    audio.layout = "mono"
    for number in range(frames):
        picture = number_frame(source.read()[1], number)
        for packet in video.encode(av.VideoFrame.from_ndarray(picture, format="bgr24")):
            output.mux(packet)
    total = int(44100 * frames / fps)
    tone = sweep(total, 44100)
    for start in range(0, total, 1024):
        chunk = av.AudioFrame.from_ndarray(tone[None, start:start + 1024], format="flt", layout="mono")
        chunk.sample_rate, chunk.pts = 44100, start
        for packet in audio.encode(chunk):
            output.mux(packet)
    for stream in (video, audio):
        for packet in stream.encode(None):
            output.mux(packet)
    output.close()
    return path


def test_record_begun_mid_file_has_the_file_s_sound_from_there_and_again_after_the_loop(display, tmp_path):
    fps, length = 25, 100
    video = face_clip_with_sound(tmp_path / "talk.mp4", frames=length, fps=fps)  # 4 s; the panel plays it in a loop
    out = tmp_path / "captures"
    panel = Panel(display, tmp_path, "--source", video, "--autostart", "--out", out)
    try:
        panel.wait_shows(lambda s, st: st["frames"] >= 5)
        panel.click("record")  # it lands some frames later (about a second here): early in the clip, not at its end
        shows, state = panel.wait_shows(lambda s, st: any("recording talk.mp4 from " in line for line in s["log"]))
        # a whole round of the clip and more past where the recording began: the clip started again in it
        panel.wait_shows(lambda s, st: st["frames"] >= state["frames"] + length + 15)
        panel.click("record")  # off: the file is finished
        shows, _ = panel.wait_shows(lambda s, st: any("recorded " in line for line in s["log"]))
    finally:
        panel.close()
    began = [line for line in shows["log"] if "recording talk.mp4 from " in line]
    assert len(began) == 1 and began[0].endswith("s (with its sound)"), shows["log"]
    said = float(began[0].split(" from ")[1].split(" s ")[0])
    (recording,) = (out / "recordings").glob("*.mp4")  # one file, finished (no partial one left)
    numbers = [frame_number(picture) for picture in read_video(recording)]
    first = numbers[0]  # where in the clip the recording began (0 only if Record landed on the loop's seam)
    assert numbers == [(first + n) % length for n in range(len(numbers))], numbers  # every frame, in order
    wrap = length - first  # where the clip started again
    assert said == pytest.approx(first / fps, abs=0.005) and len(numbers) >= wrap + 15
    [(codec, start, heard, rate)] = audio_tracks(recording)
    [(_, _, original, _)] = audio_tracks(video)
    assert codec == "aac" and abs(start) < 1 / fps
    assert abs(len(heard) / rate - len(numbers) / fps) <= 2 / fps  # as long as the pictures
    # what is heard at the start, and right after the clip started again, is what the file plays with those frames
    assert wrap >= 10, f"Record landed {wrap} frames before the clip's end: too close to tell the rounds apart"
    lead = int(0.05 * rate)
    for at, expected in ((0, first / fps), (wrap / fps, 0.0)):
        stretch = heard[int(at * rate) + lead:int(at * rate) + int(0.35 * rate)]
        assert (where_in(original, stretch) - lead) / rate == pytest.approx(expected, abs=1.5 / fps), at


def test_a_recording_of_a_camera_or_stream_says_once_that_it_is_silent(tmp_path):
    from types import SimpleNamespace

    from ui.outputs import Recording

    picture = cv2.imread(str(ROOT / "samples" / "astronaut.png"))
    for kind, note in (("camera", "a camera gives no sound"), ("stream", "a stream's sound is not read")):
        said = []
        recording = Recording(tmp_path / kind, lambda level, text: said.append((level, text)))
        source = SimpleNamespace(kind=kind, fps=30.0, audio_streams=0, time_base=None, file_path="")
        for index in range(10):
            recording(SimpleNamespace(frame=SimpleNamespace(index=index, pts=None), output=picture), source)
        summary = recording.close()
        assert len(said) == 1 and said[0][0] == "warning" and note in said[0][1], said
        assert "10 frames" in summary and "without sound" in summary
        (path,) = (tmp_path / kind / "recordings").glob("*.mp4")
        assert audio_tracks(path) == [] and len(read_video(path)) == 10


def test_record_writes_h264_with_the_sound_and_virtual_camera_says_what_is_missing(display, tmp_path):
    import av

    out = tmp_path / "captures"
    panel = Panel(display, tmp_path, "--source", face_clip_with_sound(tmp_path / "talk.mp4"), "--out", out)
    try:
        panel.click("record")
        panel.click("start")
        panel.wait_shows(lambda s, st: " fps, latency" in s["texts"]["fps_text"])
        time.sleep(2.0)
        panel.click("stop")
        shows, _ = panel.wait_shows(lambda s, st: any("recorded " in line for line in s["log"]))
        assert any("with the source's sound" in line for line in shows["log"]), shows["log"]
        (recording,) = (out / "recordings").glob("*.mp4")
        with av.open(str(recording)) as container:
            assert container.streams.video[0].codec_context.name == "h264"
            assert len(container.streams.audio) == 1
            frames = sum(1 for _ in container.decode(video=0))
        assert frames >= 20
        panel.click("virtual_camera")  # no v4l2loopback device here: it says so and how to get one
        shows, _ = panel.shows()
        assert shows["texts"]["status"].startswith("virtual camera: no virtual camera")
        assert not shows["toggles"]["virtual_camera"] and shows["toggles"]["record"]
    finally:
        panel.close()


def test_faces_in_a_group_photo_are_marked_and_picked_by_clicking(display, tmp_path):
    sample = cv2.imread(str(ROOT / "samples" / "astronaut.png"))
    group = np.full((420, 1060, 3), 200, np.uint8)  # two faces side by side and a third too small to edit
    group[10:410, 10:410] = cv2.resize(sample, (400, 400))
    group[10:410, 430:830] = cv2.flip(group[10:410, 10:410], 1)
    group[200:400, 850:1050] = cv2.resize(sample, (200, 200))
    photo = tmp_path / "group.png"
    cv2.imwrite(str(photo), group)
    out = tmp_path / "captures"
    panel = Panel(display, tmp_path, "--source", photo, "--out", out)
    try:
        shows, _ = panel.wait_shows(lambda s, st: len(s["faces"]) == 3)
        assert [m["state"] for m in shows["faces"]] == ["edited", "edited", "skipped"]
        assert "too small" in shows["faces"][2]["reason"]
        box = panel.layout["preview_input"]
        scale = min(box["size"][0] / 1060, box["size"][1] / 420)
        top = (box["size"][1] - 420 * scale) / 2
        x, y, w, h = shows["faces"][0]["box"]
        panel.xdotool("mousemove", int(panel.layout["viewport"]["pos"][0] + box["min"][0] + (x + w / 2) * scale),
                      int(panel.layout["viewport"]["pos"][1] + box["min"][1] + top + (y + h / 2) * scale))
        time.sleep(0.3)
        panel.xdotool("click", "1")
        shows, _ = panel.wait_shows(lambda s, st: s["faces_setting"] == "1" and s["faces"][1]["state"] != "edited")
        assert [m["state"] for m in shows["faces"]] == ["edited", "not chosen", "not chosen"]
        assert shows["texts"]["status"].startswith("faces: editing 1")
        panel.click("capture")
        (meta,) = settled(out)
        assert [face["edited"] for face in meta["faces"]] == [True, False, False]
        before, after = cv2.imread(str(photo)), cv2.imread(str(next(out.iterdir()) / "output.png"))
        assert np.abs(after[:, 430:].astype(int) - before[:, 430:]).max() == 0  # the faces left out are untouched
        assert np.abs(after[:, :420].astype(int) - before[:, :420]).mean() > 0.1
    finally:
        panel.close()
