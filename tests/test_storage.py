"""Capture folders: unique names, atomic files, the input first, newest first in the gallery."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from engine.errors import UsageError
from engine.storage import CaptureStore, check_output_dir, read_meta


def test_each_capture_gets_its_own_folder_even_within_one_microsecond(tmp_path):
    store = CaptureStore(tmp_path / "out")
    folders = {store.new("photo.jpg").folder for _ in range(5)}
    assert len(folders) == 5 and all(folder.name.endswith("photo") or "photo-" in folder.name for folder in folders)


def test_files_are_written_whole_and_meta_merges_fields(tmp_path):
    store = CaptureStore(tmp_path)
    capture = store.new("a.png", {"status": "pending"})
    capture.write_image("input.png", np.full((10, 12, 3), 7, np.uint8))
    capture.write_meta(status="ok", faces=[{"box": [1, 2, 3, 4]}], score=np.float32(0.5))
    meta = read_meta(capture.folder)
    assert meta["status"] == "ok" and meta["source"] == "a.png" and meta["score"] == 0.5 and meta["version"] == 1
    assert sorted(os.listdir(capture.folder)) == ["input.png", "meta.json"]  # no temporary file left behind


def test_the_gallery_lists_captures_newest_first_and_only_those_with_metadata(tmp_path):
    store = CaptureStore(tmp_path)
    first = store.new("one.png")
    first.write_meta()
    second = store.new("two.png")
    second.write_meta()
    (tmp_path / "stray").mkdir()
    assert store.list() == [second.folder, first.folder]


def test_an_unwritable_output_folder_is_a_usage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="cannot write to the output folder .*choose another with --out"):
        check_output_dir(blocker / "sub")


def test_a_failing_backend_leaves_the_input_and_a_failed_record(tmp_path, landmarker):
    import cv2

    from engine.capture import Frame
    from engine.config import load_settings
    from engine.pipeline import Pipeline
    from engine.plugins import load_plugins
    from engine.registry import DROP_IN, BackendEntry
    from tests.helpers import SAMPLE

    class Fails:
        id, label = "fails", "Fails"

        def availability(self, settings):
            return True, ""

        def synthesize(self, request):
            raise RuntimeError("out of memory")

    registry = load_plugins(load_settings({}, env={}))
    registry.add_backend(BackendEntry("fails", "Fails", Fails(), "test", DROP_IN))
    pipeline = Pipeline(registry, load_settings({}, env={}), landmarker=landmarker)
    capture, outcome = pipeline.store_capture(Frame(cv2.imread(str(SAMPLE))), registry.expression([("happy", 1)]),
                                              "fails", CaptureStore(tmp_path), {})
    meta = json.loads((capture.folder / "meta.json").read_text())
    assert meta["status"] == "failed" and "fails failed in synthesize: RuntimeError: out of memory" in meta["errors"][0]
    assert (capture.folder / "input.png").is_file() and not (capture.folder / "output.png").exists()


def test_a_file_in_the_way_of_an_output_folder_is_named_as_such_with_the_right_option(tmp_path):
    # `analyze --draw text.jpg` said "File exists; choose another with --out" (the flag was --draw).
    blocker = tmp_path / "text.jpg"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="a file is in the way where a folder should be; choose another with --draw"):
        check_output_dir(blocker, "--draw")
    with pytest.raises(UsageError, match="a file is in the way"):
        check_output_dir(blocker / "sub")
