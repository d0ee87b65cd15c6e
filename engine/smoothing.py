"""Temporal smoothing of landmarks in streams: a One Euro filter driven by each face's own speed.

A still face should not jitter; a moving one should be followed without visible lag. The One Euro filter
(Casiez et al., CHI 2012) does both: a low cut-off at rest, rising with speed. All 478 points of a face share
one cut-off, taken from the speed of the face's centre, so the face moves as a whole and keeps its shape.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

import numpy as np

from engine.face import Face, box_of, inter_ocular


def _alpha(cutoff_hz: float, dt: float) -> float:
    tau = 1.0 / (2 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


class OneEuro:
    """One Euro filter for an array of points with one shared cut-off."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.1, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.value: np.ndarray | None = None
        self.speed = 0.0
        self.time: float | None = None

    def __call__(self, points: np.ndarray, time_s: float) -> np.ndarray:
        """Filter `points` (N, D) observed at `time_s` seconds; returns the smoothed points."""
        if self.value is None or self.time is None or time_s <= self.time:
            self.value, self.time, self.speed = points.astype(np.float64), time_s, 0.0
            return points.copy()
        dt = time_s - self.time
        centre_now, centre_before = points[:, :2].mean(axis=0), self.value[:, :2].mean(axis=0)
        raw_speed = float(np.linalg.norm(centre_now - centre_before)) / dt  # pixels per second
        self.speed += _alpha(self.d_cutoff, dt) * (raw_speed - self.speed)
        cutoff = self.min_cutoff + self.beta * self.speed
        self.value = self.value + _alpha(cutoff, dt) * (points - self.value)
        self.time = time_s
        return self.value.astype(points.dtype)


class FaceSmoother:
    """Keeps one filter per tracked face (matched frame to frame by the nearest centre)."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.1, max_jump: float = 0.5) -> None:
        self.min_cutoff, self.beta, self.max_jump = min_cutoff, beta, max_jump
        self._tracks: list[tuple[np.ndarray, OneEuro]] = []

    def __call__(self, faces: Sequence[Face], time_s: float, width: int, height: int) -> list[Face]:
        """The faces with smoothed landmarks (and box and inter-ocular distance recomputed from them)."""
        tracks, smoothed = [], []
        unused = list(self._tracks)
        for face in faces:
            centre = face.landmarks[:, :2].mean(axis=0)
            limit = self.max_jump * max(face.box[2], face.box[3], 1)
            best = min(unused, key=lambda t: np.linalg.norm(t[0] - centre), default=None)
            if best is not None and np.linalg.norm(best[0] - centre) <= limit:
                unused.remove(best)
                flt = best[1]
            else:
                flt = OneEuro(self.min_cutoff, self.beta)
            points = flt(face.landmarks, time_s)
            tracks.append((points[:, :2].mean(axis=0), flt))
            smoothed.append(replace(face, landmarks=points, box=box_of(points, width, height),
                                    inter_ocular_px=inter_ocular(points)))
        self._tracks = tracks
        return smoothed

    def reset(self) -> None:
        """Forget every track (after a cut or a seek)."""
        self._tracks = []
