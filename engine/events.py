"""The event bus: stage events over pyee, with typed payloads and isolated subscribers.

Event names are an Enum; each event carries one frozen dataclass. A subscriber that raises is logged and
reported as an `error` event; it never breaks the pipeline or the other subscribers.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import structlog
from pyee import EventEmitter

log = structlog.get_logger()


class Event(str, enum.Enum):
    """The events the engine emits, in pipeline order, plus `error` and `stats`."""

    CAPTURE = "capture"
    PREPROCESS = "preprocess"
    SYNTHESIZE = "synthesize"
    RENDER = "render"
    ERROR = "error"
    STATS = "stats"


@dataclass(frozen=True, eq=False)
class CaptureEvent:
    """A frame entered the pipeline."""

    frame: Any  # engine.capture.Frame


@dataclass(frozen=True, eq=False)
class PreprocessEvent:
    """Faces were found in a frame (possibly none): every face found, and those chosen for editing."""

    frame: Any
    faces: tuple = ()
    elapsed_ms: float = 0.0
    edited: tuple = ()


@dataclass(frozen=True, eq=False)
class SynthesizeEvent:
    """A backend rendered the expression on a frame."""

    frame: Any
    result: Any  # engine.backend.SynthesisResult
    elapsed_ms: float = 0.0


@dataclass(frozen=True, eq=False)
class RenderEvent:
    """The side-by-side composite of a frame is ready for the sinks."""

    frame: Any
    output: Any  # numpy image, BGR
    composite: Any  # numpy image, BGR
    elapsed_ms: float = 0.0


@dataclass(frozen=True)
class ErrorEvent:
    """Something failed: a stage, a backend or a subscriber. `stage` names where."""

    stage: str
    message: str
    kind: str = ""
    frame_index: int | None = None


@dataclass(frozen=True)
class StatsEvent:
    """Figures about the pipeline (per-stage timings, frames per second, dropped frames)."""

    figures: Mapping[str, Any] = field(default_factory=dict)


PAYLOAD_TYPES: Mapping[Event, type] = {
    Event.CAPTURE: CaptureEvent,
    Event.PREPROCESS: PreprocessEvent,
    Event.SYNTHESIZE: SynthesizeEvent,
    Event.RENDER: RenderEvent,
    Event.ERROR: ErrorEvent,
    Event.STATS: StatsEvent,
}


class EventBus:
    """A pyee emitter whose listeners are isolated and tracked so they can all be removed."""

    def __init__(self) -> None:
        self._emitter = EventEmitter()
        self._listeners: list[tuple[Event, Callable[[Any], None]]] = []
        self._lock = threading.Lock()

    def on(self, event: Event, handler: Callable[[Any], None]) -> Callable[[], None]:
        """Subscribe `handler` to `event`; returns a function that unsubscribes it."""
        event = Event(event)

        def guarded(payload: Any) -> None:
            try:
                handler(payload)
            except Exception as exc:  # a subscriber must never break the pipeline
                name = getattr(handler, "__qualname__", repr(handler))
                log.error("subscriber_failed", bus_event=event.value, subscriber=name, error=str(exc))
                if event is not Event.ERROR:
                    self.emit(Event.ERROR, ErrorEvent(stage=f"subscriber:{name}", message=str(exc),
                                                      kind=type(exc).__name__))

        with self._lock:
            self._emitter.on(event.value, guarded)
            self._listeners.append((event, guarded))

        def remove() -> None:
            with self._lock:
                if (event, guarded) in self._listeners:
                    self._listeners.remove((event, guarded))
                    self._emitter.remove_listener(event.value, guarded)

        return remove

    def emit(self, event: Event, payload: Any) -> None:
        """Send `payload` to every subscriber of `event`; the payload type must match the event."""
        event = Event(event)
        expected = PAYLOAD_TYPES[event]
        if not isinstance(payload, expected):
            raise TypeError(f"{event.value} carries {expected.__name__}, not {type(payload).__name__}")
        if event is Event.ERROR and not self._emitter.listeners(event.value):
            # pyee raises an unheard "error" event; ours are reports, so an unheard one is only logged.
            log.info("error_event", stage=getattr(payload, "stage", ""), message=getattr(payload, "message", ""))
            return
        self._emitter.emit(event.value, payload)

    def listener_count(self, event: Event | None = None) -> int:
        """How many subscribers are attached (to one event, or in all)."""
        with self._lock:
            return sum(1 for name, _ in self._listeners if event is None or name is Event(event))

    def remove_all(self) -> None:
        """Detach every subscriber this bus added."""
        with self._lock:
            for event, handler in self._listeners:
                self._emitter.remove_listener(event.value, handler)
            self._listeners.clear()
