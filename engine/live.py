"""Live mode: camera, stream, video or still image in; edited frames out, in real time.

Two worker threads share the work so both cores are used: one captures and finds the faces, the other
synthesizes and renders. Between them sits a one-frame mailbox: for cameras and streams the newest frame
replaces an unread one (latency stays at about one frame, drops are counted); for files nothing is dropped.
The thread that shows the window only displays. Every frame carries its capture time, and `stats` events
report frames per second and capture-to-render latency.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import structlog

from engine.backend import SynthesisRequest
from engine.capture import Frame
from engine.errors import FaceSynthError, InputError, UsageError
from engine.events import CaptureEvent, ErrorEvent, Event, EventBus, PreprocessEvent, RenderEvent, StatsEvent, SynthesizeEvent
from engine.imageio import IMAGE_SUFFIXES, read_image
from engine.storage import side_by_side

log = structlog.get_logger()

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


def _rss_mb() -> float:
    """This process's resident memory now, in MB (Linux), or its peak elsewhere."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
        else:
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
        self.size = (int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
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
        if self.kind == "image":
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


@dataclass
class LiveState:
    """What the user can change while the stream runs (keys in the window, controls in the launcher)."""

    emotions: list[tuple[str, float]] = field(default_factory=list)
    overrides: dict[str, float] = field(default_factory=dict)
    intensity: float = 1.0
    version: int = 0

    def set_emotion(self, name: str) -> None:
        """Show one emotion (replacing any mix)."""
        self.emotions = [(name, 1.0)]
        self.version += 1

    def nudge_intensity(self, delta: float) -> None:
        """Change the intensity within 0 to 1.5."""
        self.intensity = round(min(1.5, max(0.0, self.intensity + delta)), 2)
        self.version += 1


def percentiles(values: Any) -> dict[str, float]:
    """Median and p95 of milliseconds."""
    if not len(values):
        return {"median": 0.0, "p95": 0.0}
    numbers = np.frombuffer(values, dtype=np.float32) if isinstance(values, array) else np.asarray(values)
    return {"median": round(float(np.median(numbers)), 2), "p95": round(float(np.percentile(numbers, 95)), 2)}


class LivePipeline:
    """Capture -> pre-process on one thread, synthesize -> render on another; sinks subscribe to `render`."""

    def __init__(self, registry: Any, settings: Any, state: LiveState, backend_id: str = "landmark-warp",
                 bus: EventBus | None = None) -> None:
        from engine.pipeline import LOCAL_BACKEND, Pipeline

        self.registry, self.settings, self.state = registry, settings, state
        self.bus = bus or EventBus()
        # A slow backend never runs per frame: the preview uses the local one, snapshots may use the other.
        entry = Pipeline(registry, settings).candidates(backend_id, live=True)[0]
        if entry.id != LOCAL_BACKEND and LOCAL_BACKEND in registry.backends:
            log.info("live_preview_backend", wanted=entry.id, used=LOCAL_BACKEND)
            entry = registry.backends[LOCAL_BACKEND]
        self.backend = entry.backend
        self.backend_id = entry.id
        self._stop = threading.Event()
        self._mailbox: tuple[Frame, tuple] | None = None
        self._mailbox_lock = threading.Condition()
        self._done_capturing = False
        self.error: str = ""
        # Per-frame figures in compact arrays (4 bytes a number): a long run must not grow the process.
        self.samples: dict[str, array] = {name: array("f") for name in ("latency", "preprocess", "synthesize",
                                                                         "render")}
        self.frames_done = 0
        self._first_capture: float | None = None
        self._last_render = 0.0
        self.dropped = 0
        self.frames_with_face = 0
        self._expression_cache: tuple[int, Any] = (-1, None)
        self.memory_mb: list[float] = []  # resident memory every 300 frames: flat in a healthy run

    def stop(self) -> None:
        """Ask both workers to finish."""
        self._stop.set()
        with self._mailbox_lock:
            self._mailbox_lock.notify_all()

    def expression(self) -> Any:
        """The current expression vector (recomputed only when the state changed)."""
        version, cached = self._expression_cache
        if version != self.state.version or cached is None:
            cached = self.registry.expression(self.state.emotions, self.state.intensity, self.state.overrides)
            self._expression_cache = (self.state.version, cached)
        return cached

    def _capture_loop(self, source: FrameSource, max_frames: int) -> None:
        from engine.faces import Landmarker, select_faces
        from engine.smoothing import FaceSmoother

        max_faces = 1 if self.settings.faces == "largest" else self.settings.live_max_faces
        smoother = FaceSmoother()
        try:
            with Landmarker(self.settings.landmarker_model, video=True, max_faces=max_faces) as landmarker:
                count = 0
                while not self._stop.is_set() and (not max_frames or count < max_frames):
                    frame = source.read()
                    if frame is None:
                        break
                    count += 1
                    self.bus.emit(Event.CAPTURE, CaptureEvent(frame))
                    started = time.perf_counter()
                    timestamp = int((frame.index / source.fps) * 1000) if not source.drops_frames else \
                        int(frame.captured_at * 1000)
                    faces = landmarker.detect(frame.image, timestamp)
                    faces = smoother(faces, timestamp / 1000.0, frame.image.shape[1], frame.image.shape[0])
                    faces = [f for f in select_faces(faces, self.settings.faces)
                             if f.inter_ocular_px >= self.settings.min_face_px]
                    elapsed = (time.perf_counter() - started) * 1000
                    self.bus.emit(Event.PREPROCESS, PreprocessEvent(frame, tuple(faces), elapsed))
                    self._post(frame, tuple(faces), elapsed, source.drops_frames)
        except FaceSynthError as exc:
            self.error = str(exc)
            self.bus.emit(Event.ERROR, ErrorEvent(stage="capture", message=str(exc), kind=type(exc).__name__))
        finally:
            with self._mailbox_lock:
                self._done_capturing = True
                self._mailbox_lock.notify_all()

    def _post(self, frame: Frame, faces: tuple, elapsed: float, may_drop: bool) -> None:
        with self._mailbox_lock:
            if not may_drop:
                while self._mailbox is not None and not self._stop.is_set():
                    self._mailbox_lock.wait(0.1)
            elif self._mailbox is not None:
                self.dropped += 1
            self._mailbox = (frame, faces, elapsed)
            self._mailbox_lock.notify_all()

    def _take(self) -> tuple | None:
        with self._mailbox_lock:
            while self._mailbox is None and not self._done_capturing and not self._stop.is_set():
                self._mailbox_lock.wait(0.1)
            item, self._mailbox = self._mailbox, None
            self._mailbox_lock.notify_all()
            return item

    def _render_loop(self) -> None:
        while True:
            item = self._take()
            if item is None:
                if self._done_capturing or self._stop.is_set():
                    return
                continue
            frame, faces, pre_ms = item
            started = time.perf_counter()
            output = frame.image
            if faces:
                self.frames_with_face += 1
                try:
                    result = self.backend.synthesize(SynthesisRequest(frame.image, faces, self.expression(),
                                                                      self.settings, live=True))
                    output = result.image
                    self.bus.emit(Event.SYNTHESIZE, SynthesizeEvent(frame, result,
                                                                    (time.perf_counter() - started) * 1000))
                except FaceSynthError as exc:
                    self.bus.emit(Event.ERROR, ErrorEvent(stage="synthesize", message=str(exc),
                                                          kind=type(exc).__name__, frame_index=frame.index))
            synth_ms = (time.perf_counter() - started) * 1000
            render_started = time.perf_counter()
            composite = side_by_side(frame.image, output, "input", "output")
            done = time.perf_counter()
            render_ms = (done - render_started) * 1000
            for name, value in (("latency", (done - frame.captured_at) * 1000), ("preprocess", pre_ms),
                                ("synthesize", synth_ms), ("render", render_ms)):
                self.samples[name].append(value)
            if self._first_capture is None:
                self._first_capture = frame.captured_at
            self._last_render = done
            self.frames_done += 1
            if self.frames_done % 300 == 1:
                self.memory_mb.append(round(_rss_mb(), 1))
            self.bus.emit(Event.RENDER, RenderEvent(frame, output, composite, render_ms))
            if self.frames_done % 30 == 0:
                self.bus.emit(Event.STATS, StatsEvent(self.figures()))

    def run(self, source: FrameSource, max_frames: int = 0) -> dict[str, Any]:
        """Run until the source ends, `max_frames` frames were captured, or `stop()`; returns the figures."""
        from engine.pipeline import prepare_backend

        cv2.setNumThreads(1)  # two workers on two cores: OpenCV's own thread pool would only contend
        prepare_backend(self.backend, self.backend_id, self.settings)  # loaded before the first frame is read
        capture = threading.Thread(target=self._capture_loop, args=(source, max_frames), name="facesynth-preprocess",
                                   daemon=True)
        render = threading.Thread(target=self._render_loop, name="facesynth-render", daemon=True)
        capture.start()
        render.start()
        while capture.is_alive() or render.is_alive():
            capture.join(0.1)
            render.join(0.1)
        figures = self.figures()
        figures["dropped"] += source.dropped
        self.bus.emit(Event.STATS, StatsEvent(figures))
        return figures

    def figures(self) -> dict[str, Any]:
        """Frames, frames per second, latency and per-stage times so far (keys as `--stats-json`)."""
        count = self.frames_done
        fps = 0.0
        if count >= 2 and self._first_capture is not None:
            span = self._last_render - self._first_capture
            fps = round(count / span, 2) if span > 0 else 0.0
        return {"frames": count, "frames_with_face": self.frames_with_face, "fps": fps,
                "latency_ms": percentiles(self.samples["latency"][:count]),
                "stages_ms": {stage: percentiles(self.samples[stage][:count])
                              for stage in ("preprocess", "synthesize", "render")},
                "dropped": self.dropped, "backend": self.backend_id,
                "memory_mb": {"first": self.memory_mb[0] if self.memory_mb else None,
                              # after 900 frames the caches and allocators have settled
                              "settled": self.memory_mb[3] if len(self.memory_mb) > 3 else None,
                              "last": self.memory_mb[-1] if self.memory_mb else None,
                              "max": max(self.memory_mb) if self.memory_mb else None}}


class Recorder:
    """Writes rendered output frames to a video file on its own thread (a bounded queue: never blocks)."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int], capacity: int = 120,
                 blocking: bool = False) -> None:
        import queue

        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".avi", ".mkv", ".mov"):
            raise UsageError(f"--record writes .mp4, .avi, .mkv or .mov files, not '{self.path.name}'")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
        self.writer = cv2.VideoWriter(str(self.path), fourcc, fps, size)
        if not self.writer.isOpened():
            raise UsageError(f"cannot write video to {self.path}")
        self.size = size
        self.queue: Any = queue.Queue(maxsize=capacity)
        self.dropped = 0
        self.written = 0
        self.blocking = blocking
        self._thread = threading.Thread(target=self._loop, name="facesynth-record", daemon=True)
        self._thread.start()

    def __call__(self, event: RenderEvent) -> None:
        import queue

        try:
            self.queue.put(event.output, block=self.blocking)
        except queue.Full:
            self.dropped += 1

    def _loop(self) -> None:
        while True:
            image = self.queue.get()
            if image is None:
                return
            if (image.shape[1], image.shape[0]) != self.size:
                image = cv2.resize(image, self.size)
            self.writer.write(image)
            self.written += 1

    def close(self) -> None:
        """Write what is queued and finish the file."""
        self.queue.put(None)
        self._thread.join()
        self.writer.release()


class Progress:
    """A one-line progress bar on stderr (only on a terminal)."""

    def __init__(self, total: int, label: str, stream: Any = None) -> None:
        import sys

        self.total, self.label = total, label
        self.stream = stream or sys.stderr
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.perf_counter()
        self._last = 0.0

    def update(self, done: int) -> None:
        """Redraw the bar for `done` items (at most ten times a second)."""
        now = time.perf_counter()
        if not self.enabled or (now - self._last < 0.1 and done < self.total):
            return
        self._last = now
        share = done / self.total if self.total else 0.0
        bar = "#" * int(share * 30)
        rate = done / max(1e-6, now - self.started)
        self.stream.write(f"\r{self.label} [{bar:<30}] {done}/{self.total or '?'} {rate:5.1f} fps")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def apply_video(path: Path, registry: Any, settings: Any, state: LiveState, store: Any, recipe: dict[str, Any],
                backend_id: str) -> dict[str, Any]:
    """Edit every frame of a video file into `output.mp4` in a new capture folder (same frame rate and size).

    The folder also gets the first frame with a face as input.png, output.png and compare.png, and meta.json.
    """
    record: dict[str, Any] = {"input": str(path), "status": "failed", "output_dir": None, "backend": None,
                              "faces": [], "timings_ms": {}, "error": None}
    try:
        source = FrameSource(str(path), max_megapixels=settings.max_megapixels)
    except FaceSynthError as exc:
        record["error"] = str(exc)
        return record
    capture = store.new(str(path), {**recipe, "kind": "video", "backend_requested": backend_id,
                                    "status": "pending", "source_fps": source.fps, "size": list(source.size)})
    record["output_dir"] = str(capture.folder)
    pipeline = LivePipeline(registry, settings, state, backend_id)
    capture.write_meta(parameters=pipeline.expression().as_dict())
    # Every frame of a file is kept, so the recorder waits for room instead of dropping.
    recorder = Recorder(capture.folder / "output.mp4", source.fps, source.size, blocking=True)
    total = int(cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    progress = Progress(total, Path(path).name)
    first: dict[str, Any] = {}

    def on_render(event: RenderEvent) -> None:
        recorder(event)
        progress.update(pipeline.frames_done)
        if not first and event.output is not event.frame.image:
            first.update(input=event.frame.image, output=event.output, composite=event.composite)

    def on_error(event: ErrorEvent) -> None:
        first.setdefault("errors", []).append(event.message)

    pipeline.bus.on(Event.RENDER, on_render)
    pipeline.bus.on(Event.ERROR, on_error)
    started = time.perf_counter()
    try:
        figures = pipeline.run(source)
    finally:
        source.close()
        progress.close()
        recorder.close()
    record["timings_ms"] = {"total": round((time.perf_counter() - started) * 1000, 1), **figures["stages_ms"]}
    record["backend"] = figures["backend"]
    record["frames"] = figures["frames"]
    record["frames_with_face"] = figures["frames_with_face"]
    if first.get("input") is not None:
        capture.write_image("input.png", first["input"])
        capture.write_image("output.png", first["output"])
        capture.write_image("compare.png", first["composite"])
    if pipeline.error:
        record["error"] = pipeline.error
    elif not figures["frames"]:
        record["error"] = "no frames could be read"
    elif not figures["frames_with_face"]:
        record["error"] = "no face found in any frame"
    else:
        record["status"] = "ok"
    capture.write_meta(status=record["status"], backend=record["backend"], video=str(capture.folder / "output.mp4"),
                       frames=figures["frames"], frames_with_face=figures["frames_with_face"],
                       timings_ms=record["timings_ms"], errors=[record["error"]] if record["error"] else [],
                       recorder_dropped=recorder.dropped)
    return record
