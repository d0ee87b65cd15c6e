"""Where each expression parameter moves the face: target positions for groups of landmarks.

Everything is computed in a face frame: the unit is the inter-ocular distance (IOD), x runs from the image-left
eye to the image-right eye, y runs down the face. Features move as coherent groups with weights that vary
smoothly along each group (a whole brow, the whole lip contour, the jaw with the chin), never point by point.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numba
import numpy as np

# MediaPipe face-mesh indices. "a" is the eye on the image's left (the subject's right), "b" the other.
LIPS_UPPER_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_LOWER_OUTER = (146, 91, 181, 84, 17, 314, 405, 321, 375)
LIPS_UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_LOWER_INNER = (95, 88, 178, 87, 14, 317, 402, 318, 324)
MOUTH_CORNERS = (61, 291)
BROW_A = (70, 63, 105, 66, 107, 46, 53, 52, 65, 55)
BROW_B = (300, 293, 334, 296, 336, 276, 283, 282, 295, 285)
EYE_A_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
EYE_A_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
EYE_B_UPPER = (263, 466, 388, 387, 386, 385, 384, 398, 362)
EYE_B_LOWER = (263, 249, 390, 373, 374, 380, 381, 382, 362)
EYE_A_ANCHORS = (33, 160, 158, 133, 153, 144)
EYE_B_ANCHORS = (263, 387, 385, 362, 380, 373)
# The skin between each upper lid and its brow: two rows of points, the lid's crease then just under the brow.
EYE_A_CREASE = (247, 30, 29, 27, 28, 56, 190, 113, 225, 224, 223, 222, 221, 189)
EYE_B_CREASE = (467, 260, 259, 257, 258, 286, 414, 342, 445, 444, 443, 442, 441, 413)
BROW_LOWER_ROW = 5  # BROW_A and BROW_B list their upper row, then from this index their lower row
EYE_LID_PAIRS = ((144, 160), (153, 158), (373, 387), (380, 385))  # (lower lid, upper lid above it)
EYE_CORNERS = [33, 133, 362, 263]  # the corners of eye a, then of eye b: the face frame's reference
IRIS_A = (468, 469, 470, 471, 472)
IRIS_B = (473, 474, 475, 476, 477)
NOSE = (1, 6, 168, 2, 98, 327)
CHEEK_A = (50, 205, 187, 123, 101, 36)
CHEEK_B = (280, 425, 411, 352, 330, 266)
CHIN = (18, 200, 175, 152, 148, 377, 83, 313, 201, 421)
LIP_IDS = np.array(LIPS_UPPER_OUTER + LIPS_LOWER_OUTER + LIPS_UPPER_INNER + LIPS_LOWER_INNER)
LIP_OUTER_COUNT = len(LIPS_UPPER_OUTER) + len(LIPS_LOWER_OUTER)
LIP_UPPER = np.array([1.0] * len(LIPS_UPPER_OUTER) + [0.0] * len(LIPS_LOWER_OUTER) + [1.0] * len(LIPS_UPPER_INNER)
                     + [0.0] * len(LIPS_LOWER_INNER))
LIP_INNER = np.array([0.0] * LIP_OUTER_COUNT + [1.0] * (len(LIPS_UPPER_INNER) + len(LIPS_LOWER_INNER)))
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)


@dataclass(frozen=True)
class FaceFrame:
    """The face's own axes: origin between the eyes, unit vectors `ex` (across) and `ey` (down), `iod` px."""

    origin: np.ndarray
    ex: np.ndarray
    ey: np.ndarray
    iod: float

    @functools.cached_property
    def _to_local(self) -> np.ndarray:
        return np.array([self.ex, self.ey]).T / self.iod

    @functools.cached_property
    def _to_image(self) -> np.ndarray:
        return np.array([self.ex, self.ey]) * self.iod

    def local(self, points: np.ndarray) -> np.ndarray:
        """Image points (N, 2) in face units."""
        return (points[:, :2] - self.origin) @ self._to_local

    def to_image(self, offsets: np.ndarray) -> np.ndarray:
        """Offsets (N, 2) in face units as image-pixel offsets."""
        return offsets @ self._to_image


def face_frame(landmarks: np.ndarray) -> FaceFrame:
    """The face frame of a 478-point landmark set."""
    a0, a1, b0, b1 = landmarks[EYE_CORNERS, :2].tolist()
    eye_a = ((a0[0] + a1[0]) / 2, (a0[1] + a1[1]) / 2)
    eye_b = ((b0[0] + b1[0]) / 2, (b0[1] + b1[1]) / 2)
    across_x, across_y = eye_b[0] - eye_a[0], eye_b[1] - eye_a[1]
    iod = math.hypot(across_x, across_y) or 1.0
    ex, ey = (across_x / iod, across_y / iod), (-across_y / iod, across_x / iod)
    origin = ((eye_a[0] + eye_b[0]) / 2, (eye_a[1] + eye_b[1]) / 2)
    return FaceFrame(np.array(origin), np.array(ex), np.array(ey), iod)


# Mirror points, subject's right then left: eye corners, brows, cheeks, mouth corners and the face's outline.
MIRROR_PAIRS = np.array([(33, 263), (133, 362), (70, 300), (105, 334), (107, 336), (50, 280), (61, 291),
                         (234, 454), (93, 323), (132, 361), (58, 288), (172, 397), (127, 356), (162, 389),
                         (21, 251), (54, 284), (103, 332), (67, 297), (109, 338)])


@dataclass(frozen=True)
class FrontalView:
    """Where a face's features sit across it as seen from the front: their 3D positions (x, y and depth, in
    pixels) along the face's own across direction, in face units (the eyes 1 apart, 0 between them); up and down
    as in the picture's face frame. A turned face's midline (nose, lips, chin) lies off the point between its eyes
    in the picture, towards the far eye (the nose's root by a seventh of the eyes' distance at a 20 degree turn, the
    nose's tip by a quarter): measured in the picture, the brows' inner ends and the mouth's sides were taken
    for other places and moved as such (the near brow drawn over the nose's root, the mouth pushed sideways)."""

    frame: FaceFrame
    across: np.ndarray
    origin: np.ndarray
    unit: float

    def points(self, landmarks: np.ndarray) -> np.ndarray:
        """Image landmarks (N, 3) (x, y, depth in pixels) in face units (N, 2): across as seen from the front."""
        out = self.frame.local(landmarks)
        out[:, 0] = (landmarks[:, :3] - self.origin) @ self.across / self.unit
        return out


def frontal_view(landmarks: np.ndarray, frame: FaceFrame) -> FrontalView:
    """The frontal view of a 478-point landmark set (x, y, depth in pixels) whose face frame is `frame`: across
    is the sum of the lines between mirror points (long ones weigh most)."""
    pairs = landmarks[MIRROR_PAIRS, :3].astype(np.float64)
    across = (pairs[:, 1] - pairs[:, 0]).sum(axis=0)
    across /= np.linalg.norm(across) or 1.0
    eyes = landmarks[EYE_CORNERS, :3].astype(np.float64).reshape(2, 2, 3).mean(axis=1)
    unit = abs(float((eyes[1] - eyes[0]) @ across)) or 1.0
    return FrontalView(frame, across, eyes.mean(axis=0), unit)


# The control landmarks of `expression_offsets`, always in this order: rows of each group are static slices.
OVAL_CONTROL = tuple(i for i in FACE_OVAL[::2] if i not in CHIN)
CONTROL_GROUPS = {"lips": tuple(int(i) for i in LIP_IDS), "chin": CHIN, "oval": OVAL_CONTROL, "cheek_a": CHEEK_A,
                  "cheek_b": CHEEK_B, "brows": BROW_A + BROW_B, "nose": NOSE}
CONTROL_IDS = np.array([i for group in CONTROL_GROUPS.values() for i in group])


def _rows(groups: dict[str, tuple[int, ...]]) -> dict[str, slice]:
    """Each group's rows in the concatenation of the groups."""
    rows, start = {}, 0
    for name, group in groups.items():
        rows[name] = slice(start, start + len(group))
        start += len(group)
    return rows


CONTROL_ROWS = _rows(CONTROL_GROUPS)
ON_OUTLINE = np.isin(CONTROL_IDS, FACE_OVAL)  # control points on the face outline (they follow a head turn less)
CONTROL_ROW = {int(idx): row for row, idx in enumerate(CONTROL_IDS)}  # landmark index -> its row
# The lips' vertical offset mid-lip is a sum of terms, one per parameter, each weighted by the point's contour
# (upper or lower, inner or outer): as rows for [smile+, eee, woo, woo+, jaw, press].
_UP, _LOW = LIP_UPPER, 1.0 - LIP_UPPER
LIP_MIDDLE_TERMS = np.array([0.03 * _LOW, 0.025 * (_UP - _LOW), 0.05 * _LOW - 0.04 * _UP,
                             LIP_INNER * (0.035 * _LOW - 0.025 * _UP), 0.60 * _LOW - _UP * (0.06 + 0.04 * LIP_INNER),
                             (1.0 - LIP_INNER) * (0.05 * _UP - 0.06 * _LOW)])


def expression_offsets(points: np.ndarray, params: dict[str, float], jaw_open: float = 1.0) -> np.ndarray:
    """Offsets in face units of the `CONTROL_IDS` landmarks for everything but rotation and the eyes, from those
    landmarks in face units (`FaceFrame.local`), in `CONTROL_IDS` order. `jaw_open` (0..1): how sure it is that
    an open mouth's jaw is down (pressed lips bring it up); 0 for teeth held together in a smile.

    The eyes' lids and irises are not moved here: closing lids and moving irises are done by the eye stage.
    """
    return _offsets(points, params["smile"], params["eee"] / 15.0, params["woo"] / 15.0, params["aaa"],
                    params["eyebrow"], params["wink"] / 25.0, jaw_open)


# Each group's rows as (start, stop), for the compiled loop (numba caches it by this file, constants included).
_LIPS, _CHIN, _OVAL = (CONTROL_ROWS[g].indices(len(CONTROL_IDS))[:2] for g in ("lips", "chin", "oval"))
_CHEEK_A, _CHEEK_B, _BROWS = (CONTROL_ROWS[g].indices(len(CONTROL_IDS))[:2] for g in ("cheek_a", "cheek_b", "brows"))
_CORNER_A, _CORNER_B = CONTROL_ROW[MOUTH_CORNERS[0]], CONTROL_ROW[MOUTH_CORNERS[1]]
_INNER_UPPER_MID, _INNER_LOWER_MID, _CHIN_TIP = CONTROL_ROW[13], CONTROL_ROW[14], CONTROL_ROW[152]
_NOSE_ROOT = CONTROL_ROW[168]  # the face's midline between the brows
JAW_SHUT = 0.7
NEGATIVE_SMILE_GAIN = 2.0


@numba.njit("float64[:, :](float64[:, :], float64, float64, float64, float64, float64, float64, float64)",
            cache=True, nogil=True)  # compiled when this module loads, as in kernels.py
def _offsets(points, smile, eee, woo, aaa, eyebrow, wink, jaw_open):
    """`expression_offsets` with the parameters as numbers (eee, woo and wink scaled to -1..1 or 0..1), one loop
    per landmark group: a few dozen numpy calls on arrays of a dozen points each cost far more than the sums."""
    out = np.zeros((points.shape[0], 2))
    # Mouth frame: side position s in [-1, 1] from the centre line to each corner.
    corner_a, corner_b = points[_CORNER_A, 0], points[_CORNER_B, 0]
    centre_x = (corner_a + corner_b) / 2
    half_width = max(0.15, abs(corner_b - corner_a) / 2)
    mouth_y = (points[_INNER_UPPER_MID, 1] + points[_INNER_LOWER_MID, 1]) / 2
    chin_y = max(points[_CHIN_TIP, 1], mouth_y + 0.3)
    corner_lift = max(0.0, mouth_y - (points[_CORNER_A, 1] + points[_CORNER_B, 1]) / 2)  # how far up the corners are
    press = max(0.0, -aaa) / 30.0
    # The parameter stops at -0.3 (the Segmind contract): turned down that far, the mouth moves as a smile of 0.6
    # would, mirrored (corners 0.12 face units down and 0.08 in). At half that, -0.3 left a level mouth, which the
    # classifier still read as happy on smiling faces (fer's angry share on the development photos: 0.26 -> 0.36).
    if smile < 0.0:
        smile *= NEGATIVE_SMILE_GAIN
    jaw = 0.6 * max(0.0, aaa) / 120.0  # jaw drop in IOD at the chin
    # Pressed lips on an open mouth: the jaw comes up first (by `JAW_SHUT` of the gap between the inner lips), the
    # lips meet over the rest (warp.close_lips). Closed by the lips alone, a wide-open mouth's lips and the skin
    # around them stretched over the whole gap, and the chin stayed down. As sure as `jaw_open` is that the jaw is
    # down: a smile's teeth are held together, its lips close over them and the chin stays (warp.jaw_open).
    gap = points[_INNER_LOWER_MID, 1] - points[_INNER_UPPER_MID, 1]
    if press and gap > 0.04:
        jaw -= JAW_SHUT * jaw_open * min(press, 1.0) * gap

    # The lip contours: every point's offset is a sum of terms, each weighted by whether it is on the upper or
    # lower lip, inner or outer contour. smile: corners up and out, the whole contour following them with the
    # side position; eee: corners out, lips flatten; woo: corners in, lips round and push out, a small round
    # opening between them; aaa > 0: the jaw carries the lower lip down, the corners follow half-way, the upper
    # lip lifts a little; aaa < 0: lips pressed together and thinned.
    terms = (max(smile, 0.0), eee, woo, max(woo, 0.0), jaw, press)
    opens = max(jaw, 0.0)  # (a jaw that comes up moves the lower lip and chin only: not the corners, nor the cheeks)
    outward = 0.13 * smile + 0.10 * eee - 0.14 * woo - 0.10 * opens - 0.03 * press
    for row in range(_LIPS[0], _LIPS[1]):
        k = row - _LIPS[0]
        side = min(max((points[row, 0] - centre_x) / half_width, -1.0), 1.0)
        reach = abs(side)
        out[row, 0] = side * outward
        per_middle = 0.0
        for t in range(6):
            per_middle += terms[t] * LIP_MIDDLE_TERMS[t, k]
        dy = (1.0 - reach ** 2) * per_middle
        if smile:
            dy -= 0.20 * smile * reach ** 1.6
        if smile < 0.0:  # corners already up (a smiling face) first come down to level with the mouth's middle
            dy += min(-smile / 0.3, 1.0) * corner_lift * reach ** 1.6
        if jaw:
            dy += 0.40 * jaw * (LIP_UPPER[k] * reach ** 3 * (jaw > 0.0) + 1.0 - LIP_UPPER[k])
        out[row, 1] = dy

    # Chin and jaw: follow the jaw drop by how far below the mouth they are; the mentalis lifts a pressed chin.
    for row in range(_CHIN[0], _CHIN[1]):
        below = min(max((points[row, 1] - mouth_y) / (chin_y - mouth_y), 0.0), 1.0)
        out[row, 1] = jaw * (0.85 + 0.15 * below) + (0.02 * max(smile, 0.0) - 0.03 * press) * below

    # Face oval: the part below the mouth swings with the jaw (less towards the ears); the rest holds.
    if jaw:
        for row in range(_OVAL[0], _OVAL[1]):
            x, y = points[row, 0], points[row, 1]
            low = min(max((y - mouth_y + 0.15) / (chin_y - mouth_y + 0.15), 0.0), 1.0)
            sideways = min(max(1.0 - abs(x - centre_x) / 1.1, 0.0), 1.0)
            out[row, 0] = -(x - centre_x) * 0.04 * jaw * low
            out[row, 1] = jaw * low ** 1.5 * (0.35 + 0.65 * sideways)

    # Cheeks lift with a smile (and with a wink on that side), drop a little with an open jaw.
    lift = 0.09 * smile
    if smile < 0.0:  # a smiling face's raised cheeks come down with its corners
        lift -= min(-smile / 0.3, 1.0) * 0.6 * corner_lift
    for row in range(_CHEEK_A[0], _CHEEK_A[1]):
        out[row, 0], out[row, 1] = -0.03 * smile, -lift + 0.12 * opens
    for row in range(_CHEEK_B[0], _CHEEK_B[1]):
        out[row, 0], out[row, 1] = 0.03 * smile, -lift - 0.05 * wink + 0.12 * opens

    # Brows: raised as a whole; lowered, they also draw together and the inner ends drop most.
    raise_by = max(0.0, eyebrow) / 15.0
    lower_by = max(0.0, -eyebrow) / 10.0
    # Across, the brows are measured from the face's midline (the nose's root): in the frontal view it is near 0,
    # but not always at it (the landmarks' depths are rough on small faces).
    mid = min(max(points[_NOSE_ROOT, 0], -0.2), 0.2)
    if raise_by or lower_by:
        for row in range(_BROWS[0], _BROWS[1]):
            x = points[row, 0] - mid
            inner = min(max(1.3 - 1.4 * abs(x), 0.0), 1.0)
            out[row, 0] = -math.copysign(0.19 * lower_by * inner, x) if x else 0.0
            out[row, 1] = -0.19 * raise_by * (0.8 + 0.3 * inner) + lower_by * (0.18 + 0.17 * inner)

    # Anchors: the nose holds the middle of the face still (the eyes are anchored by the renderer).
    return out


def rotation_matrix(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """3D rotation in image axes (x right, y down, z into the picture), from the parameters in degrees.

    Positive yaw turns the face towards the image's right, positive pitch nods the chin down, positive roll
    tilts the head clockwise in the picture.
    """
    p, y, r = (math.radians(v) for v in (pitch, yaw, roll))
    cp, sp, cy, sy, cr, sr = math.cos(p), math.sin(p), math.cos(y), math.sin(y), math.cos(r), math.sin(r)
    # rz @ ry @ rx, multiplied out (one small array instead of three and two products)
    return np.array([[cr * cy, cr * -sy * sp - sr * cp, cr * -sy * cp + sr * sp],
                     [sr * cy, sr * -sy * sp + cr * cp, sr * -sy * cp - cr * sp],
                     [sy, cy * sp, cy * cp]])
