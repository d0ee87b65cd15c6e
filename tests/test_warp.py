"""The landmark-warp backend, judged the way a face analyser sees it: the asked-for change and nothing else."""

import cv2
import numpy as np
import pytest

from engine.config import load_settings
from engine.expression import PARAMETERS, Expression
from engine.plugins import load_plugins
from engine.sheet import sweep_values
from plugins.landmark_warp.warp import (
    FOREHEAD_FOLLOW,
    FOREHEAD_STRETCH,
    TPS_REGULARISATION,
    edit_face,
    face_region,
    forehead_follow,
    tps_eval,
    tps_fit,
)
from tests.helpers import SAMPLE, json_lines, run_cli


@pytest.fixture(scope="module")
def registry():
    return load_plugins(load_settings({}, {"XDG_CONFIG_HOME": "/nonexistent"}))


@pytest.fixture(scope="module")
def sample(landmarker):
    image = cv2.imread(str(SAMPLE))
    return image, landmarker.detect(image)[0]


def edited(image, face, **params):
    out = image.copy()
    edit_face(out, face.landmarks, Expression(params).as_dict())
    return out


def nearest(faces, face):
    return min(faces, key=lambda f: np.hypot(f.box[0] - face.box[0], f.box[1] - face.box[1]))


def test_pixels_beyond_one_face_size_are_unchanged(sample, registry):
    image, face = sample
    x, y, w, h = face.box
    far = np.ones(image.shape[:2], bool)
    far[max(0, y - h):y + 2 * h, max(0, x - w):x + 2 * w] = False
    for name in ("happy", "surprised", "angry", "sleepy"):
        out = image.copy()
        edit_face(out, face.landmarks, registry.expression([(name, 1.5)]).as_dict())
        assert np.array_equal(out[far], image[far]), name
        assert np.abs(out.astype(int) - image).max() > 40, name  # and the face did change
    wild = edited(image, face, aaa=120, blink=-20, rotate_pitch=20, rotate_yaw=20, rotate_roll=20, eyebrow=15)
    assert np.array_equal(wild[far], image[far])


def test_seam_is_invisible(sample, registry):
    image, face = sample
    out = image.copy()
    edit_face(out, face.landmarks, registry.expression([("surprised", 1.0)]).as_dict())
    x0, y0, x1, y1 = face_region(face.landmarks, image.shape[1], image.shape[0]).crop
    # along the crop's border the change is nil, and inside it grows smoothly (no step at the edge)
    border = np.concatenate([out[y0, x0:x1], out[y1 - 1, x0:x1], out[y0:y1, x0], out[y0:y1, x1 - 1]]).astype(int)
    original = np.concatenate([image[y0, x0:x1], image[y1 - 1, x0:x1], image[y0:y1, x0],
                               image[y0:y1, x1 - 1]]).astype(int)
    assert np.abs(border - original).max() <= 1


BLENDSHAPE_GOALS = {  # issues 4 and 15: the average rise over faces whose input score is below 0.4
    "happy": {("mouthSmileLeft", "mouthSmileRight"): 0.45},
    "surprised": {("jawOpen",): 0.38, ("browInnerUp",): 0.3},
    "angry": {("browDownLeft", "browDownRight"): 0.38},
    "sleepy": {("eyeBlinkLeft", "eyeBlinkRight"): 0.5},
}


@pytest.fixture(scope="module")
def dev_set(landmarker):
    from tests.helpers import faces_dir

    folder = faces_dir()
    if folder is None:
        pytest.skip("the development photos (../shared/faces) are not here")
    faces = []
    for path in sorted(folder.glob("*.[jp][pn]g")):
        image = cv2.imread(str(path))
        faces += [(image, face) for face in landmarker.detect(image) if face.inter_ocular_px >= 20
                  and abs(face.yaw) <= 50]
    return faces


def measure_rises(dev_set, landmarker, registry, name):
    params = registry.expression([(name, 1.0)]).as_dict()
    rises = {shapes: [] for shapes in BLENDSHAPE_GOALS[name]}
    for image, face in dev_set:
        out = image.copy()
        edit_face(out, face.landmarks, params)
        after = nearest(landmarker.detect(out), face)
        for shapes in rises:
            before = np.mean([face.blendshapes[s] for s in shapes])
            if before < 0.4:
                rises[shapes].append(np.mean([after.blendshapes[s] for s in shapes]) - before)
    return {shapes: float(np.mean(values)) for shapes, values in rises.items()}


@pytest.mark.parametrize("name", ["happy", "surprised", "angry", "sleepy"])
def test_presets_move_the_matching_blendshapes(dev_set, landmarker, registry, name):
    assert len(dev_set) >= 25
    measured = measure_rises(dev_set, landmarker, registry, name)
    for shapes, goal in BLENDSHAPE_GOALS[name].items():
        assert measured[shapes] >= goal, (name, shapes, measured[shapes])


def _iris_offset(face):
    """Iris centres relative to their eye corners, in eye widths (x) and eye heights (y), averaged."""
    values = []
    for iris, corner_a, corner_b, top, bottom in ((468, 33, 133, 159, 145), (473, 362, 263, 386, 374)):
        marks = face.landmarks[:, :2]
        width = marks[corner_b, 0] - marks[corner_a, 0]
        values.append(((marks[iris, 0] - (marks[corner_a, 0] + marks[corner_b, 0]) / 2) / abs(width),
                       (marks[iris, 1] - (marks[top, 1] + marks[bottom, 1]) / 2) / abs(width)))
    return np.mean(values, axis=0)


def _brow_height(face):
    marks = face.landmarks[:, :2]
    return float((marks[[33, 133, 362, 263], 1].mean() - marks[[105, 66, 334, 296], 1].mean()) / face.inter_ocular_px)


MEASURES = {
    "smile": lambda f: f.blendshapes["mouthSmileLeft"] + f.blendshapes["mouthSmileRight"],
    "aaa": lambda f: float(np.linalg.norm(f.landmarks[14, :2] - f.landmarks[13, :2]) / f.inter_ocular_px),
    "eee": lambda f: float(np.linalg.norm(f.landmarks[291, :2] - f.landmarks[61, :2]) / f.inter_ocular_px),
    "woo": lambda f: -float(np.linalg.norm(f.landmarks[291, :2] - f.landmarks[61, :2]) / f.inter_ocular_px),
    "eyebrow": _brow_height,
    "blink": lambda f: -(f.blendshapes["eyeBlinkLeft"] + f.blendshapes["eyeBlinkRight"]),
    "wink": lambda f: max(f.blendshapes["eyeBlinkLeft"], f.blendshapes["eyeBlinkRight"]),
    "pupil_x": lambda f: _iris_offset(f)[0],
    "pupil_y": lambda f: -_iris_offset(f)[1],
    "rotate_yaw": lambda f: f.yaw,
    "rotate_pitch": lambda f: f.pitch,
    "rotate_roll": lambda f: f.roll,
}
TOLERANCE = {"smile": 0.03, "aaa": 0.01, "eee": 0.01, "woo": 0.01, "eyebrow": 0.01, "blink": 0.03, "wink": 0.03,
             "pupil_x": 0.01, "pupil_y": 0.01, "rotate_yaw": 1.0, "rotate_pitch": 1.0, "rotate_roll": 1.0}


@pytest.mark.parametrize("name", [p.name for p in PARAMETERS])
def test_sweep_moves_its_measure_monotonically(sample, landmarker, name):
    image, face = sample
    values = sweep_values(name)
    measured = []
    for value in values:
        after = landmarker.detect(edited(image, face, **{name: value}))
        assert after, (name, value)
        measured.append(MEASURES[name](nearest(after, face)))
    steps = np.diff(measured)
    assert (steps >= -TOLERANCE[name]).all(), (name, values, measured)
    assert measured[-1] - measured[0] > 4 * TOLERANCE[name], (name, measured)  # it really moves


def _reference_spline(points, values, scale, queries):
    """The same regularised thin-plate spline, written out plainly and solved in double precision."""
    p, q = points / scale, queries / scale

    def kernel(a, b):
        r2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return 0.5 * r2 * np.log(np.where(r2 > 0, r2, 1.0))

    n = len(p)
    system = np.zeros((n + 3, n + 3))
    system[:n, :n] = kernel(p, p) + TPS_REGULARISATION * np.eye(n)
    system[:n, n], system[n, :n] = 1.0, 1.0
    system[:n, n + 1:], system[n + 1:, :n] = p, p.T
    solution = np.linalg.solve(system, np.vstack([values, np.zeros((3, 2))]))
    return kernel(q, p) @ solution[:n] + solution[n] + q @ solution[n + 1:]


def test_spline_matches_a_double_precision_one_and_survives_points_on_a_line():
    rng = np.random.default_rng(3)
    points = rng.uniform(0, 300, (150, 2))  # a face-sized crop, as many control points as a face has
    queries = rng.uniform(-20, 320, (400, 2))
    # A smooth field of pixel displacements, and a rough one (every point on its own: the kernel's single
    # precision then shows, as it did when the system was solved in double precision: up to 0.11 px).
    smooth = np.stack([5 * np.sin(points[:, 0] / 60), 4 * np.cos(points[:, 1] / 50)], axis=1)
    rough = rng.normal(0, 8, (150, 2))
    for values, tolerance in ((smooth, 0.005), (rough, 0.3)):
        ours = tps_eval(tps_fit(points, values, 80.0), queries)
        assert np.abs(ours - _reference_spline(points, values, 80.0, queries)).max() < tolerance  # pixels
    # Points all on one line make the system singular: the least-squares spline still follows them.
    line = np.stack([np.linspace(0, 200, 6), np.linspace(10, 110, 6)], axis=1)
    shift = np.stack([line[:, 0] * 0.1, np.full(6, 3.0)], axis=1)
    assert np.allclose(tps_eval(tps_fit(line, shift, 80.0), line), shift, atol=0.01)


def test_extreme_combination_stays_a_face(sample, landmarker):
    image, face = sample
    out = edited(image, face, aaa=120, blink=-20, rotate_pitch=20, rotate_yaw=20, rotate_roll=20, eee=15,
                 eyebrow=15)
    after = landmarker.detect(out)
    assert after, "the analyser no longer sees a face"
    shapes = nearest(after, face).blendshapes
    assert shapes["jawOpen"] > 0.3 and (shapes["eyeBlinkLeft"] + shapes["eyeBlinkRight"]) / 2 > 0.3
    x, y, w, h = face.box
    region = out[y:y + h, x:x + w].astype(int)
    # no tears or holes: no run of identical pixels, and neighbouring pixels stay close
    assert np.abs(np.diff(region, axis=1)).mean() < 3 * np.abs(np.diff(image[y:y + h, x:x + w].astype(int),
                                                                    axis=1)).mean() + 2


def test_face_cut_by_the_edge(dev_faces, landmarker):
    image = cv2.imread(str(dev_faces / "facerec_obama_partial_face.jpg"))
    (face,) = landmarker.detect(image)
    out = edited(image, face, smile=1.0)
    assert out.shape == image.shape and np.abs(out.astype(int) - image).max() > 20


def test_small_faces_and_profiles_are_skipped_with_a_reason(dev_faces, tmp_path):
    small = run_cli("apply", dev_faces / "dlib_2007_007763.jpg", "--emotion", "happy", "--out", tmp_path, "--json")
    (record,) = json_lines(small.stdout)
    assert small.returncode == 1 and "face too small to edit" in record["error"]
    profile = run_cli("apply", dev_faces / "interfaces_012.jpg", "--emotion", "happy", "--out", tmp_path, "--json")
    (record,) = json_lines(profile.stdout)
    assert profile.returncode == 1 and "face in profile" in record["error"]


def test_happy_reads_as_happy(sample, landmarker, registry):
    from engine.analysis import estimate

    image, face = sample
    out = image.copy()
    edit_face(out, face.landmarks, registry.expression([("happy", 1.0)]).as_dict())
    after = nearest(landmarker.detect(out), face)
    assert estimate(after.blendshapes, registry.emotions)["label"] == "happy"
    assert estimate(after.blendshapes, registry.emotions)["scores"]["happy"] > \
        estimate(face.blendshapes, registry.emotions)["scores"]["happy"]


def test_the_forehead_close_above_a_lowered_brow_follows_it_enough_not_to_streak():
    # A brow's top row at height -0.5 (face units, up is negative), lowered by 0.2; forehead points 0.08 and 0.3
    # above it. The near one follows by enough that the skin between stretches at most FOREHEAD_STRETCH (on
    # interfaces_006 it followed by 0.55 and the skin between doubled: a dark fold drawn out into streaks); the
    # far one by FOREHEAD_FOLLOW.
    tops = np.array([[-0.6, -0.45], [-0.3, -0.5], [0.0, -0.5]])
    follow = forehead_follow(tops, np.array([-0.3, -0.3]), np.array([-0.58, -0.8]), np.array([0.2, 0.2]))
    stretch = (0.08 + (1 - follow[0]) * 0.2) / 0.08
    assert stretch <= FOREHEAD_STRETCH + 1e-9 and follow[0] > FOREHEAD_FOLLOW
    assert follow[1] == FOREHEAD_FOLLOW

