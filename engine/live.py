"""Live mode: camera, stream, video or still image in; edited frames out, in real time.

Two worker threads share the work so both cores are used: one captures and finds the faces, the other
synthesizes and renders. Between them sits a one-frame mailbox: for cameras and streams the newest frame
replaces an unread one (latency stays at about one frame, drops are counted); for files nothing is dropped, and
the next frame is read only when the render side has taken the last one (none waits behind a slower render).
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
from typing import Any, Iterable

import cv2
import numpy as np
import structlog

from engine.capture import CaptureStage, Frame, FrameSource
from engine.config import Settings
from engine.errors import FaceSynthError, InputError, UsageError
from engine.events import ErrorEvent, Event, EventBus, PreprocessEvent, RenderEvent, StatsEvent
from engine.preprocess import Preprocessor
from engine.progress import Progress
from engine.registry import Registry
from engine.render import PREVIEW_MAX_SIDE, Renderer
from engine.storage import check_output_file
from engine.synthesize import AUTO, LIVE_TIMEOUT_S, LiveBackend, Synthesizer, describe
from engine.video import WRITE_SUFFIXES, LoopClock, VideoWriter

log = structlog.get_logger()


def _rss_mb() -> float:
    """This process's resident memory now, in MB (Linux), or its peak elsewhere."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class LiveState:
    """What the user can change while the stream runs (keys in the window, controls in the panel).

    Every change goes through a method: it bumps `version` (the pipeline recomputes the vector) and keeps the
    state before it for `undo()`. Fields are replaced, never changed in place, so a worker thread reading them
    sees the old value or the new one. A run of the same change (a slider being dragged) is one undo step.
    """

    emotions: list[tuple[str, float]] = field(default_factory=list)
    overrides: dict[str, float] = field(default_factory=dict)
    intensity: float = 1.0
    version: int = 0
    history: list[tuple[list[tuple[str, float]], dict[str, float], float]] = field(default_factory=list, repr=False)
    _last_change: tuple[str, float] = field(default=("", 0.0), repr=False)

    UNDO_DEPTH = 100
    MERGE_S = 1.0  # the same change within this time (a drag) is one undo step

    def _record(self, what: str, merge: bool = True) -> None:
        now = time.monotonic()
        if not merge or what != self._last_change[0] or now - self._last_change[1] > self.MERGE_S:
            self.history.append((list(self.emotions), dict(self.overrides), self.intensity))
            del self.history[:-self.UNDO_DEPTH]
        self._last_change = (what, now)

    def _changed(self) -> None:
        self.version += 1

    def set_emotion(self, name: str) -> None:
        """Show one emotion (replacing any mix)."""
        self._record("emotion", merge=False)
        self.emotions = [(name, 1.0)]
        self._changed()

    def set_mix(self, weights: Iterable[tuple[str, float]]) -> None:
        """Mix emotions by weight (a weight of 0 leaves that emotion out)."""
        self._record("mix")
        self.emotions = [(name, round(float(weight), 3)) for name, weight in weights if weight > 0]
        self._changed()

    def set_intensity(self, value: float) -> None:
        """Set the intensity, within 0 to 1.5."""
        self._record("intensity")
        self.intensity = round(min(1.5, max(0.0, float(value))), 3)
        self._changed()

    def nudge_intensity(self, delta: float) -> None:
        """Change the intensity within 0 to 1.5."""
        self._record("intensity")
        self.intensity = round(min(1.5, max(0.0, self.intensity + delta)), 2)
        self._changed()

    def set_override(self, name: str, value: float) -> None:
        """Pin one parameter to a value, whatever the emotions say."""
        self._record(f"override:{name}")
        self.overrides = {**self.overrides, name: round(float(value), 3)}
        self._changed()

    def reset_overrides(self) -> None:
        """Let every parameter follow the emotions again."""
        self._record("reset", merge=False)
        self.overrides = {}
        self._changed()

    def apply(self, emotions: Iterable[tuple[str, float]], intensity: float, overrides: dict[str, float]) -> None:
        """Replace everything at once (a stored capture's parameters, a newly saved emotion)."""
        self._record("apply", merge=False)
        self.emotions = [(name, float(weight)) for name, weight in emotions]
        self.intensity = round(min(1.5, max(0.0, float(intensity))), 3)
        self.overrides = dict(overrides)
        self._changed()

    def keep_known(self, known: Iterable[str]) -> list[str]:
        """After a plugin rescan: drop emotions that are gone (returned), and recompute the vector either way."""
        names = set(known)
        gone = [name for name, _ in self.emotions if name not in names]
        if gone:
            self._record("rescan", merge=False)
            self.emotions = [(name, weight) for name, weight in self.emotions if name in names]
        self._changed()  # a rescanned emotion may have new values under the same name
        return gone

    def undo(self) -> bool:
        """Go back to the state before the last change; False when there is nothing to undo."""
        if not self.history:
            return False
        self.emotions, self.overrides, self.intensity = self.history.pop()
        self._last_change = ("", 0.0)
        self._changed()
        return True


def percentiles(values: Any) -> dict[str, float]:
    """Median and p95 of milliseconds."""
    if not len(values):
        return {"median": 0.0, "p95": 0.0}
    numbers = np.frombuffer(values, dtype=np.float32) if isinstance(values, array) else np.asarray(values)
    return {"median": round(float(np.median(numbers)), 2), "p95": round(float(np.percentile(numbers, 95)), 2)}


class LivePipeline:
    """Capture -> pre-process on one thread, synthesize -> render on another; sinks subscribe to `render`.

    The stages are the same objects the still pipeline uses (`engine.capture`, `engine.preprocess`,
    `engine.synthesize`, `engine.render`). A backend that fails shows unedited frames with the reason (an `error`
    event) and is retried after a back-off; one that stops answering is abandoned after a time-out, and the
    stream goes on with a fresh render thread. Any other failure ends the run with `error` set, never a hang.
    """

    def __init__(self, registry: Registry, settings: Settings, state: LiveState, backend_id: str = AUTO,
                 bus: EventBus | None = None, timeout_s: float = LIVE_TIMEOUT_S) -> None:
        self.registry, self.settings, self.state = registry, settings, state
        self.bus = bus or EventBus()
        self.capture = CaptureStage(self.bus)
        self.synthesizer = Synthesizer(registry, settings, self.bus)
        # A slow backend never runs per frame: streams use the best live-capable one.
        self.live_backend = LiveBackend(self.synthesizer, self.synthesizer.live_entry(backend_id), timeout_s)
        self.backend_id = self.live_backend.id
        self.renderer = Renderer(self.bus, PREVIEW_MAX_SIDE, whole_steps=True)
        self._stop = threading.Event()
        self._mailbox: tuple[Frame, tuple, float] | None = None
        self._mailbox_lock = threading.Condition()
        self._done_capturing = False
        self._generation = 0  # a render thread abandoned after a hung backend call sees a newer one and quits
        self._threads: list[threading.Thread] = []  # the workers of the current run (joined by stop(wait=...))
        self.error: str = ""
        self.last_error: str = ""  # the current frame-level failure (shown on screen), cleared by a good frame
        self.recent_error: str = ""  # the latest frame-level failure, kept for the summary
        self.failed_frames = 0
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

    def stop(self, wait: float = 0.0) -> None:
        """Ask both workers to finish; with `wait`, give them up to that many seconds to do so (a run that was
        interrupted: the landmarker's and the decoder's native threads must be done before the process ends)."""
        self._stop.set()
        with self._mailbox_lock:
            self._mailbox_lock.notify_all()
        if wait <= 0:
            return
        deadline = time.monotonic() + wait
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def expression(self) -> Any:
        """The current expression vector (recomputed only when the state changed)."""
        version, cached = self._expression_cache
        if version != self.state.version or cached is None:
            cached = self.registry.expression(self.state.emotions, self.state.intensity, self.state.overrides)
            self._expression_cache = (self.state.version, cached)
        return cached

    def _fail(self, stage: str, exc: BaseException) -> None:
        """End the run with a one-line reason (any failure outside a backend call)."""
        if not isinstance(exc, FaceSynthError):
            log.debug("live_failed", stage=stage, exc_info=exc)
        self.error = self.error or describe(exc)
        self.bus.emit(Event.ERROR, ErrorEvent(stage=stage, message=describe(exc), kind=type(exc).__name__))
        self.stop()

    def _capture_loop(self, source: FrameSource, max_frames: int) -> None:
        try:
            with Preprocessor(self.settings, self.bus, video=True) as preprocessor:
                count = 0
                while not self._stop.is_set() and (not max_frames or count < max_frames):
                    if not source.drops_frames:
                        self._wait_for_room()
                    frame = source.read()
                    if frame is None:
                        break
                    count += 1
                    self.capture.take(frame)
                    timestamp = int((frame.index / source.fps) * 1000) if not source.drops_frames else \
                        int(frame.captured_at * 1000)
                    found = preprocessor(frame, timestamp)
                    self._post(frame, tuple(found.edited), found.elapsed_ms, source.drops_frames)
        except Exception as exc:  # the source, the landmarker: end the run with the reason
            self._fail("capture", exc)
        finally:
            with self._mailbox_lock:
                self._done_capturing = True
                self._mailbox_lock.notify_all()

    def _wait_for_room(self) -> None:
        """Until the render side has taken the last frame posted. A file's next frame is read only then: read
        earlier, it would wait in the mailbox behind a slower render side, and its latency grow by a frame."""
        with self._mailbox_lock:
            while self._mailbox is not None and not self._stop.is_set():
                self._mailbox_lock.wait(0.1)

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

    def _render_loop(self, generation: int) -> None:
        try:
            while generation == self._generation:
                item = self._take()
                if item is None:
                    if self._done_capturing or self._stop.is_set():
                        return
                    continue
                self._render_one(item, generation)
        except Exception as exc:  # rendering or a sink's bookkeeping: end the run with the reason
            self._fail("render", exc)

    def _render_one(self, item: tuple, generation: int) -> None:
        frame, faces, pre_ms = item
        started = time.perf_counter()
        output, problem = frame.image, ""
        if faces:
            output, problem = self.live_backend(frame, faces, self.expression())
            if generation != self._generation:  # this call hung and a newer render thread took over
                return
            if problem:
                self.failed_frames += 1
                self.recent_error = problem
                if problem != self.last_error:
                    self.bus.emit(Event.ERROR, ErrorEvent(stage="synthesize", message=problem,
                                                          frame_index=frame.index))
        self.last_error = problem
        synth_ms = (time.perf_counter() - started) * 1000
        _, render_ms = self.renderer(frame, output, "unedited (see the error)" if problem else "output")
        done = time.perf_counter()
        for name, value in (("latency", (done - frame.captured_at) * 1000), ("preprocess", pre_ms),
                            ("synthesize", synth_ms), ("render", render_ms)):
            self.samples[name].append(value)
        if self._first_capture is None:
            self._first_capture = frame.captured_at
        self._last_render = done
        self.frames_done += 1
        self.frames_with_face += bool(faces)
        if self.frames_done % 300 == 1:
            self.memory_mb.append(round(_rss_mb(), 1))
        if self.frames_done % 30 == 0:
            self.bus.emit(Event.STATS, StatsEvent(self.figures()))

    def _start_render(self) -> threading.Thread:
        thread = threading.Thread(target=self._render_loop, args=(self._generation,), name="facesynth-render",
                                  daemon=True)
        thread.start()
        return thread

    def run(self, source: FrameSource, max_frames: int = 0) -> dict[str, Any]:
        """Run until the source ends, `max_frames` frames were captured, or `stop()`; returns the figures."""
        cv2.setNumThreads(1)  # two workers on two cores: OpenCV's own thread pool would only contend
        self.synthesizer.prepare(self.backend_id, live=True)  # loaded before the first frame is read
        capture = threading.Thread(target=self._capture_loop, args=(source, max_frames), name="facesynth-preprocess",
                                   daemon=True)
        capture.start()
        render = self._start_render()
        self._threads = [capture, render]
        while capture.is_alive() or render.is_alive():
            capture.join(0.05)
            render.join(0.05)
            if self.live_backend.overdue():
                # The backend has not answered: give up on that call and go on rendering with a fresh thread.
                message = self.live_backend.abandon()
                self.bus.emit(Event.ERROR, ErrorEvent(stage="synthesize", message=message, kind="Timeout"))
                self._generation += 1
                render = self._start_render()
                self._threads = [capture, render]
            elif capture.is_alive() and not render.is_alive():
                self.stop()  # the render side ended: the capture side must not wait for it
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
                "failed_frames": self.failed_frames, "last_error": self.recent_error or None,
                "memory_mb": {"first": self.memory_mb[0] if self.memory_mb else None,
                              # after 900 frames the caches and allocators have settled
                              "settled": self.memory_mb[3] if len(self.memory_mb) > 3 else None,
                              "last": self.memory_mb[-1] if self.memory_mb else None,
                              "max": max(self.memory_mb) if self.memory_mb else None}}


DEFAULT_CRF = 20  # x264's constant rate factor: visually lossless for most clips (lower: better, larger)


def check_record_path(path: str | Path, flag: str = "--record") -> Path:
    """A video file name that can be written (a suffix FaceSynth writes, not a folder, in a writable folder),
    checked before any frame is made."""
    target = Path(path)
    if target.suffix.lower() not in WRITE_SUFFIXES:
        raise UsageError(f"{flag} writes {', '.join(WRITE_SUFFIXES)} files, not '{target.name}'")
    return check_output_file(target, flag)


class Recorder:
    """Writes rendered output frames to a video file (H.264, `engine.video.VideoWriter`) from a thread of its
    own. Live sources never wait for it (a bounded queue; frames it has no room for are dropped and counted);
    with `blocking` (a video file being edited) every frame is kept, with its timestamp, and the input's audio
    is carried over (`audio_from`). The file is written under a temporary name and finished by `close()` on
    every path, so an interrupted recording is still playable."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int], capacity: int = 120,
                 blocking: bool = False, time_base: Any = None, audio_from: str | Path | None = None,
                 crf: int = DEFAULT_CRF, follow: FrameSource | None = None) -> None:
        self.path = check_record_path(path)
        # `follow`: a video file played live (`live --record`): each frame is written at its time in the file and
        # the file's sound comes along, from its start again each time the file loops.
        self.follow = follow if follow is not None and follow.kind == "file" and follow.time_base is not None \
            else None
        if self.follow is not None:
            time_base = self.follow.time_base
            audio_from = self.follow.file_path if self.follow.audio_streams else None
        # An edit that is interrupted ends its sound with its last frame (close(cut_audio=True)); the sound is
        # muxed at most a fifth of a second ahead of the pictures, so little of it can be past that frame.
        self.writer = VideoWriter(self.path, size, fps, time_base=time_base, crf=crf, audio_from=audio_from,
                                  audio_ahead_s=0.2, audio_loops=self.follow is not None)
        self.clock = LoopClock(self.writer.fps)
        self.size = size
        self.keep_timestamps = time_base is not None
        self.queue: queue.Queue[tuple[Any, Any] | None] = queue.Queue(maxsize=capacity)
        self.dropped = 0
        self.written = 0
        self.blocking = blocking
        self.error = ""
        self._thread = threading.Thread(target=self._loop, name="facesynth-record", daemon=True)
        self._thread.start()

    def __call__(self, event: RenderEvent) -> None:
        """Queue one rendered frame (a `render` event subscriber)."""
        pts = event.frame.pts if self.keep_timestamps else None
        if self.follow is not None and pts is not None:
            at, restart = self.clock.place(float(pts * self.follow.time_base))
            if restart is not None:  # the file started again: so does its sound, right after the last frame
                self._put((None, restart), True)
            pts = round(at / self.writer.time_base)
        self._put((event.output, pts), self.blocking)

    def _put(self, item: tuple[Any, Any], block: bool) -> None:
        try:
            self.queue.put(item, block=block)
        except queue.Full:
            self.dropped += 1

    def _loop(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error:
                continue  # the writer failed: keep draining so producers never block
            image, pts = item
            if image is None:  # a looping file's next round: its sound from the start again
                self.writer.restart_audio(pts)
                continue
            if (image.shape[1], image.shape[0]) != self.size:
                image = cv2.resize(image, self.size)
            try:
                self.writer.write(image, pts)
                self.written += 1
            except FaceSynthError as exc:
                self.error = str(exc)

    def close(self, cut_audio: bool = False) -> None:
        """Write what is queued and finish the file; with `cut_audio` (a run that was interrupted) the input's
        sound ends where the frames written end, instead of running on to the input's end."""
        self.queue.put(None)
        self._thread.join()
        # A file played live ends its sound with the pictures recorded, wherever the run stopped.
        cut_audio = cut_audio or self.follow is not None
        self.writer.close(audio_until_s=self.writer.end_s if cut_audio else None)
        if self.error:
            raise InputError(self.error)


def video_output_name(path: str | Path) -> str:
    """The edited video's file name: `output` in the input's container where FaceSynth writes it, else .mp4."""
    suffix = Path(path).suffix.lower()
    return f"output{suffix if suffix in WRITE_SUFFIXES else '.mp4'}"


def summarise_faces(largest: list[tuple[int, Any]]) -> list[dict[str, Any]]:
    """The largest face of each frame, summarised for a video's record: in how many frames, where it was at
    the first and the last of them, its median size and the range of its pose."""
    if not largest:
        return []
    sizes = sorted(face.inter_ocular_px for _, face in largest)
    yaws = [face.yaw for _, face in largest]
    return [{"frames": len(largest), "first_frame": largest[0][0], "last_frame": largest[-1][0],
             "box_first": list(largest[0][1].box), "box_last": list(largest[-1][1].box),
             "inter_ocular_px_median": round(sizes[len(sizes) // 2], 1),
             "yaw_range": [round(min(yaws), 1), round(max(yaws), 1)]}]


def apply_video(path: Path, registry: Any, settings: Any, state: LiveState, store: Any, recipe: dict[str, Any],
                backend_id: str, crf: int = DEFAULT_CRF) -> dict[str, Any]:
    """Edit every frame of a video file into `output.mp4` (or the input's own container) in a new capture
    folder: H.264, the same size, frame rate and timestamps, the input's audio kept.

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
                                    "status": "pending", "source_fps": source.fps, "size": list(source.size),
                                    "rotation": source.rotation})
    record["output_dir"] = str(capture.folder)
    try:
        pipeline = LivePipeline(registry, settings, state, backend_id)
        capture.write_meta(parameters=pipeline.expression().as_dict())
        # Every frame of a file is kept (the recorder waits for room), with its timestamp and the input's sound.
        recorder = Recorder(capture.folder / video_output_name(path), source.fps, source.size, blocking=True,
                            time_base=source.time_base, audio_from=path if source.audio_streams else None, crf=crf)
    except BaseException:
        source.close()
        raise
    progress = Progress(source.frame_count_estimate, Path(path).name, unit="frame")
    first: dict[str, Any] = {}
    largest: list[tuple[int, Any]] = []

    def on_faces(event: PreprocessEvent) -> None:
        if event.edited:
            largest.append((event.frame.index, max(event.edited, key=lambda face: face.box[2] * face.box[3])))

    def on_render(event: RenderEvent) -> None:
        recorder(event)
        progress.update(pipeline.frames_done)
        if not first and event.output is not event.frame.image:
            first.update(input=event.frame.image, output=event.output, composite=event.composite)

    def on_error(event: ErrorEvent) -> None:
        first.setdefault("errors", []).append(event.message)

    pipeline.bus.on(Event.PREPROCESS, on_faces)
    pipeline.bus.on(Event.RENDER, on_render)
    pipeline.bus.on(Event.ERROR, on_error)
    started = time.perf_counter()
    try:
        figures = pipeline.run(source)
    except KeyboardInterrupt:  # Ctrl+C or SIGTERM: the frames so far make a playable file, and the record says so
        pipeline.stop(wait=5.0)
        recorder.close(cut_audio=True)  # finished: the frames edited so far, with their sound, make a playable file
        capture.write_meta(status="interrupted", frames=recorder.written,
                           errors=[f"interrupted: {recorder.path.name} holds the {recorder.written} frames edited"
                                   if recorder.written else "interrupted before the first frame: no video written"])
        raise
    finally:
        pipeline.stop()
        source.close()
        progress.close()
    try:
        recorder.close()
    except InputError as exc:
        pipeline.error = pipeline.error or str(exc)
    record["timings_ms"] = {"total": round((time.perf_counter() - started) * 1000, 1), **figures["stages_ms"]}
    record["backend"] = figures["backend"]
    record["frames"] = figures["frames"]
    record["frames_with_face"] = figures["frames_with_face"]
    record["faces"] = summarise_faces(largest)
    record["audio_streams"] = len(recorder.writer.audio)
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
    elif figures["failed_frames"] >= figures["frames_with_face"]:
        record["error"] = f"no frame could be edited: {figures['last_error']}"
    else:
        record["status"] = "ok"
    if figures["failed_frames"]:
        record["failed_frames"] = figures["failed_frames"]
    capture.write_meta(status=record["status"], backend=record["backend"], video=recorder.path.name,
                       audio=recorder.writer.audio, faces=record["faces"],
                       frames=figures["frames"], frames_with_face=figures["frames_with_face"],
                       timings_ms=record["timings_ms"], errors=[record["error"]] if record["error"] else [],
                       recorder_dropped=recorder.dropped, failed_frames=figures["failed_frames"])
    return record
