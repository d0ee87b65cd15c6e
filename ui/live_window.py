"""The live window (OpenCV): input and output side by side with fps and latency; keys change the expression.

Keys: 1-9 choose an emotion (the built-ins first, then the rest by name), + and - change the intensity, space
stores a snapshot as a capture, q or Esc quits. A file plays at its own frame rate. The pipeline runs on its
worker threads; this thread only displays. A snapshot goes through the same service as the panel's Capture
(`ui.snapshots`): in the background with the chosen backend, the preview running meanwhile.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import cv2
import numpy as np
import structlog

from engine.events import Event, RenderEvent, StatsEvent
from ui.keys import emotion_order
from ui.snapshots import Snapshots

log = structlog.get_logger()

WINDOW = "FaceSynth live"


def overlay(image: np.ndarray, lines: list[str]) -> np.ndarray:
    """Text lines on a dark band at the bottom of the image."""
    height = 20 * len(lines) + 8
    canvas = image.copy()
    canvas[-height:] = (canvas[-height:] * 0.35).astype(np.uint8)
    for number, line in enumerate(lines):
        cv2.putText(canvas, line, (8, canvas.shape[0] - height + 20 * (number + 1)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, (240, 240, 240), 1, cv2.LINE_AA)
    return canvas


def handle_key(key: int, pipeline: Any, order: list[str]) -> str:
    """Apply one key to the live state; returns what happened (empty for keys that mean nothing)."""
    state = pipeline.state
    if key in (ord("q"), 27):
        pipeline.stop()
        return "quit"
    if ord("1") <= key <= ord("9") and key - ord("1") < len(order):
        state.set_emotion(order[key - ord("1")])
        return f"emotion {order[key - ord('1')]}"
    if key in (ord("+"), ord("=")):
        state.nudge_intensity(0.1)
        return f"intensity {state.intensity:.1f}"
    if key == ord("-"):
        state.nudge_intensity(-0.1)
        return f"intensity {state.intensity:.1f}"
    return ""


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
    source.paced = True  # a file or an image plays at its own frame rate in a window, not as fast as it decodes
    snapshots = Snapshots(registry, settings)
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.update(pipeline.run(source, max_frames)), daemon=True)
    worker.start()
    order = emotion_order(registry.emotions)
    keys_line = f"1-{min(9, len(order))} emotion  +/- intensity  space snapshot  q quit"
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
                         f"source {source.status}", keys_line]
                if snapshots.status:
                    lines.append(snapshots.status[:110])
                picture = overlay(event.composite, lines)
                if snapshots.last_composite is not None:
                    thumb = cv2.resize(snapshots.last_composite, (picture.shape[1] // 4, picture.shape[0] // 8))
                    picture[4:4 + thumb.shape[0], -thumb.shape[1] - 4:-4] = thumb
                cv2.imshow(WINDOW, picture)
            key = cv2.waitKey(5) & 0xFF
            if key == ord(" ") and shown is not None:
                state = pipeline.state
                recipe = {"emotion": [{"name": n, "weight": w} for n, w in state.emotions],
                          "intensity": state.intensity, "kind": "snapshot"}
                snapshots.take(shown.frame, pipeline.expression(), settings.backend, recipe, source=source.spec)
            elif key != 0xFF:
                what = handle_key(key, pipeline, order)
                if what:
                    log.info("live_key", key=chr(key), action=what)
    finally:
        pipeline.stop()
        worker.join(timeout=5)
        cv2.destroyWindow(WINDOW)
        cv2.waitKey(1)
        while snapshots.busy:  # a snapshot on its way is stored before the window's process ends
            time.sleep(0.1)
        snapshots.close()
    return result or pipeline.figures()
