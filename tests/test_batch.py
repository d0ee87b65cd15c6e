"""Batches: worker processes and a real local Ray, the manifest (resume), the index, crashing workers, a full disk.

Every test runs the CLI as a subprocess on real photos through the real landmarker; the crashes are real (a
plugin calling os._exit, a segfault through ctypes, a SIGKILL) and the full disk is a real tmpfs when run as root.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import shutil
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import PLUGIN_FIXTURES, SAMPLE, assert_one_line_error, clean_env, clip, json_lines, run_cli

CRASHING = PLUGIN_FIXTURES / "crashing"
SMALL_FACES = ("interfaces_006.jpg", "interfaces_028.jpg", "skimage_astronaut.png")  # about 500x500: quick


@pytest.fixture
def photos(dev_faces, tmp_path) -> Path:
    """Three small face photos in a folder of their own."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name in SMALL_FACES:
        shutil.copyfile(dev_faces / name, folder / name)
    return folder


def mark(source: Path, target: Path, colour: tuple[int, int, int]) -> Path:
    """A copy of `source` with its top-left 8x8 pixels painted `colour` (BGR): the crash fixtures' signal."""
    image = cv2.imread(str(source))
    image[:8, :8] = colour
    cv2.imwrite(str(target), image)
    return target


def captures(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir())


def metas(out: Path) -> list[dict]:
    return [json.loads((folder / "meta.json").read_text()) for folder in captures(out)]


def test_workers_give_the_outputs_of_one_process_in_input_order(photos, tmp_path):
    alone = run_cli("apply", photos / SMALL_FACES[0], "--emotion", "happy", "--out", tmp_path / "one", "--json")
    assert alone.returncode == 0, alone.stderr
    record = json_lines(alone.stdout)[0]
    assert record["output_dir"].startswith(str(tmp_path / "one"))  # one input: the plain path, as before

    pooled = run_cli("apply", photos, "--emotion", "happy", "--out", tmp_path / "two", "--workers", "2", "--json")
    assert pooled.returncode == 0, pooled.stderr
    records = json_lines(pooled.stdout)
    assert [Path(r["input"]).name for r in records] == list(SMALL_FACES)  # input order, whoever finished first
    for name in ("output.png", "compare.png"):
        assert np.array_equal(cv2.imread(str(Path(records[0]["output_dir"]) / name)),
                              cv2.imread(str(Path(record["output_dir"]) / name))), name
    assert {m["status"] for m in metas(tmp_path / "two")} == {"ok"} and len(captures(tmp_path / "two")) == 3


def test_a_crashing_worker_costs_its_input_only(photos, tmp_path):
    exits = mark(photos / SMALL_FACES[0], photos / "exits.png", (0, 0, 255))  # the plugin calls os._exit(3)
    segfaults = mark(photos / SMALL_FACES[1], photos / "segfaults.png", (0, 255, 0))  # reads address 0
    out = tmp_path / "out"
    result = run_cli("apply", photos, "--emotion", "happy", "--backend", "crash", "--plugins-dir", CRASHING,
                     "--out", out, "--workers", "2", "--json", "--manifest", tmp_path / "jobs.jsonl")
    assert result.returncode == 1, result.stderr
    records = {Path(r["input"]).name: r for r in json_lines(result.stdout)}
    assert set(records) == {*SMALL_FACES, exits.name, segfaults.name}  # the job went on after both crashes
    assert records[exits.name]["status"] == "failed"
    assert "exited unexpectedly (exit code 3)" in records[exits.name]["error"]
    assert records[segfaults.name]["status"] == "failed"
    assert "crashed (SIGSEGV)" in records[segfaults.name]["error"]
    assert all(records[name]["status"] == "ok" for name in SMALL_FACES)
    assert_one_line_error(result, "exits.png: the worker editing it exited unexpectedly",
                          "segfaults.png: the worker editing it crashed (SIGSEGV)")
    for name in (exits.name, segfaults.name):  # the capture is marked failed, not left pending; no output
        folder = Path(records[name]["output_dir"])
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["status"] == "failed" and not (folder / "output.png").exists()
    assert "pending" not in {m["status"] for m in metas(out)}
    lines = json_lines((tmp_path / "jobs.jsonl").read_text())
    assert len(lines) == 5 and {line["record"]["status"] for line in lines} == {"ok", "failed"}

    command = ("apply", photos, "--emotion", "happy", "--backend", "crash", "--plugins-dir", CRASHING, "--out", out,
               "--workers", "2", "--json", "--manifest", tmp_path / "jobs.jsonl")
    again = run_cli(*command)  # failed inputs are reported again, not retried
    assert again.returncode == 1 and all(r.get("resumed") for r in json_lines(again.stdout))
    assert len(captures(out)) == 5
    retried = run_cli(*command, "--retry-failed")  # only the failed two run again (and crash again)
    assert retried.returncode == 1
    fresh = [r for r in json_lines(retried.stdout) if not r.get("resumed")]
    assert sorted(Path(r["input"]).name for r in fresh) == sorted([exits.name, segfaults.name])
    assert len(captures(out)) == 7 and len(json_lines((tmp_path / "jobs.jsonl").read_text())) == 7


def test_dataset_mode_index_rows_match_the_outputs(photos, tmp_path):
    out, index = tmp_path / "out", tmp_path / "index.csv"
    result = run_cli("apply", photos / SMALL_FACES[0], photos / SMALL_FACES[1], "--emotion", "happy,sleepy",
                     "--out", out, "--workers", "2", "--index", index, "--json", "--unordered")
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert sorted((Path(r["input"]).name, r["emotion"]) for r in records) == [
        (SMALL_FACES[0], "happy"), (SMALL_FACES[0], "sleepy"), (SMALL_FACES[1], "happy"), (SMALL_FACES[1], "sleepy")]
    rows = list(csv.DictReader(index.open()))
    edited = sum(1 for r in records for face in r["faces"] if face["edited"])
    assert len(rows) == edited == 4
    by_output = {row["output"]: row for row in rows}
    for record in records:
        row = by_output[str(Path(record["output_dir"]) / "output.png")]
        meta = json.loads((Path(record["output_dir"]) / "meta.json").read_text())
        assert row["emotion"] == record["emotion"] and row["backend"] == "landmark-warp"
        assert json.loads(row["parameters"]) == meta["parameters"]
        assert float(row["input_score"]) == meta["faces"][0]["expression"]["scores"][record["emotion"]]
        assert float(row["output_score"]) == meta["output_faces"][0]["expression"]["scores"][record["emotion"]]
    happy = [row for row in rows if row["emotion"] == "happy"]
    assert all(float(row["output_score"]) > float(row["input_score"]) for row in happy)  # the edit is measured


def test_videos_and_photos_share_the_workers(photos, tmp_path):
    video = clip(tmp_path / "clip.mp4", frames=12)
    out, index = tmp_path / "out", tmp_path / "index.csv"
    result = run_cli("apply", video, photos / SMALL_FACES[0], "--emotion", "happy", "--out", out, "--workers", "2",
                     "--json", "--index", index)
    assert result.returncode == 0, result.stderr
    film, still = json_lines(result.stdout)
    assert film["input"] == str(video) and film["frames"] == 12 and film["status"] == "ok"
    assert (Path(film["output_dir"]) / "output.mp4").stat().st_size > 0
    assert still["status"] == "ok" and (Path(still["output_dir"]) / "output.png").exists()
    rows = list(csv.DictReader(index.open()))
    assert [row["output"] for row in rows] == [str(Path(film["output_dir"]) / "output.mp4"),
                                               str(Path(still["output_dir"]) / "output.png")]


def test_segmind_workers_keep_one_request_pace(photos, tmp_path):
    from plugins.segmind.fake_server import FakeSegmind

    key = "sk-test-batch-pace"
    with FakeSegmind(api_key=key) as server:
        arrivals: list[float] = []
        record = server._record  # time-stamp each request as the real server receives it

        def stamped(handler, body):
            arrivals.append(time.monotonic())
            record(handler, body)

        server._record = stamped
        env = clean_env(SEGMIND_API_KEY=key, FACESYNTH_SEGMIND_URL=server.base_url, FACESYNTH_SEGMIND_RPM="120",
                        FACESYNTH_CACHE_DIR=str(tmp_path / "cache"))
        for name in SMALL_FACES:  # a second copy of each: four inputs per worker... two workers, one account
            shutil.copyfile(photos / name, photos / f"copy_{name}")
        result = run_cli("apply", photos, "--emotion", "happy", "--backend", "segmind", "--out", tmp_path / "out",
                         "--workers", "2", "--json", "--no-cache", env=env)
    assert result.returncode == 0, result.stderr
    assert [r["backend"] for r in json_lines(result.stdout)] == ["segmind"] * 6
    assert len(arrivals) == 6
    times = sorted(arrivals)
    gaps = np.diff(times)
    # 120 a minute for the account: starts 0.5 s apart whichever worker sends (two private pacers would send pairs
    # at once); arrivals jitter by the upload's size, hence the margins.
    assert times[-1] - times[0] >= 2.2 and gaps.min() >= 0.25, gaps


def test_bad_batch_options_are_usage_errors(tmp_path):
    result = run_cli("apply", SAMPLE, "--emotion", "happy", "--workers", "0", "--out", tmp_path)
    assert result.returncode == 2
    assert_one_line_error(result, "--workers takes 1 or more")
    result = run_cli("apply", SAMPLE, "--emotion", "all", "--emotion", "angry", "--out", tmp_path)
    assert result.returncode == 2
    assert_one_line_error(result, "give it alone")
    result = run_cli("apply", SAMPLE, "--emotion", "happy", "--retry-failed", "--out", tmp_path)
    assert result.returncode == 2
    assert_one_line_error(result, "--retry-failed goes with --manifest")


def test_an_interrupted_job_loses_only_inputs_in_flight_and_resumes(photos, tmp_path):
    import signal
    import sys

    for name in SMALL_FACES:
        shutil.copyfile(photos / name, photos / f"copy_{name}")
    out, manifest = tmp_path / "out", tmp_path / "jobs.jsonl"
    command = ["apply", str(photos), "--emotion", "happy", "--out", str(out), "--workers", "2", "--json",
               "--manifest", str(manifest)]
    job = subprocess.Popen([sys.executable, "-m", "engine", *command], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=clean_env(), cwd=Path(__file__).parent.parent)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (manifest.exists() and manifest.read_text().count("\n") >= 1):
        time.sleep(0.05)
    job.send_signal(signal.SIGINT)
    _, stderr = job.communicate(timeout=60)
    assert job.returncode == 130 and "facesynth: interrupted" in stderr, stderr
    done = json_lines(manifest.read_text())
    assert 1 <= len(done) < 6
    statuses = [m["status"] for m in metas(out)]
    assert set(statuses) <= {"ok", "interrupted"} and statuses.count("ok") >= len(done)  # nothing left pending

    rerun = run_cli(*command)
    assert rerun.returncode == 0, rerun.stderr
    records = json_lines(rerun.stdout)
    assert len(records) == 6 and {r["status"] for r in records} == {"ok"}
    assert sum(bool(r.get("resumed")) for r in records) == len(done)  # what was recorded is not done again


# ---------------------------------------------------------------- a real local Ray

def test_ray_same_pixels_survives_a_killed_worker_and_resumes(photos, tmp_path):
    pytest.importorskip("ray")
    local_out, ray_out = tmp_path / "local", tmp_path / "ray"
    common = ("--emotion", "happy", "--backend", "kill-once", "--plugins-dir", CRASHING, "--json")
    local = run_cli("apply", photos, *common, "--out", local_out, "--workers", "2")
    assert local.returncode == 0, local.stderr

    marker = tmp_path / "killed"
    manifest, index = tmp_path / "jobs.jsonl", tmp_path / "index.csv"
    command = ("apply", photos, *common, "--out", ray_out, "--ray", "--workers", "2", "--manifest", manifest,
               "--index", index)
    env = clean_env(FACESYNTH_TEST_KILL_MARKER=str(marker))
    first = run_cli(*command, env=env)
    assert first.returncode == 0, first.stderr
    assert marker.exists()  # a Ray worker was SIGKILLed in the middle of an input...
    records = json_lines(first.stdout)
    assert [r["status"] for r in records] == ["ok"] * 3  # ...and that input was edited again on a fresh one
    local_dirs = {Path(r["input"]).name: Path(r["output_dir"]) for r in json_lines(local.stdout)}
    ray_dirs = {Path(r["input"]).name: Path(r["output_dir"]) for r in records}
    assert ray_dirs.keys() == local_dirs.keys() == set(SMALL_FACES)
    for name in SMALL_FACES:  # the same pixels as without Ray (the captions name the same backend)
        for picture in ("output.png", "compare.png"):
            assert np.array_equal(cv2.imread(str(ray_dirs[name] / picture)),
                                  cv2.imread(str(local_dirs[name] / picture))), (name, picture)
    assert len(captures(ray_out)) == 3 and {m["status"] for m in metas(ray_out)} == {"ok"}  # nothing half-written
    rows = list(csv.DictReader(index.open()))
    assert sorted(row["output"] for row in rows) == sorted(str(Path(r["output_dir"]) / "output.png") for r in records)

    started = time.perf_counter()
    second = run_cli(*command, env=env)
    assert second.returncode == 0, second.stderr
    again = json_lines(second.stdout)
    assert all(r.get("resumed") for r in again) and [r["output_dir"] for r in again] == \
        [r["output_dir"] for r in records]
    assert len(captures(ray_out)) == 3 and len(json_lines(manifest.read_text())) == 3  # no work done
    assert time.perf_counter() - started < 20  # Ray was not even started
    assert list(csv.DictReader(index.open())) == rows


# ---------------------------------------------------------------- a full disk

@pytest.fixture
def tiny_disk(tmp_path):
    """A real 3 MB tmpfs (needs root and permission to mount; skipped otherwise)."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a real full disk needs root (mount -t tmpfs)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_full_disk_stops_the_batch_cleanly(dev_faces, tmp_path, tiny_disk):
    folder = tmp_path / "six"
    folder.mkdir()
    for number in range(6):  # six 500x500 photos: about 1.6 MB of PNGs per capture, the disk holds 3 MB
        shutil.copyfile(dev_faces / SMALL_FACES[number % 2], folder / f"face_{number}.jpg")
    manifest = tmp_path / "jobs.jsonl"
    result = run_cli("apply", folder, "--emotion", "happy", "--out", tiny_disk, "--workers", "1", "--json",
                     "--manifest", manifest)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    records = json_lines(result.stdout)
    assert any(r["status"] == "ok" for r in records), (result.stdout, result.stderr)
    failed = [r for r in records if r["status"] == "failed"]
    assert failed and all("no space left on device" in r["error"] for r in failed)
    assert_one_line_error(result, "no space left on device", "stopped: no space left on device",
                          "not started")
    assert len(records) < 6  # the job stopped handing out work
    statuses = [m["status"] for m in metas(tiny_disk)]
    assert "pending" not in statuses and statuses.count("ok") == sum(r["status"] == "ok" for r in records)
    lines = json_lines(manifest.read_text())
    assert all(line["rerun"] for line in lines if line["record"]["status"] == "failed")  # a rerun carries on


# ---------------------------------------------------------------- the shared Segmind pace

def _paced_starts(path: str, count: int, starts) -> None:
    from plugins.segmind.pace import FilePacer

    pacer = FilePacer(path)
    for _ in range(count):
        pacer.wait(600.0)  # one request every 0.1 s for the whole account
        starts.append(time.time())


def test_processes_share_one_request_pace(tmp_path):
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        starts = manager.list()
        workers = [context.Process(target=_paced_starts, args=(str(tmp_path / "pace"), 5, starts)) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        times = sorted(starts)
    assert len(times) == 10
    gaps = np.diff(times)
    # Two processes, one pace: ten starts span nine intervals (two private pacers would finish in about half),
    # and no two start together (the margin is the scheduling jitter of a busy machine).
    assert times[-1] - times[0] >= 0.88 and gaps.min() >= 0.05, gaps


def test_an_index_or_manifest_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    # It was found out only at the end: every output stored, then an internal error and no index.
    (tmp_path / "text.jpg").write_text("not a folder")
    out = tmp_path / "out"
    for flag, path in (("--index", tmp_path / "text.jpg" / "i.csv"), ("--manifest", tmp_path)):
        result = run_cli("apply", SAMPLE, "--emotion", "happy", "--out", out, flag, path)
        assert result.returncode == 2, result.stderr
        assert_one_line_error(result, flag)
        assert not out.exists() or not any(out.iterdir())  # nothing was edited
    # a missing folder is made, and the index written
    result = run_cli("apply", SAMPLE, "--emotion", "happy", "--out", out, "--index", tmp_path / "new" / "i.csv")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "new" / "i.csv").read_text().count("\n") == 2
