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


def _grain(picture, mask):
    """The skin's grain inside `mask`: the median absolute difference of the grey picture from its blur (a lash
    line or a crease, a few pixels of the region, does not count; a smooth painted band has next to none)."""
    grey = cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY).astype(np.float32)
    detail = grey - cv2.GaussianBlur(grey, (0, 0), 2.0)
    return float(np.median(np.abs(detail[mask])))


def _eye_masks(face, shape):
    """Per eye: the upper part of its opening (what a closed lid covers above where the lids meet) and a band of
    skin under it (from a third to two thirds of an eye width below the lower lid), as boolean masks."""
    masks = []
    for upper_ids, lower_ids in ((geo.EYE_A_UPPER, geo.EYE_A_LOWER), (geo.EYE_B_UPPER, geo.EYE_B_LOWER)):
        upper, lower = face.landmarks[list(upper_ids), :2], face.landmarks[list(lower_ids), :2]
        width = float(np.linalg.norm(upper[-1] - upper[0]))
        middle = upper + 0.55 * (lower - upper)  # above where the lids meet (and the lash line along it)
        lid = np.zeros(shape[:2], np.uint8)
        cv2.fillPoly(lid, [np.round(np.concatenate([upper, middle[::-1]])).astype(np.int32)], 1)
        lid = cv2.erode(lid, np.ones((3, 3), np.uint8)) > 0
        skin = np.zeros(shape[:2], np.uint8)
        below = np.concatenate([lower[1:-1] + [0, width / 3], lower[-2:0:-1] + [0, 2 * width / 3]])
        cv2.fillPoly(skin, [np.round(below).astype(np.int32)], 1)
        masks.append((lid, skin > 0))
    return masks


@pytest.mark.parametrize("photo", ["facerec_obama.jpg", "interfaces_028.jpg"])  # faces whose skin has a grain
def test_closed_lids_show_the_skins_texture(dev_faces, landmarker, photo):
    # A closed lid is the person's skin, not a smooth painted band: its grain stays near the grain of the skin
    # under the eye. (Where only the lids moved, the lid was once a flat box of colour read from beside the eye:
    # a third of the skin's grain on the first photo.)
    image = cv2.imread(str(dev_faces / photo))
    face = max(landmarker.detect(image), key=lambda f: f.inter_ocular_px)
    closed = edited(image, face, blink=-20)
    after = min(landmarker.detect(closed), key=lambda f: np.hypot(f.box[0] - face.box[0], f.box[1] - face.box[1]))
    assert (after.blendshapes["eyeBlinkLeft"] + after.blendshapes["eyeBlinkRight"]) / 2 > 0.4  # the eyes closed
    for lid, skin in _eye_masks(face, image.shape):
        assert lid.sum() > 30 and skin.sum() > 30 and _grain(image, skin) > 2.0  # skin with a grain to keep
        assert _grain(closed, lid) > 0.5 * _grain(closed, skin), (photo, _grain(closed, lid), _grain(closed, skin))
        # (the measure sees a painted lid: the same lid smoothed fails it)
        painted = closed.copy()
        painted[lid] = cv2.GaussianBlur(closed, (0, 0), 3.0)[lid]
        assert _grain(painted, lid) < 0.5 * _grain(closed, skin)


def _line_rows(picture, xs, y_guess, reach):
    """Where a dark horizontal line crosses each column `xs`: the darkest row (of the picture smoothed down the
    column) within `reach` pixels of `y_guess`."""
    grey = cv2.GaussianBlur(cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY).astype(np.float32), (1, 3), 0)
    top = int(y_guess - reach)
    return top + np.argmin(grey[top:int(y_guess + reach) + 1][:, xs], axis=0).astype(np.float64)

@pytest.mark.xfail(strict=True, reason="issue 15: glasses' frames still bend with the lids and brows behind them")
@pytest.mark.parametrize("params", [{"blink": -20}, {"eyebrow": -10}], ids=["lids", "brows"])
def test_a_straight_frame_across_the_eyes_stays_straight(dev_faces, landmarker, params):
    # A frame's rim drawn straight across both eyes, between the lids and the brows: lids closing and brows lowering
    # behind it must leave it straight and in place (it is not skin). Today it bends with them (several pixels).
    image = cv2.imread(str(dev_faces / "interfaces_001.jpg"))
    face = max(landmarker.detect(image), key=lambda f: f.inter_ocular_px)
    marks = face.landmarks[:, :2]
    lids = marks[list(geo.EYE_A_UPPER + geo.EYE_B_UPPER)]
    brows = marks[list(geo.BROW_A + geo.BROW_B)]
    y = float(0.5 * lids[:, 1].min() + 0.5 * brows[:, 1].max())
    x0, x1 = int(lids[:, 0].min()), int(lids[:, 0].max())
    framed = image.copy()
    cv2.line(framed, (x0 - 10, int(round(y))), (x1 + 10, int(round(y))), (0, 0, 0), 5, cv2.LINE_AA)
    framed_face = max(landmarker.detect(framed), key=lambda f: f.inter_ocular_px)
    out = edited(framed, framed_face, **params)
    assert np.abs(out.astype(int) - framed).max() > 40  # the eyes did change
    xs = np.arange(x0, x1 + 1)
    reach = 0.06 * face.inter_ocular_px
    before = _line_rows(framed, xs, y, reach)
    assert np.abs(before - round(y)).max() <= 3  # (the measure finds the drawn line, 5 px thick)
    assert np.abs(_line_rows(out, xs, y, reach) - before).max() <= 0.02 * face.inter_ocular_px


ANGRY = {"eyebrow": -10, "smile": -0.3, "aaa": -20, "eee": -3, "woo": 2}  # the angry preset (plugins/emotions.py)
LOWER_NOSE = [1, 2, 4, 5, 195, 98, 327, 64, 294, 48, 278, 129, 358]  # from the bridge's middle to the nostrils


def _nose_squeeze(before, after, face):
    """How unevenly an edit moved the nose, in inter-ocular distances: the 90th percentile, over the nose, of the
    optical flow's departure from its median there (a nose that stays, or moves whole, has next to none; one
    squeezed between the brows or pushed by the eyes' corners has its parts moving apart)."""
    grey = [cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY) for picture in (before, after)]
    flow = cv2.calcOpticalFlowFarneback(grey[0], grey[1], None, 0.5, 3, 15, 3, 5, 1.2, 0)
    nose = np.zeros(before.shape[:2], np.uint8)
    cv2.fillConvexPoly(nose, cv2.convexHull(np.round(face.landmarks[LOWER_NOSE, :2]).astype(np.int32)), 1)
    moves = flow[nose > 0] / face.inter_ocular_px
    return float(np.percentile(np.hypot(*(moves - np.median(moves, axis=0)).T), 90))


def test_a_turned_face_frowns_without_squeezing_its_nose(dev_faces, landmarker):
    # A three-quarter view tilted down (yaw 21, pitch 12 degrees): its midline lies off the point between its eyes,
    # towards the far eye. The brows were drawn together about that point, so the near brow's inner end was pulled
    # over the nose's root, and the mouth was pressed towards the far side; the nose between swelled and smeared
    # (0.053 of the eyes' distance measured so; 0.041 once the brows and lips are placed across as seen from the
    # front; a frontal face's nose measures 0.02 to 0.04 under the same edit).
    image = cv2.imread(str(dev_faces / "interfaces_081.jpg"))
    face = max(landmarker.detect(image), key=lambda f: f.inter_ocular_px)
    assert abs(face.yaw) > 15 and abs(face.pitch) > 8  # (turned and tilted)
    out = edited(image, face, **ANGRY)
    assert np.abs(out.astype(int) - image).max() > 40  # the brows did move
    assert _nose_squeeze(image, out, face) < 0.047
