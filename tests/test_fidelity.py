"""Fidelity of the landmark warp: a frown creases the skin between the brows, shaded, its texture kept."""

import cv2
import numpy as np
import pytest

from engine.expression import Expression
from plugins.landmark_warp import geometry as geo
from plugins.landmark_warp.warp import GLABELLA, edit_face
from tests.helpers import SAMPLE


def edited(image, face, **params):
    out = image.copy()
    edit_face(out, face.landmarks, Expression(params).as_dict())
    return out


def test_a_frown_creases_the_skin_between_the_brows(landmarker):
    image = cv2.imread(str(SAMPLE))
    face = landmarker.detect(image)[0]
    frowned = edited(image, face, eyebrow=-10)
    relaxed = edited(image, face, eyebrow=-2)  # brows down a little: no crease yet
    # Sample a row across the glabella, halfway between the point between the brows and the nose's root.
    frame = geo.face_frame(face.landmarks.astype(np.float64))
    top, root = frame.local(face.landmarks[list(GLABELLA), :2].astype(np.float64))
    middle = (top + root) / 2
    across = np.linspace(-0.2, 0.2, 81)
    points = frame.origin + frame.to_image(np.stack([middle[0] + across, np.full_like(across, middle[1])], axis=1))

    def profile(picture):
        grey = cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY).astype(np.float32)
        return cv2.remap(grey, points[:, 0].astype(np.float32).reshape(1, -1),
                         points[:, 1].astype(np.float32).reshape(1, -1), cv2.INTER_LINEAR)[0]

    # The warp alone (brows down, skin stretched) changes the row smoothly; the creases are narrow dips on top.
    change = profile(frowned) - profile(relaxed)
    dips = change - cv2.GaussianBlur(change.reshape(1, -1), (37, 1), 6, borderType=cv2.BORDER_REPLICATE)[0]
    left, right, mid = dips[:38].min(), dips[43:].min(), dips[38:43].min()
    assert left < -8 and right < -8 and mid > 0.4 * min(left, right), (left, right, mid)
    # Shaded, not painted: the skin's texture stays (its local contrast is not flattened).
    box = points.astype(int)
    region = (slice(box[:, 1].min() - 6, box[:, 1].max() + 6), slice(box[:, 0].min(), box[:, 0].max()))
    texture = lambda picture: float(cv2.Laplacian(cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY)[region],  # noqa: E731
                                                  cv2.CV_32F).std())
    assert texture(frowned) > 0.8 * texture(image)


def _upper_teeth(picture, face, light):
    """How tall the upper teeth show (pixels) in the middle of the mouth: the first run of pixels as light as
    teeth (`light` or more, little colour) down each of the middle columns, from above the upper lip to below
    the chin's top (the median over the columns)."""
    marks = face.landmarks[:, :2]
    iod = face.inter_ocular_px
    x = int(marks[[13, 14], 0].mean())
    y0, y1 = int(marks[0, 1] - 0.05 * iod), int(marks[17, 1] + 0.4 * iod)
    hsv = cv2.cvtColor(picture[y0:y1, x - int(0.08 * iod):x + int(0.08 * iod) + 1], cv2.COLOR_BGR2HSV)
    teeth = (hsv[..., 2] >= light) & (hsv[..., 1] < 90)
    runs = []
    for column in teeth.T:
        start = int(np.argmax(column)) if column.any() else len(column)
        length = int(np.argmin(column[start:])) if not column[start:].all() else len(column) - start
        runs.append(length)
    return float(np.median(runs))


@pytest.mark.parametrize("photo", ["dlib_tom_cruise_avp_2014_4.jpg", "interfaces_071.jpg"])
def test_an_opening_mouth_keeps_its_upper_teeth(dev_faces, landmarker, photo):
    # Smiles that show their teeth, opened wide: the upper teeth go up with the upper lip, whole (they were cut
    # at the mouth's middle line and a dark band painted over their lower half: 44% and 70% of their height
    # stayed on these two; the sample face's teeth are a few pixels tall, too few to measure).
    image = cv2.imread(str(dev_faces / photo))
    face = max(landmarker.detect(image), key=lambda f: f.inter_ocular_px)
    inner = face.landmarks[[13, 14], :2].mean(axis=0)
    light = 0.8 * float(cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[int(inner[1]), int(inner[0]) - 2:int(inner[0]) + 3, 2]
                        .max())  # the teeth between the lips' middles
    out = edited(image, face, aaa=60)
    after = min(landmarker.detect(out), key=lambda f: np.hypot(f.box[0] - face.box[0], f.box[1] - face.box[1]))
    gap = lambda f: np.linalg.norm(f.landmarks[14, :2] - f.landmarks[13, :2]) / f.inter_ocular_px  # noqa: E731
    assert gap(after) > gap(face) + 0.05  # the mouth opened
    # (the upper lip's middle lifts a little: the same column band shows them from a little higher)
    assert _upper_teeth(out, face, light) > 0.7 * _upper_teeth(image, face, light)
