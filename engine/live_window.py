"""The live window (OpenCV): input and output side by side with fps and latency; keys change the expression.

Keys: 1-4 choose an emotion, + and - change the intensity, space stores a snapshot as a capture, q quits.
The pipeline runs on its worker threads; this thread only displays. A snapshot with a slow backend (the
cloud) is sent in the background and the preview keeps running; its result shows when it arrives.
"""

from __future__ import annotations

import threading
from typing import Any

import cv2
import numpy as np
import structlog

from engine.capture import Frame
from engine.events import Event, RenderEvent, StatsEvent

log = structlog.get_logger()

WINDOW = "FaceSynth live"
KEY_EMOTIONS = ("happy", "surprised", "angry", "sleepy")


class Snapshots:
    """Stores snapshots; runs slow backends on a background thread, one at a time."""

    def __init__(self, registry: Any, settings: Any) -> None:
        from engine.storage import CaptureStore

        self.registry, self.settings = registry, settings
        self.store = CaptureStore(settings.output_dir)
        self.status = ""
        self.result: np.ndarray | None = None
        self._busy = threading.Lock()

    def take(self, frame: Frame, output: np.ndarray, composite: np.ndarray, expression: Any,
             preview_backend: str) -> None:
        """Store the frame now (local backend) or send it to the chosen backend in the background."""
        wanted = self.settings.backend
        if wanted in (preview_backend, "auto"):
            capture = self.store.new("camera", {"parameters": expression.as_dict(), "backend": preview_backend,
                                                "status": "ok"})
            capture.write_image("input.png", frame.image)
            capture.write_image("output.png", output)
            capture.write_image("compare.png", composite)
            capture.write_meta()
            self.status = f"snapshot stored: {capture.folder}"
            return
        if not self._busy.acquire(blocking=False):
            self.status = "a snapshot is still on its way; wait for it"
            return
        self.status = f"snapshot sent to {wanted} ..."
        threading.Thread(target=self._slow, args=(frame, expression), daemon=True).start()

    def _slow(self, frame: Frame, expression: Any) -> None:
        from engine.pipeline import Pipeline

        pipeline = Pipeline(self.registry, self.settings)
        try:
            capture, outcome = pipeline.store_capture(frame, expression, self.settings.backend, self.store, {},
                                                      source="camera")
            if outcome.ok:
                self.result = outcome.composite
                self.status = f"snapshot from {outcome.backend} stored: {capture.folder}"
            else:
                self.status = f"snapshot failed: {outcome.error} (input kept in {capture.folder})"
        finally:
            pipeline.close()
            self._busy.release()


def overlay(image: np.ndarray, lines: list[str]) -> np.ndarray:
    """Text lines on a dark band at the bottom of the image."""
    height = 20 * len(lines) + 8
    canvas = image.copy()
    canvas[-height:] = (canvas[-height:] * 0.35).astype(np.uint8)
    for number, line in enumerate(lines):
        cv2.putText(canvas, line, (8, canvas.shape[0] - height + 20 * (number + 1)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, (240, 240, 240), 1, cv2.LINE_AA)
    return canvas


def run_window(pipeline: Any, source: Any, registry: Any, settings: Any, max_frames: int) -> dict[str, Any]:
    """Show the live pipeline in a window until the source ends or the user quits; returns the figures."""
    latest: dict[str, Any] = {}
    figures: dict[str, Any] = {"fps": 0.0, "latency_ms": {"median": 0.0, "p95": 0.0}}
    lock = threading.Lock()

    def on_render(event: RenderEvent) -> None:
        with lock:
            latest["event"] = event

    def on_stats(event: StatsEvent) -> None:
        figures.update(event.figures)

    pipeline.bus.on(Event.RENDER, on_render)
    pipeline.bus.on(Event.STATS, on_stats)
    snapshots = Snapshots(registry, settings)
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.update(pipeline.run(source, max_frames)), daemon=True)
    worker.start()
    keys = [name for name in KEY_EMOTIONS if name in registry.emotions]
    cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE)
    shown = None
    try:
        while worker.is_alive():
            with lock:
                event = latest.pop("event", None)
            if event is not None:
                shown = event
                state = pipeline.state
                label = " + ".join(name for name, _ in state.emotions) or "custom"
                lines = [f"{label}  intensity {state.intensity:.1f}   {figures['fps']:.0f} fps   latency "
                         f"{figures['latency_ms']['median']:.0f} ms (p95 {figures['latency_ms']['p95']:.0f})   "
                         f"source {source.status}",
                         "1-4 emotion  +/- intensity  space snapshot  q quit"]
                if snapshots.status:
                    lines.append(snapshots.status[:110])
                picture = overlay(event.composite, lines)
                if snapshots.result is not None:
                    thumb = cv2.resize(snapshots.result, (picture.shape[1] // 4, picture.shape[0] // 8))
                    picture[4:4 + thumb.shape[0], -thumb.shape[1] - 4:-4] = thumb
                cv2.imshow(WINDOW, picture)
            key = cv2.waitKey(5) & 0xFF
            if key in (ord("q"), 27):
                pipeline.stop()
            elif ord("1") <= key <= ord("9") and key - ord("1") < len(keys):
                pipeline.state.set_emotion(keys[key - ord("1")])
            elif key in (ord("+"), ord("=")):
                pipeline.state.nudge_intensity(0.1)
            elif key == ord("-"):
                pipeline.state.nudge_intensity(-0.1)
            elif key == ord(" ") and shown is not None:
                snapshots.take(shown.frame, shown.output, shown.composite, pipeline.expression(), pipeline.backend_id)
    finally:
        pipeline.stop()
        worker.join(timeout=5)
        cv2.destroyWindow(WINDOW)
        cv2.waitKey(1)
    return result or pipeline.figures()
