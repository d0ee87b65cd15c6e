"""A face as the pre-process stage finds it: the record, its geometry, and choosing faces (`--faces`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import cv2
import numpy as np

from engine.errors import UsageError

# Eye corners in the 478-point mesh (subject's right eye is on the image's left in a frontal photo).
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (362, 263)


@dataclass(frozen=True, eq=False)
class Face:
    """One face: box [x, y, w, h] in pixels, 478 landmarks (x, y in pixels, z in pixels, towards the camera
    negative), the 52 blendshape scores, head pose in degrees and the inter-ocular distance in pixels.
    `whole_picture` is False for a face the landmarker missed on the whole picture and found on a crop around
    where the small-face detector saw one."""

    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    blendshapes: Mapping[str, float] = field(default_factory=dict)
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    matrix: np.ndarray | None = None
    inter_ocular_px: float = 0.0
    whole_picture: bool = True

    @property
    def pose(self) -> dict[str, float]:
        """Head pose as a dict of yaw, pitch and roll in degrees."""
        return {"yaw": round(self.yaw, 1), "pitch": round(self.pitch, 1), "roll": round(self.roll, 1)}


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


def overlap(a: Face, b: Face) -> float:
    """How much of the smaller of two faces lies inside the other: the share of its landmarks' outline (their
    convex hull) that the other's covers (0 for faces apart)."""
    ax, ay, aw, ah = a.box
    bx, by, bw, bh = b.box
    if ax >= bx + bw or bx >= ax + aw or ay >= by + bh or by >= ay + ah:
        return 0.0
    hulls = [cv2.convexHull(np.ascontiguousarray(face.landmarks[:, :2], np.float32)) for face in (a, b)]
    inter, _ = cv2.intersectConvexConvex(hulls[0], hulls[1])
    smaller = min(cv2.contourArea(hull) for hull in hulls)
    return float(inter) / smaller if smaller > 0 else 0.0


def most_overlap(face: Face, faces: Sequence[Face]) -> float:
    """The largest `overlap` of `face` with any other of `faces` (0 when it overlaps none)."""
    return max((overlap(face, other) for other in faces if other is not face), default=0.0)


# `--faces largest` among faces of about the same size (a group photo): those at least this share of the biggest
# one's box count as as big, and of them one the landmarker found on the whole picture is taken before one found
# on a crop (the more certain find; a small-face detector's find decided it before by a few pixels of its box).
LARGEST_TIE = 0.9


def largest_face(faces: Sequence[Face]) -> Face:
    """The biggest of `faces` (by box area); of faces within `LARGEST_TIE` of it, one found on the whole picture
    first."""
    biggest = max(f.box[2] * f.box[3] for f in faces)
    near = [f for f in faces if f.box[2] * f.box[3] >= LARGEST_TIE * biggest]
    return max(near, key=lambda f: (f.whole_picture, f.box[2] * f.box[3]))


def select_faces(faces: Sequence[Face], which: str) -> list[Face]:
    """Apply `--faces`: `all`, `largest`, or face numbers from `analyze` (1 = leftmost), comma-separated."""
    which = (which or "all").strip().lower()
    if which == "all":
        return list(faces)
    if which == "largest":
        return [largest_face(faces)] if faces else []
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
