"""The command line as a user runs it: outputs, exit codes and one-line errors."""

import json
import os
import shutil

import cv2
import numpy as np
import pytest

from tests.helpers import (
    CAT,
    PLUGIN_FIXTURES,
    SAMPLE,
    assert_one_line_error,
    clean_env,
    json_lines,
    png_header,
    run_cli,
)


def test_plugins_json_lists_four_emotions_and_two_backends():
    result = run_cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    emotions = {row["id"]: row for row in listing["emotions"]}
    backends = {row["id"]: row for row in listing["backends"]}
    assert {"angry", "happy", "sleepy", "surprised"} <= set(emotions)
    assert set(backends) == {"landmark-warp", "segmind"}
    for row in listing["emotions"] + listing["backends"]:
        assert set(row) == {"id", "label", "source", "status", "reason"}
    assert backends["landmark-warp"]["status"] == "loaded"
    assert backends["segmind"]["status"] == "unavailable" and "SEGMIND_API_KEY" in backends["segmind"]["reason"]
    assert emotions["skeptical"]["source"].endswith("plugins.d/skeptical.py")


def test_drop_in_folder_from_environment(tmp_path):
    shutil.copy(PLUGIN_FIXTURES / "good" / "calm.py", tmp_path / "calm.py")
    shutil.copy(PLUGIN_FIXTURES / "broken" / "syntax_error.py", tmp_path / "syntax_error.py")
    other = tmp_path / "second"
    other.mkdir()
    shutil.copy(PLUGIN_FIXTURES / "broken" / "raises.py", other / "raises.py")
    env = clean_env(FACESYNTH_PLUGINS_DIR=f"{tmp_path}{os.pathsep}{other}")
    result = run_cli("plugins", "--json", env=env)
    assert result.returncode == 0, result.stderr
    emotions = {row["id"]: row for row in json.loads(result.stdout)["emotions"]}
    assert emotions["calm"]["status"] == "loaded" and emotions["calm"]["source"] == str(tmp_path / "calm.py")
    assert emotions["syntax_error"]["status"] == "failed" and "SyntaxError" in emotions["syntax_error"]["reason"]
    assert emotions["raises"]["status"] == "failed"
    text = run_cli("plugins", env=env)
    assert text.returncode == 0 and "calm" in text.stdout and "failed" in text.stdout


def test_strict_plugins_fail_the_command(tmp_path):
    shutil.copy(PLUGIN_FIXTURES / "broken" / "import_error.py", tmp_path / "import_error.py")
    result = run_cli("plugins", env=clean_env(FACESYNTH_PLUGINS_DIR=str(tmp_path), FACESYNTH_STRICT_PLUGINS="1"))
    assert result.returncode == 1
    assert_one_line_error(result, "import_error", "facesynth_no_such_module")


def test_apply_stores_a_capture(tmp_path):
    result = run_cli("apply", SAMPLE, "--emotion", "happy", "--out", tmp_path, "--json")
    assert result.returncode == 0, result.stderr
    (record,) = json_lines(result.stdout)
    assert set(record) >= {"input", "status", "output_dir", "backend", "faces", "timings_ms", "error"}
    assert record["status"] == "ok" and record["backend"] == "landmark-warp" and record["error"] is None
    assert len(record["faces"]) == 1 and record["faces"][0]["edited"]
    folder = tmp_path / os.path.basename(record["output_dir"])
    assert sorted(p.name for p in folder.iterdir()) == ["compare.png", "input.png", "meta.json", "output.png"]
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["status"] == "ok" and meta["emotion"] == [{"name": "happy", "weight": 1.0}]
    assert meta["parameters"]["smile"] == 1.0 and len(meta["parameters"]) == 12
    assert meta["backend"] == "landmark-warp" and set(meta["timings_ms"]) >= {"preprocess", "synthesize", "render"}
    assert meta["faces"][0]["box"] and meta["faces"][0]["expression"]["scores"]
    stored = cv2.imread(str(folder / "input.png"))
    assert np.array_equal(stored, cv2.imread(str(SAMPLE)))
    output = cv2.imread(str(folder / "output.png"))
    assert output.shape == stored.shape and np.abs(output.astype(int) - stored).max() > 30
    compare = cv2.imread(str(folder / "compare.png"))
    assert compare.shape[1] > 2 * stored.shape[1]


def test_folder_with_good_and_bad_files(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(SAMPLE, folder / "a_good.png")
    (folder / "b_empty.jpg").write_bytes(b"")
    data = SAMPLE.read_bytes()
    (folder / "c_truncated.png").write_bytes(data[: len(data) // 3])
    (folder / "d_text.png").write_text("not an image")
    shutil.copy(CAT, folder / "e_cat.png")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    result = run_cli("apply", folder, "--emotion", "surprised", "--out", tmp_path / "out", "--json")
    assert result.returncode == 1
    records = {os.path.basename(r["input"]): r for r in json_lines(result.stdout)}
    assert set(records) == {"a_good.png", "b_empty.jpg", "c_truncated.png", "d_text.png", "e_cat.png"}
    assert records["a_good.png"]["status"] == "ok"
    assert "empty" in records["b_empty.jpg"]["error"]
    assert "truncated" in records["c_truncated.png"]["error"]
    assert "not an image" in records["d_text.png"]["error"]
    assert records["e_cat.png"]["error"] == "no face found"
    cat_dir = records["e_cat.png"]["output_dir"]
    assert sorted(os.listdir(cat_dir)) == ["input.png", "meta.json"]  # nothing misleading stored
    assert_one_line_error(result, "b_empty.jpg", "no face found")


@pytest.mark.parametrize("args, fragments", [
    (["--emotion", "gleeful"], ["unknown emotion 'gleeful'", "happy"]),
    (["--set", "smile=3"], ["smile=3 is out of range", "-0.3 to 1.3"]),
    (["--emotion", "happy", "--backend", "dall-e"], ["unknown backend 'dall-e'", "landmark-warp"]),
    (["--emotion", "happy", "--intensity", "9"], ["0 to 1.5"]),
    ([], ["--emotion NAME"]),
    (["--emotion", "happy", "--faces", "some"], ["--faces takes"]),
    (["--emotion", "happy", "--bogus"], ["unrecognized arguments: --bogus"]),
])
def test_usage_errors_exit_2(tmp_path, args, fragments):
    result = run_cli("apply", SAMPLE, "--out", tmp_path, *args)
    assert result.returncode == 2, result.stderr
    assert_one_line_error(result, *fragments)
    assert not any(tmp_path.iterdir())  # nothing started


def test_output_folder_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    result = run_cli("apply", SAMPLE, "--emotion", "happy", "--out", blocker / "captures")
    assert result.returncode == 2
    assert_one_line_error(result, "cannot write to the output folder")


def test_huge_image_gets_its_limit_in_the_message(tmp_path):
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header(9000, 7000))
    result = run_cli("apply", huge, "--emotion", "happy", "--out", tmp_path / "out")
    assert result.returncode == 1
    assert_one_line_error(result, "63.0 megapixels, over the limit of 50 megapixels")


def test_failing_backend_keeps_the_input(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "flaky.py").write_text(
        "from engine import hookimpl\nfrom engine.errors import BackendError\n\n"
        "class Flaky:\n    id = 'flaky'\n    label = 'Flaky'\n"
        "    def availability(self, settings):\n        return True, ''\n"
        "    def synthesize(self, request):\n        raise BackendError('the service fell over')\n\n"
        "@hookimpl\ndef register_backends(register):\n    register(Flaky())\n")
    result = run_cli("apply", SAMPLE, "--emotion", "happy", "--backend", "flaky", "--out", tmp_path / "out",
                     "--plugins-dir", plugins, "--json")
    assert result.returncode == 1
    (record,) = json_lines(result.stdout)
    assert record["error"] == "the service fell over"
    folder = record["output_dir"]
    assert sorted(os.listdir(folder)) == ["input.png", "meta.json"]
    meta = json.loads(open(os.path.join(folder, "meta.json")).read())
    assert meta["status"] == "failed" and meta["errors"] == ["the service fell over"]
    assert_one_line_error(result, "the service fell over")


def test_no_command_and_help():
    assert run_cli().returncode == 2
    result = run_cli("apply", "--help")
    assert result.returncode == 0 and "--emotion" in result.stdout and "rotate_pitch" in result.stdout


def _sheet_cells(path, columns):
    """The cells of a one-row contact sheet, each without its caption bar."""
    sheet = cv2.imread(str(path))
    width = sheet.shape[1] // (columns + 1)
    return sheet, [sheet[40:, k * width + 4:(k + 1) * width - 4].astype(int) for k in range(columns + 1)]


def test_sheet_of_the_sample_photo(tmp_path):
    out = tmp_path / "sheet.png"
    result = run_cli("apply", SAMPLE, "--sheet", out, "--emotion", "happy", "--emotion", "sleepy", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["faces"] == 1 and record["columns"] == ["happy", "sleepy"] and record["errors"] == []
    sheet, (original, happy, sleepy) = _sheet_cells(out, 2)
    assert sheet.shape[0] < sheet.shape[1] / 2  # one row of three cells
    for edited in (happy, sleepy):  # the same face, edited: close to the input on the whole, but changed
        difference = np.abs(edited - original)
        assert difference.mean() < 40
        assert (difference.max(axis=-1) > 20).mean() > 0.005  # (sleepy moves only the lids: 1% of the cell)
    assert np.abs(happy - sleepy).mean() > 1.0


def test_sheet_sweep_gives_a_column_per_value(tmp_path):
    from engine.sheet import sweep_values

    out = tmp_path / "sweep.png"
    result = run_cli("apply", SAMPLE, "--sheet", out, "--sweep", "aaa", "--json")
    assert result.returncode == 0, result.stderr
    values = sweep_values("aaa")
    assert json.loads(result.stdout)["columns"] == [f"aaa={v:g}" for v in values]
    _, cells = _sheet_cells(out, len(values))
    closed, widest = cells[1 + values.index(0.0)], cells[-1]
    assert np.abs(closed - cells[0]).max() <= 2  # aaa=0 on a neutral base is the input itself
    assert np.abs(widest - cells[0]).mean() > 2.0


def test_sheet_refuses_bad_input(tmp_path):
    assert_one_line_error(run_cli("apply", SAMPLE, "--sheet", tmp_path / "sheet.jpg"), "ending in .png")
    assert_one_line_error(run_cli("apply", SAMPLE, "--sweep", "smile"), "--sweep goes with --sheet")
    unknown = run_cli("apply", SAMPLE, "--sheet", tmp_path / "s.png", "--sweep", "grin")
    assert unknown.returncode == 2
    assert_one_line_error(unknown, "grin")
    cat = run_cli("apply", CAT, "--sheet", tmp_path / "cat.png")
    assert cat.returncode == 1 and not (tmp_path / "cat.png").exists()
    assert_one_line_error(cat, "no face to put on a sheet", "no face found")


def test_sheet_leaves_out_a_face_it_cannot_edit(dev_faces, tmp_path):
    out = tmp_path / "sheet.png"
    result = run_cli("apply", dev_faces / "interfaces_012.jpg", SAMPLE, "--sheet", out, "--emotion", "happy",
                     "--json")
    assert result.returncode == 1  # something was left out: said on stderr and in the JSON, the sheet is made
    record = json.loads(result.stdout)
    assert record["faces"] == 1 and len(record["errors"]) == 1 and "face in profile" in record["errors"][0]
    assert_one_line_error(result, "interfaces_012.jpg", "face in profile")
    sheet, _ = _sheet_cells(out, 1)
    assert sheet.shape[0] < sheet.shape[1]  # one row: the sample photo's


def test_a_sheet_lists_a_face_too_small_to_edit(tmp_path):
    # A group with one face under min_face_px: it gets no row, and the reason is said (it was dropped silently).
    image = cv2.imread(str(SAMPLE))
    small = cv2.resize(image, None, fx=0.2, fy=0.2, interpolation=cv2.INTER_AREA)
    canvas = np.full((image.shape[0], image.shape[1] + small.shape[1] + 40, 3), 200, np.uint8)
    canvas[:, :image.shape[1]] = image
    canvas[40:40 + small.shape[0], image.shape[1] + 20:image.shape[1] + 20 + small.shape[1]] = small
    group = tmp_path / "bigsmall.png"
    cv2.imwrite(str(group), canvas)
    result = run_cli("apply", group, "--sheet", tmp_path / "sheet.png", "--emotion", "happy", "--json")
    record = json.loads(result.stdout)
    assert record["faces"] == 1 and result.returncode == 1, result.stderr
    assert any("face too small to edit" in error for error in record["errors"]), record
    assert "face too small to edit" in result.stderr


def test_a_face_turned_too_far_is_skipped_with_the_reason(dev_faces, tmp_path, landmarker):
    # A face turned too far to edit cleanly is left as it is, and the reason says so; a photo with no other face
    # is an error with that reason (interfaces_012: a three-quarter view beyond profile, yaw -56 degrees).
    result = run_cli("apply", dev_faces / "interfaces_012.jpg", "--emotion", "surprised", "--out", tmp_path, "--json")
    (record,) = json_lines(result.stdout)
    assert result.returncode == 1 and "turned too far" in record["error"], record
    assert_one_line_error(result, "interfaces_012.jpg", "turned too far")
    # Turned sideways and tilted up or down together counts the same (the angle from the camera: 51 degrees here,
    # 37 with the tilt halved, which is edited).
    from dataclasses import replace

    from engine.backend import SynthesisRequest
    from engine.config import Settings
    from engine.errors import InputError
    from engine.expression import Expression
    from plugins.landmark_warp import LandmarkWarpBackend

    image = cv2.imread(str(dev_faces / "interfaces_081.jpg"))
    (face,) = landmarker.detect(image)
    backend = LandmarkWarpBackend()
    tilted = replace(face, yaw=30.0, pitch=-44.0)
    with pytest.raises(InputError, match="turned too far"):
        backend.synthesize(SynthesisRequest(image, (tilted,), Expression({"aaa": 72}), Settings()))
    done = backend.synthesize(SynthesisRequest(image, (replace(face, yaw=30.0, pitch=-22.0),), Expression({"aaa": 72}),
                                               Settings()))
    assert done.faces_edited == 1 and np.abs(done.image.astype(int) - image).max() > 40
