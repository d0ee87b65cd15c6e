"""Where the panel's edited frames can also go: a recording (H.264, with the file source's sound) and a virtual
camera. Both are render-event sinks: they take frames on the pipeline's render thread and never draw."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger()


class Recording:
    """Writes the output frames of a run to `recordings/<time>.mp4` under the capture folder.

    The file source's sound is carried when the recording starts with the file's first frame (so it is in
    step); a recording started later, or of a camera, has no sound, and `summary` says so.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "recordings"
        self.path: Path | None = None
        self.writer: Any = None
        self.with_sound = False
        self._lock = threading.Lock()

    def __call__(self, event: Any, source: Any) -> None:
        """Write one render event's output (opening the file at the first one)."""
        from engine.video import VideoWriter

        with self._lock:
            if self.writer is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                self.path = self.folder / f"{time.strftime('%Y%m%d-%H%M%S')}.mp4"
                self.with_sound = source.kind == "file" and event.frame.index == 0
                height, width = event.output.shape[:2]
                self.writer = VideoWriter(self.path, (width, height), source.fps,
                                          audio_from=source.spec if self.with_sound else None)
            self.writer.write(event.output)

    def close(self) -> str:
        """Finish the file; returns a line saying what was written ('' when nothing was)."""
        with self._lock:
            writer, self.writer = self.writer, None
        if writer is None:
            return ""
        seconds = writer.written / writer.fps
        writer.close(audio_until_s=seconds)
        sound = "with the source's sound" if self.with_sound and writer.audio else "without sound"
        return f"recorded {writer.written} frames ({seconds:.1f} s, {sound}) to {self.path}"


class VirtualCameraOutput:
    """Sends the output frames to a virtual camera opened at the source's size and rate."""

    def __init__(self, size: tuple[int, int], fps: float) -> None:
        from engine.virtualcam import open_virtual_camera

        self.camera = open_virtual_camera(size[0], size[1], fps)  # NoVirtualCamera says how to get one

    def __call__(self, event: Any, source: Any) -> None:
        """Send one render event's output."""
        self.camera.send(event.output)

    def close(self) -> str:
        """Close the camera; returns a line saying so."""
        self.camera.close()
        return f"virtual camera {self.camera.device} closed"
