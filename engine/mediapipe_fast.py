"""MediaPipe's fast path: the Face Landmarker's C call with its result read straight into numpy arrays.

MediaPipe's own Python wrapper builds one object per landmark (about 2 ms a frame here) and hands every call
to a worker thread of its own; this calls the C function directly and reads the same C structures in bulk.
It relies on the wrapper's ctypes definitions: a release that changes them raises AttributeError, and the
landmarker then falls back to the public API.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np


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
