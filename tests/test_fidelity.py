"""Fidelity of the landmark warp: a frown creases the skin between the brows, shaded, its texture kept."""

import cv2
import numpy as np

from engine.expression import Expression
from plugins.landmark_warp import geometry as geo
from plugins.landmark_warp.warp import GLABELLA, edit_face
from tests.conftest import SAMPLE


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
