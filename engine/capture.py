"""The capture stage: frames and where they come from (cameras, streams, video files, still images).

`FrameSource` reads a camera index, a stream URL, a video file or an image as a stream of `Frame`s;
`CaptureStage` announces each frame entering the pipeline as a `capture` event (the only place that event is
emitted) and reads still images for the still pipeline.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import structlog

from engine.errors import FaceSynthError, UsageError
from engine.events import CaptureEvent, Event, EventBus
from engine.imageio import IMAGE_SUFFIXES, read_image

log = structlog.get_logger()

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


@dataclass(frozen=True, eq=False)
class Frame:
    """One picture entering the pipeline: BGR pixels, its number in the stream, its capture time
    (`time.perf_counter()` seconds) and the source it came from."""

    image: np.ndarray
    index: int = 0
    captured_at: float = field(default_factory=time.perf_counter)
    source: str = ""

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.image.shape[1], self.image.shape[0]


class CaptureStage:
    """Announces frames entering the pipeline; reads still images into frames."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    def take(self, frame: Frame) -> Frame:
        """Announce `frame` as captured (a `capture` event) and return it."""
        self.bus.emit(Event.CAPTURE, CaptureEvent(frame))
        return frame

    def read_still(self, path: str | Path, max_megapixels: float) -> Frame:
        """An image file as a frame (an `InputError` says what is wrong with a bad file); not yet announced."""
        return Frame(read_image(path, max_megapixels), source=str(path))


class SourceLost(FaceSynthError):
    """The camera or stream went away and did not come back."""


def is_video(path: str | Path) -> bool:
    """Whether a path names a video file (by its suffix)."""
    return Path(str(path)).suffix.lower() in VIDEO_SUFFIXES


class FrameSource:
    """Frames from a camera index, a video file, a stream URL or a still image.

    `read()` returns the next Frame, or None at the end. Cameras and streams are read by their own thread so
    the newest frame is always the one returned (older unread ones are dropped and counted); a camera that
    stops delivering is reopened a few times before `SourceLost` is raised.
    """

    def __init__(self, spec: str, loop: bool = False, retries: int = 5, retry_wait: float = 1.0,
                 opener: Callable[[Any], Any] = cv2.VideoCapture, max_megapixels: float = 50.0,
                 paced: bool = False) -> None:
        self.spec, self.loop, self.retries, self.retry_wait, self.opener = spec, loop, retries, retry_wait, opener
        self.paced = paced  # files and images at their own frame rate (for viewing), not as fast as possible
        self._started: float | None = None
        self.index = 0
        self.dropped = 0
        self.status = "opening"
        self._still: np.ndarray | None = None
        self._target: int | str = ""
        if spec.isdigit():
            self.kind, self._target = "camera", int(spec)
        elif "://" in spec:
            self.kind, self._target = "stream", spec
        else:
            path = Path(spec)
            if not path.exists():
                raise UsageError(f"--source {spec}: no such file, and not a camera number or a stream URL")
            if path.suffix.lower() in IMAGE_SUFFIXES:
                self.kind = "image"
                self._still = read_image(path, max_megapixels)
            elif path.suffix.lower() in VIDEO_SUFFIXES:
                self.kind, self._target = "file", str(path)
            else:
                raise UsageError(f"--source {spec}: not a video ({', '.join(VIDEO_SUFFIXES)}) or image file")
        self.fps = 30.0
        self.size = (0, 0)
        self._capture: Any = None
        self._expected = 0
        self._latest: tuple[np.ndarray, float] | None = None
        self._condition = threading.Condition()
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._lost: str = ""
        # Video files are decoded one or two frames ahead on a thread of their own (decoding overlaps the
        # landmarker; nothing is dropped): decoded images, then None at the end or the error that ended it.
        self._ahead: queue.Queue[np.ndarray | Exception | None] = queue.Queue(maxsize=2)
        self._decoded = 0
        self._ended = False
        if self.kind != "image":
            self._open()
        elif self._still is not None:
            self.size = (self._still.shape[1], self._still.shape[0])
            self.status = "still image"

    def _open(self) -> None:
        if self.kind == "file" and self.opener is cv2.VideoCapture:
            # One decoder thread: decoding runs ahead on its own thread already, and the two workers need the
            # cores (the same speed per frame for less CPU time, measured on samples/face.mp4).
            self._capture = cv2.VideoCapture(self._target, cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, 1])
            if not self._capture.isOpened():
                self._capture = self.opener(self._target)
        else:
            self._capture = self.opener(self._target)
        if self._capture is None or not self._capture.isOpened():
            what = f"camera {self._target}" if self.kind == "camera" else str(self._target)
            hint = " (is a camera connected, and free?)" if self.kind == "camera" else ""
            raise SourceLost(f"cannot open {what}{hint}")
        fps = self._capture.get(cv2.CAP_PROP_FPS) or 0
        self.fps = fps if 1 <= fps <= 240 else 30.0
        self.size = (int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self._expected = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if self.kind == "file" else 0
        self.status = "live" if self.kind in ("camera", "stream") else "playing"
        if self._reader is None:
            loop = self._prefetch_loop if self.kind == "file" else self._read_loop
            self._reader = threading.Thread(target=loop, name="facesynth-capture", daemon=True)
            self._reader.start()

    @property
    def drops_frames(self) -> bool:
        """Cameras and streams drop stale frames; files and images never do."""
        return self.kind in ("camera", "stream")

    def _read_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            ok, image = self._capture.read() if self._capture is not None else (False, None)
            if ok and image is not None:
                failures = 0
                with self._condition:
                    if self._latest is not None:
                        self.dropped += 1
                    self._latest = (image, time.perf_counter())
                    self._condition.notify_all()
                continue
            failures += 1
            if failures < 3:
                continue
            if not self._reconnect():
                with self._condition:
                    self._lost = (f"{'camera ' + str(self._target) if self.kind == 'camera' else self._target} "
                                  f"stopped sending frames and did not come back after {self.retries} tries")
                    self._condition.notify_all()
                return
            failures = 0

    def _decode_next(self) -> np.ndarray | None:
        """The next image of a video file (rewound at the end with --loop), None at its end."""
        ok, image = self._capture.read()
        if not ok or image is None:
            if self._expected and self._decoded < self._expected - 2:
                raise SourceLost(f"{self.spec} ended early, at frame {self._decoded} of {self._expected} "
                                 "(damaged or truncated file?)")
            if self.loop and self._decoded:
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                self._expected = 0
                ok, image = self._capture.read()
            if not ok or image is None:
                return None
        self._decoded += 1
        return image

    def _prefetch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                item: np.ndarray | Exception | None = self._decode_next()
            except SourceLost as exc:
                item = exc
            except Exception as exc:  # a decoder failure ends the stream with a message, never a hang
                item = SourceLost(f"{self.spec}: decoding failed ({exc})")
            while not self._stop.is_set():
                try:
                    self._ahead.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if not isinstance(item, np.ndarray):
                return

    def _reconnect(self) -> bool:
        for attempt in range(1, self.retries + 1):
            if self._stop.is_set():
                return False
            self.status = f"lost, retrying ({attempt}/{self.retries})"
            log.warning("source_lost", source=self.spec, attempt=attempt, retries=self.retries)
            if self._capture is not None:
                self._capture.release()
            time.sleep(self.retry_wait)
            self._capture = self.opener(self._target)
            if self._capture is not None and self._capture.isOpened():
                ok, image = self._capture.read()
                if ok and image is not None:
                    self.status = "live"
                    return True
        self.status = "lost"
        return False

    def read(self, timeout: float = 5.0) -> Frame | None:
        """The next frame (newest for live sources), or None when a file or image stream has ended."""
        if self.paced and self.kind in ("image", "file"):
            now = time.perf_counter()
            if self._started is None:
                self._started = now
            due = self._started + self.index / self.fps
            if due > now:
                time.sleep(due - now)
        if self._still is not None:
            self.index += 1
            return Frame(self._still, self.index - 1, time.perf_counter(), self.spec)
        if self.kind == "file":
            if self._ended:
                return None
            while True:
                try:
                    item = self._ahead.get(timeout=0.1)
                    break
                except queue.Empty:
                    if self._stop.is_set() or self._reader is None or not self._reader.is_alive():
                        return None
            if not isinstance(item, np.ndarray):
                self._ended = True
                if item is not None:
                    raise item
                return None
            self.index += 1
            return Frame(item, self.index - 1, time.perf_counter(), self.spec)
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._latest is None and not self._lost:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    break
                self._condition.wait(remaining)
            if self._lost:
                raise SourceLost(self._lost)
            if self._latest is None:
                raise SourceLost(f"no frame from {self.spec} for {timeout:g} s")
            image, captured = self._latest
            self._latest = None
        self.index += 1
        return Frame(image, self.index - 1, captured, self.spec)

    def close(self) -> None:
        """Stop reading and release the device or file."""
        self._stop.set()
        with self._condition:
            self._condition.notify_all()
        if self._reader is not None:
            self._reader.join(timeout=2)
        if self._capture is not None:
            self._capture.release()
