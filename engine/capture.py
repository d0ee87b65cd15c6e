"""The capture stage: frames and where they come from (cameras, streams, video files, still images).

Cameras and network streams are read with OpenCV; video files with PyAV (`engine.video`).

`FrameSource` reads a camera index, a stream URL, a video file or an image as a stream of `Frame`s;
`CaptureStage` announces each frame entering the pipeline as a `capture` event (the only place that event is
emitted) and reads still images for the still pipeline.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np
import structlog

from engine.errors import FaceSynthError, InputError, UsageError
from engine.events import CaptureEvent, Event, EventBus
from engine.imageio import IMAGE_SUFFIXES, Photo, read_image, read_photo
from engine.video import VIDEO_SUFFIXES, VideoFrame, VideoReader

log = structlog.get_logger()



@dataclass(frozen=True, eq=False)
class Frame:
    """One picture entering the pipeline: BGR pixels, its number in the stream, its capture time
    (`time.perf_counter()` seconds) and the source it came from."""

    image: np.ndarray
    index: int = 0
    captured_at: float = field(default_factory=time.perf_counter)
    source: str = ""
    pts: int | None = None  # a video file's frame: its timestamp in the stream's time base (kept when written)

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

    def read_still(self, path: str | Path, max_megapixels: float) -> tuple[Frame, Photo]:
        """An image file as a frame, upright (an `InputError` says what is wrong with a bad file), not yet
        announced, and the photo it came from (format, EXIF, colour profile, orientation)."""
        photo = read_photo(path, max_megapixels)
        return Frame(photo.image, source=str(path)), photo


class SourceLost(FaceSynthError):
    """The camera or stream went away and did not come back."""



class FrameSource:
    """Frames from a camera index, a video file, a stream URL or a still image.

    `read()` returns the next Frame, or None at the end. Cameras and streams are read by their own thread so
    the newest frame is always the one returned (older unread ones are dropped and counted); a camera that
    stops delivering is reopened a few times before `SourceLost` is raised.
    """

    def __init__(self, spec: str, loop: bool = False, retries: int = 5, retry_wait: float = 1.0,
                 opener: Callable[[Any], Any] = cv2.VideoCapture, max_megapixels: float = 50.0,
                 paced: bool = False, camera_size: tuple[int, int] | None = None, camera_fps: float = 0.0) -> None:
        self.spec, self.loop, self.retries, self.retry_wait, self.opener = spec, loop, retries, retry_wait, opener
        self.paced = paced  # files and images at their own frame rate (for viewing), not as fast as possible
        self.camera_size, self.camera_fps = camera_size, camera_fps  # asked of a camera (None/0: its default)
        self.format_note = ""
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
            path = Path(spec).expanduser()  # "~/clip.mp4" typed in the panel's field, as a shell would
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
        # Video files are read with PyAV, decoded a few frames ahead on the reader's own thread (decoding
        # overlaps the landmarker; nothing is dropped).
        self._video: VideoReader | None = None
        self._frames: Iterator[VideoFrame] | None = None
        self._max_megapixels = max_megapixels
        self._ended = False
        if self.kind == "file":
            self._open_file()
        elif self.kind != "image":
            self._open()
        elif self._still is not None:
            self.size = (self._still.shape[1], self._still.shape[0])
            self.status = "still image"

    def _open_file(self) -> None:
        """Open (or, with `loop`, reopen) the video file; a file that cannot be read is `SourceLost`."""
        if self._video is not None:
            self._video.close()
        try:
            self._video = VideoReader(str(self._target), self._max_megapixels, loop=self.loop)
        except InputError as exc:
            raise SourceLost(f"cannot open {exc}") from None
        self._frames = iter(self._video)
        self.fps, self.size = self._video.fps, self._video.size
        self.status = "playing"

    def _open(self) -> None:
        """Open a camera or stream (OpenCV), read by a thread of its own that keeps only the newest frame."""
        self._capture = self.opener(self._target)
        if self.kind == "camera" and self._capture is not None and self._capture.isOpened():
            self._ask_camera()
        if self._capture is None or not self._capture.isOpened():
            what = f"camera {self._target}" if self.kind == "camera" else str(self._target)
            hint = " (is a camera connected, and free?)" if self.kind == "camera" else ""
            raise SourceLost(f"cannot open {what}{hint}")
        fps = self._capture.get(cv2.CAP_PROP_FPS) or 0
        self.fps = fps if 1 <= fps <= 240 else 30.0
        self.size = (int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.status = "live"
        if self._reader is None:
            self._reader = threading.Thread(target=self._read_loop, name="facesynth-capture", daemon=True)
            self._reader.start()

    @property
    def file_path(self) -> str:
        """A video file's path, as opened ('' for other sources)."""
        return str(self._target) if self.kind == "file" else ""

    @property
    def time_base(self) -> Any:
        """A video file's time base (its frames' `pts` count in it); None for other sources."""
        return self._video.time_base if self._video is not None else None

    @property
    def audio_streams(self) -> int:
        """How many audio streams a video file has (0 for other sources)."""
        return self._video.audio_streams if self._video is not None else 0

    @property
    def rotation(self) -> int:
        """A video file's rotation metadata in degrees (its frames are delivered upright)."""
        return self._video.rotation if self._video is not None else 0

    @property
    def frame_count_estimate(self) -> int:
        """A video file's frame count as its header says (an estimate for some containers); 0 if unknown."""
        return self._video.frame_count_estimate if self._video is not None else 0

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
            return self._read_file()
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

    def _ask_camera(self) -> None:
        """Ask the camera for the size and frame rate wanted. HD at 30 fps needs MJPG on most USB cameras
        (their raw YUYV mode tops out at a few frames a second at 1080p), so MJPG is asked for above 640x480."""
        capture = self._capture
        if self.camera_size and self.camera_size[0] * self.camera_size[1] > 640 * 480:
            capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG"))
        if self.camera_size:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.camera_size[0])
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.camera_size[1])
        if self.camera_fps:
            capture.set(cv2.CAP_PROP_FPS, self.camera_fps)
        delivered = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        rate = capture.get(cv2.CAP_PROP_FPS) or 0
        asked = []
        if self.camera_size and delivered != tuple(self.camera_size):
            asked.append(f"{self.camera_size[0]}x{self.camera_size[1]}")
        if self.camera_fps and abs(rate - self.camera_fps) > 0.5:
            asked.append(f"{self.camera_fps:g} fps")
        if asked:
            self.format_note = f" (asked for {' at '.join(asked)}: this is what the camera offers)"
            log.warning("camera_format", asked=" at ".join(asked), delivered=f"{delivered[0]}x{delivered[1]}",
                        fps=rate)

    def _read_file(self) -> Frame | None:
        """The next frame of the video file (from the start again with `loop`), None at its end."""
        if self._ended or self._stop.is_set() or self._frames is None:
            return None
        try:
            item = next(self._frames, None)  # with `loop` the reader starts again by itself
        except InputError as exc:  # a real decoding error: the frames before it were delivered
            self._ended = True
            raise SourceLost(str(exc)) from None
        if item is None:
            self._ended = True
            return None
        self.index += 1
        return Frame(item.image, self.index - 1, time.perf_counter(), self.spec, item.pts)

    def close(self) -> None:
        """Stop reading and release the device or file."""
        self._stop.set()
        with self._condition:
            self._condition.notify_all()
        if self._reader is not None:
            self._reader.join(timeout=2)
        if self._capture is not None:
            self._capture.release()
        if self._video is not None:
            self._video.close()
