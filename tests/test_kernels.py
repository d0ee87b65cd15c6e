"""The warp's compiled loops against plain numpy statements of the same models."""

import math
import sys

import cv2
import numpy as np
import pytest

from plugins.landmark_warp import kernels, kernels_cached
from plugins.landmark_warp.warp import (
    EYE_SAMPLES,
    LID_ALONG,
    LID_MODEL,
    LID_REACH,
    MOUTH_COLOURS,
    TONGUE,
    TPS_REGULARISATION,
    tps_eval,
    tps_fit,
)


def test_sorting_and_rounding_helpers_match_numpy():
    rng = np.random.default_rng(3)
    for _ in range(50):
        values = rng.integers(0, 5, size=rng.integers(1, 14)).astype(np.float64)  # many ties
        assert (kernels._order(values) == np.argsort(values, kind="stable")).all()
    for value in (-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.4999, 2.5001, 7.0, -7.2):
        assert kernels._round_even(value) == int(np.rint(value)), value


def _lid_profile(up, low, width, along, closure, widen_lift, lower_lift):
    """One lid-profile sample of the model in warp.fold_lids, as numpy: knots and values across the eye."""
    meet_, sag, _, _, _, band_, skip, _, _, mirror_gap = LID_MODEL
    opening = low - up
    meet = low - meet_ * opening + sag * width * closure * along
    new_upper = up + closure * (meet - up) - widen_lift * opening
    new_lower = low + closure * (meet - low) - lower_lift * opening
    band = band_ * width
    top = up - LID_REACH * width
    fold_at = max(new_upper - band * (1 - 0.6 * closure), top)
    # the lid's edge reads ever further above its lashes as it closes; closed, the lid is evenly stretched skin
    edge_reads = up - closure * (band + skip * width)
    even = top + (fold_at - top) * (edge_reads - top) / max(new_upper - top, 1e-3)
    fold_reads = (1 - closure) * (up - band) + closure * even
    seen_start = max(new_upper, up)
    span = new_lower - new_upper
    seen_end = seen_start + span * (low - seen_start) / max(span, 1e-3)
    knots = np.maximum.accumulate([up - LID_REACH * width, fold_at, new_upper, new_upper, new_lower, new_lower,
                                   low + 0.4 * width])
    below_from = low + closure * mirror_gap * width  # closed, the lid covers the lower lid's edge too
    values = [0, fold_reads - fold_at, edge_reads - new_upper, seen_start - new_upper, seen_end - new_lower,
              below_from - new_lower, 0]
    return knots, np.array(values)


@pytest.mark.parametrize("closure, widen_lift, lower_lift", [(1.0, 0.0, 0.0), (0.5, 0.0, 0.1), (0.0, 0.2, 0.0)])
def test_lid_fold_follows_the_model_and_leaves_still_lids_alone(closure, widen_lift, lower_lift):
    """A level eye 40 px wide, lids 6 px above and below its axis, corner at box pixel (10, 40): every pixel
    moves along the normal by the model's profile at its place (bilinear between samples and half-pixel columns,
    so pixels within a pixel of the profile's jumps are left out)."""
    width, up, low = 40.0, -6.0, 6.0
    upper, lower = np.full(len(EYE_SAMPLES), up), np.full(len(EYE_SAMPLES), low)
    start = up - LID_REACH * width - 2.0
    steps = int(math.ceil((low + 0.45 * width + 2.0 - start) * 2)) + 1
    box = np.zeros((80, 60, 2), np.float32)
    lash, smooth = np.zeros((80, 60), np.float32), np.zeros((80, 60), np.float32)
    skin, place_on_lid = np.zeros((80, 60, 2), np.float32), np.zeros((80, 60, 2), np.float32)
    kernels.fold_lid_box(box, np.array([10.0, 40.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0]), width, upper,
                         lower, upper - LID_REACH * width, LID_ALONG, LID_MODEL, closure, widen_lift, lower_lift,
                         start, steps, lash, smooth, skin, place_on_lid)
    assert (box[..., 0] == 0).all()  # along the normal only: a level eye's normal is straight down
    checked = 0
    for y in range(80):
        for x in range(12, 48):  # inside the eye, away from the clamped corners
            t = (x - 10) / width
            row = t * (len(EYE_SAMPLES) - 1)
            s0 = min(int(row), len(EYE_SAMPLES) - 2)
            profiles = [_lid_profile(up, low, width, LID_ALONG[s], closure, widen_lift, lower_lift)
                        for s in (s0, s0 + 1)]
            place = y - 40.0
            if any(np.min(np.abs(knots[2:6] - place)) < 1.0 for knots, _ in profiles):
                continue
            f = row - s0
            expected = (1 - f) * np.interp(place, *profiles[0]) + f * np.interp(place, *profiles[1])
            assert box[y, x, 1] == pytest.approx(expected, abs=1e-3), (x, y)
            checked += 1
    assert checked > 1500
    if closure:
        assert 0 < lash.max() <= LID_MODEL[3] + 1e-6 and 0 < smooth.max() <= 1.0
        # where the lid's skin shows, its map reads under the lower lid (mirrored), never the eye between
        shown = smooth > 0.05
        shown[:, :12] = shown[:, 48:] = False
        assert shown.any() and (skin[..., 1][shown] + np.mgrid[0:80, 0:60][0][shown] - 40.0 > low).all()
        # where each pixel lies on the lid: its height on the stretch from its top (0) to the new edge (1), and the
        # eye widths above that edge, down the middle column (the profile is level across this eye), within the
        # tabulated model (beyond it, its edge values)
        new_upper = _lid_profile(up, low, width, 1.0, closure, 0.0, 0.0)[0][2]
        column = np.arange(80) - 40.0
        inside = column >= start
        top = up - LID_REACH * width
        expected_height = np.clip((column - top) / (new_upper - top), 0.0, 1.0)
        expected_above = np.maximum(new_upper - column, 0.0) / width
        assert place_on_lid[inside, 30, 0] == pytest.approx(expected_height[inside], abs=0.02)
        assert place_on_lid[inside, 30, 1] == pytest.approx(expected_above[inside], abs=0.02)
    if not (closure or widen_lift or lower_lift):
        assert (box == 0).all()


def test_lids_that_do_not_move_leave_the_map_unchanged():
    box = np.random.default_rng(0).normal(size=(30, 40, 2)).astype(np.float32)
    before = box.copy()
    unused = np.empty((1, 1), np.float32)
    kernels.fold_lid_box(box, np.array([5.0, 15.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0]), 30.0,
                         np.full(len(EYE_SAMPLES), -4.0), np.full(len(EYE_SAMPLES), 4.0),
                         np.full(len(EYE_SAMPLES), -22.0), LID_ALONG, LID_MODEL, 0.0, 0.0, 0.0, -24.0, 70, unused,
                         unused, np.empty((1, 1, 2), np.float32), np.empty((1, 1, 2), np.float32))
    assert np.array_equal(box, before)


def test_mouth_paint_covers_only_the_opening_and_darkens_it():
    """A mouth 0.5 IOD wide and open 0.3 IOD (the face frame at the box's corner, 100 px per IOD)."""
    roi = np.full((40, 60, 3), 180, np.uint8)
    coverage = np.zeros((40, 60), np.uint8)
    coverage[10:30, 10:50] = 255
    upper = np.array([[5.0, 20.0], [30.0, 8.0], [55.0, 20.0]])
    lower = np.array([[5.0, 20.0], [30.0, 38.0], [55.0, 20.0]])
    kernels.paint_mouth_box(roi, coverage, np.array([0, 0]), np.zeros(2), np.array([0.01, 0.0]),
                            np.array([0.0, 0.01]), upper, lower, 1.0, True, MOUTH_COLOURS, TONGUE)
    assert (roi[coverage == 0] == 180).all()
    inside = roi[20:27, 25:35].astype(int)  # (under the upper teeth, over the lower ones)
    assert inside.max() < 180 and inside.mean() < 100  # a dark cavity mid-mouth
    assert roi[10:13, 25:35].mean() > inside.mean() + 40  # teeth under the upper lip, lighter than the cavity
    # The front teeth meet at the mouth's middle (x = 30): their gap there is darker than the teeth beside it.
    row = roi[12].astype(float).mean(axis=1)
    assert row[28] - row[30] > 10 and row[32] - row[30] > 10, row[26:35]


def _painted_mouth(upper_middle: float, lower_middle: float):
    """A mouth 1.1 IOD wide painted into a 120 x 60 box (100 px per IOD, the face frame at its corner, the midline at
    x = 60), its inner lips through the corners at y = 12 and the given heights mid-mouth. Returns the box and the
    opening's coverage."""
    roi = np.full((60, 120, 3), 180, np.uint8)
    upper = np.array([[5.0, 12.0], [60.0, upper_middle], [115.0, 12.0]])
    lower = np.array([[5.0, 12.0], [60.0, lower_middle], [115.0, 12.0]])
    coverage = np.zeros((60, 120), np.uint8)
    cv2.fillPoly(coverage, [np.round(np.concatenate([upper, lower[::-1]])).astype(np.int32)], 255)
    kernels.paint_mouth_box(roi, coverage, np.array([0, 0]), np.zeros(2), np.array([0.01, 0.0]),
                            np.array([0.0, 0.01]), upper, lower, 1.0, True, MOUTH_COLOURS, TONGUE)
    return roi, coverage


def test_a_wide_open_mouth_shows_a_lit_tongue():
    """A mouth 1.1 IOD wide, open 0.42 IOD (100 px per IOD): a tongue fills the bottom of the opening, red and lit at
    its crest. (It was a dark crescent on the lower lip: red 106 above the lower teeth, 1% of the opening red.)"""
    roi, coverage = _painted_mouth(8.0, 50.0)
    blue, green, red = (roi[..., c].astype(int) for c in range(3))
    tongue = (coverage == 255) & (red > 110) & (red > green + 50)
    assert tongue.mean() / (coverage == 255).mean() > 0.08
    assert red[44, 60] > 140 and red[44, 60] > 2 * red[25, 60]  # (lit, over the dark cavity)


def test_painted_teeth_are_rounded():
    """A mouth 1.1 IOD wide with a level upper lip (100 px per IOD, the midline at x = 60): each upper tooth is lit
    most in its middle, and its edge rises towards the gaps beside it. (The teeth were one flat band with a straight
    edge, parted by faint lines only: the central incisor beside the midline was as light as in its middle.)"""
    roi, _ = _painted_mouth(10.0, 45.0)
    grey = roi.astype(float).mean(axis=2)
    # The central incisor spans x = 60 to 73.5 (0.135 face units), its middle at 66.75.
    lit, edge = grey[15], grey[18]  # across the teeth; across their lower edge
    assert lit[67] - lit[61] > 5 and lit[67] - lit[72] > 11, lit[60:74]
    assert edge[67] - edge[61] > 40 and edge[67] - edge[72] > 20, edge[60:74]


def test_painted_teeth_recede_towards_the_corners():
    """A mouth 1.1 IOD wide, its upper lip level and open 0.3-0.4 IOD (100 px per IOD, the midline at x = 60): the
    upper teeth show less, and darker, towards the corners, and no lower teeth show. (As tall and as lit to the
    corners, with a grey rim of lower teeth along the lower lip, they read as a drawn denture.)"""
    roi = np.full((60, 120, 3), 180, np.uint8)
    upper = np.array([[5.0, 10.0], [60.0, 10.0], [115.0, 10.0]])
    lower = np.array([[5.0, 10.0], [12.0, 40.0], [60.0, 50.0], [108.0, 40.0], [115.0, 10.0]])
    coverage = np.zeros((60, 120), np.uint8)
    cv2.fillPoly(coverage, [np.round(np.concatenate([upper, lower[::-1]])).astype(np.int32)], 255)
    kernels.paint_mouth_box(roi, coverage, np.array([0, 0]), np.zeros(2), np.array([0.01, 0.0]),
                            np.array([0.0, 0.01]), upper, lower, 1.0, True, MOUTH_COLOURS, TONGUE)
    grey = roi.astype(float).mean(axis=2)

    def teeth(x):  # how far down the teeth reach (px) in column x, and how light they are
        column = grey[11:40, x]
        return int(np.argmax(column < 0.5 * column[:2].mean())), column[:2].mean()

    (middle, middle_light), (side, side_light) = teeth(66), teeth(20)
    assert middle >= 7 and side <= 0.8 * middle, (middle, side)
    assert side_light < 0.52 * middle_light, (middle_light, side_light)  # (0.55 with the old shade, 0.66 with none)
    # over the lower lip in the middle: the cavity or the tongue, nothing light and grey
    bottom = roi[42:49, 50:70].astype(int)
    grey_light = (bottom.min(axis=2) > 90) & (bottom.max(axis=2) - bottom.min(axis=2) < 60)
    assert not (grey_light & (coverage[42:49, 50:70] == 255)).any()


def test_landed_points_invert_a_relative_map():
    """Where a relative map puts points (warp.landed): on a smooth map that stretches and shifts, Newton's steps
    find each point whose pixel reads its source; on a map that folds the picture over, none is taken."""
    ys, xs = np.mgrid[0:80, 0:100].astype(np.float32)
    corner = np.array([10.0, 5.0])
    # each pixel (x, y) of the part reads the crop at (x + 10, y + 5) + displacement; the map holds that plus corner
    shift = np.stack([4.0 + 0.15 * xs + 2.0 * np.sin(ys / 15.0), -3.0 + 0.1 * ys], axis=2).astype(np.float32)
    maps = shift + corner.astype(np.float32)
    truth = np.array([[30.0, 20.0], [60.5, 41.25], [85.0, 70.0]])  # crop points in the part
    at = (truth - corner).astype(np.float32).reshape(1, -1, 2)
    sources = truth + cv2.remap(shift, at[..., 0], at[..., 1], cv2.INTER_LINEAR)[0]
    found = np.empty_like(truth)
    assert kernels.landed_points(maps, corner, sources, truth + 6.0, found, 4, 10.0, 0.5, 30.0)
    assert np.abs(found - truth).max() < 0.1, found - truth
    folded = np.stack([-1.5 * xs, np.zeros_like(ys)], axis=2).astype(np.float32) + corner.astype(np.float32)
    assert not kernels.landed_points(folded, corner, sources, truth, found, 4, 10.0, 0.5, 30.0)


def test_head_turn_keeps_the_outline_centre_and_rolls_about_it():
    rng = np.random.default_rng(1)
    outline = rng.normal(size=(30, 3)) * 50 + (200.0, 150.0, 0.0)
    points, depth = rng.normal(size=(40, 2)) * 40 + (200.0, 150.0), rng.normal(size=40) * 20
    follow = np.ones(40)
    no_turn = np.eye(3)[:2].copy()
    assert np.allclose(kernels.turn_points(points, depth, follow, outline, no_turn, 0.0), points)
    centre = outline[:, :2].mean(axis=0)
    rolled = kernels.turn_points(points, depth, follow, outline, no_turn, math.radians(90))
    assert np.allclose(rolled - centre, np.c_[-(points - centre)[:, 1], (points - centre)[:, 0]])
    yaw = math.radians(20)
    turn = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0]])
    turned = kernels.turn_points(outline[:, :2].copy(), outline[:, 2].copy(), np.ones(30), outline, turn, 0.0)
    assert np.allclose(turned.mean(axis=0), centre)  # the head turns in place
    half = kernels.turn_points(points, depth, np.full(40, 0.5), outline, turn, 0.0)
    full = kernels.turn_points(points, depth, follow, outline, turn, 0.0)
    assert np.allclose(half, (points + full) / 2)


def test_spline_system_matches_numpy_and_leaves_out_near_points():
    rng = np.random.default_rng(2)
    points = rng.uniform(0, 100, size=(30, 2))
    points[7] = points[3] + 0.5  # closer than the minimum distance to an earlier point: left out
    values = rng.normal(size=(30, 2))
    kept, system, rhs = kernels.spline_system(points, values, 50.0, 1.0, TPS_REGULARISATION)
    keep = np.arange(30) != 7
    p = points[keep] / 50.0
    r2 = ((p[:, None] - p[None]) ** 2).sum(-1)
    kernel = 0.5 * r2 * np.log(np.where(r2 > 0, r2, 1.0)) + TPS_REGULARISATION * np.eye(len(p))
    n = len(p)
    assert np.allclose(kept, p, atol=1e-6)
    assert np.allclose(system[:n, :n], kernel, atol=1e-6)
    assert np.allclose(system[:n, n:], np.c_[np.ones(n), p], atol=1e-6)
    assert np.allclose(system[n:, :n], np.c_[np.ones(n), p].T, atol=1e-6)
    assert (system[n:, n:] == 0).all()
    assert np.allclose(rhs, np.r_[values[keep], np.zeros((3, 2))], atol=1e-6)


def test_faded_nodes_and_field_extent():
    xs, ys = np.arange(0.0, 100.0, 10.0), np.arange(0.0, 80.0, 10.0)
    nodes, fade, index = kernels.faded_nodes(xs, ys, np.array([50.0, 40.0]), np.array([30.0, 20.0]), 0.95, 1.25)
    grid_x, grid_y = np.meshgrid(xs, ys)
    rho = np.hypot((grid_x - 50) / 30, (grid_y - 40) / 20).ravel()
    t = np.clip((rho - 0.95) / 0.3, 0, 1)
    expected = (1 - t * t * (3 - 2 * t)).astype(np.float32)
    assert (index == np.flatnonzero(expected)).all()
    assert np.allclose(fade, expected[index]) and np.allclose(nodes, np.c_[grid_x.ravel(), grid_y.ravel()][index])
    coarse = np.zeros((len(ys), len(xs), 2), np.float32)
    values = np.zeros((len(index), 2), np.float32)
    values[np.flatnonzero(index == 4 * 10 + 5)] = (0.0, 3.0)  # one node moves: row 4, column 5
    assert kernels.spread_field(coarse, index, values, fade, 0.2) == (4, 4, 5, 5)
    assert coarse[4, 5, 1] == pytest.approx(3.0 * fade[index == 45][0])
    assert kernels.spread_field(coarse, index, np.zeros_like(values), fade, 0.2) == (-1, -1, -1, -1)


def test_compile_notice_reads_numba_cache(tmp_path):
    assert not kernels_cached(tmp_path)
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    (tmp_path / f"kernels.fold_lid_box-10.{tag}.nbi").touch()
    assert not kernels_cached(tmp_path)  # every compiled module's code is needed
    (tmp_path / f"geometry._offsets-20.{tag}.nbi").touch()
    assert not kernels_cached(tmp_path)
    (tmp_path / f"glasses.best_route-47.{tag}.nbi").touch()
    assert kernels_cached(tmp_path)


def test_spline_at_no_points_is_empty():
    rng = np.random.default_rng(4)
    fit = tps_fit(rng.uniform(0, 100, (10, 2)), rng.normal(size=(10, 2)), 50.0)
    assert tps_eval(fit, np.zeros((0, 2))).shape == (0, 2)
