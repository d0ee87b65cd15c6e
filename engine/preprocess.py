"""The pre-process stage: find the faces in a frame, smooth them over time (streams), choose those to edit.

Stills use the landmarker in image mode (with the second detector for small faces); streams use its video mode
and a One Euro filter. Both choose faces the same way: `--faces` (all, largest, numbers), then the size filter
(`min_face_px`), each skipped face with its reason. The `preprocess` event is emitted here and nowhere else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from engine.capture import Frame
from engine.config import Settings
from engine.events import Event, EventBus, PreprocessEvent
from engine.faces import Face, Landmarker, select_faces
from engine.smoothing import FaceSmoother


@dataclass
class Found:
    """What pre-processing found in one frame: every face, the faces to edit, the skipped ones with reasons."""

    faces: list[Face] = field(default_factory=list)
    edited: list[Face] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    elapsed_ms: float = 0.0


def choose_faces(faces: Sequence[Face], settings: Settings) -> tuple[list[Face], list[dict[str, Any]]]:
    """The faces to edit by `--faces` and the size filter, and the skipped ones with their reasons."""
    edited, skipped = [], []
    for face in select_faces(faces, settings.faces):
        if face.inter_ocular_px < settings.min_face_px:
            skipped.append({"box": list(face.box), "reason": f"face too small to edit ({face.inter_ocular_px:.0f} px "
                            f"between the eyes, minimum {settings.min_face_px:g}; setting min_face_px)"})
        else:
            edited.append(face)
    return edited, skipped


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
        faces = self.landmarker.detect(image, timestamp)
        assert self._smoother is not None
        return self._smoother(faces, timestamp / 1000.0, image.shape[1], image.shape[0])

    def __call__(self, frame: Frame, timestamp_ms: int | None = None) -> Found:
        """Find, smooth and choose the faces of `frame`; emits `preprocess`."""
        started = time.perf_counter()
        faces = self.detect(frame, timestamp_ms)
        edited, skipped = choose_faces(faces, self.settings)
        found = Found(faces, edited, skipped, (time.perf_counter() - started) * 1000)
        self.bus.emit(Event.PREPROCESS, PreprocessEvent(frame, tuple(faces), found.elapsed_ms, tuple(edited)))
        return found
