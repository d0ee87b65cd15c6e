"""Where the panel's edited frames can also go: a recording (H.264, with a file source's sound) and a virtual
camera. Both are render-event sinks: they take frames on the pipeline's render thread and never draw."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger()


class Recording:
    """Writes the output frames of a run to `recordings/<time>.mp4` under the capture folder.

    A video file's pictures keep the file's own timing, and its sound comes along from the moment the recording
    starts (the file's time at the first frame recorded), in step; when a looping file starts again, so does its
    sound. A camera or a stream is read for pictures only (OpenCV): that recording is silent, and the first frame's
    note (`say`) says so.
    """

    def __init__(self, folder: Path, say: Callable[[str, str], None] | None = None) -> None:
        self.folder = folder / "recordings"
        self.say = say or (lambda level, text: None)
        self.path: Path | None = None
        self.writer: Any = None
        self.with_sound = False
        self.started_s: float | None = None  # the file's time at the first frame recorded (None: not a file)
        self._clock: Any = None  # places a file's frames in the recording (engine.video.LoopClock)
        self._off = False
        self._lock = threading.Lock()

    def __call__(self, event: Any, source: Any) -> None:
        """Write one render event's output (opening the file at the first one)."""
        with self._lock:
            if self._off:  # a frame on its way when Record was switched off: no new file for it
                return
            if self.writer is None:
                self._open(event, source)
            when = file_time(event.frame, source) if self.started_s is not None else None
            if when is None:
                self.writer.write(event.output)
                return
            at, restart = self._clock.place(when)
            if restart is not None:  # the file started again: so does its sound, right after the last frame
                self.writer.restart_audio(restart)
            self.writer.write(event.output, round(at / self.writer.time_base))

    def _open(self, event: Any, source: Any) -> None:
        from engine.video import LoopClock, VideoWriter

        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.path = self.folder / f"{stamp}.mp4"
        number = 1
        while self.path.exists():  # two recordings within a second
            number += 1
            self.path = self.folder / f"{stamp}-{number}.mp4"
        self.started_s = file_time(event.frame, source)
        self.with_sound = self.started_s is not None and source.audio_streams > 0
        height, width = event.output.shape[:2]
        self.writer = VideoWriter(self.path, (width, height), source.fps,
                                  time_base=source.time_base if self.started_s is not None else None,
                                  audio_from=source.file_path if self.with_sound else None,
                                  audio_start_s=self.started_s or 0.0, audio_loops=True)
        self._clock = LoopClock(self.writer.fps)
        if source.kind == "file" and self.started_s is None:
            self.say("warning", f"recording {Path(source.file_path).name}: its frames carry no times, so without "
                     "its sound")
        elif self.started_s is not None:
            sound = "with its sound" if self.with_sound else "the file has no sound"
            self.say("info", f"recording {Path(source.file_path).name} from {self.started_s:.2f} s ({sound})")
        elif source.kind == "camera":
            self.say("warning", "recording a camera: a camera gives no sound, the recording is silent")
        elif source.kind == "stream":
            self.say("warning", "recording a stream: its pictures only (a stream's sound is not read), silent")
        else:
            self.say("info", "recording a still picture (no sound)")

    def close(self, off: bool = False) -> str:
        """Finish the file (the next run's frames start a new one, unless `off`: Record was switched off); returns
        a line saying what was written ('' when nothing was)."""
        with self._lock:
            writer, self.writer = self.writer, None
            self._off = self._off or off
        if writer is None:
            return ""
        last = self._clock.last[1] if self._clock is not None else -1.0
        seconds = last + 1 / writer.fps if last >= 0 else writer.written / writer.fps
        writer.close(audio_until_s=seconds)
        sound = (f"with the source's sound from {self.started_s:.2f} s" if self.with_sound and writer.audio
                 else "without sound")
        return f"recorded {writer.written} frames ({seconds:.1f} s, {sound}) to {self.path}"


def file_time(frame: Any, source: Any) -> float | None:
    """Where a video file's frame sits in the file (seconds); None for other sources or a frame without a time."""
    if source.kind != "file" or frame.pts is None or source.time_base is None:
        return None
    return float(frame.pts * source.time_base)


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
