"""`facesynth bench`: the speed figures, measured here and printed (never asserted in tests).

Sections: the pre-process stage on a 640x480 face video (video-mode landmarker), the landmark-warp stage
alone per face on one core, and a 12-megapixel photo through the whole still pipeline.
"""

from __future__ import annotations

import platform
import resource
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from engine.config import APP_DIR, Settings
from engine.errors import UsageError
from engine.registry import Registry

DEFAULT_VIDEO = APP_DIR / "samples" / "face.mp4"
DEFAULT_PHOTO = APP_DIR / "samples" / "astronaut.png"


def _summary(samples_s: list[float]) -> dict[str, float]:
    values = np.array(samples_s) * 1000.0
    return {"median": round(float(np.median(values)), 2), "p95": round(float(np.percentile(values, 95)), 2),
            "count": len(values)}


def read_frames(source: str | Path, limit: int) -> list[np.ndarray]:
    """Up to `limit` frames of a video file, looping it if it is shorter."""
    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        raise UsageError(f"cannot open video {source}")
    frames: list[np.ndarray] = []
    while len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
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
    drifts more than arithmetic's: on the development machine this reads about 0.47 ms when quiet and up to
    twice that within seconds, and the warp's time follows it (correlation 0.94 over one-second windows)."""
    values = np.zeros((2, 1, 24), np.float32)
    started = time.perf_counter()
    for _ in range(calls):
        values = values + 1.0
    return (time.perf_counter() - started) * 1000


def bench_preprocess(frames: list[np.ndarray], model: str) -> dict[str, Any]:
    """The pre-process stage as live mode runs it: video-mode landmarker plus smoothing, per frame."""
    from engine.faces import Landmarker
    from engine.smoothing import FaceSmoother

    smoother = FaceSmoother()
    times, found = [], 0
    with Landmarker(model, video=True, max_faces=1) as landmarker:
        for index, frame in enumerate(frames):
            started = time.perf_counter()
            faces = landmarker.detect(frame, int(index * 1000 / 30))
            faces = smoother(faces, index / 30, frame.shape[1], frame.shape[0])
            times.append(time.perf_counter() - started)
            found += bool(faces)
    return {"frames": len(frames), "frames_with_face": found, "ms": _summary(times[5:])}


WARP_PASSES = 3  # passes over the clip: the quietest one tells what the machine can do when nothing interferes


def bench_warp(frames: list[np.ndarray], registry: Registry, model: str,
               passes: int = WARP_PASSES) -> tuple[dict[str, Any], list[float]]:
    """The landmark-warp stage alone, per face, on one core (OpenCV limited to one thread): median and p95 over
    all passes, and the median of the quietest pass (as `timeit` takes the best of its repeats: on a shared
    machine the slower passes measure the neighbours). Also the small-call reference during each pass (median
    of one reading per frame), which tells how fast the machine ran Python while the pass was measured."""
    from engine.faces import Landmarker
    from plugins.landmark_warp.warp import edit_face

    with Landmarker(model, video=True, max_faces=1) as landmarker:
        faces = [landmarker.detect(frame, int(i * 1000 / 30)) for i, frame in enumerate(frames)]
    with_face = sum(bool(found) for found in faces)
    if with_face < 4:
        raise UsageError(f"the warp is measured on faces: {with_face} of the {len(frames)} frames have one; "
                         "give --source a video of a face")
    presets = {name: registry.expression([(name, 1.0)]).as_dict() for name in ("happy", "surprised", "angry", "sleepy")}
    times: dict[str, list[list[float]]] = {name: [[] for _ in range(passes)] for name in presets}
    machine_ms: list[list[float]] = [[] for _ in range(passes)]
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        # Frame by frame, every preset in turn: a machine whose speed drifts slows them all alike.
        for run in range(passes):
            for frame, found in zip(frames, faces):
                if not found:
                    continue
                machine_ms[run].append(call_reference_ms())
                for name, params in presets.items():
                    output = frame.copy()
                    started = time.perf_counter()
                    edit_face(output, found[0].landmarks, params)
                    times[name][run].append(time.perf_counter() - started)
    finally:
        cv2.setNumThreads(threads)
    figures = {}
    for name, runs in times.items():
        runs[0] = runs[0][3:]  # warm-up
        medians = [_summary(run)["median"] for run in runs]
        figures[name] = {**_summary([t for run in runs for t in run]), "passes": passes,
                         "quietest_pass_median": min(medians), "pass_medians": medians}
    return figures, [round(float(np.median(readings)), 3) for readings in machine_ms]


def bench_still(photo: Path, registry: Registry, settings: Settings, megapixels: float = 12.0,
                repeats: int = 5) -> dict[str, Any]:
    """A photo scaled to `megapixels` through pre-process, synthesize and render (no file I/O)."""
    from engine.capture import Frame
    from engine.pipeline import Pipeline

    image = cv2.imread(str(photo))
    scale = (megapixels * 1e6 / (image.shape[0] * image.shape[1])) ** 0.5
    big = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)), interpolation=cv2.INTER_CUBIC)
    expression = registry.expression([("happy", 1.0)])
    pipeline = Pipeline(registry, settings)
    stages: dict[str, list[float]] = {"preprocess": [], "synthesize": [], "render": [], "total": []}
    try:
        pipeline.process(Frame(big), expression, "landmark-warp")  # warm-up
        for _ in range(repeats):
            started = time.perf_counter()
            outcome = pipeline.process(Frame(big), expression, "landmark-warp")
            stages["total"].append(time.perf_counter() - started)
            if outcome.error:
                raise UsageError(f"still pipeline failed: {outcome.error}")
            for name in ("preprocess", "synthesize", "render"):
                stages[name].append(outcome.timings_ms[name] / 1000.0)
    finally:
        pipeline.close()
    return {"size": f"{big.shape[1]}x{big.shape[0]}", "megapixels": round(big.shape[0] * big.shape[1] / 1e6, 1),
            "ms": {name: _summary(values) for name, values in stages.items()}}


def bench_segmind(registry: Registry, settings: Settings, calls: int = 20) -> dict[str, Any]:
    """The Segmind client's own time per call (everything but the server's work), against a local server
    that speaks the contract and answers at once."""
    import dataclasses
    import tempfile

    from engine.backend import SynthesisRequest
    from engine.faces import Landmarker
    from plugins.segmind import SegmindBackend
    from plugins.segmind.fake_server import FakeSegmind

    frame = read_frames(DEFAULT_VIDEO, 1)[0]
    with Landmarker(settings.landmarker_model) as landmarker:
        faces = tuple(landmarker.detect(frame))
    expression = registry.expression([("happy", 1.0)])
    backend = SegmindBackend()
    totals = []
    with tempfile.TemporaryDirectory() as cache, FakeSegmind(api_key="bench", credits=1e6, rpm=10**6) as server:
        local = dataclasses.replace(settings, segmind_api_key="bench", segmind_url=server.base_url,
                                    segmind_rpm=0.0, no_cache=True, cache_dir=cache)
        for _ in range(calls + 2):
            started = time.perf_counter()
            backend.synthesize(SynthesisRequest(frame, faces, expression, local))
            totals.append(time.perf_counter() - started)
        server_s = server.handling_s
    own = [total - handled for total, handled in zip(totals[2:], server_s[2:])]
    summary = _summary(own)
    return {"calls": calls, "client_ms": summary, "server_ms": _summary(server_s[2:]),
            "share_of_documented_round_trip": round(summary["median"] / 2300.0, 4)}


SECTIONS: dict[str, str] = {"preprocess": "pre-process stage, 640x480 video, one face",
                            "warp": "landmark-warp stage alone, per face, one core",
                            "still": "12-megapixel photo through the whole still pipeline",
                            "segmind": "Segmind client's own time per call, against a local server"}


def run(settings: Settings, registry: Registry, source: str | None, frames: int, only: list[str],
        progress: Callable[[str], None]) -> dict[str, Any]:
    """Run the chosen sections and return their figures."""
    video = Path(source) if source else DEFAULT_VIDEO
    results: dict[str, Any] = {"machine": machine(), "source": str(video), "reference_ms": reference_ms()}
    clip = read_frames(video, frames)
    if "preprocess" in only:
        progress("pre-process")
        results["preprocess"] = bench_preprocess(clip, settings.landmarker_model)
    if "warp" in only:
        progress("warp")
        results["warp"], results["warp_call_reference_ms"] = bench_warp(clip, registry, settings.landmarker_model)
    if "still" in only:
        progress("still")
        results["still"] = bench_still(DEFAULT_PHOTO, registry, settings)
    if "segmind" in only:
        progress("segmind client")
        results["segmind"] = bench_segmind(registry, settings)
    results["peak_memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return results


def render_text(results: dict[str, Any]) -> str:
    """The figures as a short table for a terminal."""
    lines = [f"machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, "
             f"Python {results['machine']['python']}, OpenCV {results['machine']['opencv']}",
             f"reference workload: {results['reference_ms']} ms (about 2 on a quiet run of the development "
             f"machine; higher means the machine is slower right now)"]
    if "preprocess" in results:
        ms = results["preprocess"]["ms"]
        lines.append(f"pre-process (640x480, video mode + smoothing): median {ms['median']} ms, p95 {ms['p95']} ms "
                     f"({results['preprocess']['frames_with_face']}/{results['preprocess']['frames']} frames "
                     f"with a face)")
    if "warp" in results:
        for name, ms in results["warp"].items():
            lines.append(f"warp {name:<10} (per face, one core): median {ms['median']} ms, p95 {ms['p95']} ms "
                         f"over {ms['passes']} passes; quietest pass median {ms['quietest_pass_median']} ms")
        readings = " / ".join(str(value) for value in results["warp_call_reference_ms"])
        lines.append(f"small-call reference during the warp passes: {readings} ms (about 0.47 on a quiet run of the "
                     f"development machine; the warp slows with it, less than in proportion)")
    if "still" in results:
        ms = results["still"]["ms"]
        lines.append(f"still {results['still']['size']} ({results['still']['megapixels']} MP): total median "
                     f"{ms['total']['median']} ms (pre-process {ms['preprocess']['median']}, synthesize "
                     f"{ms['synthesize']['median']}, render {ms['render']['median']})")
    if "segmind" in results:
        ms = results["segmind"]["client_ms"]
        lines.append(f"segmind client (own time per call, 640x480 frame, one face): median {ms['median']} ms, "
                     f"p95 {ms['p95']} ms = {100 * results['segmind']['share_of_documented_round_trip']:.1f}% "
                     f"of the documented 2.3 s round trip")
    lines.append(f"peak memory: {results['peak_memory_mb']} MB")
    return "\n".join(lines)
