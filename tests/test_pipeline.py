"""The still pipeline and the stages it is made of; plugins that fail at run time never take a command down."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
from structlog.testing import capture_logs

from engine.capture import Frame
from engine.config import load_settings
from engine.errors import BackendError, InputError
from engine.events import Event, EventBus
from engine.guard import guard
from engine.live import LivePipeline, LiveState
from engine.pipeline import Pipeline
from engine.plugins import load_plugins
from engine.registry import DROP_IN, BackendEntry
from engine.synthesize import LiveBackend, Synthesizer, check_result
from tests.helpers import PLUGIN_FIXTURES, SAMPLE, assert_one_line_error, clip, json_lines, run_cli

RUNTIME = PLUGIN_FIXTURES / "broken" / "runtime_errors.py"
OVERRIDE = PLUGIN_FIXTURES / "broken" / "overrides_local.py"


def runtime_registry(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir(exist_ok=True)
    shutil.copy(RUNTIME, folder)
    return load_plugins(load_settings({}, env={}), [str(folder)]), folder


def test_each_stage_announces_its_event_once_per_frame(landmarker):
    import cv2

    registry = load_plugins(load_settings({}, env={}))
    bus = EventBus()
    seen = []
    for event in (Event.CAPTURE, Event.PREPROCESS, Event.SYNTHESIZE, Event.RENDER):
        bus.on(event, lambda payload, name=event: seen.append(name))
    pipeline = Pipeline(registry, load_settings({}, env={}), bus, landmarker)
    outcome = pipeline.process(Frame(cv2.imread(str(SAMPLE))), registry.expression([("happy", 1.0)]), "landmark-warp")
    assert outcome.ok and outcome.backend == "landmark-warp"
    assert seen == [Event.CAPTURE, Event.PREPROCESS, Event.SYNTHESIZE, Event.RENDER]
    assert outcome.composite.shape[1] > 2 * outcome.frame.image.shape[1]  # side by side


def test_a_batch_goes_on_when_the_backend_raises(tmp_path):
    _, folder = runtime_registry(tmp_path)
    second = tmp_path / "b.png"
    shutil.copy(SAMPLE, second)
    result = run_cli("apply", SAMPLE, second, "--emotion", "happy", "--backend", "raises", "--plugins-dir", folder,
                     "--out", tmp_path / "out", "--json")
    assert result.returncode == 1
    records = json_lines(result.stdout)
    assert [r["input"] for r in records] == [str(SAMPLE), str(second)]  # the second input was still done
    for record in records:
        assert record["status"] == "failed"
        assert "raises failed in synthesize: ValueError: the model's weights are corrupt" in record["error"]
        meta = json.loads((tmp_path / "out" / record["output_dir"].split("/")[-1] / "meta.json").read_text())
        assert meta["status"] == "failed" and meta["errors"] == [record["error"]]  # not left "pending"
    assert_one_line_error(result, "ValueError: the model's weights are corrupt")
    assert "internal error" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("facesynth:")]) == 2


@pytest.mark.parametrize("backend, reason", [
    ("garbage", "garbage returned str instead of a SynthesisResult"),
    ("wrong-size", "instead of an 8-bit picture of the input's shape"),
    ("exits", "exits failed in synthesize: SystemExit: 3"),
])
def test_a_backend_returning_garbage_or_exiting_fails_its_input_only(tmp_path, backend, reason):
    _, folder = runtime_registry(tmp_path)
    result = run_cli("apply", SAMPLE, "--emotion", "happy", "--backend", backend, "--plugins-dir", folder,
                     "--out", tmp_path / "out", "--json")
    assert result.returncode == 1
    record = json_lines(result.stdout)[0]
    assert record["status"] == "failed" and reason in record["error"]
    assert (tmp_path / "out" / record["output_dir"].split("/")[-1] / "input.png").is_file()  # nothing lost
    assert_one_line_error(result, reason)


def test_the_guard_names_the_plugin_and_keeps_the_traceback_for_debug():
    def broken():
        raise KeyError("weights")

    with capture_logs() as logs:
        with pytest.raises(BackendError, match=r"^mine failed in synthesize: KeyError: 'weights'$"):
            guard("mine", "synthesize", broken)
    assert any(e["event"] == "plugin_failed" and e["log_level"] == "debug" and e.get("exc_info") for e in logs)
    with pytest.raises(InputError, match="no face"):  # our own errors pass through as they are
        guard("mine", "synthesize", lambda: (_ for _ in ()).throw(InputError("no face")))
    def interrupts():
        raise KeyboardInterrupt  # raised by the plugin itself, on the call's own thread: not the user's Ctrl+C

    with pytest.raises(BackendError, match="mine failed in synthesize: KeyboardInterrupt"):
        guard("mine", "synthesize", interrupts, timeout=5)
    started = time.perf_counter()
    with pytest.raises(BackendError, match="did not answer within 0.2 s"):
        guard("slow", "synthesize", time.sleep, 3, timeout=0.2)
    assert time.perf_counter() - started < 2


def test_a_still_backend_that_never_answers_is_given_up_on(tmp_path, landmarker):
    import cv2

    registry, _ = runtime_registry(tmp_path)
    settings = load_settings({}, env={})
    pipeline = Pipeline(registry, settings, landmarker=landmarker)
    pipeline.synthesizer.timeout_s = 0.3
    started = time.perf_counter()
    outcome = pipeline.process(Frame(cv2.imread(str(SAMPLE))), registry.expression([("happy", 1.0)]), "hangs")
    assert time.perf_counter() - started < 3
    assert not outcome.ok and "hangs did not answer within 0.3 s" in outcome.error


def test_check_result_accepts_only_a_picture_of_the_input():
    from engine.backend import SynthesisResult

    image = np.zeros((20, 30, 3), np.uint8)
    good = SynthesisResult(image.copy(), "x")
    assert check_result("x", good, image) is good
    for bad in (None, SynthesisResult(image[:, :, 0], "x"), SynthesisResult(image.astype(np.float32), "x")):
        with pytest.raises(BackendError, match="^x returned"):
            check_result("x", bad, image)


class Ranked:
    def __init__(self, backend_id, rank, live, ok=True):
        self.id, self.label, self.rank, self.live, self.ok = backend_id, backend_id, rank, live, ok

    def availability(self, settings):
        return self.ok, "" if self.ok else "switched off"

    def synthesize(self, request):
        raise AssertionError("not called")


def test_auto_follows_the_backends_declared_ranks_and_live_capability():
    registry = load_plugins(load_settings({}, env={}))
    for backend in (Ranked("cloud-b", 30, False), Ranked("fast", 5, True), Ranked("crashes", 99, True)):
        registry.add_backend(BackendEntry(backend.id, backend.label, backend, "test", DROP_IN))
    registry.backends["crashes"].backend.rank = "high"  # not a number: counts as 0
    synthesizer = Synthesizer(registry, load_settings({}, env={}), EventBus())
    assert [e.id for e in synthesizer.candidates("auto")][:3] == ["cloud-b", "segmind", "landmark-warp"]
    assert [e.id for e in synthesizer.candidates("auto", live=True)] == ["landmark-warp", "fast", "crashes"]
    assert synthesizer.live_entry("segmind").id == "landmark-warp"  # a cloud backend never runs per frame
    assert synthesizer.live_entry("fast").id == "fast"


def test_availability_and_account_that_raise_are_reported_not_raised():
    class Flaky(Ranked):
        def availability(self, settings):
            raise RuntimeError("network stack exploded")

        def account(self, settings):
            raise OSError("disk gone")

    registry = load_plugins(load_settings({}, env={}))
    registry.add_backend(BackendEntry("flaky", "Flaky", Flaky("flaky", 1, False), "test", DROP_IN))
    synthesizer = Synthesizer(registry, load_settings({}, env={}), EventBus())
    ok, reason = synthesizer.availability(registry.backends["flaky"])
    assert not ok and "flaky failed in availability: RuntimeError: network stack exploded" in reason
    assert synthesizer.account(registry.backends["flaky"]) == {}
    listing = registry.listing(load_settings({}, env={}))
    row = next(r for r in listing["backends"] if r["id"] == "flaky")
    assert row["status"] == "unavailable" and "network stack exploded" in row["reason"]


def test_live_mode_shows_unedited_frames_when_the_local_backend_fails(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    shutil.copy(OVERRIDE, folder)
    stats = tmp_path / "s.json"
    result = run_cli("live", "--source", clip(tmp_path / "c.mp4", 30), "--headless", "--max-frames", 30,
                     "--plugins-dir", folder, "--stats-json", stats, timeout=120)
    assert result.returncode == 1
    figures = json.loads(stats.read_text())
    assert figures["frames"] == 30 and figures["failed_frames"] == figures["frames_with_face"] > 0
    assert "landmark-warp failed in synthesize: ValueError: warp field is not finite" in figures["last_error"]
    assert_one_line_error(result, "left unedited", "warp field is not finite")


def test_live_mode_backs_off_after_a_failure_and_shows_the_frame_unedited(tmp_path):
    registry, _ = runtime_registry(tmp_path)
    synthesizer = Synthesizer(registry, load_settings({}, env={}), EventBus())
    live = LiveBackend(synthesizer, registry.backends["raises"])
    frame = Frame(np.zeros((8, 8, 3), np.uint8))
    calls = []
    original = registry.backends["raises"].backend.synthesize
    registry.backends["raises"].backend.synthesize = lambda request: calls.append(1) or original(request)
    output, problem = live(frame, (object(),), registry.expression([("happy", 1.0)]))
    assert output is frame.image and "ValueError" in problem and "retrying in 0.5 s" in problem
    output, again = live(frame, (object(),), registry.expression([("happy", 1.0)]))
    assert output is frame.image and again == problem and len(calls) == 1  # not called again during the back-off


def test_live_mode_abandons_a_backend_that_does_not_answer(tmp_path):
    registry, _ = runtime_registry(tmp_path)
    settings = load_settings({}, env={})
    from engine.capture import FrameSource

    pipeline = LivePipeline(registry, settings, LiveState([("happy", 1.0)]), "hangs", timeout_s=0.5)
    errors = []
    pipeline.bus.on(Event.ERROR, lambda event: errors.append(event.message))
    source = FrameSource(str(clip(tmp_path / "c.mp4", 20)))
    started = time.perf_counter()
    try:
        figures = pipeline.run(source)
    finally:
        source.close()
    assert time.perf_counter() - started < 4  # the 4 s call was not waited for
    assert any("hangs did not answer within 0.5 s" in message for message in errors)
    assert figures["frames"] >= 19 and figures["failed_frames"] >= 18


def test_a_face_the_backend_refuses_is_not_reported_as_edited(tmp_path, landmarker):
    import cv2

    from engine.backend import SynthesisResult
    from engine.storage import CaptureStore

    class Refuses:
        id, label = "refuses", "Refuses every face"

        def availability(self, settings):
            return True, ""

        def synthesize(self, request):
            skipped = [{"box": list(face.box), "reason": "face in profile"} for face in request.faces[1:]]
            return SynthesisResult(request.image.copy(), self.id, 1, {"skipped": skipped})

    registry = load_plugins(load_settings({}, env={}))
    registry.add_backend(BackendEntry("refuses", "Refuses", Refuses(), "test", DROP_IN))
    image = cv2.imread(str(SAMPLE))
    pair = np.hstack([image, image])  # two faces: the backend edits the first and refuses the second
    path = tmp_path / "pair.png"
    cv2.imwrite(str(path), pair)
    pipeline = Pipeline(registry, load_settings({}, env={}), landmarker=landmarker)
    record = pipeline.apply_file(path, registry.expression([("happy", 1.0)]), "refuses", CaptureStore(tmp_path / "o"),
                                 {})
    assert record["status"] == "ok" and [face["edited"] for face in record["faces"]] == [True, False]
    meta = json.loads((tmp_path / "o" / record["output_dir"].split("/")[-1] / "meta.json").read_text())
    assert [face["edited"] for face in meta["faces"]] == [True, False]
