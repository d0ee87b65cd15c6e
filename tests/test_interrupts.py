"""What a user meets when things go wrong around a run: bad output paths, native chatter, SIGTERM."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import cv2
import pytest

from tests.helpers import PLUGIN_FIXTURES, ROOT, SAMPLE, VIDEO, assert_one_line_error, clean_env, run_cli


def test_live_checks_its_output_files_before_the_first_frame(tmp_path):
    (tmp_path / "taken.mp4").mkdir()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = [("--record", tmp_path / "taken.mp4", "is a folder"), ("--record", tmp_path / "out.txt", "not 'out.txt'"),
             ("--record", blocker / "x.mp4", "cannot write to the output folder"),
             ("--stats-json", tmp_path, "is a folder")]
    for flag, path, message in cases:
        result = run_cli("live", "--source", VIDEO, "--headless", "--max-frames", 5, flag, path, timeout=60)
        assert result.returncode == 2, (flag, path, result.returncode, result.stderr)  # not 134 (an abort)
        assert_one_line_error(result, message)


def test_a_missing_camera_or_a_damaged_video_is_one_line_without_native_chatter(tmp_path):
    damaged = tmp_path / "cut.mp4"
    damaged.write_bytes(VIDEO.read_bytes()[:3000])
    for source, message in (("7", "cannot open camera 7"), (damaged, "cannot open")):
        result = run_cli("live", "--source", source, "--headless", "--max-frames", 5, timeout=60)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [f"facesynth: error: {result.stderr.split('error: ')[1].strip()}"]
        assert_one_line_error(result, message)
    chatty = run_cli("live", "--source", "7", "--headless", "--log-level", "debug", timeout=60)
    assert "VIDEOIO" in chatty.stderr  # with debug logs the native messages are there again


def _start(args, tmp_path):
    return subprocess.Popen([sys.executable, "-m", "engine", *map(str, args)], cwd=ROOT, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("signals", [1, 2])
def test_sigterm_ends_live_mode_with_its_figures_and_a_playable_recording(tmp_path, signals):
    """Once, or twice in a row (as `timeout` does: to the command and to its process group)."""
    record, stats = tmp_path / "out.mp4", tmp_path / "s.json"
    process = _start(["live", "--source", VIDEO, "--loop", "--headless", "--record", record, "--stats-json", stats],
                     tmp_path)
    deadline = time.monotonic() + 60
    while not record.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)
    for _ in range(signals):
        process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr
    assert "terminate called" not in stderr
    figures = json.loads(stats.read_text())
    assert figures["frames"] > 0 and figures["frames_with_face"] <= figures["frames"]
    reader = cv2.VideoCapture(str(record))
    ok, _ = reader.read()
    assert ok and reader.get(cv2.CAP_PROP_FRAME_COUNT) > 0  # finalised: readable, not "moov atom not found"


def test_sigterm_during_a_slow_backend_marks_the_capture_interrupted(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(PLUGIN_FIXTURES / "broken" / "runtime_errors.py", plugins)
    out = tmp_path / "out"
    process = _start(["apply", SAMPLE, "--emotion", "happy", "--backend", "hangs", "--plugins-dir", plugins,
                      "--out", out], tmp_path)
    deadline = time.monotonic() + 60
    while not list(out.glob("*/input.png")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # the backend is now answering slowly
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in stderr
    folder = next(out.iterdir())
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["status"] == "interrupted" and (folder / "input.png").is_file()
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_analyze_draws_inputs_with_the_same_name_side_by_side(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(SAMPLE, tmp_path / folder / "face.png")
    result = run_cli("analyze", tmp_path / "a" / "face.png", tmp_path / "b" / "face.png", "--draw", tmp_path / "d",
                     "--json")
    assert result.returncode == 0, result.stderr
    drawn = [json.loads(line)["drawn"] for line in result.stdout.splitlines()]
    assert len(set(drawn)) == 2 and all((tmp_path / "d" / name.split("/")[-1]).is_file() for name in drawn)
