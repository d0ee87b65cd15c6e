"""The pre-process stage: find the faces in a frame, smooth them over time (streams), choose those to edit.

Stills use the landmarker in image mode (with the second detector for small faces); streams use its video mode
and a One Euro filter. Both choose faces the same way: `--faces` (all, largest, numbers), then the size filter
(`min_face_px`) and the overlap rule (`OVERLAP_SKIP`), each skipped face with its reason. The `preprocess` event
is emitted here and nowhere else.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from engine.capture import Frame
from engine.config import Settings
from engine.events import Event, EventBus, PreprocessEvent
from engine.face import Face, covered, most_overlap, select_faces
from engine.faces import Landmarker
from engine.smoothing import FaceSmoother


@dataclass
class Found:
    """What pre-processing found in one frame: every face, the faces to edit, the skipped ones with reasons."""

    faces: list[Face] = field(default_factory=list)
    edited: list[Face] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    elapsed_ms: float = 0.0


# Faces whose landmarks overlap by more than this share of the smaller are not edited: where one face hides part of
# another, the landmarker guesses, and the guess reaches into the other face (on dlib_2008_002079 a turned man's
# mesh lay over the cheek of the woman beside him, 0.27 of her mesh's outline; every edit smeared his face and bent
# her cheek). Faces side by side touch at most (the development photos' other groups: no overlap at all). Both faces
# of such a pair are skipped: which one's landmarks are guessed cannot be told from the two.
OVERLAP_SKIP = 0.1


def choose_faces(faces: Sequence[Face], settings: Settings) -> tuple[list[Face], list[dict[str, Any]]]:
    """The faces to edit by `--faces`, the size filter and the overlap rule, and the skipped ones with their
    reasons."""
    edited, skipped = [], []
    for face in select_faces(faces, settings.faces):
        if face.inter_ocular_px < settings.min_face_px:
            skipped.append({"box": list(face.box), "reason": f"face too small to edit ({face.inter_ocular_px:.0f} px "
                            f"between the eyes, minimum {settings.min_face_px:g}; setting min_face_px)"})
        elif (covers := most_overlap(face, faces)) > OVERLAP_SKIP:
            skipped.append({"box": list(face.box), "reason": f"face overlaps another face ({covers:.0%} of the "
                            "smaller): its landmarks are guessed where one hides the other, and an edit would "
                            "smear both"})
        else:
            edited.append(face)
    return edited, skipped


REGION_GROW = 1.8  # a tracked face's region is this many face sizes wide: room for the next frame's move
REGION_SLACK = 0.06  # a region moves or resizes only when the face has moved by this share of it
REGION_WORKERS = min(4, os.cpu_count() or 1)  # threads landmarking tracked faces at once
SEARCH_EVERY = 15  # frames between searches for faces not yet tracked, while fewer than wanted are


def region_of_box(box: Sequence[float], shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The square region (x0, y0, side) around a face box [x, y, w, h] where a stream looks for it."""
    x, y, w, h = box
    side = int(round(REGION_GROW * max(w, h, 32)))
    side = min(side, max(shape[0], shape[1]) * 2)
    return int(round(x + w / 2 - side / 2)), int(round(y + h / 2 - side / 2)), side


def region_around(face: Face, shape: tuple[int, ...],
                  previous: tuple[int, int, int] | None = None) -> tuple[int, int, int]:
    """The square region to look for `face` in the next frame of a stream. It stays where it was while the face
    moves less than `REGION_SLACK` of it: a region that followed every small move would resample the face
    differently each frame, and the landmarks would jitter with it."""
    region = region_of_box(face.box, shape)
    if previous is not None:
        (x, y, side), (px, py, pside) = region, previous
        moved = max(abs(x + side / 2 - px - pside / 2), abs(y + side / 2 - py - pside / 2))
        if moved < REGION_SLACK * pside and abs(side - pside) < REGION_SLACK * pside:
            return previous
    return region


def free_slot(regions: dict[int, tuple[int, int, int]]) -> int:
    """The lowest tracking slot not in use."""
    return next(slot for slot in range(len(regions) + 1) if slot not in regions)



class Preprocessor:
    """Finds and chooses faces, frame by frame. `video=True` for streams (needs increasing timestamps).

    The landmarker is made on first use (it takes a moment to start) unless one is given; close() releases it.
    """

    def __init__(self, settings: Settings, bus: EventBus, landmarker: Landmarker | None = None,
                 video: bool = False) -> None:
        self.settings, self.bus, self.video = settings, bus, video
        self._landmarker = landmarker
        self._owned = landmarker is None
        self._smoother = FaceSmoother() if video else None
        self._regions: dict[int, tuple[int, int, int]] = {}  # per tracking slot: where to look next (streams)
        self._frames = 0
        self._pool: ThreadPoolExecutor | None = None  # landmarks several faces' regions at once

    @property
    def max_faces(self) -> int:
        """How many faces the landmarker looks for: one for `--faces largest` in a stream, else the setting."""
        if not self.video:
            return 8
        return 1 if self.settings.faces == "largest" else self.settings.live_max_faces

    @property
    def landmarker(self) -> Landmarker:
        """The landmarker, made on first use."""
        if self._landmarker is None:
            self._landmarker = Landmarker(self.settings.landmarker_model, video=self.video, max_faces=self.max_faces)
        return self._landmarker

    def close(self) -> None:
        """Release the landmarker if this stage made it."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._landmarker is not None and self._owned:
            self._landmarker.close()
        self._landmarker = None

    def __enter__(self) -> "Preprocessor":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def detect(self, frame: Frame, timestamp_ms: int | None = None) -> list[Face]:
        """Every face in the frame (smoothed over time in video mode), without choosing or announcing."""
        image = frame.image
        if not self.video:
            return self.landmarker.detect(image)
        timestamp = int(timestamp_ms if timestamp_ms is not None else frame.captured_at * 1000)
        faces = self._track(image, timestamp)
        assert self._smoother is not None
        return self._smoother(faces, timestamp / 1000.0, image.shape[1], image.shape[0])

    def _track(self, image: np.ndarray, timestamp: int) -> list[Face]:
        """Faces of a stream. Each tracked face is landmarked inside a region around where it was in the last
        frame (one model run per face, whatever the frame's size). While fewer than `max_faces` are tracked,
        the whole frame is searched: every frame when none is, every `SEARCH_EVERY` frames otherwise, with the
        small-face detector too when MediaPipe's own finds nothing new."""
        landmarker = self.landmarker
        faces: list[Face] = []
        regions: dict[int, tuple[int, int, int]] = {}
        tracked = list(self._regions.items())
        if len(tracked) > 1:  # several faces: their regions are landmarked side by side, one per core
            if self._pool is None:
                self._pool = ThreadPoolExecutor(REGION_WORKERS, thread_name_prefix="facesynth-region")
            results = list(self._pool.map(lambda item: landmarker.detect_region(image, item[1], timestamp, item[0]),
                                          tracked))
        else:
            results = [landmarker.detect_region(image, region, timestamp, slot) for slot, region in tracked]
        for (slot, region), found in zip(tracked, results):
            if found and not covered(found[0].box, faces):  # two regions on one face: keep one
                faces.append(found[0])
                regions[slot] = region_around(found[0], image.shape, region)
        self._frames += 1
        if len(faces) < self.max_faces and (not faces or self._frames % SEARCH_EVERY == 0):
            new = [face for face in landmarker.detect(image, timestamp) if not covered(face.box, faces)]
            for face in new[:self.max_faces - len(faces)]:
                regions[free_slot(regions)] = region_around(face, image.shape)
                faces.append(face)
            if not new and self._frames % SEARCH_EVERY in (0, 1):
                faces += self._small_faces(image, timestamp, faces, regions)
        self._regions = regions
        return sorted(faces, key=lambda face: (face.box[0], face.box[1]))

    def _small_faces(self, image: np.ndarray, timestamp: int, faces: list[Face],
                     regions: dict[int, tuple[int, int, int]]) -> list[Face]:
        """Faces the small-face detector sees that are not tracked yet, each landmarked in a region (and so
        tracked from now on)."""
        new: list[Face] = []
        for box in self.landmarker.candidate_boxes(image):
            if len(faces) + len(new) >= self.max_faces or covered(box, faces + new):
                continue
            slot = free_slot(regions)
            found = self.landmarker.detect_region(image, region_of_box(box, image.shape), timestamp, slot)
            if found and not covered(found[0].box, faces + new):
                new.append(found[0])
                regions[slot] = region_around(found[0], image.shape)
        return new

    def __call__(self, frame: Frame, timestamp_ms: int | None = None) -> Found:
        """Find, smooth and choose the faces of `frame`; emits `preprocess`."""
        started = time.perf_counter()
        faces = self.detect(frame, timestamp_ms)
        edited, skipped = choose_faces(faces, self.settings)
        found = Found(faces, edited, skipped, (time.perf_counter() - started) * 1000)
        self.bus.emit(Event.PREPROCESS, PreprocessEvent(frame, tuple(faces), found.elapsed_ms, tuple(edited)))
        return found
