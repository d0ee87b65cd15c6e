"""The local backend's own `facesynth bench` section: the warp alone, per face, on one core."""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np

from engine.bench import BenchContext, BenchSection, call_reference_ms, summary
from engine.errors import UsageError
from engine.registry import Registry

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
        medians = [summary(run)["median"] for run in runs]
        figures[name] = {**summary([t for run in runs for t in run]), "passes": passes,
                         "quietest_pass_median": min(medians), "pass_medians": medians}
    return figures, [round(float(np.median(readings)), 3) for readings in machine_ms]


def run_section(context: BenchContext) -> dict[str, Any]:
    """The `warp` section's figures: per preset, and the small-call reference during each pass."""
    figures, readings = bench_warp(context.clip, context.registry, context.settings.landmarker_model)
    return {"warp": figures, "warp_call_reference_ms": readings}


def render_section(results: dict[str, Any]) -> list[str]:
    """The `warp` section's lines for a terminal."""
    lines = [f"warp {name:<10} (per face, one core): median {ms['median']} ms, p95 {ms['p95']} ms over "
             f"{ms['passes']} passes; quietest pass median {ms['quietest_pass_median']} ms"
             for name, ms in results["warp"].items()]
    readings = " / ".join(str(value) for value in results["warp_call_reference_ms"])
    lines.append(f"small-call reference during the warp passes: {readings} ms (about 0.3 on a quiet run of the "
                 f"development machine; the warp slows with it, less than in proportion)")
    return lines


SECTIONS = {"warp": BenchSection("landmark-warp stage alone, per face, one core", run_section, render_section)}
