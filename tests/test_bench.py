"""`facesynth bench`: it runs the sections asked for and prints their figures (speed itself is never asserted)."""

import json

import numpy as np

from tests.helpers import assert_one_line_error, run_cli, write_video


def test_bench_prints_its_figures_as_json():
    result = run_cli("bench", "--only", "preprocess", "--only", "warp", "--frames", "12", "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["machine"]["cores"] >= 1 and figures["reference_ms"] > 0
    assert figures["preprocess"]["frames"] == 12 and figures["preprocess"]["frames_with_face"] == 12
    assert 0 < figures["preprocess"]["ms"]["median"] <= figures["preprocess"]["ms"]["p95"]
    assert set(figures["warp"]) == {"happy", "surprised", "angry", "sleepy"}
    for ms in figures["warp"].values():
        assert 0 < ms["median"] <= ms["p95"] and ms["passes"] == 3
        assert 0 < ms["quietest_pass_median"] <= ms["p95"]
        assert len(ms["pass_medians"]) == 3 and min(ms["pass_medians"]) == ms["quietest_pass_median"]
    readings = figures["warp_call_reference_ms"]  # the machine's speed during each pass
    assert len(readings) == 3 and all(value > 0 for value in readings)
    assert "still" not in figures and "segmind" not in figures
    assert figures["peak_memory_mb"] > 0


def test_bench_still_and_segmind_sections_print_their_figures():
    result = run_cli("bench", "--only", "still", "--only", "segmind", "--frames", "10", "--json", timeout=600)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["still"]["megapixels"] >= 11.5
    assert 0 < figures["still"]["ms"]["synthesize"]["median"] < figures["still"]["ms"]["total"]["median"]
    assert figures["segmind"]["calls"] == 20 and figures["segmind"]["client_ms"]["median"] > 0
    assert 0 < figures["segmind"]["share_of_documented_round_trip"] < 1
    assert "warp" not in figures and "preprocess" not in figures


def test_bench_text_names_each_figure():
    result = run_cli("bench", "--only", "warp", "--frames", "10", timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("machine:") and lines[1].startswith("reference workload:")
    assert sum(line.startswith("warp ") for line in lines) == 4
    assert sum(line.startswith("small-call reference during the warp passes: ") for line in lines) == 1
    assert lines[-1].startswith("peak memory:")


def test_bench_refuses_bad_input(tmp_path):
    assert_one_line_error(run_cli("bench", "--frames", "3"), "--frames must be at least 10")
    missing = run_cli("bench", "--only", "warp", "--source", tmp_path / "none.mp4")
    assert missing.returncode == 2
    assert_one_line_error(missing, "none.mp4")
    noise = tmp_path / "noise.mp4"  # frames without a face
    write_video(noise, [np.random.default_rng(value).integers(0, 255, (240, 320, 3), np.uint8) for value in range(12)])
    faceless = run_cli("bench", "--only", "warp", "--source", noise, "--frames", "10")
    assert faceless.returncode == 2
    assert_one_line_error(faceless, "0 of the 10 frames", "video of a face")


def test_bench_live_runs_the_clip_at_three_sizes_and_three_faces():
    result = run_cli("bench", "--live", "--frames", "12", "--json", timeout=600)
    assert result.returncode == 0, result.stderr
    live = json.loads(result.stdout)["live"]
    runs = live["runs"]
    assert list(runs) == ["480p", "720p", "1080p", "720p, 3 faces"]
    assert [tuple(run["size"]) for run in runs.values()] == [(640, 480), (1280, 720), (1920, 1080), (1280, 720)]
    for run in runs.values():
        assert run["frames"] == 12 and run["frames_with_face"] == 12 and run["fps"] > 0
        assert 0 < run["latency_ms"]["median"] <= run["latency_ms"]["p95"]
        assert set(run["stages_ms"]) == {"preprocess", "synthesize", "render"}
    assert runs["720p, 3 faces"]["faces_per_frame_median"] == 3 and runs["1080p"]["faces_per_frame_median"] == 1
    assert live["ratio_1080p_to_480p"]["fps"] == round(runs["1080p"]["fps"] / runs["480p"]["fps"], 2)
