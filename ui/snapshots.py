"""One capture service for the panel and the live window.

A snapshot is stored through `Pipeline.store_capture` on a background thread, one at a time, with the chosen
backend: the input first (status pending), then the outputs, the faces found, the timings and an analysis of
the output. A slow backend never blocks whoever asked; the result arrives on `results`.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger()


@dataclass(frozen=True)
class SnapshotResult:
    """What one snapshot gave: the folder (None when nothing could be stored), the outcome or the error."""

    folder: Path | None
    outcome: Any = None
    error: str = ""


class Snapshots:
    """Stores snapshots with one still pipeline (its landmarker starts once and is shared, under a lock)."""

    def __init__(self, registry: Any, settings: Any) -> None:
        from engine.storage import CaptureStore

        self.registry, self.settings = registry, settings
        self.store = CaptureStore(settings.output_dir)
        self.results: queue.Queue[SnapshotResult] = queue.Queue()
        self.status = ""
        self.busy = ""
        self.last_composite: Any = None
        self._pipeline: Any = None
        self._use = threading.Lock()  # the still pipeline is used by one thread at a time

    def pipeline(self) -> Any:
        """The still pipeline (made on first use; call with `_use` held)."""
        from engine.pipeline import Pipeline

        if self._pipeline is None:
            self._pipeline = Pipeline(self.registry, self.settings)
        self._pipeline.registry = self._pipeline.synthesizer.registry = self.registry
        self._pipeline.preprocessor.settings = self.settings  # faces picked in the panel apply from now on
        return self._pipeline

    def warm_up(self, backend_id: str) -> None:
        """Start the landmarker and let the backend load, so the first snapshot does not wait for them."""
        with self._use:
            pipeline = self.pipeline()
            pipeline.landmarker  # noqa: B018 - start it now
            pipeline.prepare(backend_id)

    def preview(self, frame: Any, expression: Any, backend_id: str) -> Any:
        """Edit one frame without storing it; returns the outcome."""
        with self._use:
            return self.pipeline().process(frame, expression, backend_id)

    def analyse(self, image: Any) -> list[Any]:
        """The faces the still landmarker finds in `image`."""
        with self._use:
            return self.pipeline().landmarker.detect(image)

    def take(self, frame: Any, expression: Any, backend_id: str, recipe: dict[str, Any], source: str = "") -> bool:
        """Store `frame` in the background; False (and `status` says why) when one is still on its way."""
        if self.busy:
            self.status = "a capture is still on its way; wait for it"
            return False
        self.busy = f"capturing with {backend_id} ..."
        self.status = self.busy
        threading.Thread(target=self._work, args=(frame, expression, backend_id, recipe, source),
                         name="facesynth-snapshot", daemon=True).start()
        return True

    def _work(self, frame: Any, expression: Any, backend_id: str, recipe: dict[str, Any], source: str) -> None:
        from engine.analysis import estimate
        from engine.pipeline import face_record
        from engine.synthesize import describe

        emotions = self.registry.emotions

        def store_faces(capture: Any, outcome: Any) -> None:
            chosen = {id(face) for face in outcome.edited}
            capture.write_meta(faces=[face_record(face, id(face) in chosen, emotions) for face in outcome.faces],
                               skipped_faces=outcome.skipped)

        try:
            with self._use:
                pipeline = self.pipeline()
                capture, outcome = pipeline.store_capture(frame, expression, backend_id, self.store, recipe,
                                                          source=source, on_faces=store_faces)
                if outcome.ok:
                    after = pipeline.landmarker.detect(outcome.result.image)
                    capture.write_meta(output_faces=[face_record(face, True, emotions) for face in after],
                                       output_estimate=estimate(after[0].blendshapes, emotions)["text"]
                                       if after else "no face found in the output")
            if outcome.ok:
                self.last_composite = outcome.composite
                self.status = f"capture from {outcome.backend} stored: {capture.folder}"
            else:
                self.status = f"capture failed: {outcome.error} (input kept in {capture.folder})"
            log.info("snapshot_stored", folder=str(capture.folder), ok=outcome.ok, backend=outcome.backend)
            self.results.put(SnapshotResult(capture.folder, outcome))
        except Exception as exc:  # whatever a backend or the disk does, whoever asked lives on
            self.status = f"capture failed: {describe(exc)}"
            self.results.put(SnapshotResult(None, error=describe(exc)))
        finally:
            self.busy = ""

    def close(self) -> None:
        """Release the landmarker."""
        with self._use:
            if self._pipeline is not None:
                self._pipeline.close()
                self._pipeline = None
