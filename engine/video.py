"""Video files in and out with PyAV (FFmpeg's libraries): H.264 out, the input's audio kept, every frame kept.

The API the rest of the engine uses:

- `VideoReader(path, max_megapixels=50.0)`: a context manager; iterating yields `VideoFrame`s (`image` 8-bit
  BGR turned upright per the rotation metadata, `index`, `pts`, `time_base`, `time_s`). Attributes: `size`
  (width, height after rotation), `fps` (average), `rotation` (the display matrix's counter-clockwise degrees,
  as PyAV reads it: 0, 90, 180 or -90), `time_base`, `frame_count_estimate` (the header's count, an estimate
  for some containers), `audio_streams` (how many). Frames are decoded on a thread of their own, a few ahead
  (bounded queue). A decoding error raises `InputError` naming the frame where it stopped, after every frame
  decoded before it was yielded; a file that is not a readable video raises `InputError` at opening.
- `VideoWriter(path, size, fps, time_base=None, crf=20, audio_from=None, rotation=0, preset="veryfast",
  audio_start_s=0.0, audio_loops=False)`:
  encodes on a thread of its own (bounded queue, blocking put: no frame is lost) to a temporary file in the
  same folder, renamed to `path` by `close()`; `abort()` removes it. `write(image, pts=None)`. H.264 (yuv420p,
  High profile, x264 `preset`) in .mp4 (with +faststart), .mov and .mkv; VP9 in .webm (the only codecs WebM
  takes are VP8/VP9/AV1). An odd width or height is padded by one pixel (yuv420p needs even sizes). The
  audio streams of `audio_from` are copied packet for packet where the container takes their codec,
  re-encoded otherwise (AAC; Opus for .webm), with their own timestamps, so they stay in sync. `rotation`
  (counter-clockwise degrees) tags the display matrix, for frames written as stored rather than upright.
  `audio_start_s`: the audio from that time of `audio_from` is placed at the output's start (a recording begun
  mid-file); with `audio_loops`, `restart_audio(at_s)` puts `audio_from`'s audio from its start again at `at_s`
  of the output (a looping source's next round).
- `check_video_path(path)`: the output's suffix and folder checked up front (`UsageError`), before any frame.
- `transcode(src, dst, edit, crf=20, progress=None) -> dict`: every frame through `edit(image, index)`,
  timestamps and audio kept; returns frames, audio_streams, fps, size, stopped_early.
- `is_video(path)`, `VIDEO_SUFFIXES` (what can be read), `WRITE_SUFFIXES` (what can be written).

FFmpeg's own log lines are silenced unless FACESYNTH_NATIVE_LOGS is set.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator

import av
import av.logging
import cv2
import numpy as np
import structlog

from engine.errors import InputError, UsageError

log = structlog.get_logger()

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
WRITE_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov")

_MUXERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
# Audio codecs each container takes as they are (copied packet for packet); anything else is re-encoded.
_AUDIO_COPYABLE = {
    ".mp4": {"aac", "mp3", "alac", "ac3", "eac3"},
    ".mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le"},
    ".mkv": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "vorbis", "flac", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
    ".webm": {"opus", "vorbis"},
}
_AUDIO_ENCODER = {".webm": "libopus"}  # AAC elsewhere
# x264's speed/size trade-off: 720p encodes at about 75 fps on this 2-core machine, 1080p at about 23-25
PRESET = "veryfast"
_QUEUE_FRAMES = 8


def is_video(path: str | Path) -> bool:
    """Whether a path names a video file (by its suffix)."""
    return Path(str(path)).suffix.lower() in VIDEO_SUFFIXES


def quiet_native_logs() -> None:
    """Silence FFmpeg's own log chatter (it writes straight to stderr) unless FACESYNTH_NATIVE_LOGS is set."""
    av.logging.set_level(av.logging.VERBOSE if os.environ.get("FACESYNTH_NATIVE_LOGS") else None)


def check_video_path(path: str | Path) -> Path:
    """Refuse an output path that cannot be written (suffix, folder) before any frame is made: `UsageError`."""
    path = Path(path)
    if path.suffix.lower() not in WRITE_SUFFIXES:
        raise UsageError(f"{path.name}: videos are written as {', '.join(WRITE_SUFFIXES)}, not "
                         f"'{path.suffix or 'no suffix'}'")
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"{path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{path}: the folder {folder} is not writable")
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, not a video file name")
    return path


def _reason(exc: BaseException) -> str:
    """FFmpeg's error text without PyAV's errno prefix and file name."""
    text = getattr(exc, "strerror", None) or str(exc)
    return text.strip().rstrip(".")


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame: the upright BGR image and where it sits in the input's timeline."""

    image: np.ndarray
    index: int
    pts: int | None
    time_base: Fraction | None
    time_s: float | None


_END = object()


class VideoReader:
    """The frames of a video file, decoded on a thread of their own (see the module docstring)."""

    def __init__(self, path: str | Path, max_megapixels: float = 50.0, ahead: int = 4, loop: bool = False) -> None:
        quiet_native_logs()
        self.path = Path(path)
        self.loop = loop  # from the start again at the end (the same container and thread: nothing piles up)
        try:
            if not self.path.is_file():
                raise InputError(f"{self.path}: " + ("no such file" if not self.path.exists() else "not a file"))
            self._container = av.open(str(self.path), mode="r")
        except av.FFmpegError as exc:
            raise InputError(f"{self.path}: not a video FaceSynth can read ({_reason(exc)})") from None
        except OSError as exc:
            raise InputError(f"{self.path}: cannot read it ({exc.strerror})") from None
        try:
            self._open_stream(max_megapixels)
        except BaseException:
            self._container.close()
            raise
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        self.decoded = 0
        self._thread = threading.Thread(target=self._decode_loop, name="facesynth-decode", daemon=True)
        self._thread.start()

    def _open_stream(self, max_megapixels: float) -> None:
        if not self._container.streams.video:
            raise InputError(f"{self.path}: has no video stream")
        stream = self._container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width * height > max_megapixels * 1e6:
            raise InputError(f"{self.path}: {width}x{height} frames are over the limit of {max_megapixels:g} "
                             "megapixels (setting max_megapixels)")
        self._stream = stream
        self.time_base: Fraction | None = stream.time_base
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self.fps = float(rate) if rate and 0.5 <= float(rate) <= 1000 else 30.0
        estimate = stream.frames
        if not estimate and stream.duration and stream.time_base:
            estimate = round(float(stream.duration * stream.time_base) * self.fps)
        elif not estimate and self._container.duration:
            estimate = round(self._container.duration / 1e6 * self.fps)
        self.frame_count_estimate = int(estimate or 0)
        self.audio_streams = len(self._container.streams.audio)
        self._frames = self._container.decode(stream)
        # The first frame is decoded here: a damaged file fails at opening, and its display matrix gives
        # the rotation (so the upright size is known before the first frame is asked for).
        try:
            self._first = next(self._frames)
        except StopIteration:
            raise InputError(f"{self.path}: the video has no frames") from None
        except av.FFmpegError as exc:
            raise InputError(f"{self.path}: the video is damaged and cannot be decoded ({_reason(exc)})") from None
        self.rotation = int(round(self._first.rotation or 0))
        if self.rotation == -180:
            self.rotation = 180
        width, height = self._first.width, self._first.height
        self.size = (height, width) if self.rotation in (90, -90) else (width, height)

    def _upright(self, image: np.ndarray) -> np.ndarray:
        # The display matrix's angle is counter-clockwise: turning the frame by it shows it as meant.
        if self.rotation == 90:
            return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
        if self.rotation == -90:
            return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
        if self.rotation == 180:
            return cv2.rotate(image, cv2.ROTATE_180)
        return image

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _decode_loop(self) -> None:
        index, last_time = 0, None
        frame: Any = self._first
        try:
            while frame is not None:
                image = self._upright(frame.to_ndarray(format="bgr24"))
                time_s = float(frame.time) if frame.time is not None else None
                if not self._put(VideoFrame(image, index, frame.pts, frame.time_base, time_s)):
                    return
                index, last_time = index + 1, time_s
                frame = next(self._frames, None)
                if frame is None and self.loop and not self._stop.is_set():
                    self._container.seek(0, stream=self._stream)
                    self._frames = self._container.decode(self._stream)
                    frame = next(self._frames, None)
            self._put(_END)
        except Exception as exc:  # a real decoding error: what was decoded is kept, the reason reported
            where = f"frame {index}" + (f" (after {last_time:.3f} s)" if last_time is not None else "")
            self._put(InputError(f"{self.path}: decoding stopped at {where}: {_reason(exc)}"))

    def __iter__(self) -> Iterator[VideoFrame]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, InputError):
                raise item
            self.decoded += 1
            yield item

    def close(self) -> None:
        """Stop decoding and close the file."""
        self._stop.set()
        self._thread.join()
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class _AudioCarrier:
    """The audio streams of an input file, carried into an output container, interleaved as video advances.

    The audio runs in segments: the input's audio from `source_s` on is placed at `output_s` of the output. The
    first segment starts at `start_s` of the input (a recording begun mid-file), at the output's start;
    `restart(at_s)` begins another from the input's start (a looping source).
    """

    def __init__(self, source: Path, output: Any, suffix: str, start_s: float = 0.0) -> None:
        self.container = av.open(str(source), mode="r")
        self.routes: dict[int, tuple[str, Any]] = {}
        self.summary: list[dict[str, Any]] = []
        for stream in self.container.streams.audio:
            name = stream.codec_context.name
            if name in _AUDIO_COPYABLE[suffix]:
                target = output.add_stream_from_template(stream)
                mode = "copy"
            else:
                encoder = _AUDIO_ENCODER.get(suffix, "aac")
                rate = 48000 if encoder == "libopus" else stream.codec_context.sample_rate
                target = output.add_stream(encoder, rate=rate)
                target.layout = "stereo" if stream.codec_context.channels > 1 else "mono"
                mode = "encode"
            self.routes[stream.index] = (mode, target)
            self.summary.append({"codec": name, "mode": mode, "to": target.codec_context.name})
        self._begin(start_s, 0.0)

    def _begin(self, source_s: float, output_s: float) -> None:
        """Start a segment: the input's audio from `source_s` s, placed at `output_s` s of the output."""
        self._segment = (source_s, output_s)
        # A whole file from its start keeps every packet (an AAC stream's priming one has a negative time); a
        # segment cut out of the input keeps only what lies at or after its start, so times keep rising.
        self._trim = (source_s, output_s) != (0.0, 0.0)
        if source_s > 0:
            self.container.seek(int(source_s * av.time_base))  # at or before it: the packets before are skipped
        self._packets = self.container.demux(*self.container.streams.audio)
        self._pending: Any = None
        self._done = not self.routes

    def restart(self, at_s: float) -> None:
        """From `at_s` s of the output on, the input's audio from its start again (what came before is cut there)."""
        self.pump(at_s, before=True)
        self.container.seek(0)
        for stream in self.container.streams.audio:
            if self.routes[stream.index][0] == "encode":
                stream.codec_context.flush_buffers()  # the decoder may have been drained at the input's end
        self._begin(0.0, at_s)

    def pump(self, until_s: float | None, before: bool = False) -> None:
        """Mux the audio up to `until_s` seconds of the output's timeline (all of it: None; `before`: only what
        starts before it)."""
        source_start, output_start = self._segment
        while not self._done:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                self._done = True
                break
            mode, target = self.routes[packet.stream.index]
            if packet.dts is None:  # the demuxer's empty end-of-stream packet: flushes the decoder
                if mode == "encode":
                    self._encode(packet, target, 0)
                continue
            shift = 0
            if packet.pts is not None:
                source_s = float(packet.pts * packet.time_base)
                if self._trim and source_s < source_start - 1e-6:
                    continue  # before this segment's start (a seek lands at or before it)
                output_s = source_s - source_start + output_start
                if until_s is not None and (output_s > until_s or (before and output_s >= until_s)):
                    self._pending = packet
                    return
                shift = round((output_start - source_start) / packet.time_base)
            if mode == "copy":
                if shift and packet.pts is not None:  # (the end-of-stream packet, without times, was taken above)
                    packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                packet.stream = target
                target.container.mux(packet)
            else:
                self._encode(packet, target, shift)

    @staticmethod
    def _encode(packet: Any, target: Any, shift: int) -> None:
        for frame in packet.decode():
            if shift and frame.pts is not None:
                frame.pts += round(shift * packet.time_base / frame.time_base)
            for encoded in target.encode(frame):
                target.container.mux(encoded)

    def finish(self, until_s: float | None = None) -> None:
        """Mux the rest (up to `until_s`), flush the encoders and close the input."""
        self.pump(until_s)
        for mode, target in self.routes.values():
            if mode == "encode":
                for encoded in target.encode(None):
                    target.container.mux(encoded)
        self.container.close()


class VideoWriter:
    """Writes frames to a video file on a thread of its own (see the module docstring)."""

    def __init__(self, path: str | Path, size: tuple[int, int], fps: float, time_base: Fraction | None = None,
                 crf: int = 20, audio_from: str | Path | None = None, rotation: int = 0,
                 preset: str = PRESET, audio_start_s: float = 0.0, audio_loops: bool = False,
                 audio_ahead_s: float = 1.0) -> None:
        quiet_native_logs()
        self.path = check_video_path(path)
        suffix = self.path.suffix.lower()
        if not 0 <= crf <= 51:
            raise UsageError(f"--crf {crf}: out of range (0 best .. 51 worst; about 18-28 is usual)")
        self.size = (int(size[0]), int(size[1]))
        self.fps = float(fps) if fps and fps > 0 else 30.0
        rate = Fraction(self.fps).limit_denominator(1001)
        self.time_base = Fraction(time_base) if time_base else 1 / rate
        # yuv420p needs even sizes: an odd edge is padded by repeating its last row or column
        self._coded = (self.size[0] + self.size[0] % 2, self.size[1] + self.size[1] % 2)
        self._temporary = self.path.with_name(f".{self.path.stem}.{uuid.uuid4().hex[:8]}.partial{suffix}")
        options = {"movflags": "+faststart"} if suffix in (".mp4", ".mov") else {}
        self._output = av.open(str(self._temporary), mode="w", format=_MUXERS[suffix], options=options)
        try:
            self._stream = self._add_video_stream(suffix, rate, crf, rotation, preset)
            self._audio = _AudioCarrier(Path(audio_from), self._output, suffix, audio_start_s) if audio_from \
                else None
        except BaseException:
            self._output.close()
            self._temporary.unlink(missing_ok=True)
            raise
        self.audio = self._audio.summary if self._audio else []
        # Audio a second ahead of the video interleaves well and keeps the muxer's queue short; audio that may
        # start again (restart_audio) only follows the video, so nothing written ever lies past a restart.
        # (`audio_ahead_s`: how far the audio muxed may run ahead of the pictures; what is muxed stays even when
        # the file is closed early, so an edit that may be interrupted keeps it short.)
        self._audio_ahead_s = 0.0 if audio_loops else audio_ahead_s
        self.written = 0
        self._last_pts: int | None = None
        self._last_time: float | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_FRAMES)
        self._thread = threading.Thread(target=self._encode_loop, name="facesynth-encode", daemon=True)
        self._thread.start()

    def _add_video_stream(self, suffix: str, rate: Fraction, crf: int, rotation: int, preset: str) -> Any:
        if suffix == ".webm":
            stream = self._output.add_stream("libvpx-vp9", rate=rate)
            # constant quality (b:v 0 + crf), real-time speed: VP9's default speed is far below real time
            stream.options = {"crf": str(crf + 11), "b": "0", "deadline": "realtime", "cpu-used": "8",
                              "row-mt": "1"}
        else:
            stream = self._output.add_stream("libx264", rate=rate)
            stream.options = {"crf": str(crf), "preset": preset, "profile": "high"}
        stream.width, stream.height = self._coded
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = self.time_base
        stream.time_base = self.time_base
        if rotation:
            stream.set_display_rotation(rotation)
        return stream

    def write(self, image: np.ndarray, pts: int | None = None) -> None:
        """Queue one BGR frame (waits for room: nothing is dropped); `pts` in `time_base` units, or the next slot."""
        if self._error is not None:
            raise self._error
        if self._closed:
            raise ValueError("the video writer is closed")
        if pts is None:
            pts = round(self.written / self.fps / self.time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # timestamps must rise; a repeated one would make the muxer refuse
        self._last_pts = pts
        self._last_time = float(pts * self.time_base)
        self.written += 1
        self._queue.put((image, pts))

    def restart_audio(self, at_s: float) -> None:
        """From `at_s` s of the output on, `audio_from`'s audio from its start again (a looping source's new round);
        in order with the frames written. Needs `audio_loops`."""
        if self._audio is not None:
            self._queue.put((None, at_s))

    def _encode_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # keep draining so a blocked write() returns and sees the error
            try:
                if item[0] is None:
                    assert self._audio is not None
                    self._audio.restart(item[1])
                    continue
                self._encode(*item)
            except Exception as exc:  # a full disk, an encoder failure: reported by the next write() or close()
                self._error = InputError(f"{self.path}: writing the video failed ({_reason(exc)})")

    def _encode(self, image: np.ndarray, pts: int) -> None:
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        if self._coded != self.size:
            image = cv2.copyMakeBorder(image, 0, self._coded[1] - self.size[1], 0, self._coded[0] - self.size[0],
                                       cv2.BORDER_REPLICATE)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        frame.pts, frame.time_base = pts, self.time_base
        for packet in self._stream.encode(frame):
            self._output.mux(packet)
        if self._audio is not None:
            self._audio.pump(float(pts * self.time_base) + self._audio_ahead_s)

    @property
    def end_s(self) -> float:
        """Where the pictures written so far end, in seconds (the last frame's time and one frame's length)."""
        return 0.0 if self._last_time is None else self._last_time + 1.0 / self.fps

    def close(self, audio_until_s: float | None = None) -> Path | None:
        """Finish the file (all the audio, or up to `audio_until_s` s) and rename it to its name; returns the path,
        or None when no frame was written (nothing is left behind: a recording stopped before its first frame)."""
        if self._closed:
            return self.path if self.path.exists() else None
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        if not self.written and self._error is None:
            self._discard()
            log.info("video_not_written", path=str(self.path), reason="no frame was written")
            return None
        try:
            if self._error is not None:
                raise self._error
            for packet in self._stream.encode(None):
                self._output.mux(packet)
            if self._audio is not None:
                self._audio.finish(audio_until_s)
            self._output.close()
        except BaseException as exc:
            self._discard()
            if isinstance(exc, (av.FFmpegError, OSError)):
                raise InputError(f"{self.path}: writing the video failed ({_reason(exc)})") from None
            raise
        os.replace(self._temporary, self.path)
        log.info("video_written", path=str(self.path), frames=self.written, audio=len(self.audio))
        return self.path

    def _discard(self) -> None:
        for closing in (self._output.close, self._audio.container.close if self._audio else None):
            try:
                if closing:
                    closing()
            except Exception:  # already closed or half-written: the file goes anyway
                pass
        self._temporary.unlink(missing_ok=True)

    def abort(self) -> None:
        """Stop and remove the unfinished file."""
        if not self._closed:
            self._closed = True
            self._error = self._error or InputError("aborted")
            self._queue.put(None)
            self._thread.join()
        self._discard()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class LoopClock:
    """Where the frames of a video file played live go in a recording of them: at their time in the file since
    the first frame recorded; when a looping file starts again, its next round follows right after the last frame
    (and its sound starts again there: `place` says where)."""

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self.segment: tuple[float, float] | None = None  # (file time, recording time) where this round begins
        self.last = (-1.0, -1.0)  # the last frame's (file time, recording time)

    def place(self, when: float) -> tuple[float, float | None]:
        """The recording time of a frame at `when` s of the file, and where the sound must start again (a new
        round of the file), else None."""
        restart = None
        if self.segment is None:
            self.segment = (when, 0.0)
        elif when < self.last[0]:
            self.segment = (0.0, self.last[1] + 1.0 / self.fps)
            restart = self.segment[1]
        at = when - self.segment[0] + self.segment[1]
        self.last = (when, at)
        return at, restart


def transcode(src: str | Path, dst: str | Path, edit: Callable[[np.ndarray, int], np.ndarray], crf: int = 20,
              progress: Callable[[int, int], None] | None = None, max_megapixels: float = 50.0) -> dict[str, Any]:
    """Every frame of `src` through `edit(image, index) -> image` into `dst`, timestamps and audio kept.

    Returns frames, audio_streams, fps, size, seconds, and stopped_early (the message when a decoding error
    ended the input early: the frames before it are written, the audio up to the last of them). `progress`
    is called as progress(frames_done, frame_count_estimate).
    """
    dst = check_video_path(dst)
    started = time.perf_counter()
    stopped_early = None
    with VideoReader(src, max_megapixels=max_megapixels) as reader:
        writer = VideoWriter(dst, reader.size, reader.fps, time_base=reader.time_base, crf=crf,
                             audio_from=src if reader.audio_streams else None)
        last_time = None
        try:
            try:
                for frame in reader:
                    writer.write(edit(frame.image, frame.index), frame.pts)
                    last_time = frame.time_s
                    if progress is not None:
                        progress(frame.index + 1, reader.frame_count_estimate)
            except InputError as exc:
                if not writer.written:
                    raise
                stopped_early = str(exc)
                log.warning("video_stopped_early", path=str(src), frames=writer.written, reason=stopped_early)
        except BaseException:
            writer.abort()
            raise
        until = last_time + 1.0 / reader.fps if stopped_early and last_time is not None else None
        writer.close(audio_until_s=until)
        summary = {"frames": writer.written, "audio_streams": len(writer.audio), "audio": writer.audio,
                   "fps": reader.fps, "size": list(reader.size), "rotation": reader.rotation,
                   "seconds": round(time.perf_counter() - started, 3), "stopped_early": stopped_early}
    return summary
