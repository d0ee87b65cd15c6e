"""The warp's loops over pixels and points, compiled by numba.

Numpy pays for every call it makes (a few microseconds each on this machine, twice that in its slow phases), and a
face's edit was 500-760 such calls on small arrays: the lid and mouth models over their boxes, the eyes' shapes,
the spline's system and grid, the head turn. Here each of those is one loop, compiled once and cached beside
this file (`cache=True`), and run without the GIL (`nogil=True`: the live view's threads go on meanwhile). The
first use on a machine compiles them all (8-20 s here); after that a process loads them in about 1 s (numba's
import and its code generator's start), see `plugins.landmark_warp.kernels_cached`.

Numba caches a function by this file alone: a tuning constant read from another module would be frozen into the
cache and go stale, so the callers pass every constant in (`warp.LID_MODEL`). Helpers avoid numpy's sorts and
reductions inside compiled code: each takes seconds to compile, for arrays of a dozen values.
"""

from __future__ import annotations

import math

import numba
import numpy as np


def compiled(signature: str):
    """Compile for exactly this signature when this module loads (or load it from the cache): its arrays take any
    layout, so a box that happens to be contiguous does not start a second compile in the middle of a run."""
    return numba.njit(signature, cache=True, nogil=True)


# The lid model's constants, in the order of `warp.LID_MODEL`.
MEET, SAG, REACH, LASH_DARKNESS, LASH_WIDTH, BAND, SKIP, LASH_LENGTH, LASH_SPACING, MIRROR_GAP = range(10)
CORNER_FADE = 0.1  # beyond an eye's corners, its lids' change fades out over this many eye widths


@compiled("int64[:](float64[:])")
def _order(values):
    """The indices that sort `values` (a short 1-D array) in increasing order, equal values in their order."""
    order = np.arange(values.shape[0])
    for i in range(1, values.shape[0]):
        current, j = order[i], i
        while j > 0 and values[order[j - 1]] > values[current]:
            order[j] = order[j - 1]
            j -= 1
        order[j] = current
    return order


@compiled("int64(float64)")
def _round_even(value):
    """The nearest integer, halves to even (as np.rint and OpenCV's rounding)."""
    nearest = math.floor(value + 0.5)
    if nearest - value == 0.5 and nearest % 2 != 0:
        nearest -= 1
    return int(nearest)


@compiled("float64(float64, float64, float64)")
def _smoothstep(edge0, edge1, x):
    """0 below edge0, 1 above edge1, a smooth S between (as `warp.smoothstep`)."""
    t = min(max((x - edge0) / max(edge1 - edge0, 1e-6), 0.0), 1.0)
    return t * t * (3 - 2 * t)


# Where the gaps between the teeth are, from the midline out (face units): central incisors, laterals, canines,
# premolars, as wide as on an average face (8.5, 6.5, 7.5 and 7 mm against an inter-ocular distance of 63 mm).
TOOTH_EDGES = np.array([0.0, 0.135, 0.238, 0.357, 0.468, 0.58])
TOOTH_ROUND, TOOTH_CURVE = 0.15, 0.12
# The upper teeth show less towards the corners (the band is this share lower there, by the square of the distance
# from the middle), turned away from the light (this share darker there), and the lower teeth only in a mouth open
# this wide (face units, in full at the second): all as tall and lit to the corners, with the lower teeth a grey rim
# along the lower lip, they read as a drawn denture (interfaces_050, 047, 046).
TEETH_TAPER, TEETH_SIDE_SHADE, LOWER_TEETH_GAP = 0.6, 0.7, (0.45, 0.6)


@compiled("float64(float64)")
def _tooth_gap(across):
    """How near `across` (face units from the midline, >= 0) is to a gap between two teeth: 1 on it, 0 a few
    hundredths of a face unit away."""
    nearest = 1e30
    for edge in TOOTH_EDGES:
        nearest = min(nearest, abs(across - edge))
    return math.exp(-(nearest / 0.006) ** 2)


@compiled("float64(float64)")
def _tooth_side(across):
    """How far `across` (face units from the midline, >= 0) is from the middle of its tooth: 0 there, 1 at the gaps
    on either side (0 beyond the last gap, where the teeth are turned away and their shape is not seen)."""
    for i in range(TOOTH_EDGES.shape[0] - 1):
        if across < TOOTH_EDGES[i + 1]:
            half = (TOOTH_EDGES[i + 1] - TOOTH_EDGES[i]) / 2
            return min(abs(across - TOOTH_EDGES[i] - half) / half, 1.0)
    return 0.0


@compiled("int64(float64, float64[:], int64)")
def _segment(x, xp, j):
    """The j with xp[j] <= x < xp[j + 1] (0 below xp[0], the last segment's start at and beyond the end; xp
    increasing), found by walking from a nearby j: for values that change steadily (along a row of pixels,
    across a table) the walk is a step or two."""
    last = xp.shape[0] - 2
    while j > 0 and x < xp[j]:
        j -= 1
    while j < last and x >= xp[j + 1]:
        j += 1
    return j


@compiled("float64(float64, float64[:], float64[:], int64)")
def _on_segment(x, xp, fp, j):
    """np.interp's value at x on the segment j found by `_segment`."""
    if x <= xp[0]:
        return fp[0]
    if x >= xp[xp.shape[0] - 1]:
        return fp[xp.shape[0] - 1]
    return fp[j] + (fp[j + 1] - fp[j]) * (x - xp[j]) / (xp[j + 1] - xp[j])


@compiled("void(float32[:, :, :], float64[:], float64[:], float64[:], float64, float64[:], float64[:], float64[:], "
          "float64[:], float64[:], float64, float64, float64, float64, int64, float32[:, :], float32[:, :], "
          "float32[:, :, :], float32[:, :, :])")
def fold_lid_box(box, origin, axis, normal, width, upper, lower, tops, along, model, closure, widen_lift, lower_lift,
                 start, steps, lash, smooth, skin, rise):
    """Fold one eye's lids into its box of the face's relative map, in place; fill `lash` and `smooth` (box-sized,
    float32) when the lid closes (`closure` > 0).

    `box` (h, w, 2) float32: box pixel (x, y) reads the source at its value plus (x, y); `origin` is the eye's
    corner in those coordinates, `axis` and `normal` its unit axes (along the eye, down across it), `width` its
    width. `upper` and `lower` are the lid heights across the eye at the samples whose `along` weights (0 at the
    corners, 1 mid-eye) are given; `tops` where the skin that stretches with the upper lid starts (under the
    brow). The model (see `warp.fold_lids`) is tabulated per sample every half pixel
    across the eye from `start` (`steps` columns), and each box pixel reads the table bilinearly at the place
    it reads the source from, the table's edge values beyond it.

    A closing lid's skin: `skin` (box-sized, like `box`) gets a second map that reads, for the lid over the eye,
    the skin under the lower lid mirrored about the lid's edge (skin of the person's own texture, not stretched),
    and `smooth` how much of it to show (most at the lid's edge, none at the top of the lid's stretch); `rise`
    (box-sized, two channels) where each pixel lies on the lid: its height on the lid's stretch (0 at the top, 1 at the
    new edge and below) and the eye widths above that edge (0 below it), for the cover's shading and crease.
    """
    samples = upper.shape[0]
    max_opening = -1e30
    for s in range(samples):
        max_opening = max(max_opening, lower[s] - upper[s])
    closing = closure > 0.0
    band = model[BAND] * width  # the lash band just above the lid
    table = np.zeros((samples, steps, 7 if closing else 1))
    knots = np.empty(7)
    values = np.empty(7)
    for s in range(samples):
        up, low = upper[s], lower[s]
        opening = low - up
        # Both lids close towards where they meet, on a line that sags mid-eye; the upper one opens wider by
        # `widen_lift`, the lower one is lifted by `lower_lift`. The skin moves from `reach` above and below.
        meet = low - model[MEET] * opening + model[SAG] * width * closure * along[s]
        new_upper = up + closure * (meet - up) - widen_lift * opening
        new_lower = low + closure * (meet - low) - lower_lift * opening
        is_open = 1.0 if opening > 0.5 else 0.0
        top, bottom = tops[s], low + 0.4 * width
        # How far along the normal each place reads, minus the place, piecewise linear through these knots:
        # above the new lid line the lid's skin stretches down from `top`; as the lid closes, its edge reads
        # the skin ever further above the lashes (closed, the lid is skin, its lashes drawn along the edge).
        # Below it, [new_upper, new_lower] reads the eye from where the lid now starts down to the lower lid
        # (not squashed), and the skin under the lower lid stretches back to where nothing moves. The new lid
        # line and the new lower lid come twice: the value may jump there.
        # (towards the corners, where the eye is narrow, a closing lid's edge reads less far above the lashes:
        # reading a band's width above everywhere left a step in the skin where the lid's fold ends at the corner;
        # a lid that opens wider moves its lashes' band whole, as before)
        taper = _smoothstep(0.0, 0.6, opening / (max_opening + 1e-3)) if closing else 1.0
        fold_at = max(new_upper - taper * band * (1.0 - 0.6 * closure), top)
        edge_reads = up - closure * taper * (band + model[SKIP] * width)
        # (closed, the whole lid from `top` to its edge reads evenly stretched skin: no band repeats one row)
        even = top + (fold_at - top) * (edge_reads - top) / max(new_upper - top, 1e-3)
        fold_reads = (1.0 - closure) * (up - band) + closure * even
        seen_start = max(new_upper, up)
        span = new_lower - new_upper
        seen_end = seen_start + span * ((low - seen_start) / max(span, 1e-3))
        knots[0], knots[1], knots[2], knots[3] = top, fold_at, new_upper, new_upper
        knots[4], knots[5], knots[6] = new_lower, new_lower, bottom
        values[0], values[1] = 0.0, (fold_reads - fold_at) * is_open
        values[2] = (edge_reads - new_upper) * is_open
        # (a closed lid covers the lower lid's edge and lashes too: the skin under the eye starts past them)
        below_from = low + closure * model[MIRROR_GAP] * width
        values[3], values[4], values[5], values[6] = (seen_start - new_upper, seen_end - new_lower,
                                                      below_from - new_lower, 0.0)
        for k in range(1, 7):  # in order even for a degenerate eye
            knots[k] = max(knots[k], knots[k - 1])
        # The lash line along the new lid edge: a band of half-width `half_lash` centred just below it, its alpha
        # ramping over 0.8 px on either side; how much of the mirrored skin covers the lid, from the top of its
        # stretch down to its new edge, fading out towards the corners; and how far below the line's centre
        # each place is (in eye widths), for the strands.
        half_lash = width * (model[LASH_WIDTH] / 2) * (0.4 + 0.6 * along[s])
        lash_centre = new_upper + half_lash * 0.5
        lash_gain = model[LASH_DARKNESS] * closure * is_open
        smooth_gain = min(opening * (2.0 / (max_opening + 1e-3)), 1.0) * closure * closure * is_open
        mirror_at = low + model[MIRROR_GAP] * width  # the mirror reads from just under the lower lid's lashes
        k = 0
        for c in range(steps):
            place = start + c * 0.5
            k = _segment(place, knots, k)
            table[s, c, 0] = _on_segment(place, knots, values, k)
            if closing:
                table[s, c, 1] = min(max((half_lash + 0.8 - abs(place - lash_centre)) * 1.25, 0.0), 1.0) * lash_gain
                height = min(max((place - top) / max(new_upper - top, 1e-3), 0.0), 1.0)
                table[s, c, 5] = height
                table[s, c, 6] = max(new_upper - place, 0.0) / width
                if place < new_upper:
                    table[s, c, 2] = _smoothstep(0.0, 0.45, height) * smooth_gain
                table[s, c, 4] = mirror_at + (new_upper - place) - place  # (everywhere: read between columns)
                # (at every sample, open or not: a mark between samples would fall between a value and its stand-in)
                table[s, c, 3] = (place - lash_centre) / width / (0.5 + 0.5 * along[s])
    last = samples - 1
    along_scale = last / width
    for y in range(box.shape[0]):
        for x in range(box.shape[1]):
            qx = box[y, x, 0] + x - origin[0]
            qy = box[y, x, 1] + y - origin[1]
            col = min(max((normal[0] * qx + normal[1] * qy - start) * 2.0, 0.0), steps - 1.0)
            row = (axis[0] * qx + axis[1] * qy) * along_scale
            # beyond the corners the lids' change fades out (the table's corner values would end at the box's side)
            fade = 1.0 - _smoothstep(0.0, CORNER_FADE * last, max(-row, row - last))
            row = min(max(row, 0.0), float(last))
            c0, s0 = min(int(col), steps - 2), min(int(row), last - 1)
            g, f = col - c0, row - s0
            w00, w01, w10, w11 = (1 - f) * (1 - g), (1 - f) * g, f * (1 - g), f * g
            shift = (w00 * table[s0, c0, 0] + w01 * table[s0, c0 + 1, 0]
                     + w10 * table[s0 + 1, c0, 0] + w11 * table[s0 + 1, c0 + 1, 0])
            if closing:
                mirror = (w00 * table[s0, c0, 4] + w01 * table[s0, c0 + 1, 4]
                          + w10 * table[s0 + 1, c0, 4] + w11 * table[s0 + 1, c0 + 1, 4])
                skin[y, x, 0] = box[y, x, 0] + mirror * normal[0]
                skin[y, x, 1] = box[y, x, 1] + mirror * normal[1]
            shift *= fade
            box[y, x, 0] += shift * normal[0]
            box[y, x, 1] += shift * normal[1]
            if closing:
                lash[y, x] = fade * (w00 * table[s0, c0, 1] + w01 * table[s0, c0 + 1, 1]
                                     + w10 * table[s0 + 1, c0, 1] + w11 * table[s0 + 1, c0 + 1, 1])
                smooth[y, x] = fade * (w00 * table[s0, c0, 2] + w01 * table[s0, c0 + 1, 2]
                                       + w10 * table[s0 + 1, c0, 2] + w11 * table[s0 + 1, c0 + 1, 2])
                for k in range(2):
                    rise[y, x, k] = (w00 * table[s0, c0, 5 + k] + w01 * table[s0, c0 + 1, 5 + k]
                                     + w10 * table[s0 + 1, c0, 5 + k] + w11 * table[s0 + 1, c0 + 1, 5 + k])
                # Strands below the line: dark combs along the lid, fanning outwards towards the corners.
                below = (w00 * table[s0, c0, 3] + w01 * table[s0, c0 + 1, 3]
                         + w10 * table[s0 + 1, c0, 3] + w11 * table[s0 + 1, c0 + 1, 3])
                if 0.0 < below < model[LASH_LENGTH] and fade > 0.0:
                    fan = (row / last - 0.5) * 1.2
                    phase = (row / last * width + fan * below * width) / (model[LASH_SPACING] * width)
                    # strands of uneven spacing and length (a fixed pseudo-random wobble, not a comb)
                    strand_index = math.floor(phase)
                    wobble = math.sin(strand_index * 12.9898) * 43758.5453
                    wobble -= math.floor(wobble)
                    length = model[LASH_LENGTH] * (0.55 + 0.45 * wobble)
                    comb = 0.5 + 0.5 * math.cos(2.0 * math.pi * (phase + 0.3 * (wobble - 0.5)))
                    strand = model[LASH_DARKNESS] * closure * comb ** 4 * max(0.0, 1.0 - below / length) * fade
                    lash[y, x] = max(lash[y, x], strand)


@compiled("Tuple((int64, int64, int64, int64, int32[:, :]))(float64[:, :], float64[:, :], int64, int64)")
def mouth_polygon(upper, lower, width, height):
    """The inner lips' polygon (`upper` then `lower` reversed, image pixels, each from corner to corner): its box
    [x0, y0, x1, y1) with a 2 px margin, clipped to a `width` x `height` image, and its vertices relative to the
    box in quarter pixels (for cv2.fillPoly with shift=2)."""
    count = upper.shape[0] + lower.shape[0]
    polygon = np.empty((count, 2))
    for i in range(upper.shape[0]):
        polygon[i, 0], polygon[i, 1] = upper[i, 0], upper[i, 1]
    for i in range(lower.shape[0]):
        polygon[count - 1 - i, 0], polygon[count - 1 - i, 1] = lower[i, 0], lower[i, 1]
    left, top, right, bottom = polygon[0, 0], polygon[0, 1], polygon[0, 0], polygon[0, 1]
    for i in range(1, count):
        left, right = min(left, polygon[i, 0]), max(right, polygon[i, 0])
        top, bottom = min(top, polygon[i, 1]), max(bottom, polygon[i, 1])
    x0, y0 = max(0, math.floor(left - 2)), max(0, math.floor(top - 2))
    x1, y1 = min(width, math.ceil(right + 2)), min(height, math.ceil(bottom + 2))
    fixed = np.empty((count, 2), np.int32)
    for i in range(count):
        fixed[i, 0] = _round_even((polygon[i, 0] - x0) * 4)
        fixed[i, 1] = _round_even((polygon[i, 1] - y0) * 4)
    return x0, y0, x1, y1, fixed


@compiled("UniTuple(float64, 2)(int64, int64, float64, float64, float64[:], float64[:])")
def _face_place(x, y, start_x, start_y, ex, ey):
    """Where a box's pixel (x, y) lies across and down the face (u, v, face units): `start_x`, `start_y` are the
    box's pixel (0, 0) relative to the face frame's origin, `ex`, `ey` its axes divided by the inter-ocular
    distance."""
    px, py = start_x + x, start_y + y
    return px * ex[0] + py * ex[1], px * ey[0] + py * ey[1]


@compiled("UniTuple(float64[:], 2)(float64[:, :], float64[:], float64[:], float64[:])")
def _in_face_units(contour, origin, ex, ey):
    """A contour (image pixels; a lip's, a brow's edge, a lid) in face units, as its u (across) and v (down) in
    increasing u (`origin` is the face frame's origin, `ex`, `ey` its axes divided by the inter-ocular distance)."""
    u = np.empty(contour.shape[0])
    v = np.empty(contour.shape[0])
    for i in range(contour.shape[0]):
        dx, dy = contour[i, 0] - origin[0], contour[i, 1] - origin[1]
        u[i], v[i] = dx * ex[0] + dy * ex[1], dx * ey[0] + dy * ey[1]
    order = _order(u)
    sorted_u, sorted_v = np.empty(u.shape[0]), np.empty(u.shape[0])
    for i in range(u.shape[0]):
        sorted_u[i], sorted_v[i] = u[order[i]], v[order[i]]
    return sorted_u, sorted_v


@compiled("void(uint8[:, :, :], uint8[:, :], int64[:], float64[:], float64[:], float64[:], float64[:, :], "
          "float64[:, :], float64, boolean, float32[:, :], float64[:])")
def paint_mouth_box(roi, coverage, corner, origin, ex, ey, upper, lower, brightness, teeth, colours, tongue_model):
    """Paint the inside of an open mouth into `roi` (h, w, 3) uint8, in place, over `coverage` (h, w) uint8 (255
    inside the inner lips).

    Pixel (x, y) of `roi` is image pixel `corner` + (x, y); `origin` is the face frame's origin and `ex`, `ey`
    its axes divided by the inter-ocular distance (so face units: u across, v down). `upper` and `lower` are the
    inner lips in image pixels. Each pixel mixes `colours` (rows: cavity, tongue, tooth, BGR) over what was
    there (see `warp.paint_mouth`); `tongue_model` shapes the tongue (see `warp.TONGUE`).
    """
    upper_u, upper_v = _in_face_units(upper, origin, ex, ey)
    lower_u, lower_v = _in_face_units(lower, origin, ex, ey)
    start_x, start_y = corner[0] - origin[0], corner[1] - origin[1]  # pixel (0, 0) relative to the origin
    height, width = roi.shape[0], roi.shape[1]
    left, right = upper_u[0], upper_u[upper_u.shape[0] - 1]
    centre_u, half = (left + right) / 2, max(1e-3, (right - left) / 2)
    # The tongue shows in a wide opening only: how wide the opening is at its widest in this box.
    widest = -1e30
    j_up = j_low = 0
    for y in range(height):
        for x in range(width):
            u = _face_place(x, y, start_x, start_y, ex, ey)[0]
            j_up, j_low = _segment(u, upper_u, j_up), _segment(u, lower_u, j_low)
            widest = max(widest, _on_segment(u, lower_u, lower_v, j_low) - _on_segment(u, upper_u, upper_v, j_up))
    tongue_gain = _smoothstep(0.12, 0.3, widest)
    for y in range(height):
        for x in range(width):
            if coverage[y, x] == 0:
                continue
            a = coverage[y, x] / 255.0
            u, v = _face_place(x, y, start_x, start_y, ex, ey)
            j_up, j_low = _segment(u, upper_u, j_up), _segment(u, lower_u, j_low)
            v_up, v_low = _on_segment(u, upper_u, upper_v, j_up), _on_segment(u, lower_u, lower_v, j_low)
            gap = max(v_low - v_up, 1e-3)
            across = u - centre_u
            side = min(abs(across) / half, 1.0)
            side2 = side * side
            depth = (1.0 - 0.7 * side2) * brightness  # corners recede into shadow
            below_up = v - v_up
            # The cavity: darkest at the lips, a little lighter mid-way.
            shading = 1.0 - 0.8 * min(abs(below_up / gap - 0.5), 0.5)
            # Tongue: a red mound at the bottom of a wide opening, lit at its crest.
            tongue = tongue_lit = 0.0
            if tongue_gain > 0.0:
                mound = max(1.0 - (across / (tongue_model[0] * half)) ** 2
                            - ((v - v_low) / (tongue_model[1] * gap)) ** 2, 0.0)
                tongue = tongue_gain * min(1.0, mound / tongue_model[3])
                tongue_lit = 1.0 - tongue_model[4] * (1.0 - mound)
            keep = depth
            upper_w = lower_w = upper_lit = lower_lit = 0.0
            if teeth:
                # Teeth: a band under the upper lip whose lower edge is each tooth's rounded edge, a thinner one
                # over the lower lip (mostly behind it), faint gaps between the teeth as wide as real ones (the
                # midline's first; evenly spaced gaps off the midline drew a row of grey tiles).
                # Each tooth is rounded: its edge rises towards the gaps beside it (by TOOTH_ROUND of the band), and
                # it is lit most in its middle (TOOTH_CURVE darker at its sides).
                near_gap = _tooth_gap(abs(across))
                tooth_side = _tooth_side(abs(across))
                upper_band = (min(0.10, 0.4 * gap) * (1.0 - 0.1 * near_gap) * (1.0 - TOOTH_ROUND * tooth_side ** 4)
                              * (1.0 - TEETH_TAPER * side2))
                lower_band = min(0.035, 0.1 * gap) * _smoothstep(LOWER_TEETH_GAP[0], LOWER_TEETH_GAP[1], gap)
                teeth_upper = (1.0 - _smoothstep(upper_band * 0.7, upper_band, below_up)) if upper_band > 0.005 \
                    else 0.0
                teeth_lower = (1.0 - _smoothstep(lower_band * 0.5, lower_band, v_low - v)) if lower_band > 0.005 \
                    else 0.0
                if teeth_upper > 0.0 or teeth_lower > 0.0:
                    gaps = (1.0 - 0.1 * near_gap) * (1.0 - TOOTH_CURVE * tooth_side ** 2)
                    # the upper lip shades the teeth just under it; towards the corners they recede into shadow
                    upper_lit = gaps * (0.8 + 0.2 * _smoothstep(0.0, 0.35, below_up / max(upper_band, 1e-3))) * (
                        1.0 - TEETH_SIDE_SHADE * side2)
                    lower_lit = 0.65 * gaps * (1.0 - TEETH_SIDE_SHADE * side2)
                    keep = (1 - teeth_lower) * (1 - teeth_upper) * depth
                    upper_w, lower_w = depth * (1 - teeth_lower) * teeth_upper, depth * teeth_lower
            # Each pixel is a mix of the cavity, the tongue and the teeth, layered in that order; teeth in shade
            # take the mouth's warm dark, not black (shaded towards black, ivory turned olive).
            cavity_w, tongue_w = keep * (1 - tongue) * shading, keep * tongue_model[2] * tongue * tongue_lit
            for c in range(3):
                shadow = 2.0 * colours[0, c]
                colour = (cavity_w * colours[0, c] + tongue_w * colours[1, c]
                          + upper_w * (upper_lit * colours[2, c] + (1.0 - upper_lit) * shadow)
                          + lower_w * (lower_lit * colours[2, c] + (1.0 - lower_lit) * shadow))
                roi[y, x, c] = int(min((colour * a + roi[y, x, c] * (1.0 - a)) / (1.0 + 1e-5), 255.0))


@compiled("Tuple((float64[:, :], float64[:, :], float64[:, :], float64[:], float64[:, :], float64[:, :]))"
          "(float64[:, :, :], float64[:], float64[:])")
def eye_geometry(points, down, samples):
    """Both eyes in their own axes, from `points` (eye, 2 * lid length, 2): each eye's upper then lower lid
    landmarks, each lid from corner to corner, and the face's `down` direction. Returns per eye (rows) the
    corner, the unit axis to the other corner, the unit normal (down), the width, and the upper and lower lid
    heights across the eye at `samples` (fractions of the eye width along it)."""
    eyes, length = points.shape[0], points.shape[1] // 2
    corner = np.empty((eyes, 2))
    axis = np.empty((eyes, 2))
    normal = np.empty((eyes, 2))
    width = np.empty(eyes)
    upper = np.empty((eyes, samples.shape[0]))
    lower = np.empty((eyes, samples.shape[0]))
    along, across = np.empty(length), np.empty(length)
    sorted_along, sorted_across = np.empty(length), np.empty(length)
    for e in range(eyes):
        corner[e, 0], corner[e, 1] = points[e, 0, 0], points[e, 0, 1]
        ax, ay = points[e, length - 1, 0] - corner[e, 0], points[e, length - 1, 1] - corner[e, 1]
        width[e] = max(math.hypot(ax, ay), 1e-6)
        ax, ay = ax / width[e], ay / width[e]
        projection = ax * down[0] + ay * down[1]
        nx, ny = down[0] - projection * ax, down[1] - projection * ay
        norm = max(math.hypot(nx, ny), 1e-6)
        nx, ny = nx / norm, ny / norm
        axis[e, 0], axis[e, 1], normal[e, 0], normal[e, 1] = ax, ay, nx, ny
        for lid in range(2):
            for i in range(length):
                dx, dy = points[e, lid * length + i, 0] - corner[e, 0], points[e, lid * length + i, 1] - corner[e, 1]
                along[i], across[i] = dx * ax + dy * ay, dx * nx + dy * ny
            order = _order(along)
            for i in range(length):
                sorted_along[i], sorted_across[i] = along[order[i]], across[order[i]]
            heights = lower if lid else upper
            j = 0
            for s in range(samples.shape[0]):
                j = _segment(samples[s] * width[e], sorted_along, j)
                heights[e, s] = _on_segment(samples[s] * width[e], sorted_along, sorted_across, j)
        for s in range(samples.shape[0]):  # the upper lid is the one above
            upper[e, s], lower[e, s] = min(upper[e, s], lower[e, s]), max(upper[e, s], lower[e, s])
    return corner, axis, normal, width, upper, lower


@compiled("float32[:, :](uint8[:, :, :], float64[:, :, :], float64[:, :], float64[:], float64)")
def lash_colours(image, points, normal, width, reach):
    """The colour of each eye's upper lashes (rows, float32 BGR): the mean of the two darkest pixels nearest to
    the upper lid's inner landmarks (`points` (eye, lid length, 2)) moved up by `reach` eye widths."""
    eyes, length = points.shape[0], points.shape[1]
    colours = np.zeros((eyes, 3), np.float32)
    sums = np.empty(length - 2)
    pixels = np.empty((length - 2, 3), np.float32)
    for e in range(eyes):
        for i in range(1, length - 1):
            x = _round_even(points[e, i, 0] - reach * width[e] * normal[e, 0])
            y = _round_even(points[e, i, 1] - reach * width[e] * normal[e, 1])
            x, y = min(max(x, 0), image.shape[1] - 1), min(max(y, 0), image.shape[0] - 1)
            for c in range(3):
                pixels[i - 1, c] = image[y, x, c]
            sums[i - 1] = pixels[i - 1, 0] + pixels[i - 1, 1] + pixels[i - 1, 2]
        darkest = _order(sums)
        for c in range(3):
            colours[e, c] = (pixels[darkest[0], c] + pixels[darkest[1], c]) * np.float32(0.5)
    return colours


@compiled("void(uint8[:, :, :], float32[:, :, :], float32[:, :, :], float32[:, :, :], float32[:, :, :], "
          "float32[:, :], float32[:, :], float32[:], float32[:], float64[:], float64[:])")
def finish_lid_box(box, own, mirror, grain, place, lash, smooth, colour, shade, along, model):
    """Cover a closing lid's rendered box (h, w, 3 uint8, in place; see `warp.close_lid`): per pixel the cover is the
    lid's `own` shading turning to the `mirror`ed skin by its height on the lid (`place[..., 0]`, up to
    `model[1]`) away from the eye's corners, plus the `grain`; darkened by the crease (`shade` per channel at its
    deepest) lying `model[2]` eye widths above the lid's edge (at most `model[3]` of its stretch; `place[..., 1]` is
    each pixel's height above the edge), `model[4]` / `model[5]` soft below / above, faded under a low brow (stretch
    `model[6]` to `model[7]`); mixed with the picture by `smooth`, then with the lash `colour` by `lash` (weighted
    means, as cv2.blendLinear). `along` is (x0, y0, axis x, axis y, width): pixel (x, y) lies (x + x0, y + y0) from
    the eye's outer corner, the eye's axis and width in pixels; the mirrored skin and the crease fade out over
    `model[0]` eye widths towards either corner. The cover is lit by up to `model[8]` round the eyeball, most
    `model[9]` eye widths above the lid's edge, fading over `model[10]`."""
    eps = np.float32(1e-5)
    width = along[4]
    for y in range(box.shape[0]):
        for x in range(box.shape[1]):
            s, a = smooth[y, x], lash[y, x]
            s_rest, a_rest = np.float32(1.0) - s, np.float32(1.0) - a
            rise, lifted = place[y, x, 0], place[y, x, 1]
            position = (x + along[0]) * along[2] + (y + along[1]) * along[3]
            ends = _smoothstep(0.0, model[0], min(position, width - position) / width)
            share = _smoothstep(0.0, model[1], rise) * ends
            span = lifted / max(1.0 - rise, 0.05)
            above = lifted - min(model[2], model[3] * span)
            soft = model[5] if above > 0 else model[4]
            crease = math.exp(-(above / soft) ** 2) * ends * _smoothstep(model[6], model[7], span)
            lit = 1.0 + model[8] * ends * math.exp(-((lifted - model[9]) / model[10]) ** 2)
            for c in range(3):
                skin = (own[y, x, c] + share * (mirror[y, x, c] - own[y, x, c])) * lit + grain[y, x, c]
                cover = np.float32(skin) * (np.float32(1.0) - np.float32(crease) * shade[c])
                mixed = (cover * s + np.float32(box[y, x, c]) * s_rest) / (s + s_rest + eps)
                # (clipped: a cover whose tone is matched, or its grain, can pass 255; it wrapped round to green)
                box[y, x, c] = int(min(max((colour[c] * a + mixed * a_rest) / (a + a_rest + eps), 0.0), 255.0))


@compiled("Tuple((float64[:, :], float32[:], int64[:]))"
          "(float64[:], float64[:], float64[:], float64[:], float64, float64)")
def faded_nodes(xs, ys, centre, radii, fade_start, fade_end):
    """The coarse grid's nodes (x from `xs`, y from `ys`) inside the fade: the ellipse of `radii` about `centre`
    grown to `fade_end` of its size. Returns their positions (M, 2), the fade (1 inside `fade_start`, a smooth
    S down to 0 at `fade_end`) and their indices in the grid's flattened (row-major) order."""
    count = 0
    nodes = np.empty((xs.shape[0] * ys.shape[0], 2))
    fade = np.empty(xs.shape[0] * ys.shape[0], np.float32)
    index = np.empty(xs.shape[0] * ys.shape[0], np.int64)
    for r in range(ys.shape[0]):
        dy = ((ys[r] - centre[1]) / radii[1]) ** 2
        for c in range(xs.shape[0]):
            weight = np.float32(1.0 - _smoothstep(fade_start, fade_end, math.sqrt(((xs[c] - centre[0]) / radii[0]) ** 2
                                                                                 + dy)))
            if weight != 0.0:
                nodes[count, 0], nodes[count, 1] = xs[c], ys[r]
                fade[count] = weight
                index[count] = r * xs.shape[0] + c
                count += 1
    return nodes[:count], fade[:count], index[:count]


@compiled("UniTuple(int64, 4)(float32[:, :, :], int64[:], float32[:, :], float32[:], float64)")
def spread_field(coarse, index, values, fade, threshold):
    """Write `values` (M, 2) times `fade` into the grid `coarse` (rows, cols, 2) at the flattened `index`; return
    the rows and columns [first, last] of the nodes that move by more than `threshold` in x or y (all -1 if
    none do)."""
    cols = coarse.shape[1]
    first_row, last_row, first_col, last_col = -1, -1, cols, -1
    for m in range(index.shape[0]):
        r, c = index[m] // cols, index[m] % cols
        dx, dy = values[m, 0] * fade[m], values[m, 1] * fade[m]
        coarse[r, c, 0], coarse[r, c, 1] = dx, dy
        if abs(dx) > threshold or abs(dy) > threshold:
            if first_row < 0:
                first_row = r
            last_row = r
            first_col, last_col = min(first_col, c), max(last_col, c)
    if first_row < 0:
        return -1, -1, -1, -1
    return first_row, last_row, first_col, last_col


@compiled("UniTuple(float32[:, :], 3)(float64[:, :], float64[:, :], float64, float64, float64)")
def spline_system(points, values, scale, min_distance, regularisation):
    """The thin-plate spline's linear system through `points` (N, 2) with `values` (N, 2), coordinates divided
    by `scale`, in single precision: a point closer than `min_distance` to an earlier one is left out. Returns
    the points kept (scaled), the system (kernel r^2 log r plus `regularisation` on its diagonal, bordered by
    the affine part) and its right-hand side (the kept points' values, then three zeros)."""
    n = points.shape[0]
    scaled = np.empty((n, 2), np.float32)
    for i in range(n):
        scaled[i, 0], scaled[i, 1] = points[i, 0] / scale, points[i, 1] / scale
    limit = np.float32((min_distance / scale) ** 2)
    kept = np.empty(n, np.int64)
    count = 0
    for j in range(n):
        near = False
        for i in range(j):
            dx, dy = scaled[i, 0] - scaled[j, 0], scaled[i, 1] - scaled[j, 1]
            if dx * dx + dy * dy < limit:
                near = True
                break
        if not near:
            kept[count] = j
            count += 1
    pts = np.empty((count, 2), np.float32)
    system = np.zeros((count + 3, count + 3), np.float32)
    rhs = np.zeros((count + 3, 2), np.float32)
    for a in range(count):
        pts[a, 0], pts[a, 1] = scaled[kept[a], 0], scaled[kept[a], 1]
        rhs[a, 0], rhs[a, 1] = values[kept[a], 0], values[kept[a], 1]
    half = np.float32(0.5)
    for a in range(count):
        system[a, a] = regularisation  # the kernel is 0 at r = 0
        for b in range(a + 1, count):
            dx, dy = pts[a, 0] - pts[b, 0], pts[a, 1] - pts[b, 1]
            d2 = max(dx * dx + dy * dy, np.float32(1e-20))
            system[a, b] = system[b, a] = half * d2 * math.log(d2)
        system[a, count] = system[count, a] = 1.0
        system[a, count + 1] = system[count + 1, a] = pts[a, 0]
        system[a, count + 2] = system[count + 2, a] = pts[a, 1]
    return pts, system, rhs


@compiled("float64[:, :](float64[:, :], float64[:], float64[:], float64[:, :], float64[:, :], float64)")
def turn_points(points, depth, follow, outline, turn, roll):
    """Where `points` (N, 2) with `depth` (N,) go when the head turns: `turn` holds the image x and y rows of
    the 3D rotation in depth (pitch and yaw), `roll` is the tilt in the picture (radians). Each point follows
    the turn in depth by its `follow` fraction; everything turns about the centre of `outline` (the face
    outline's landmarks, (K, 3)), which stays in place, and then rolls about it."""
    centre = np.zeros(3)
    for i in range(outline.shape[0]):
        for k in range(3):
            centre[k] += outline[i, k] / outline.shape[0]
    cos, sin = math.cos(roll), math.sin(roll)
    out = np.empty((points.shape[0], 2))
    for i in range(points.shape[0]):
        x, y, z = points[i, 0] - centre[0], points[i, 1] - centre[1], depth[i] - centre[2]
        turned_x = turn[0, 0] * x + turn[0, 1] * y + turn[0, 2] * z
        turned_y = turn[1, 0] * x + turn[1, 1] * y + turn[1, 2] * z
        x, y = x + (turned_x - x) * follow[i], y + (turned_y - y) * follow[i]
        out[i, 0], out[i, 1] = centre[0] + x * cos - y * sin, centre[1] + x * sin + y * cos
    return out


@compiled("void(float32[:, :, :], float64[:], float64[:], float64[:], float64[:], float64[:], float64[:], float64[:], "
          "float64[:], float64[:], float64[:], float64, float64)")
def fold_brow_box(part, start, ex, ey, brow_u, brow_v, lid_u, lid_v, stay_x, stay_y, down, soft, ends):
    """Fold a lowered brow over its upper lid's skin in `part` (h, w, 2), a box of the face's relative map, in
    place (see `warp.fold_brows`). `start` is the box's pixel (0, 0) relative to the face frame's origin, `ex`
    and `ey` the frame's axes divided by the inter-ocular distance (face units: u across, v down). The brow's
    new lower edge (`brow_u`, `brow_v`) and the upper lid (`lid_u`, `lid_v`, with what the map reads there,
    `stay_x`, `stay_y`) are in increasing u. Between the brow's edge (soft over `soft` face units) and the lid,
    each pixel's value moves, along the unit `down` (image pixels), to what the lid's edge reads in its column;
    the fold fades out over `ends` of the lid's width at each of its ends."""
    first, last = lid_u[0], lid_u[lid_u.shape[0] - 1]
    fade = ends * (last - first)
    j_brow = j_lid = 0
    for y in range(part.shape[0]):
        for x in range(part.shape[1]):
            px, py = start[0] + x, start[1] + y
            u = px * ex[0] + py * ex[1]
            if u <= first or u >= last:
                continue
            v = px * ey[0] + py * ey[1]
            j_brow, j_lid = _segment(u, brow_u, j_brow), _segment(u, lid_u, j_lid)
            top, bottom = _on_segment(u, brow_u, brow_v, j_brow), _on_segment(u, lid_u, lid_v, j_lid)
            if v <= top - soft or v >= bottom:
                continue
            weight = _smoothstep(top - soft, top + soft, v) * (1.0 - _smoothstep(bottom - soft, bottom, v))
            weight *= _smoothstep(first, first + fade, u) * (1.0 - _smoothstep(last - fade, last, u))
            sx, sy = _on_segment(u, lid_u, stay_x, j_lid), _on_segment(u, lid_u, stay_y, j_lid)
            drop = (sx - part[y, x, 0]) * down[0] + (sy - part[y, x, 1]) * down[1]
            part[y, x, 0] += np.float32(weight * drop * down[0])
            part[y, x, 1] += np.float32(weight * drop * down[1])


@compiled("void(float32[:, :], float64[:], float64[:], float64[:], float64[:], float64[:, :], float64[:, :], "
          "float64, float64, float64)")
def brow_shadow_box(shade, corner, origin, ex, ey, brow, lid, fade, gain, inner_weight):
    """The shade a lowered brow casts on the skin down to its upper lid, into `shade` (h, w; see
    `warp.brow_shadow`): pixel (x, y) is image pixel `corner` + (x, y), `origin` the face frame's origin and `ex`,
    `ey` its axes divided by the inter-ocular distance; `brow` is the brow's lower edge and `lid` the upper lid
    (image pixels). The shade is `gain` in a band from a fifth of the way down to past half of it, `inner_weight`
    of it at the brow's outer end growing to all of it at the inner end, faded in over `fade` of their width
    together at either end."""
    brow_u, brow_v = _in_face_units(brow, origin, ex, ey)
    lid_u, lid_v = _in_face_units(lid, origin, ex, ey)
    first = min(brow_u[0], lid_u[0])
    last = max(brow_u[brow_u.shape[0] - 1], lid_u[lid_u.shape[0] - 1])
    fade *= last - first
    start_x, start_y = corner[0] - origin[0], corner[1] - origin[1]
    j_brow = j_lid = 0
    for y in range(shade.shape[0]):
        for x in range(shade.shape[1]):
            u, v = _face_place(x, y, start_x, start_y, ex, ey)
            j_brow, j_lid = _segment(u, brow_u, j_brow), _segment(u, lid_u, j_lid)
            top, bottom = _on_segment(u, brow_u, brow_v, j_brow), _on_segment(u, lid_u, lid_v, j_lid)
            depth = min(max((v - top) / max(bottom - top, 1e-3), 0.0), 1.0)
            band = _smoothstep(0.0, 0.2, depth) * (1.0 - _smoothstep(0.55, 1.0, depth))
            inner = min(max(1.3 - 1.4 * abs(u), 0.0), 1.0)
            within = _smoothstep(first, first + fade, u) * (1.0 - _smoothstep(last - fade, last, u))
            shade[y, x] = np.float32(gain * band * (inner_weight + (1.0 - inner_weight) * inner) * within)


@compiled("void(float64[:, :, :], float64[:], float64[:], float64[:], float64[:], float64[:, :], float64[:, :], "
          "float64[:, :], float64[:, :])")
def lip_heights_box(out, corner, origin, ex, ey, upper_outer, upper_inner, lower_inner, lower_outer):
    """Per pixel of a box (pixel (x, y) is image pixel `corner` + (x, y); `origin`, `ex`, `ey` as for
    `paint_mouth_box`): its place across and down the face (u, v) and the four lip contours' heights there (face
    units; each contour (image pixels) as np.interp of its points in increasing u), into `out` (h, w, 6): u, v,
    upper outer, upper inner, lower inner, lower outer."""
    up_out_u, up_out_v = _in_face_units(upper_outer, origin, ex, ey)
    up_in_u, up_in_v = _in_face_units(upper_inner, origin, ex, ey)
    low_in_u, low_in_v = _in_face_units(lower_inner, origin, ex, ey)
    low_out_u, low_out_v = _in_face_units(lower_outer, origin, ex, ey)
    start_x, start_y = corner[0] - origin[0], corner[1] - origin[1]
    j0 = j1 = j2 = j3 = 0
    for y in range(out.shape[0]):
        for x in range(out.shape[1]):
            u, v = _face_place(x, y, start_x, start_y, ex, ey)
            j0, j1 = _segment(u, up_out_u, j0), _segment(u, up_in_u, j1)
            j2, j3 = _segment(u, low_in_u, j2), _segment(u, low_out_u, j3)
            out[y, x, 0] = u
            out[y, x, 1] = v
            out[y, x, 2] = _on_segment(u, up_out_u, up_out_v, j0)
            out[y, x, 3] = _on_segment(u, up_in_u, up_in_v, j1)
            out[y, x, 4] = _on_segment(u, low_in_u, low_in_v, j2)
            out[y, x, 5] = _on_segment(u, low_out_u, low_out_v, j3)


@compiled("void(float32[:, :, :], float64[:, :, :], float64[:], float64[:], boolean[:], float64, float64, float64, "
          "float64, float64, float64, float64[:], float64[:], float64[:], float64)")
def lip_source_box(maps, heights, above, below, extra, inner_from, inner_to, amount, seam_size, skin_above,
                   skin_below, start, ex, ey, iod):
    """Where each pixel of a closing mouth's box reads from (into `maps`, h x w x 2, box pixels; see
    `warp.close_lips`): `heights` from `lip_heights_box`, the inner lips moved apart by `above` and `below` per
    column (the dark beyond them), the opening between them where u is between `inner_from` and `inner_to` or the
    column is `extra`. Each lip slides by half of `amount` of the gap between them, met `seam_size` (face units)
    beyond their landmarks where the mouth is open, keeping its thickness; the skin `skin_above` and `skin_below`
    beyond the lips stretches."""
    dest = np.empty(6)
    src = np.empty(6)
    for y in range(maps.shape[0]):
        for x in range(maps.shape[1]):
            u, v = heights[y, x, 0], heights[y, x, 1]
            up_in, low_in = heights[y, x, 3] - above[x], heights[y, x, 4] + below[x]
            up_out, low_out = min(heights[y, x, 2], heights[y, x, 3]), max(heights[y, x, 5], heights[y, x, 4])
            gap = max(low_in - up_in, 0.0) if (inner_from < u < inner_to) or extra[x] else 0.0
            seam = seam_size * amount * min(max(gap / seam_size, 0.0), 1.0)
            up_edge, low_edge = up_in - seam, low_in + seam
            slide = 0.5 * amount * (low_edge - up_edge) if gap > 0 else 0.0
            dest[0], src[0] = up_out - skin_above, up_out - skin_above
            dest[1], src[1] = min(up_out + slide, up_edge + slide), min(up_out, up_edge)
            dest[2], src[2] = up_edge + slide, up_edge
            dest[3], src[3] = low_edge - slide, low_edge
            dest[4], src[4] = max(low_out - slide, low_edge - slide), max(low_out, low_edge)
            dest[5], src[5] = low_out + skin_below, low_out + skin_below
            read = v
            for k in range(5):  # (piecewise linear: the later stretch wins where two hold v)
                if dest[k] <= v < dest[k + 1]:
                    read = src[k] + (v - dest[k]) * ((src[k + 1] - src[k]) / max(dest[k + 1] - dest[k], 1e-6))
            maps[y, x, 0] = np.float32(iod * (u * ex[0] + read * ey[0]) - start[0])
            maps[y, x, 1] = np.float32(iod * (u * ex[1] + read * ey[1]) - start[1])


@compiled("float64(float32[:, :, :], int64, float64, float64)")
def _map_at(maps, channel, x, y):
    """The relative map's `channel` at (x, y) of its own pixels, bilinear, its edge values beyond it."""
    height, width = maps.shape[0], maps.shape[1]
    x = min(max(x, 0.0), width - 1.0)
    y = min(max(y, 0.0), height - 1.0)
    x0, y0 = min(int(x), width - 2) if width > 1 else 0, min(int(y), height - 2) if height > 1 else 0
    fx, fy = x - x0, y - y0
    x1, y1 = min(x0 + 1, width - 1), min(y0 + 1, height - 1)
    top = maps[y0, x0, channel] * (1.0 - fx) + maps[y0, x1, channel] * fx
    bottom = maps[y1, x0, channel] * (1.0 - fx) + maps[y1, x1, channel] * fx
    return top * (1.0 - fy) + bottom * fy


@compiled("boolean(float32[:, :, :], float64[:], float64[:, :], float64[:, :], float64[:, :], int64, float64, float64, "
          "float64)")
def landed_points(maps, corner, sources, guesses, out, steps, step_cap, miss_cap, reach):
    """Newton's steps for where a relative map put `sources` (see `warp.landed`): `out` (N, 2) gets the points x
    with x + the map's displacement at x = the source point, from `guesses`; the map covers the part of the crop
    starting at `corner`, and holds the displacement plus `corner`. Each step moves a point at most `step_cap`
    px. True if every point ends within `miss_cap` px of reading its source, within `reach` px of its guess, and
    where the map does not fold (its slope's determinant positive)."""
    found = True
    for i in range(sources.shape[0]):
        x, y = guesses[i, 0], guesses[i, 1]
        for step in range(steps + 1):
            px, py = x - corner[0], y - corner[1]
            shift_x, shift_y = _map_at(maps, 0, px, py), _map_at(maps, 1, px, py)
            hx, hy = x + shift_x - corner[0], y + shift_y - corner[1]
            ax = 1.0 + _map_at(maps, 0, px + 1.0, py) - shift_x  # the slope a pixel across ...
            ay = _map_at(maps, 1, px + 1.0, py) - shift_y
            dx = _map_at(maps, 0, px, py + 1.0) - shift_x  # ... and a pixel down
            dy = 1.0 + _map_at(maps, 1, px, py + 1.0) - shift_y
            det = ax * dy - dx * ay
            mx, my = sources[i, 0] - hx, sources[i, 1] - hy
            if step == steps:  # (the last pass only checks)
                if (math.hypot(mx, my) > miss_cap or det <= 0.0
                        or math.hypot(x - guesses[i, 0], y - guesses[i, 1]) > reach):
                    found = False
                break
            if abs(det) < 1e-3:
                det = math.copysign(1e-3, det)
            sx, sy = (mx * dy - dx * my) / det, (ax * my - mx * ay) / det
            length = max(math.hypot(sx, sy), 1e-6)
            scale = min(1.0, step_cap / length)
            x, y = x + sx * scale, y + sy * scale
        out[i, 0], out[i, 1] = x, y
    return found
