"""The event bus: names, typed payloads, isolated subscribers, removal."""

import numpy as np
import pytest
from structlog.testing import capture_logs

from engine.capture import Frame
from engine.events import CaptureEvent, ErrorEvent, Event, EventBus, StatsEvent


def test_event_names_are_the_stages():
    assert [e.value for e in Event] == ["capture", "preprocess", "synthesize", "render", "error", "stats"]


def test_failing_subscriber_is_isolated_and_reported():
    bus = EventBus()
    seen, errors = [], []
    bus.on(Event.CAPTURE, lambda payload: 1 / 0)
    bus.on(Event.CAPTURE, seen.append)
    bus.on(Event.ERROR, errors.append)
    frame = Frame(np.zeros((2, 2, 3), np.uint8), index=7)
    with capture_logs() as logs:
        bus.emit(Event.CAPTURE, CaptureEvent(frame))
    assert seen and seen[0].frame is frame  # the second subscriber still ran
    assert errors and errors[0].kind == "ZeroDivisionError" and errors[0].stage.startswith("subscriber:")
    assert any(entry["event"] == "subscriber_failed" for entry in logs)


def test_failing_error_subscriber_does_not_recurse():
    bus = EventBus()
    bus.on(Event.ERROR, lambda payload: 1 / 0)
    with capture_logs() as logs:
        bus.emit(Event.ERROR, ErrorEvent(stage="x", message="y"))
    assert [entry["event"] for entry in logs] == ["subscriber_failed"]


def test_payload_type_is_checked():
    with pytest.raises(TypeError, match="StatsEvent"):
        EventBus().emit(Event.STATS, ErrorEvent(stage="x", message="y"))


def test_listeners_are_tracked_and_removable():
    bus = EventBus()
    got = []
    remove = bus.on(Event.STATS, got.append)
    bus.on(Event.STATS, got.append)
    assert bus.listener_count(Event.STATS) == 2
    remove()
    bus.emit(Event.STATS, StatsEvent({"fps": 1}))
    assert len(got) == 1
    bus.remove_all()
    bus.emit(Event.STATS, StatsEvent({"fps": 2}))
    assert len(got) == 1 and bus.listener_count() == 0


def test_error_without_subscribers_is_only_logged():
    with capture_logs() as logs:
        EventBus().emit(Event.ERROR, ErrorEvent(stage="capture", message="bad file"))
    assert logs[0]["event"] == "error_event" and logs[0]["message"] == "bad file"
