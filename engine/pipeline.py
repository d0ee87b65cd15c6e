"""The pipeline: capture -> pre-process -> synthesize -> render, each stage announced on the event bus.

`Pipeline.process` runs the four stages on one frame; `Pipeline.apply_file` adds reading the file and storing
the capture (the input is stored before the backend runs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import structlog

from engine.analysis import estimate
from engine.backend import SynthesisRequest, SynthesisResult
from engine.capture import Frame
from engine.config import Settings
from engine.errors import BackendError, BackendUnavailable, FaceSynthError, InputError
from engine.events import (CaptureEvent, ErrorEvent, Event, EventBus, PreprocessEvent, RenderEvent,
                           SynthesizeEvent)
from engine.expression import Expression
from engine.faces import Face, select_faces
from engine.imageio import read_image
from engine.registry import BackendEntry, Registry
from engine.storage import Capture, CaptureStore, side_by_side

log = structlog.get_logger()

AUTO = "auto"
LOCAL_BACKEND = "landmark-warp"
# What `auto` tries, best first: the cloud model for stills, the local engine always.
AUTO_ORDER_STILL = ("segmind", LOCAL_BACKEND)
AUTO_ORDER_LIVE = (LOCAL_BACKEND,)


@dataclass
class Outcome:
    """What happened to one frame: the output, the faces, the backend used, timings and any error."""

    frame: Frame
    faces: list[Face] = field(default_factory=list)
    edited: list[Face] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    result: SynthesisResult | None = None
    composite: np.ndarray | None = None
    backend: str = ""
    fallback: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)
    error: str = ""

    @property
    def ok(self) -> bool:
        """True when an output image was made."""
        return self.result is not None and not self.error


def face_record(face: Face, edited: bool, emotions: Any = None) -> dict[str, Any]:
    """A face as stored in meta.json and printed as JSON."""
    record = {"box": list(face.box), "pose": face.pose, "inter_ocular_px": round(face.inter_ocular_px, 1),
              "edited": edited}
    if emotions is not None:
        record["expression"] = estimate(face.blendshapes, emotions)
    return record


def prepare_backend(backend: Any, backend_id: str, settings: Settings) -> None:
    """Call a backend's optional `prepare(settings)` (it loads what its first request needs); a failure is logged,
    and the backend reports it again when it is used."""
    prepare = getattr(backend, "prepare", None)
    if callable(prepare):
        try:
            prepare(settings)
        except Exception as exc:  # a plugin's code: never let it stop the caller
            log.warning("backend_prepare_failed", backend=backend_id, reason=f"{type(exc).__name__}: {exc}")


class Pipeline:
    """Runs the stages for still images with one landmarker; make one per process (or per thread)."""

    def __init__(self, registry: Registry, settings: Settings, bus: EventBus | None = None,
                 landmarker: Any = None) -> None:
        self.registry = registry
        self.settings = settings
        self.bus = bus or EventBus()
        self._landmarker = landmarker

    @property
    def landmarker(self) -> Any:
        """The still-image landmarker, made on first use."""
        if self._landmarker is None:
            from engine.faces import Landmarker

            self._landmarker = Landmarker(self.settings.landmarker_model)
        return self._landmarker

    def close(self) -> None:
        """Release the landmarker."""
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def prepare(self, backend_id: str) -> None:
        """Let the backends `backend_id` would use load what they need now (see `prepare_backend`)."""
        for entry in self.candidates(backend_id):
            prepare_backend(entry.backend, entry.id, self.settings)

    def candidates(self, backend_id: str, live: bool = False) -> list[BackendEntry]:
        """The backends to try for `backend_id`, best first (one, or the `auto` order)."""
        if backend_id != AUTO:
            return [self.registry.backend(backend_id)]
        order = AUTO_ORDER_LIVE if live else AUTO_ORDER_STILL
        return [self.registry.backends[name] for name in order if name in self.registry.backends]

    def _error(self, stage: str, message: str, frame: Frame, kind: str = "") -> None:
        self.bus.emit(Event.ERROR, ErrorEvent(stage=stage, message=message, kind=kind, frame_index=frame.index))

    def preprocess(self, frame: Frame, outcome: Outcome) -> None:
        """Find faces and choose the ones to edit (skipping those too small to edit well)."""
        started = time.perf_counter()
        outcome.faces = self.landmarker.detect(frame.image)
        outcome.timings_ms["preprocess"] = round((time.perf_counter() - started) * 1000, 2)
        self.bus.emit(Event.PREPROCESS, PreprocessEvent(frame, tuple(outcome.faces), outcome.timings_ms["preprocess"]))
        for face in select_faces(outcome.faces, self.settings.faces):
            if face.inter_ocular_px < self.settings.min_face_px:
                outcome.skipped.append({"box": list(face.box), "reason": f"face too small to edit "
                                        f"({face.inter_ocular_px:.0f} px between the eyes, minimum "
                                        f"{self.settings.min_face_px:g}; setting min_face_px)"})
            else:
                outcome.edited.append(face)

    def synthesize(self, frame: Frame, outcome: Outcome, expression: Expression, backend_id: str,
                   live: bool = False) -> None:
        """Render the expression with the chosen backend, falling back along the `auto` order."""
        request = SynthesisRequest(frame.image, tuple(outcome.edited), expression, self.settings, live)
        reasons: list[str] = []
        started = time.perf_counter()
        candidates = self.candidates(backend_id, live)
        for position, entry in enumerate(candidates):
            last = position == len(candidates) - 1
            try:
                ok, why = entry.backend.availability(self.settings)
                if not ok:
                    raise BackendUnavailable(f"{entry.id} is unavailable: {why}")
                outcome.result = entry.backend.synthesize(request)
                outcome.backend = entry.id
                break
            except BackendError as exc:
                may_fall_back = backend_id == AUTO and not last and (isinstance(exc, BackendUnavailable)
                                                                     or exc.retryable)
                if not may_fall_back:
                    raise
                reasons.append(str(exc))
                log.warning("backend_fallback", wanted=entry.id, used=candidates[position + 1].id, reason=str(exc))
        outcome.fallback = "; ".join(reasons)
        outcome.timings_ms["synthesize"] = round((time.perf_counter() - started) * 1000, 2)
        self.bus.emit(Event.SYNTHESIZE, SynthesizeEvent(frame, outcome.result, outcome.timings_ms["synthesize"]))

    def render(self, frame: Frame, outcome: Outcome, caption: str) -> None:
        """Compose input and output side by side."""
        started = time.perf_counter()
        outcome.composite = side_by_side(frame.image, outcome.result.image, "input", caption)
        outcome.timings_ms["render"] = round((time.perf_counter() - started) * 1000, 2)
        self.bus.emit(Event.RENDER, RenderEvent(frame, outcome.result.image, outcome.composite,
                                                outcome.timings_ms["render"]))

    def process(self, frame: Frame, expression: Expression, backend_id: str, caption: str = "output",
                on_faces: Any = None) -> Outcome:
        """Run pre-process, synthesize and render on one frame. Errors end up in `Outcome.error`.

        `on_faces(outcome)` is called after faces are found and before the backend runs (storage uses it
        to write the input first).
        """
        outcome = Outcome(frame)
        self.bus.emit(Event.CAPTURE, CaptureEvent(frame))
        stage = "preprocess"
        try:
            self.preprocess(frame, outcome)
            if on_faces is not None:
                on_faces(outcome)
            if not outcome.faces:
                raise InputError("no face found")
            if not outcome.edited:
                raise InputError("; ".join(s["reason"] for s in outcome.skipped) or "no face selected by --faces")
            stage = "synthesize"
            self.synthesize(frame, outcome, expression, backend_id)
            stage = "render"
            self.render(frame, outcome, f"{caption} ({outcome.backend})")
        except FaceSynthError as exc:
            outcome.error = str(exc)
            self._error(stage, outcome.error, frame, type(exc).__name__)
        return outcome

    def store_capture(self, frame: Frame, expression: Expression, backend_id: str, store: CaptureStore,
                      meta: dict[str, Any], source: str = "", caption: str = "output",
                      on_faces: Callable[[Capture, Outcome], None] | None = None) -> tuple[Capture, Outcome]:
        """Edit `frame` with `backend_id` and store it as a capture; returns the capture and the outcome.

        The input and its metadata (status pending) are written before the backend runs, so a failing or
        slow backend loses nothing; the outputs and the result fields follow. `on_faces(capture, outcome)` runs
        once faces are found, before the backend.
        """
        capture = store.new(source or frame.source or "capture",
                            {**meta, "parameters": expression.as_dict(), "backend_requested": backend_id,
                             "status": "pending"})
        capture.write_image("input.png", frame.image)
        capture.write_meta()
        outcome = self.process(frame, expression, backend_id, caption,
                               on_faces=(lambda found: on_faces(capture, found)) if on_faces else None)
        if outcome.ok:
            capture.write_image("output.png", outcome.result.image)
            capture.write_image("compare.png", outcome.composite)
        capture.write_meta(status="ok" if outcome.ok else "failed", backend=outcome.backend or None,
                           fallback=outcome.fallback or None, errors=[outcome.error] if outcome.error else [],
                           timings_ms=outcome.timings_ms,
                           backend_info=dict(outcome.result.info) if outcome.result else {})
        return capture, outcome

    def apply_file(self, path: str | Path, expression: Expression, backend_id: str, store: CaptureStore,
                   recipe: dict[str, Any], caption: str = "output") -> dict[str, Any]:
        """Edit one image file and store the capture. Returns the record `facesynth apply --json` prints."""
        path = Path(path)
        record: dict[str, Any] = {"input": str(path), "status": "failed", "output_dir": None, "backend": None,
                                  "faces": [], "timings_ms": {}, "error": None}
        started = time.perf_counter()
        try:
            image = read_image(path, self.settings.max_megapixels)
        except InputError as exc:
            record["error"] = str(exc)
            self._error("capture", str(exc), Frame(np.zeros((1, 1, 3), np.uint8), source=str(path)), "InputError")
            return record
        record["timings_ms"]["read"] = round((time.perf_counter() - started) * 1000, 2)
        emotions = self.registry.emotions

        def store_faces(capture: Capture, outcome: Outcome) -> None:
            edited_ids = {id(face) for face in outcome.edited}
            faces = [face_record(face, id(face) in edited_ids, emotions) for face in outcome.faces]
            capture.write_meta(faces=faces, skipped_faces=outcome.skipped)

        capture, outcome = self.store_capture(Frame(image, source=str(path)), expression, backend_id, store, recipe,
                                              caption=caption, on_faces=store_faces)
        record["output_dir"] = str(capture.folder)
        record["timings_ms"].update(outcome.timings_ms)
        edited_ids = {id(face) for face in outcome.edited}
        record["faces"] = [face_record(face, id(face) in edited_ids) for face in outcome.faces]
        record["backend"] = outcome.backend or None
        extra = {"output_faces": self._output_analysis(outcome)} if outcome.ok else {}
        record["status"], record["error"] = ("ok", None) if outcome.ok else ("failed", outcome.error)
        if outcome.fallback:
            record["fallback"] = outcome.fallback
        record["timings_ms"]["total"] = round((time.perf_counter() - started) * 1000, 2)
        capture.write_meta(timings_ms=record["timings_ms"], **extra)
        return record

    def _output_analysis(self, outcome: Outcome) -> list[dict[str, Any]]:
        """The expression estimate of the edited faces, measured on the output image."""
        try:
            faces = self.landmarker.detect(outcome.result.image)
        except Exception as exc:  # analysis is a bonus: never fail a capture for it
            log.warning("output_analysis_failed", error=str(exc))
            return []
        return [face_record(face, True, self.registry.emotions) for face in faces]
