"""`facesynth bench`: the speed figures, measured here and printed (never asserted in tests).

The core's sections: the pre-process stage on a 640x480 face video (video-mode landmarker) and a 12-megapixel
photo through the whole still pipeline. Backends add their own (`bench_sections`: the local warp alone, the
cloud client's own time), run and printed the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import platform
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import cv2
import numpy as np
import structlog

from engine.config import APP_DIR, Settings
from engine.errors import FaceSynthError, UsageError
from engine.guard import guard
from engine.registry import Registry

log = structlog.get_logger()

DEFAULT_VIDEO = APP_DIR / "samples" / "face.mp4"
DEFAULT_PHOTO = APP_DIR / "samples" / "astronaut.png"
ASKED_ONLY = {"batch"}  # long sections that run only when named with --only


def summary(samples_s: list[float]) -> dict[str, float]:
    """Median, p95 and count of durations given in seconds, in milliseconds."""
    values = np.array(samples_s) * 1000.0
    return {"median": round(float(np.median(values)), 2), "p95": round(float(np.percentile(values, 95)), 2),
            "count": len(values)}


def read_frames(source: str | Path, limit: int) -> list[np.ndarray]:
    """Up to `limit` frames of a video file, looping it if it is shorter."""
    from engine.errors import InputError
    from engine.video import VideoReader

    frames: list[np.ndarray] = []
    try:
        with VideoReader(source) as reader:
            for frame in reader:
                frames.append(frame.image)
                if len(frames) >= limit:
                    break
    except InputError as exc:
        if not frames:
            raise UsageError(f"cannot open video {source}: {exc}") from None
    if not frames:
        raise UsageError(f"{source} has no readable frames")
    while len(frames) < limit:
        frames += frames[: limit - len(frames)]
    return frames


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return {"cpu": cpu or platform.processor(), "cores": os.cpu_count(), "python": platform.python_version(),
            "opencv": cv2.__version__}


def reference_ms(repeats: int = 30) -> float:
    """A fixed numpy workload (five 256x256 float32 matrix products, one thread), median milliseconds.

    A shared VM's speed drifts by a third from minute to minute; this figure, printed beside the others, tells
    a slow run from a slow change (about 2 ms on a quiet run of the development machine).
    """
    matrix = np.random.default_rng(0).random((256, 256), dtype=np.float32)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(5):
            matrix @ matrix
        times.append(time.perf_counter() - started)
    return round(float(np.median(times)) * 1000, 2)


def call_reference_ms(calls: int = 500) -> float:
    """A fixed workload of small numpy calls (additions on a 48-element array), milliseconds: what the interpreter
    and numpy's per-call overhead cost right now. The warp is mostly such calls, and on a shared VM their speed
    drifts more than arithmetic's: on the development machine this reads about 0.3 ms when quiet and up to
    twice that within seconds, and the warp's time follows it (correlation 0.94 over one-second windows)."""
    values = np.zeros((2, 1, 24), np.float32)
    started = time.perf_counter()
    for _ in range(calls):
        values = values + 1.0
    return (time.perf_counter() - started) * 1000


def bench_preprocess(frames: list[np.ndarray], settings: Settings) -> dict[str, Any]:
    """The pre-process stage as live mode runs it (video-mode landmarker, smoothing, choosing), per frame."""
    from engine.capture import Frame
    from engine.events import EventBus
    from engine.preprocess import Preprocessor

    times, found = [], 0
    with Preprocessor(dataclasses.replace(settings, faces="largest"), EventBus(), video=True) as preprocessor:
        for index, image in enumerate(frames):
            started = time.perf_counter()
            faces = preprocessor(Frame(image, index), int(index * 1000 / 30)).faces
            times.append(time.perf_counter() - started)
            found += bool(faces)
    return {"frames": len(frames), "frames_with_face": found, "ms": summary(times[5:])}


def bench_still(photo: Path, registry: Registry, settings: Settings, megapixels: float = 12.0,
                repeats: int = 5) -> dict[str, Any]:
    """A photo scaled to `megapixels` through pre-process, synthesize and render (no file I/O)."""
    from engine.capture import Frame
    from engine.pipeline import Pipeline

    image = cv2.imread(str(photo))
    if image is None:
        raise UsageError(f"cannot read the bench photo {photo}")
    scale = (megapixels * 1e6 / (image.shape[0] * image.shape[1])) ** 0.5
    big = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)), interpolation=cv2.INTER_CUBIC)
    expression = registry.expression([("happy", 1.0)])
    pipeline = Pipeline(registry, settings)
    backend = pipeline.synthesizer.live_entry("auto").id  # the local, real-time backend
    stages: dict[str, list[float]] = {"preprocess": [], "synthesize": [], "render": [], "total": []}
    try:
        pipeline.process(Frame(big), expression, backend)  # warm-up
        for _ in range(repeats):
            started = time.perf_counter()
            outcome = pipeline.process(Frame(big), expression, backend)
            stages["total"].append(time.perf_counter() - started)
            if outcome.error:
                raise UsageError(f"still pipeline failed: {outcome.error}")
            for name in ("preprocess", "synthesize", "render"):
                stages[name].append(outcome.timings_ms[name] / 1000.0)
    finally:
        pipeline.close()
    return {"size": f"{big.shape[1]}x{big.shape[0]}", "megapixels": round(big.shape[0] * big.shape[1] / 1e6, 1),
            "ms": {name: summary(values) for name, values in stages.items()}}


LIVE_SIZES = ((640, 480), (1280, 720), (1920, 1080))


def scaled_frame(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A frame scaled to fill `size`'s height, its sides extended (a 4:3 clip shown as a 16:9 camera's)."""
    width, height = size
    scale = height / image.shape[0]
    resized = cv2.resize(image, (round(image.shape[1] * scale), height),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    pad = max(0, width - resized.shape[1])
    return cv2.copyMakeBorder(resized, 0, 0, pad // 2, pad - pad // 2, cv2.BORDER_REPLICATE)[:, :width]


def group_frame(image: np.ndarray, size: tuple[int, int] = (1280, 720), faces: int = 3) -> np.ndarray:
    """`faces` copies of a frame side by side in one frame of `size` (a group in front of one camera)."""
    width, height = size
    tile = cv2.resize(image, (width // faces, round(image.shape[0] * (width // faces) / image.shape[1])),
                      interpolation=cv2.INTER_AREA)
    row = np.hstack([tile] * faces)
    top = (height - row.shape[0]) // 2
    return cv2.copyMakeBorder(row, top, height - row.shape[0] - top, 0, width - row.shape[1], cv2.BORDER_REPLICATE)


def write_clip(path: Path, frames: Iterable[np.ndarray], fps: float = 30.0) -> Path:
    """Frames as a video file (the live section's clips: H.264, as a camera's or a phone's), one at a time."""
    from engine.video import VideoWriter

    frames = iter(frames)
    first = next(frames)
    with VideoWriter(path, (first.shape[1], first.shape[0]), fps, crf=18) as writer:
        for frame in itertools.chain([first], frames):
            writer.write(frame)
    return path


def bench_live(context: "BenchContext") -> dict[str, Any]:
    """The whole live pipeline on the clip at 480p, 720p and 1080p, and on a 720p clip of three faces: frames
    per second, latency (capture to render) and per-stage medians for each, and the 1080p/480p ratios."""
    import tempfile

    from engine.capture import FrameSource
    from engine.events import Event
    from engine.live import LivePipeline, LiveState

    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        clips: dict[str, tuple[Callable[[np.ndarray], np.ndarray], int]] = {
            f"{height}p": (functools.partial(scaled_frame, size=(width, height)), 1) for width, height in LIVE_SIZES}
        clips["720p, 3 faces"] = (group_frame, 3)
        for name, (make, faces) in clips.items():
            path = write_clip(Path(folder) / f"{name.split(',')[0]}-{faces}.mp4", (make(f) for f in context.clip))
            settings = dataclasses.replace(context.settings, live_max_faces=faces, faces="all")
            pipeline = LivePipeline(context.registry, settings, LiveState([("happy", 1.0)]))
            counts: list[int] = []
            pipeline.bus.on(Event.PREPROCESS, functools.partial(_count_edited, counts))
            source = FrameSource(str(path))
            try:
                figures = pipeline.run(source)
            finally:
                source.close()
            runs[name] = {"size": list(source.size), "faces": faces, "frames": figures["frames"],
                          "faces_per_frame_median": float(np.median(counts)) if counts else 0.0,
                          "frames_with_face": figures["frames_with_face"], "fps": figures["fps"],
                          "latency_ms": figures["latency_ms"], "dropped": figures["dropped"],
                          "stages_ms": {stage: ms["median"] for stage, ms in figures["stages_ms"].items()}}
    low, high = runs["480p"], runs["1080p"]
    ratios = {"fps": round(high["fps"] / low["fps"], 2) if low["fps"] else None,
              "latency_p95": round(high["latency_ms"]["p95"] / low["latency_ms"]["p95"], 2)
              if low["latency_ms"]["p95"] else None}
    return {"live": {"runs": runs, "ratio_1080p_to_480p": ratios}}


def _count_edited(counts: list[int], event: Any) -> None:
    counts.append(len(event.edited))


def live_text(results: dict[str, Any]) -> list[str]:
    """The live section's lines."""
    lines = []
    for name, run in results["live"]["runs"].items():
        stages = ", ".join(f"{stage} {ms}" for stage, ms in run["stages_ms"].items())
        lines.append(f"live {name:<14} {run['size'][0]}x{run['size'][1]}: {run['fps']} fps, latency median "
                     f"{run['latency_ms']['median']} ms, p95 {run['latency_ms']['p95']} ms ({stages} ms; "
                     f"{run['frames_with_face']}/{run['frames']} frames with a face)")
    ratios = results["live"]["ratio_1080p_to_480p"]
    lines.append(f"live 1080p / 480p: frame rate x{ratios['fps']}, latency p95 x{ratios['latency_p95']}")
    return lines


def photo_folder() -> Path | None:
    """The batch section's photos: FACESYNTH_FACES_DIR, else the development photos beside the repo."""
    import os

    folder = Path(os.environ.get("FACESYNTH_FACES_DIR", APP_DIR.parent / "shared" / "faces"))
    return folder if folder.is_dir() else None


def bench_batch(folder: Path, settings: Settings, emotion: str = "happy", workers: tuple[int, ...] = (1, 2),
                ray_cpus: int = 2, passes: int = 2) -> dict[str, Any]:
    """A folder of photos through `apply`'s batch runner (one emotion), `passes` times over in one job: photos per
    second with each number of worker processes, and on a local Ray with `ray_cpus` CPUs when Ray is installed.
    Model loading is measured apart (`startup_s`); the rate counts from the first photo handed out to the last
    result."""
    import importlib.util
    import os
    import shutil
    import tempfile

    from engine import batch
    from engine.imageio import list_images

    photos = list_images([str(folder)]) * passes
    if not photos:
        raise UsageError(f"no photos in {folder} for the batch bench")
    recipe = {"emotion": [{"name": emotion, "weight": 1.0}], "intensity": 1.0, "overrides": {}}
    runs: dict[str, Any] = {}
    plans: list[tuple[str, int, str | None]] = [(f"workers_{count}", count, None) for count in workers]
    if importlib.util.find_spec("ray") is not None:
        plans.append((f"ray_{ray_cpus}", ray_cpus, "local"))
    for name, count, address in plans:
        scratch = Path(tempfile.mkdtemp(prefix="facesynth-bench-batch-"))
        load = round(os.getloadavg()[0], 2)  # other programs' share of the cores shows here: the rate follows it
        try:
            job_settings = dataclasses.replace(settings, output_dir=str(scratch))
            tasks = batch.build_tasks(photos, [(recipe, emotion, "")], job_settings, name_folders=True)
            result = batch.run_job(batch.JobSpec(job_settings), tasks, workers=count, ray_address=address,
                                   progress_label=name)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        runs[name] = {"workers": result.workers, "photos": len(tasks),
                      "ok": sum(record["status"] == "ok" for record in result.records),
                      "startup_s": round(result.startup_s, 2), "work_s": round(result.work_s, 2),
                      "photos_per_s": round(len(tasks) / result.work_s, 2) if result.work_s else 0.0,
                      "peak_worker_mb": result.peak_worker_mb, "load_before": load}
    first = runs[f"workers_{workers[0]}"]["photos_per_s"]
    for figures in runs.values():
        figures["speedup"] = round(figures["photos_per_s"] / first, 2) if first else 0.0
    return {"folder": str(folder), "emotion": emotion, "passes": passes, "runs": runs}


@dataclass(frozen=True)
class BenchSection:
    """A section of `facesynth bench`. Backends offer their own through an optional `bench_sections()` method
    returning {name: BenchSection}: `run(context)` returns the figures as top-level result keys, and
    `render(results)` the lines to print for them."""

    description: str
    run: Callable[["BenchContext"], dict[str, Any]]
    render: Callable[[dict[str, Any]], list[str]]


@dataclass
class BenchContext:
    """What a section measures on: the settings, the plugins, and the clip's frames."""

    settings: Settings
    registry: Registry
    clip: list[np.ndarray]


def _core_sections() -> dict[str, BenchSection]:
    def preprocess(context: BenchContext) -> dict[str, Any]:
        return {"preprocess": bench_preprocess(context.clip, context.settings)}

    def still(context: BenchContext) -> dict[str, Any]:
        return {"still": bench_still(DEFAULT_PHOTO, context.registry, context.settings)}

    def preprocess_text(results: dict[str, Any]) -> list[str]:
        ms = results["preprocess"]["ms"]
        return [f"pre-process (640x480, video mode + smoothing): median {ms['median']} ms, p95 {ms['p95']} ms "
                f"({results['preprocess']['frames_with_face']}/{results['preprocess']['frames']} frames with a face)"]

    def still_text(results: dict[str, Any]) -> list[str]:
        ms = results["still"]["ms"]
        return [f"still {results['still']['size']} ({results['still']['megapixels']} MP): total median "
                f"{ms['total']['median']} ms (pre-process {ms['preprocess']['median']}, synthesize "
                f"{ms['synthesize']['median']}, render {ms['render']['median']})"]

    def batch(context: BenchContext) -> dict[str, Any]:
        folder = photo_folder()
        if folder is None:
            raise UsageError("the batch bench needs a folder of photos: set FACESYNTH_FACES_DIR")
        return {"batch": bench_batch(folder, context.settings)}

    def batch_text(results: dict[str, Any]) -> list[str]:
        lines = [f"batch ({results['batch']['emotion']}, {results['batch']['folder']} x{results['batch']['passes']}):"]
        for name, run in results["batch"]["runs"].items():
            lines.append(f"  {name}: {run['photos_per_s']} photos/s (x{run['speedup']}; {run['photos']} photos, "
                         f"{run['ok']} edited, in {run['work_s']} s after {run['startup_s']} s loading models; "
                         f"peak {run['peak_worker_mb']} MB per worker; load average {run['load_before']} before)")
        return lines

    return {"preprocess": BenchSection("pre-process stage, 640x480 video, one face", preprocess, preprocess_text),
            "still": BenchSection("12-megapixel photo through the whole still pipeline", still, still_text),
            "live": BenchSection("the live pipeline at 480p, 720p and 1080p, and 720p with three faces",
                                 bench_live, live_text),
            "batch": BenchSection("a folder of photos on 1 and 2 worker processes and a local Ray", batch,
                                  batch_text)}


def sections(registry: Registry) -> dict[str, BenchSection]:
    """Every section: the core's, then each backend's own (a backend whose sections fail to list is left out)."""
    found = _core_sections()
    for entry in sorted(registry.backends.values(), key=lambda e: e.id):
        offer = getattr(entry.backend, "bench_sections", None)
        if not callable(offer):
            continue
        try:
            offered = guard(entry.id, "bench_sections", offer)
        except FaceSynthError as exc:
            log.warning("bench_sections_failed", backend=entry.id, reason=str(exc))
            continue
        for name, section in dict(offered).items():
            if isinstance(section, BenchSection) and name not in found:
                found[name] = section
    return found


def run(settings: Settings, registry: Registry, source: str | None, frames: int, only: list[str] | None,
        progress: Callable[[str], None]) -> dict[str, Any]:
    """Run the chosen sections (all when `only` is empty) and return their figures."""
    available = sections(registry)
    unknown = [name for name in only or () if name not in available]
    if unknown:
        raise UsageError(f"unknown bench section {', '.join(unknown)}; known: {', '.join(available)}")
    video = Path(source) if source else DEFAULT_VIDEO
    results: dict[str, Any] = {"machine": machine(), "source": str(video), "reference_ms": reference_ms()}
    context = BenchContext(settings, registry, read_frames(video, frames))
    for name, section in available.items():
        if (only and name not in only) or (not only and name in ASKED_ONLY):
            continue
        progress(name)
        results.update(section.run(context))
        results.setdefault("sections", []).append(name)
    results["peak_memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return results


def render_text(results: dict[str, Any], registry: Registry) -> str:
    """The figures as a short table for a terminal."""
    lines = [f"machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, "
             f"Python {results['machine']['python']}, OpenCV {results['machine']['opencv']}",
             f"reference workload: {results['reference_ms']} ms (about 1.2 on a quiet run of the development "
             f"machine; higher means the machine is slower right now)"]
    available = sections(registry)
    for name in results.get("sections", []):
        lines += available[name].render(results)
    lines.append(f"peak memory: {results['peak_memory_mb']} MB")
    return "\n".join(lines)
