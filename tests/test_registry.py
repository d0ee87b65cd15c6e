"""The registry's rules: precedence of sources, lookups that explain themselves, mixing presets."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from engine.errors import UsageError
from engine.registry import BUILTIN, DROP_IN, ENTRY_POINT, BackendEntry, Registry, make_emotion


def emotion(emotion_id, kind, **params):
    return make_emotion(emotion_id, params or {"smile": 0.5}, source=f"{kind} source", kind=kind)


def test_a_later_source_overrides_an_earlier_one_and_says_so():
    registry = Registry()
    registry.add_emotion(emotion("joy", BUILTIN, smile=0.5))
    with capture_logs() as logs:
        registry.add_emotion(emotion("joy", DROP_IN, smile=1.0))
        registry.add_emotion(emotion("joy", ENTRY_POINT, smile=0.2))  # ranks below the drop-in: ignored
    assert registry.emotions["joy"].params == {"smile": 1.0}
    assert [e["event"] for e in logs] == ["plugin_override", "override_ignored"]


def test_unknown_ids_are_usage_errors_that_list_the_known_ones():
    registry = Registry()
    registry.add_emotion(emotion("joy", BUILTIN))
    with pytest.raises(UsageError, match="unknown emotion 'glee'; known emotions: joy"):
        registry.emotion("glee")
    with pytest.raises(UsageError, match="unknown backend 'gpu'; known backends: auto"):
        registry.backend("gpu")
    assert registry.emotion("  JOY ").id == "joy"


def test_emotions_mix_by_weight_and_scale_by_intensity_then_overrides_apply():
    registry = Registry()
    registry.add_emotion(emotion("a", BUILTIN, smile=1.0, eyebrow=4))
    registry.add_emotion(emotion("b", BUILTIN, aaa=40))
    vector = registry.expression([("a", 0.5), ("b", 0.5)], intensity=1.0, overrides={"eyebrow": -3})
    assert vector.as_dict()["smile"] == pytest.approx(0.5) and vector.as_dict()["aaa"] == pytest.approx(20)
    assert vector.as_dict()["eyebrow"] == -3
    assert registry.expression([("a", 1.0)], intensity=1.5).as_dict()["smile"] == pytest.approx(1.3)  # clamped


def test_registration_refuses_bad_ids_and_values():
    with pytest.raises(ValueError, match="non-empty name"):
        make_emotion("two words", {"smile": 1})
    with pytest.raises(ValueError, match="smile=5 is out of range"):
        make_emotion("grin", {"smile": 5})


def test_the_listing_survives_a_backend_whose_checks_raise():
    class Broken:
        id, label = "broken", "Broken"

        def availability(self, settings):
            raise RuntimeError("kaput")

        def account(self, settings):
            raise RuntimeError("also kaput")

        def synthesize(self, request):
            raise AssertionError("not called")

    registry = Registry()
    registry.add_backend(BackendEntry("broken", "Broken", Broken(), "test", DROP_IN))
    row = registry.listing(None)["backends"][0]
    assert row["status"] == "unavailable" and row["reason"] == "broken failed in availability: RuntimeError: kaput"
    assert "account" not in row
