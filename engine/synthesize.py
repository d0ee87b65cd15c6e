"""The synthesize stage: choose a backend, call it through the guard, fall back along `auto`.

Backends declare what they can do: `live` (fast enough for every frame of a stream) and `rank` (higher is
tried first by `auto`); the core names none of them. `Synthesizer` serves stills (with the `auto` fallback and
a time-out) and `LiveBackend` serves streams (one backend, a time-out watch, and a back-off after a failure
during which frames pass through unedited). The `synthesize` event is emitted here and nowhere else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import structlog

from engine.backend import SynthesisRequest, SynthesisResult
from engine.capture import Frame
from engine.config import Settings
from engine.errors import BackendError, BackendUnavailable, FaceSynthError, UsageError
from engine.events import Event, EventBus, SynthesizeEvent
from engine.expression import Expression
from engine.face import Face
from engine.guard import failure_reason, guard
from engine.registry import BackendEntry, Registry

log = structlog.get_logger()

AUTO = "auto"
STILL_TIMEOUT_S = 600.0  # a cloud call may wait out a rate limit; past this a still's backend is given up on
LIVE_TIMEOUT_S = 3.0  # a frame's backend call that takes longer is abandoned: live mode shows unedited frames
BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # waits before retrying a backend that failed, by failures in a row


def is_live_capable(entry: BackendEntry) -> bool:
    """Whether a backend says it is fast enough for every frame of a stream (`live = True`)."""
    return bool(getattr(entry.backend, "live", False))


def rank(entry: BackendEntry) -> float:
    """A backend's rank for `auto` (higher is tried first); 0 when it declares none or a non-number."""
    value = getattr(entry.backend, "rank", 0)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def check_result(backend_id: str, result: Any, image: np.ndarray) -> SynthesisResult:
    """`result` if it is an edited picture of `image`'s size; otherwise a `BackendError` saying what came back."""
    if not isinstance(result, SynthesisResult):
        raise BackendError(f"{backend_id} returned {type(result).__name__} instead of a SynthesisResult")
    output = result.image
    if not isinstance(output, np.ndarray) or output.dtype != np.uint8 or output.shape != image.shape:
        what = (f"a {output.dtype} array of shape {output.shape}" if isinstance(output, np.ndarray)
                else type(output).__name__)
        raise BackendError(f"{backend_id} returned {what} instead of an 8-bit picture of the input's shape "
                           f"{image.shape}")
    return result


@dataclass
class Synthesis:
    """One synthesis: the result, the backend that made it, why others were passed over, and the time taken."""

    result: SynthesisResult
    backend: str
    fallback: str = ""
    elapsed_ms: float = 0.0


class Synthesizer:
    """Calls backends for frames: chosen by id or by `auto`, always through the guard."""

    def __init__(self, registry: Registry, settings: Settings, bus: EventBus,
                 timeout_s: float | None = STILL_TIMEOUT_S) -> None:
        self.registry, self.settings, self.bus, self.timeout_s = registry, settings, bus, timeout_s

    def candidates(self, backend_id: str, live: bool = False) -> list[BackendEntry]:
        """The backends to try for `backend_id`, best first: the one named, or for `auto` every backend by
        rank (for streams only the live-capable ones)."""
        if backend_id != AUTO:
            return [self.registry.backend(backend_id)]
        entries = [entry for entry in self.registry.backends.values() if not live or is_live_capable(entry)]
        return sorted(entries, key=lambda entry: (-rank(entry), entry.id))

    def live_entry(self, backend_id: str) -> BackendEntry:
        """The backend a stream uses: the one asked for when it is live-capable, else the best one that is."""
        wanted = self.candidates(backend_id, live=backend_id == AUTO)
        if wanted and is_live_capable(wanted[0]):
            return wanted[0]
        capable = self.candidates(AUTO, live=True)
        if not capable:
            raise UsageError("no backend can run live (none declares live = True)")
        log.info("live_preview_backend", wanted=backend_id, used=capable[0].id)
        return capable[0]

    def availability(self, entry: BackendEntry) -> tuple[bool, str]:
        """Whether a backend can run now, and why not; a failing check counts as unavailable."""
        try:
            ok, reason = guard(entry.id, "availability", entry.backend.availability, self.settings)
        except FaceSynthError as exc:
            return False, str(exc)
        return bool(ok), str(reason or "")

    def account(self, entry: BackendEntry) -> dict[str, Any]:
        """A backend's account figures (credits, ...) if it reports any; nothing when it fails."""
        account = getattr(entry.backend, "account", None)
        if not callable(account):
            return {}
        try:
            figures = guard(entry.id, "account", account, self.settings)
        except FaceSynthError as exc:
            log.info("account_failed", backend=entry.id, reason=str(exc))
            return {}
        return dict(figures) if isinstance(figures, dict) else {}

    def prepare(self, backend_id: str, live: bool = False) -> None:
        """Let the backends `backend_id` would use load what their first request needs; a failure is logged
        (the backend reports it again when it is used)."""
        entries = [self.live_entry(backend_id)] if live else self.candidates(backend_id)
        for entry in entries:
            prepare = getattr(entry.backend, "prepare", None)
            if callable(prepare):
                try:
                    guard(entry.id, "prepare", prepare, self.settings)
                except FaceSynthError as exc:
                    log.warning("backend_prepare_failed", backend=entry.id, reason=str(exc))

    def synthesize_with(self, entry: BackendEntry, request: SynthesisRequest, frame: Frame,
                        timeout_s: float | None = None) -> SynthesisResult:
        """One backend's result for `request` (checked), announced as a `synthesize` event."""
        started = time.perf_counter()
        result = guard(entry.id, "synthesize", entry.backend.synthesize, request, timeout=timeout_s)
        result = check_result(entry.id, result, request.image)
        self.bus.emit(Event.SYNTHESIZE, SynthesizeEvent(frame, result, (time.perf_counter() - started) * 1000))
        return result

    def __call__(self, frame: Frame, faces: Sequence[Face], expression: Expression, backend_id: str) -> Synthesis:
        """Render `expression` on `faces` of `frame` with `backend_id`, falling back along the `auto` order when a
        backend is unavailable or fails in a way worth retrying elsewhere. Raises the error that ended it."""
        request = SynthesisRequest(frame.image, tuple(faces), expression, self.settings, False)
        started = time.perf_counter()
        reasons: list[str] = []
        candidates = self.candidates(backend_id)
        if not candidates:
            raise BackendUnavailable("no backend is loaded")
        for position, entry in enumerate(candidates):
            last = position == len(candidates) - 1
            try:
                ok, why = self.availability(entry)
                if not ok:
                    raise BackendUnavailable(f"{entry.id} is unavailable: {why}")
                result = self.synthesize_with(entry, request, frame, self.timeout_s)
                return Synthesis(result, entry.id, "; ".join(reasons), (time.perf_counter() - started) * 1000)
            except BackendError as exc:
                if backend_id != AUTO or last or not (isinstance(exc, BackendUnavailable) or exc.retryable):
                    raise
                reasons.append(str(exc))
                log.warning("backend_fallback", wanted=entry.id, used=candidates[position + 1].id, reason=str(exc))
        raise AssertionError("unreachable: the last candidate returns or raises")


class LiveBackend:
    """The backend of a stream, frame after frame, kept from taking the stream down.

    A failing backend is retried only after a back-off (frames pass through unedited meanwhile, with the
    reason); a call that runs past the time-out is abandoned by the stream's supervisor (`overdue`, `abandon`)
    and the backend is not called again until that call returns.
    """

    def __init__(self, synthesizer: Synthesizer, entry: BackendEntry, timeout_s: float = LIVE_TIMEOUT_S) -> None:
        self.synthesizer, self.entry, self.timeout_s = synthesizer, entry, timeout_s
        self.busy_since: float | None = None
        self.hung = False
        self.failures = 0
        self.retry_at = 0.0
        self.last_error = ""

    @property
    def id(self) -> str:
        """The backend's id."""
        return self.entry.id

    def overdue(self, now: float | None = None) -> bool:
        """Whether the call in progress has run past the time-out (and was not yet abandoned)."""
        started = self.busy_since
        return not self.hung and started is not None and (now or time.perf_counter()) - started > self.timeout_s

    def abandon(self) -> str:
        """Give up on the call in progress; returns the message to show."""
        self.hung = True
        self.last_error = (f"{self.id} did not answer within {self.timeout_s:g} s; showing unedited frames until "
                           "it does")
        log.warning("live_backend_timeout", backend=self.id, seconds=self.timeout_s)
        return self.last_error

    def __call__(self, frame: Frame, faces: Sequence[Face], expression: Expression) -> tuple[np.ndarray, str]:
        """The edited picture, or the unedited one and the reason (a failure, a back-off, a hung backend)."""
        if self.hung:
            return frame.image, self.last_error
        now = time.perf_counter()
        if now < self.retry_at:
            return frame.image, self.last_error
        request = SynthesisRequest(frame.image, tuple(faces), expression, self.synthesizer.settings, True)
        self.busy_since = now
        try:
            result = self.synthesizer.synthesize_with(self.entry, request, frame)
        except BackendError as exc:
            self.failures += 1
            wait = BACKOFF_S[min(self.failures, len(BACKOFF_S)) - 1]
            self.retry_at = time.perf_counter() + wait
            self.last_error = f"{exc} (retrying in {wait:g} s)"
            log.warning("live_backend_failed", backend=self.id, reason=str(exc), retry_in_s=wait)
            return frame.image, self.last_error
        except FaceSynthError as exc:  # about this frame (a face in profile), not the backend: no back-off
            return frame.image, str(exc)
        finally:
            self.busy_since = None
            self.hung = False
        self.failures = 0
        self.last_error = ""
        return result.image, ""


def describe(exc: BaseException) -> str:
    """The one-line reason of any failure (ours as is, anything else with its type)."""
    return str(exc) if isinstance(exc, FaceSynthError) else failure_reason(exc)
