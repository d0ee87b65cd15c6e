"""The still pipeline: capture -> pre-process -> synthesize -> render, composed from the stage modules.

`Pipeline.process` runs the stages on one frame; `Pipeline.apply_file` adds reading the file and storing the
capture (the input is stored before the backend runs, so a failing backend loses nothing).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import structlog

from engine.analysis import estimate
from engine.backend import SynthesisResult
from engine.capture import CaptureStage, Frame
from engine.config import Settings
from engine.errors import FaceSynthError, InputError
from engine.events import ErrorEvent, Event, EventBus
from engine.expression import Expression
from engine.face import Face
from engine.faces import Landmarker
from engine.imageio import Photo, encode_image, output_format_for, write_atomic
from engine.preprocess import Preprocessor
from engine.registry import Registry
from engine.render import Renderer
from engine.storage import Capture, CaptureStore
from engine.synthesize import AUTO, Synthesizer, describe

log = structlog.get_logger()

__all__ = ["AUTO", "Outcome", "Pipeline", "face_record"]


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

    def edited_faces(self) -> list[Face]:
        """The faces the backend actually edited: those chosen, less any it refused (in profile, say)."""
        if self.result is None:
            return []
        refused = [list(item.get("box", ())) for item in self.result.info.get("skipped", [])
                   if isinstance(item, dict)]
        return [face for face in self.edited if list(face.box) not in refused]


def face_record(face: Face, edited: bool, emotions: Any = None) -> dict[str, Any]:
    """A face as stored in meta.json and printed as JSON."""
    record = {"box": list(face.box), "pose": face.pose, "inter_ocular_px": round(face.inter_ocular_px, 1),
              "edited": edited}
    if emotions is not None:
        record["expression"] = estimate(face.blendshapes, emotions)
    return record


class Pipeline:
    """Runs the stages for still images with one landmarker; make one per process (or per thread)."""

    def __init__(self, registry: Registry, settings: Settings, bus: EventBus | None = None,
                 landmarker: Landmarker | None = None) -> None:
        self.registry = registry
        self.settings = settings
        self.bus = bus or EventBus()
        self.capture = CaptureStage(self.bus)
        self.preprocessor = Preprocessor(settings, self.bus, landmarker)
        self.synthesizer = Synthesizer(registry, settings, self.bus)
        self.renderer = Renderer(self.bus)

    @property
    def landmarker(self) -> Landmarker:
        """The still-image landmarker, made on first use."""
        return self.preprocessor.landmarker

    def close(self) -> None:
        """Release the landmarker."""
        self.preprocessor.close()

    def prepare(self, backend_id: str) -> None:
        """Let the backends `backend_id` would use load what they need now."""
        self.synthesizer.prepare(backend_id)

    def _error(self, stage: str, message: str, frame: Frame, kind: str = "") -> None:
        self.bus.emit(Event.ERROR, ErrorEvent(stage=stage, message=message, kind=kind, frame_index=frame.index))

    def process(self, frame: Frame, expression: Expression, backend_id: str, caption: str = "output",
                on_faces: Callable[[Outcome], None] | None = None) -> Outcome:
        """Run the four stages on one frame. Errors end up in `Outcome.error` (a plugin's too: see the guard).

        `on_faces(outcome)` is called after faces are found and before the backend runs (storage uses it to
        write what was found first).
        """
        outcome = Outcome(frame)
        self.capture.take(frame)
        stage = "preprocess"
        try:
            found = self.preprocessor(frame)
            outcome.faces, outcome.edited, outcome.skipped = found.faces, found.edited, found.skipped
            outcome.timings_ms["preprocess"] = round(found.elapsed_ms, 2)
            if on_faces is not None:
                on_faces(outcome)
            if not outcome.faces:
                raise InputError("no face found")
            if not outcome.edited:
                raise InputError("; ".join(s["reason"] for s in outcome.skipped) or "no face selected by --faces")
            stage = "synthesize"
            synthesis = self.synthesizer(frame, outcome.edited, expression, backend_id)
            outcome.result, outcome.backend, outcome.fallback = synthesis.result, synthesis.backend, synthesis.fallback
            outcome.timings_ms["synthesize"] = round(synthesis.elapsed_ms, 2)
            stage = "render"
            outcome.composite, render_ms = self.renderer(frame, synthesis.result.image,
                                                         f"{caption} ({outcome.backend})")
            outcome.timings_ms["render"] = round(render_ms, 2)
        except FaceSynthError as exc:
            outcome.error = describe(exc)
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
        try:
            outcome = self.process(frame, expression, backend_id, caption,
                                   on_faces=(lambda found: on_faces(capture, found)) if on_faces else None)
            if outcome.ok:
                assert outcome.result is not None and outcome.composite is not None
                capture.write_image("output.png", outcome.result.image)
                capture.write_image("compare.png", outcome.composite)
        except KeyboardInterrupt:  # Ctrl+C or SIGTERM: the input is kept, and the record says what happened
            capture.write_meta(status="interrupted", errors=["interrupted before the edit was stored"])
            raise
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
            frame, photo = self.capture.read_still(path, self.settings.max_megapixels)
        except InputError as exc:
            record["error"] = str(exc)
            self._error("capture", str(exc), Frame(np.zeros((1, 1, 3), np.uint8), source=str(path)), "InputError")
            return record
        record["timings_ms"]["read"] = round((time.perf_counter() - started) * 1000, 2)
        emotions = self.registry.emotions

        def store_faces(capture: Capture, outcome: Outcome) -> None:
            chosen = {id(face) for face in outcome.edited}
            faces = [face_record(face, id(face) in chosen, emotions) for face in outcome.faces]
            capture.write_meta(faces=faces, skipped_faces=outcome.skipped)

        recipe = {**recipe, "input_format": photo.format, "orientation": photo.orientation}
        capture, outcome = self.store_capture(frame, expression, backend_id, store, recipe, caption=caption,
                                              on_faces=store_faces)
        if outcome.ok and outcome.result is not None:
            extra_export = self._export(capture, photo, outcome.result.image)
            if extra_export:
                record["export"] = str(capture.folder / extra_export)
        record["output_dir"] = str(capture.folder)
        record["timings_ms"].update(outcome.timings_ms)
        edited_ids = {id(face) for face in outcome.edited_faces()}
        record["faces"] = [face_record(face, id(face) in edited_ids) for face in outcome.faces]
        record["backend"] = outcome.backend or None
        extra: dict[str, Any] = {"output_faces": self._output_analysis(outcome)} if outcome.ok else {}
        if outcome.result is not None:
            extra["faces"] = [face_record(face, id(face) in edited_ids, emotions) for face in outcome.faces]
        record["status"], record["error"] = ("ok", None) if outcome.ok else ("failed", outcome.error)
        if outcome.fallback:
            record["fallback"] = outcome.fallback
        record["timings_ms"]["total"] = round((time.perf_counter() - started) * 1000, 2)
        capture.write_meta(timings_ms=record["timings_ms"], **extra)
        return record

    def _export(self, capture: Capture, photo: Photo, image: np.ndarray) -> str:
        """The edit saved as the photo was (a JPEG stays a JPEG, with its EXIF and colour profile, orientation
        reset since the pixels are upright), or in the format asked for: `output.jpg` or `output.webp` beside
        the lossless `output.png`. Returns its file name, or "" when output.png is the export."""
        fmt = self.settings.output_format or output_format_for(photo.format)
        fmt = "jpg" if fmt == "jpeg" else fmt
        if fmt == "png":
            return ""
        name = f"output.{fmt}"
        write_atomic(capture.folder / name, encode_image(image, fmt, exif=photo.exif, icc=photo.icc))
        capture.write_meta(export=name)
        return name

    def _output_analysis(self, outcome: Outcome) -> list[dict[str, Any]]:
        """The expression estimate of the edited faces, measured on the output image."""
        assert outcome.result is not None
        try:
            faces = self.landmarker.detect(outcome.result.image)
        except Exception as exc:  # analysis is a bonus: never fail a capture for it
            log.warning("output_analysis_failed", error=str(exc))
            return []
        return [face_record(face, True, self.registry.emotions) for face in faces]
