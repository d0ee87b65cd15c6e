"""Glasses: their frames are not skin. Found around each eye, they are held still while the face behind moves.

A rim around an eye is a thin line (darker or lighter than the skin) that goes all the way round the eye, outside
its opening: in the eye's (flattened) polar coordinates, a closed path at a smoothly varying radius along which
the thin-line response is strong. The best such path is found by dynamic programming (one column per angle). It
is a frame when it passes well beyond the eye's corners and its line stands out from the skin's own lines
clearly, at nearly every angle: a lid's crease, the lines under an eye, a brow or wrinkles make a path too, but
one that hugs the eye and is weaker in places (measured on the development photos: a frame's line stood out by
25-55 grey levels at four angles in five, the strongest lines of faces without glasses by 20 at most). Two rims
found, the bridge between them is the best such path across the nose. The caller warps the face with the frames
taken out (filled in from what is beside them) and lays the frames back on top, where they were, with the lenses'
reflections of a light (they are on the glass, not the face).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

from plugins.landmark_warp import geometry as geo
from plugins.landmark_warp.kernels import compiled

WORK_IOD = 80.0  # the search runs on the eyes' box reduced by the whole factor nearest to this many px between the eyes
ANGLES = 48  # polar columns around an eye
RADII = np.linspace(0.3, 1.6, 40)  # polar rows, in eye widths from the eye's centre along its axis ...
FLAT = 0.6  # ... and this share of that across it (a lens is wider than tall)
LINE_SIZE = 0.22  # thin-line response: structures thinner than this (eye widths) stand out
STEP = 3  # a path moves at most this many rows from one column to the next
BEND_COST = 2.0  # grey levels per row moved
EYE_CLEAR = 0.15  # the eye opening, grown by this many eye widths, is not searched (its lids are lines too)
CONTRAST = 22.0  # a frame's line stands out by this many grey levels over the skin at an angle ...
CONTRAST_SHARE = 0.8  # ... at this share of the angles ...
LOW_ANGLE = int((1 - CONTRAST_SHARE) * ANGLES)  # (the angle where the line stands out least but for a share)
RATIO = 2.0  # ... and by this many times the skin's own lines there
BESIDE_EYE = np.abs(np.cos(np.linspace(0, 2 * np.pi, ANGLES, endpoint=False))) > 0.9  # the angles beside an eye
RIM_CLEAR = 0.68  # a rim passes this far (eye widths) from the eye's centre beside the eye, beyond its corners


class Rim(NamedTuple):
    """A frame's rim around one eye (closed) or its bridge across the nose (open): its centre line (crop pixels)
    and the line's thickness (crop pixels)."""

    path: np.ndarray
    thickness: float
    closed: bool = True


@compiled("int64[:](float32[:, :], float64, int64, int64)")
def best_route(score, bend, step, total):
    """The row per column of the best path through `score` (columns x rows) over `total` columns in turn (past the
    last column it goes on from the first): each column one row, rows moving at most `step` between neighbouring
    columns at `bend` each."""
    columns, rows = score.shape
    value = np.empty(rows)
    new = np.empty(rows)
    back = np.empty((total, rows), np.int64)
    for r in range(rows):
        value[r] = score[0, r]
    for c in range(1, total):
        column = c % columns
        for r in range(rows):
            best, arg = -1e30, r
            for d in range(-step, step + 1):
                q = r + d
                if 0 <= q < rows:
                    v = value[q] - bend * abs(d)
                    if v > best:
                        best, arg = v, q
            new[r] = best + score[column, r]
            back[c, r] = arg
        for r in range(rows):
            value[r] = new[r]
    path = np.empty(total, np.int64)
    best, arg = -1e30, 0
    for r in range(rows):
        if value[r] > best:
            best, arg = value[r], r
    path[total - 1] = arg
    for c in range(total - 1, 0, -1):
        path[c - 1] = back[c, path[c]]
    return path


def best_loop(score: np.ndarray, bend: float, step: int) -> np.ndarray:
    """The best closed path through `score` (the first column following the last), as `best_route`: run one and a
    half times round, the middle round is the path (its ends meet within a step or two)."""
    columns = score.shape[0]
    start = columns // 2
    return np.roll(best_route(score, bend, step, columns + start)[start:], start)


def best_path(score: np.ndarray, bend: float, step: int) -> np.ndarray:
    """The best open path through `score` from its first column to its last, as `best_route`."""
    return best_route(score, bend, step, score.shape[0])


@compiled("void(float64[:], int64)")
def _sort_head(values, count):
    """Sort the first `count` of `values` in place (insertion: a few dozen values)."""
    for i in range(1, count):
        current, j = values[i], i
        while j > 0 and values[j - 1] > current:
            values[j] = values[j - 1]
            j -= 1
        values[j] = current


@compiled("Tuple((int64[:], float64, float64, float64))(float32[:, :], float64[:], float64[:], boolean[:], float64, "
          "int64, int64)")
def rim_candidate(polar, limit, radii, beside, bend, step, low):
    """The best closed path round an eye through `polar` (angles x radii; cells nearer than `limit` at each angle
    are the eye's opening, set to 0 in place) and how it stands out: its rows, how far the line along it stands
    out over the skin's own lines (each column's median of the cells searched) at all but `low` of the angles, the
    median of those skin lines, and how near the eye it passes at the angles `beside` the eye."""
    angles, count = polar.shape
    for j in range(angles):
        for i in range(count):
            if radii[i] < limit[j]:
                polar[j, i] = 0.0
    start = angles // 2
    route = best_route(polar, bend, step, angles + start)
    rows = np.empty(angles, np.int64)
    for c in range(angles):
        rows[(start + c) % angles] = route[start + c]
    skin = np.empty(angles)
    cells = np.empty(count)
    for j in range(angles):
        n = 0
        for i in range(count):
            if radii[i] >= limit[j]:
                cells[n] = polar[j, i]
                n += 1
        _sort_head(cells, n)
        skin[j] = cells[(n - 1) // 2] if n > 0 else 0.0
    stand = np.empty(angles)
    side = 1e30
    for j in range(angles):
        stand[j] = polar[j, rows[j]] - skin[j]
        if beside[j] and radii[rows[j]] < side:
            side = radii[rows[j]]
    _sort_head(stand, angles)
    ordered = skin.copy()
    _sort_head(ordered, angles)
    middle = 0.5 * (ordered[(angles - 1) // 2] + ordered[angles // 2])
    return rows, stand[low], middle, side


PAIR_BAND = 0.15  # a rim's mirror image is looked for within this share of its radius at each angle ...
PAIR_LOW_ANGLE = int(0.4 * ANGLES)  # ... and its line stands out by half `CONTRAST` at 60% of the angles


def paired_candidate(polar: np.ndarray, limit: np.ndarray, expected: np.ndarray) -> np.ndarray | None:
    """The rows of the best closed path through `polar` (angles x radii, the eye's opening within `limit` already
    cleared) within `PAIR_BAND` of the `expected` radii at each angle, when its line stands out from the skin's own
    lines (each angle's median over all the cells searched, as for a free search) by half `CONTRAST` at
    `PAIR_LOW_ANGLE`; else None. (On dlib_2008_002506's small, shaded left eye the rim stood out by 18 grey levels
    at 60% of the angles and by 3 at 80%: its top bar runs into the brow, no thin line there.)"""
    near = np.abs(RADII[None, :] - expected[:, None]) <= PAIR_BAND * expected[:, None]
    rows, _, _, _ = rim_candidate(np.where(near, polar, 0.0).astype(np.float32), limit, RADII, BESIDE_EYE,
                                  BEND_COST, STEP, LOW_ANGLE)
    searched = RADII[None, :] >= limit[:, None]
    skin = np.array([np.median(column[inside]) if inside.any() else 0.0 for column, inside in zip(polar, searched)])
    stand = np.sort(polar[np.arange(ANGLES), rows] - skin)[PAIR_LOW_ANGLE]
    return rows if stand >= CONTRAST / 2 else None


def centre_line(polar: np.ndarray, rows: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, float]:
    """Per column of `polar`, the middle of the line the path `rows` runs along (where the response stays over
    half its value on the path: a thick rim's response is flat across it, the path may keep to one edge), in
    the units of `cells` (one value per row), and the line's median thickness in the same units."""
    index = np.arange(polar.shape[1])
    half = polar[np.arange(len(rows)), rows][:, None] / 2
    below = polar <= half
    lo = np.max(np.where(below & (index < rows[:, None]), index, -1), axis=1) + 1
    hi = np.min(np.where(below & (index > rows[:, None]), index, polar.shape[1]), axis=1) - 1
    return np.interp((lo + hi) / 2, index, cells), float(np.median(hi - lo + 1)) * float(cells[1] - cells[0])


def line_response(grey: np.ndarray, size: int, dark: bool | None = None) -> np.ndarray:
    """How much each pixel stands out as part of a line thinner than `size` px, dark or light or either (None)
    (grey levels)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    if dark is not None:
        return cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT if dark else cv2.MORPH_TOPHAT, kernel)
    return cv2.max(cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, kernel), cv2.morphologyEx(grey, cv2.MORPH_TOPHAT, kernel))


def find_rims(source: np.ndarray, marks: np.ndarray) -> list[Rim]:
    """The frames' rims around the eyes of the face with landmarks `marks` (crop pixels) in `source` (the crop,
    BGR): none, one or two rims, and the bridge when there are two."""
    corners = marks[geo.EYE_CORNERS, :2]
    widths = np.linalg.norm(corners[[1, 3]] - corners[[0, 2]], axis=1)
    iod = float(np.linalg.norm(corners[:2].mean(axis=0) - corners[2:].mean(axis=0)))
    if iod < 24 or widths.min() < 6:
        return []
    # The box the polar grids reach (an ellipse round each eye, flattened across it), reduced by a whole factor
    # to about `WORK_IOD` (OpenCV's area reduction by a whole factor is a fast path; by an odd ratio it cost a
    # 1080p face 2 ms).
    axis = np.abs(corners[[1, 3]] - corners[[0, 2]]) / widths[:, None]
    reach = RADII[-1] * widths[:, None] * (axis + FLAT * axis[:, ::-1]) + 2
    centres_ = (corners[[0, 2]] + corners[[1, 3]]) / 2
    (left, top), (right, bottom) = (centres_ - reach).min(axis=0), (centres_ + reach).max(axis=0)
    factor = max(1, int(round(iod / WORK_IOD)))
    scale = 1.0 / factor
    x0, y0 = max(0, int(left)), max(0, int(top))
    x1, y1 = min(source.shape[1], int(math.ceil(right))), min(source.shape[0], int(math.ceil(bottom)))
    x1, y1 = x0 + (x1 - x0) // factor * factor, y0 + (y1 - y0) // factor * factor
    if x1 - x0 < 8 * factor or y1 - y0 < 8 * factor:
        return []
    box = source[y0:y1, x0:x1]
    if factor > 1:
        box = cv2.resize(box, ((x1 - x0) // factor, (y1 - y0) // factor), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(box, cv2.COLOR_BGR2GRAY)
    size = max(3, int(round(LINE_SIZE * float(widths.mean()) * scale)) | 1)
    response = line_response(grey, size).astype(np.float32)
    rims, candidates, centres, directions = [], [], [], []
    polars: list[tuple[np.ndarray, np.ndarray]] = []
    angles = np.linspace(0, 2 * np.pi, ANGLES, endpoint=False)
    for k, (upper, lower) in enumerate(((geo.EYE_A_UPPER, geo.EYE_A_LOWER), (geo.EYE_B_UPPER, geo.EYE_B_LOWER))):
        c0, c1 = corners[2 * k], corners[2 * k + 1]
        width = float(widths[k])
        centre = (c0 + c1) / 2
        axis = (c1 - c0) / width
        normal = np.array([-axis[1], axis[0]])
        if normal @ (marks[list(lower), :2].mean(axis=0) - marks[list(upper), :2].mean(axis=0)) < 0:
            normal = -normal  # down the face
        direction = np.cos(angles)[:, None] * axis + FLAT * np.sin(angles)[:, None] * normal  # 0: along the axis
        centres.append(centre)
        directions.append(direction)
        points = centre + RADII[None, :, None] * width * direction[:, None, :]  # (angles, radii, 2) crop px
        work = ((points - (x0, y0)) * scale).astype(np.float32)
        polar = cv2.remap(response, work[..., 0], work[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)
        # The eye's opening (and a margin round it) is left out: lids, lashes and the eye's edge are lines too. In
        # the polar grid's own units the opening's outline is a radius per angle (it is round the eye's centre).
        outline = np.concatenate([marks[list(upper), :2], marks[list(lower[::-1]), :2]]) - centre
        u, v = outline @ axis / width, outline @ normal / (FLAT * width)
        turn = np.arctan2(v, u) % (2 * np.pi)
        order = np.argsort(turn)
        edge = np.interp(angles, turn[order], np.hypot(u, v)[order], period=2 * np.pi)
        clear = EYE_CLEAR * np.hypot(np.cos(angles), np.sin(angles) / FLAT)
        # The best path round the eye, and how far its line stands out over the skin's own lines at most angles.
        rows, contrast, skin, side = rim_candidate(polar, edge + clear, RADII, BESIDE_EYE, BEND_COST, STEP, LOW_ANGLE)
        polars.append((polar, edge + clear))
        if side < RIM_CLEAR:
            continue
        candidates.append((contrast, contrast / max(1.0, skin), rows, k))
    best = max((c[0] for c in candidates), default=0.0)
    accepted = []
    for contrast, ratio, rows, k in candidates:
        # A pair of glasses has two rims: one that stands out clearly lets the other (in shade, or half hidden
        # on a turned face) stand out less.
        relaxed = best >= 1.25 * CONTRAST
        if ratio < (0.75 * RATIO if relaxed else RATIO) or contrast < (CONTRAST / 2 if relaxed else CONTRAST):
            continue
        accepted.append((RADII[rows], float(widths[k]), k))
    if len(accepted) == 1 and len(polars) == 2 and best >= 1.25 * CONTRAST:
        # One rim that stands out clearly: the other is its mirror image about the face's midline, about as large
        # against its eye. It is looked for near there only (the free search can run along a brow or a lid's
        # crease in front of a rim in shade or at a small scale: dlib_2008_002506's left rim).
        radii, _, k = accepted[0]
        other = 1 - k
        mirrored = radii[(ANGLES // 2 - np.arange(ANGLES)) % ANGLES]
        found = paired_candidate(*polars[other], mirrored)
        if found is not None:
            accepted.append((RADII[found], float(widths[other]), other))
    if accepted:  # traced again finer, on the box at up to `FINE_IOD`, among lines of the rims' shade only (a
        # bright reflection crossing a dark rim drew the trace along it for a stretch)
        found = np.concatenate([(centres[k] + radii[:, None] * width * directions[k] - (x0, y0)) * scale
                                for radii, width, k in accepted]).astype(np.float32)
        shade = cv2.remap(grey, found[:, 0].reshape(1, -1), found[:, 1].reshape(1, -1), cv2.INTER_LINEAR)
        dark = bool(np.median(shade) < np.median(grey))
        fine = min(1.0, FINE_IOD / iod)
        box = source[y0:y1, x0:x1]
        if fine < 1.0:
            box = cv2.resize(box, None, fx=fine, fy=fine, interpolation=cv2.INTER_AREA)
        fine_response = line_response(cv2.cvtColor(box, cv2.COLOR_BGR2GRAY),
                                      max(3, int(round(LINE_SIZE * float(widths.mean()) * fine)) | 1), dark)
        for radii, width, k in accepted:
            rim = refine_rim(fine_response.astype(np.float32), box.astype(np.float32), (centres[k] - (x0, y0)) * fine,
                             width * fine, directions[k], radii)
            rims.append(Rim(rim.path / fine + (x0, y0), rim.thickness / fine))
    if len(rims) == 2:
        # A bridge is of the rims' shade (between two dark rims the skin is a light line) and may be a thick bar:
        # it is looked for among lines of that shade up to twice as thick.
        bridge = find_bridge(line_response(grey, 2 * size + 1, dark).astype(np.float32), rims, (x0, y0), scale,
                             float(widths.mean()))
        if bridge is not None:
            rims.append(bridge)
    return rims


FINE_IOD = 160.0  # a found rim is traced again on the eyes' box scaled to this inter-ocular distance, or less:
FINE_ANGLES, FINE_RADII = 144, 0.006  # columns, row step (eye widths)
FINE_BAND = 0.12  # ... within this many eye widths of where it was found


def refine_rim(response: np.ndarray, colour: np.ndarray, centre: np.ndarray, width: float, directions: np.ndarray,
               radii: np.ndarray) -> Rim:
    """A found rim traced again on the eyes' box at a finer scale (`response` its thin-line response, `colour`
    its pixels, `centre` the eye's centre and `width` its width there), near the coarse path (`radii` at the
    search's angles, `directions` those angles' polar directions): a frame is one colour all round, so the path
    follows the lines of the colour found along it (a brow touching the rim, as dark as it, drew the coarse path
    away in places)."""
    angles = np.linspace(0, 2 * np.pi, ANGLES, endpoint=False)
    fine = np.linspace(0, 2 * np.pi, FINE_ANGLES, endpoint=False)
    axis, normal = directions[0], directions[ANGLES // 4] / FLAT
    direction = np.cos(fine)[:, None] * axis + FLAT * np.sin(fine)[:, None] * normal
    coarse = np.interp(fine, np.r_[angles, 2 * np.pi], np.r_[radii, radii[0]])
    rows = np.arange(-FINE_BAND, FINE_BAND + FINE_RADII / 2, FINE_RADII)
    reach = np.maximum(coarse[:, None] + rows[None, :], 0.05)  # (angles, rows) eye widths
    points = (centre + reach[..., None] * width * direction[:, None, :]).astype(np.float32)
    polar = cv2.remap(response, points[..., 0], points[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                      borderValue=0)
    polar_colour = cv2.remap(colour, points[..., 0], points[..., 1], cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
    first = best_loop(polar, BEND_COST, STEP)
    rim_colour = np.median(polar_colour[np.arange(FINE_ANGLES), first], axis=0)
    skin_colour = np.median(polar_colour.reshape(-1, 3), axis=0)
    spread = max(12.0, 0.35 * float(np.linalg.norm(rim_colour - skin_colour)))
    likeness = np.exp(-np.sum((polar_colour - rim_colour) ** 2, axis=2) / (2 * spread * spread))
    path = best_loop((polar * likeness).astype(np.float32), BEND_COST, STEP)
    middle, thickness = centre_line(polar, path, rows)
    return Rim(centre + (coarse + middle)[:, None] * width * direction, thickness * width)


BRIDGE_ROWS = np.linspace(-0.9, 0.4, 40)  # where a bridge is looked for: eye widths across the line between the eyes


def find_bridge(response: np.ndarray, rims: list[Rim], corner: tuple[int, int], scale: float,
                width: float) -> Rim | None:
    """The bridge between two rims: the best open path across the nose from the inner side of one rim to the
    other's, in the thin-line `response` of the eyes' box (its `corner` in the crop, its `scale`)."""
    centre_a, centre_b = rims[0].path.mean(axis=0), rims[1].path.mean(axis=0)
    axis = (centre_b - centre_a) / max(1e-6, float(np.linalg.norm(centre_b - centre_a)))
    normal = np.array([-axis[1], axis[0]])
    if normal[1] < 0:
        normal = -normal
    inner_a = float(((rims[0].path - centre_a) @ axis).max())
    inner_b = float(((rims[1].path - centre_a) @ axis).min())
    if inner_b - inner_a < 2:
        return None
    overlap = 0.1 * width
    along = np.linspace(inner_a - overlap, inner_b + overlap, max(12, int((inner_b - inner_a) * scale)))
    points = (centre_a + along[:, None, None] * axis + BRIDGE_ROWS[None, :, None] * width * normal)
    work = ((points - corner) * scale).astype(np.float32)
    across = cv2.remap(response, work[..., 0], work[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                       borderValue=0)
    rows = best_path(across, BEND_COST, STEP)
    contrast = np.percentile(across[np.arange(len(rows)), rows] - np.median(across, axis=1),
                             100 * (1 - CONTRAST_SHARE))
    if contrast < CONTRAST / 2:
        return None
    middle, thickness = centre_line(across, rows, BRIDGE_ROWS)
    # (the wider search also takes in the nose's shadows beside a thin bridge: it is no thicker than twice the rims)
    thickness = min(thickness * width, 2 * max(rim.thickness for rim in rims))
    return Rim(centre_a + along[:, None] * axis + middle[:, None] * width * normal, thickness, False)


FILL_GROW = 0.015  # ... a little beyond their mask (inter-ocular distances)
EDGE = 1.5  # px: the frames' mask reaches this far beyond their lines' half-response width, and is this soft


class FrameLayer(NamedTuple):
    """The frames of a face's glasses as a layer over the crop: its box [x0, y0, x1, y1), the frames' pixels
    there and how much of each is frame (0..1, float32, (h, w, 1))."""

    box: tuple[int, int, int, int]
    pixels: np.ndarray
    alpha: np.ndarray
    lenses: np.ndarray  # where the box is inside a rim (bool)
    glints: np.ndarray | None = None  # how much of each pixel is a reflection on a lens (as `alpha`; `with_glints`)

    def take_out(self, source: np.ndarray, iod: float) -> None:
        """Fill the frames in from what is beside them, in `source` (the crop), in place: what is seen where a
        frame was once the face behind it moves. Each pixel under a frame takes the pixels mirrored about the
        frame's two edges (the lens's side and the other), weighted by how near each edge is: the skin, a brow's
        hairs, keep their grain (a smooth fill looked painted once it moved into view). A little more than the
        frames is filled: their soft edges and colour fringes would be dragged along as streaks. Reflections are
        filled smoothly from the lens around them (mirrored, a reflection's trail and halo came back as a grey
        ghost of it, which rose above the bar with the brows)."""
        x0, y0, x1, y1 = self.box
        box = source[y0:y1, x0:x1]
        grow = max(1, int(round(FILL_GROW * iod)))
        if self.glints is not None:
            self._fill_glints(box, grow)
        mask = cv2.dilate((self.alpha[..., 0] > 0.02).astype(np.uint8),
                          cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
        inside = np.flatnonzero(mask.ravel())
        if not len(inside):
            return
        height, width = mask.shape
        ys, xs = inside // width, inside % width
        reads, weights = [], []
        for side in (self.lenses & (mask == 0), ~self.lenses & (mask == 0)):
            if not side.any():
                continue
            free = (~side).astype(np.uint8)  # distances to the nearest pixel of this side
            distance, labels = cv2.distanceTransformWithLabels(free, cv2.DIST_L2, 5,
                                                               labelType=cv2.DIST_LABEL_PIXEL)
            nearest = np.flatnonzero(side.ravel())[labels.ravel()[inside] - 1]  # label k: the side's k-th pixel
            read_x = np.clip(2 * (nearest % width) - xs, 0, width - 1)
            read_y = np.clip(2 * (nearest // width) - ys, 0, height - 1)
            reads.append(box[read_y, read_x].astype(np.float32))
            weights.append(1.0 / (distance.ravel()[inside] + 0.5))
        total = sum(weights)
        box[ys, xs] = np.clip(sum(r * (w / total)[:, None] for r, w in zip(reads, weights)) + 0.5, 0,
                              255).astype(np.uint8)

    def _fill_glints(self, box: np.ndarray, grow: int) -> None:
        """Fill the reflections (grown by `grow` px) in `box` in place from what is around them but frame (OpenCV's
        inpainting, in the box round them: the frames are left out of what it reads)."""
        assert self.glints is not None
        glint = self.glints[..., 0] > 0.02
        rows, columns = np.flatnonzero(glint.any(axis=1)), np.flatnonzero(glint.any(axis=0))
        reach = 2 * grow + 2
        top, bottom = max(0, rows[0] - reach), min(box.shape[0], rows[-1] + reach + 1)
        left, right = max(0, columns[0] - reach), min(box.shape[1], columns[-1] + reach + 1)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        unknown = cv2.dilate((glint[top:bottom, left:right] | (self.alpha[top:bottom, left:right, 0] > 0.02))
                             .view(np.uint8), kernel)
        part = box[top:bottom, left:right]
        filled = cv2.inpaint(np.ascontiguousarray(part), unknown, grow + 1, cv2.INPAINT_TELEA)
        own = cv2.dilate(glint[top:bottom, left:right].view(np.uint8), kernel).view(bool)
        part[own] = filled[own]

    def put_back(self, picture: np.ndarray) -> None:
        """Lay the frames (and the reflections) over `picture` (the edited crop), in place, where they were."""
        x0, y0, x1, y1 = self.box
        box = picture[y0:y1, x0:x1]
        alpha = self.alpha if self.glints is None else np.maximum(self.alpha, self.glints)
        box[:] = np.clip(box * (1.0 - alpha) + self.pixels * alpha + 0.5, 0, 255).astype(np.uint8)


# Reflections on the lenses are the glasses' too: held where they are while the face behind moves (moved with it, a
# reflection under a top bar rose above the bar as a white streak when the brows were raised: interfaces_016). They
# are what inside a lens, away from the eyes, is brighter than the lens around by this many grey levels, thinner than
# this (inter-ocular distances), and greyish (HSV saturation at most this), in patches that reach within this many
# grey levels of the face's brightest skin (the 99.9th percentile of the face's skin, the glasses left out): a
# reflection of a light is at least as bright as a shine on the skin. (Without that, the lenses' own edges and the
# lit skin seen through them on interfaces_050, at most 226 where its skin reaches 254, were held too, and were left
# behind as pale specks when the face moved; measured against the whole crop's brightest pixel instead, a white
# shirt or wall in the crop hid 016's reflections, and a picture with no white in it took 050's lens edges.)
GLINT_RISE, GLINT_SIZE, GLINT_GREY, GLINT_PEAK = 25, 0.06, 70, 15
GLINT_SKIN_RANK = 0.999
GLINT_EYE_CLEAR = 0.08  # the eye openings, grown by this many inter-ocular distances, are not searched (the whites)
# Below this size (px) a reflection is not told from the skin's grain seen through the lens: none are looked for (on
# dlib_2008_002506, 40 px between the eyes, a 3 px search held specks of the brows' edge still and the frown read less).
GLINT_LEAST = 5


def with_glints(layer: FrameLayer, source: np.ndarray, openings: list[np.ndarray], outline: np.ndarray,
                iod: float) -> FrameLayer:
    """`layer` with the lenses' reflections in `source` (the crop) added to what it holds in place; `openings` are
    the eye openings' outlines and `outline` the face's (crop pixels)."""
    size = int(round(GLINT_SIZE * iod)) | 1
    if size < GLINT_LEAST:
        return layer
    x0, y0, x1, y1 = layer.box
    box = source[y0:y1, x0:x1]
    crop_grey = cv2.cvtColor(source, cv2.COLOR_BGR2GRAY)
    grey = crop_grey[y0:y1, x0:x1]
    rise = cv2.morphologyEx(grey, cv2.MORPH_TOPHAT, cv2.getStructuringElement(cv2.MORPH_RECT, (size, size)))
    candidate = (rise > GLINT_RISE) & layer.lenses
    eyes = np.zeros(grey.shape, np.uint8)
    cv2.fillPoly(eyes, [np.round(opening - (x0, y0)).astype(np.int32) for opening in openings], 1)
    clear = max(1, int(round(GLINT_EYE_CLEAR * iod)))
    eyes = cv2.dilate(eyes, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * clear + 1, 2 * clear + 1)))
    candidate &= eyes == 0
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidate.view(np.uint8), connectivity=8)
    if count < 2:
        return layer
    peaks = np.zeros(count, np.uint8)
    np.maximum.at(peaks, labels[candidate], grey[candidate])
    bright = peaks >= skin_brightest(crop_grey, layer, outline) - GLINT_PEAK
    bright[0] = False
    if not bright.any():
        return layer
    # (in the box round the bright patches only: their greyish pixels, grown a little and softened as the frames)
    grow = 2 + int(math.ceil(1.5 * EDGE))
    left, top = np.maximum(stats[bright, :2].min(axis=0) - grow, 0)
    right, bottom = np.minimum((stats[bright, :2] + stats[bright, 2:4]).max(axis=0) + grow, grey.shape[::-1])
    part = bright[labels[top:bottom, left:right]]
    colours = box[top:bottom, left:right][part].astype(np.int32)  # (HSV saturation: the spread over the largest)
    largest = colours.max(axis=1)
    part[part] = (largest - colours.min(axis=1)) * 255 <= GLINT_GREY * np.maximum(largest, 1)
    if not part.any():
        return layer
    mask = cv2.dilate(part.view(np.uint8), np.ones((3, 3), np.uint8)) * 255
    glints = np.zeros_like(layer.alpha)
    glints[top:bottom, left:right] = cv2.GaussianBlur(mask, (0, 0), EDGE / 2)[..., None] / np.float32(255.0)
    return layer._replace(glints=glints)


def skin_brightest(grey: np.ndarray, layer: FrameLayer, outline: np.ndarray) -> int:
    """The grey level of the brightest skin (`GLINT_SKIN_RANK` of it) inside the face's `outline` in `grey` (the
    crop in grey), the frames and lenses of `layer` left out."""
    face = np.zeros(grey.shape[:2], np.uint8)
    cv2.fillConvexPoly(face, cv2.convexHull(np.round(outline).astype(np.int32)), 1)
    x0, y0, x1, y1 = layer.box
    face[y0:y1, x0:x1][layer.lenses | (layer.alpha[..., 0] > 0.1)] = 0
    counts = cv2.calcHist([grey], [0], face, [256], [0, 256]).ravel()
    if not counts.sum():
        return 255
    return int(np.searchsorted(np.cumsum(counts), GLINT_SKIN_RANK * counts.sum()))


def fixed_point(path: np.ndarray, corner: tuple[int, int]) -> np.ndarray:
    """A rim's path (crop pixels) in the box whose corner is `corner`, as OpenCV draws it with `shift=2`."""
    return np.round((path - corner) * 4).astype(np.int32)


AROUND_DISTANCE = 3.0  # pixels around a rim this many standard deviations from the trace's tone are not frame
UNLIKE_DISTANCE = 4.0  # ... and pixels on the rim this many from every tone around are
AROUND_STRIDE = 3  # what is around a rim is modelled from every this many of its pixels (as well, sooner)


class ToneModel(NamedTuple):
    """A Gaussian model of pixels' colours (B, G, R): their mean, a square root of the inverse of their covariance
    (an offset from the mean times it is that offset in standard deviations) and half its log determinant."""

    mean: np.ndarray
    root: np.ndarray
    log_size: float

    @classmethod
    def fit(cls, samples: np.ndarray) -> ToneModel:
        """The model of `samples` (3 x n, float32), its covariance widened by 3 levels each way (JPEG's noise)."""
        mean = samples.mean(axis=1, keepdims=True)
        offsets = samples - mean
        spread = (offsets @ offsets.T).astype(np.float64) / max(1, samples.shape[1] - 1) + 9.0 * np.eye(3)
        root = np.linalg.cholesky(np.linalg.inv(spread)).T.astype(np.float32)
        return cls(mean, root, 0.5 * float(np.log(np.linalg.det(spread))))


def tone_distances(tones: list[ToneModel], values: np.ndarray) -> np.ndarray:
    """How far each of `values` (3 x n, float32) is from each of `tones`' means, squared, in variances (k x n):
    one product with all the models' roots stacked (numpy is slow along a short axis: the colours go down)."""
    roots = np.concatenate([tone.root for tone in tones])
    offsets = roots @ values - np.concatenate([tone.root @ tone.mean for tone in tones])
    offsets *= offsets
    return offsets.reshape(len(tones), 3, -1).sum(axis=1)


# Brows touching a rim's top bar: where their hairs are as dark as the bar and of its tint (interfaces_016's navy
# frames, its hair as blue as red), they were taken for frame in stretches, laid back where they were and left as
# dark ticks above a lowered brow. Above the middle of each top bar (this share of the rim's width, not its corners:
# hinges, the bridge) nothing reaches further from the traced line than the bar does elsewhere (the median reach
# of the frame all round the rim) and a little more (px).
TOP_BAR_MIDDLE, BAR_SLACK = 0.7, 0.5


def trim_top_bars(mask: np.ndarray, rims: list[Rim], corner: tuple[int, int], lenses: np.ndarray) -> np.ndarray:
    """`mask` (uint8, 0/1: the frames `rims`, crop pixels; `corner` is the mask's corner in the crop), cut above the
    middle of each rim's top bar to how far the frame reaches from the rim's line all round it (`lenses`: inside
    the rims)."""
    lines = np.full(mask.shape, 255, np.uint8)
    closed = [index for index, rim in enumerate(rims) if rim.closed]
    for index in closed:
        cv2.polylines(lines, [fixed_point(rims[index].path, corner)], True, index, 1,
                      cv2.LINE_8, shift=2)
    on_line = lines < 255
    if not on_line.any():
        return mask
    distance, labels = cv2.distanceTransformWithLabels(on_line.view(np.uint8) ^ 1, cv2.DIST_L2, 5,
                                                       labelType=cv2.DIST_LABEL_PIXEL)
    line_pixels = np.flatnonzero(on_line.ravel())
    nearest = labels.ravel() - 1  # each pixel's nearest line pixel (its index among them)
    reach = np.zeros(len(line_pixels), np.float32)
    inside = np.flatnonzero(mask.ravel())
    np.maximum.at(reach, nearest[inside], distance.ravel()[inside])
    limit = np.full(len(line_pixels), np.inf, np.float32)
    which_rim, width = lines.ravel()[line_pixels], mask.shape[1]
    line_x, line_y = line_pixels % width + corner[0], line_pixels // width + corner[1]
    for index in closed:
        path = rims[index].path
        mine = which_rim == index
        (left, right), middle_y = (path[:, 0].min(), path[:, 0].max()), path[:, 1].mean()
        margin = 0.5 * (1.0 - TOP_BAR_MIDDLE) * (right - left)
        top_middle = mine & (line_y < middle_y) & (line_x > left + margin) & (line_x < right - margin)
        limit[top_middle] = float(np.median(reach[mine])) + BAR_SLACK
    cut = (distance.ravel() > limit[nearest]) & ~lenses.ravel()
    return np.where(cut, 0, mask.ravel()).reshape(mask.shape).astype(np.uint8)


# A bar lit on one side shows a light stripe along its dark one, of the same tint (blue less red): interfaces_016's
# lavender over navy, outside the traced line's band, moved with the face as a pale band over the top bar. Beyond
# the rims, within `TINT_REACH` of a rim's thickness of its line, the pixels whose tint is within `TINT_TOLERANCE`
# of the frame's and this much more than nearly all around (its 95th percentile: skin, hair, highlights) are frame,
# where the frame's tint stands out from that by `TINT_GAP` at all (black or warm frames: it does not).
TINT_GAP, TINT_TOLERANCE, TINT_REACH = 10.0, 8.0, 1.6


def frame_tinted(box: np.ndarray, rims: list[Rim], corner: tuple[int, int], on_rim: np.ndarray, nearby: np.ndarray,
                 lenses: np.ndarray, light: np.ndarray) -> np.ndarray:
    """The pixels of `box` (the frames' layer's box of the crop, `corner` its corner) of the frame's tint beside
    the rims' bars (see `TINT_GAP`): `on_rim` are the frame's colours, `nearby` those around it (3 x n)."""
    out = np.zeros(box.shape[:2], np.uint8)
    if not nearby.shape[1]:
        return out
    frame_tint = float(np.median(on_rim[0] - on_rim[2]))
    around_tint = float(np.percentile(nearby[0] - nearby[2], 95))
    if frame_tint - around_tint < TINT_GAP:
        return out
    reach = np.zeros_like(out)
    for rim in rims:
        if rim.closed:
            cv2.polylines(reach, [fixed_point(rim.path, corner)], True, 1,
                          max(1, int(round(2 * TINT_REACH * rim.thickness))), cv2.LINE_8, shift=2)
    tint = box[..., 0].astype(np.float32) - box[..., 2]
    tinted = (tint >= max(frame_tint - TINT_TOLERANCE, around_tint + TINT_TOLERANCE)) & (reach > 0) & ~lenses
    # the lit stripe (lighter than the line's threshold), and what is of its tint right beside it (the bar's outer
    # edge beyond it); not dark pixels of that tint elsewhere (dark hair may be as blue as a navy bar: 016's)
    stripe = (tinted & light).view(np.uint8)
    beside = cv2.dilate(stripe, np.ones((3, 3), np.uint8)) > 0
    out[tinted & beside] = 1
    return out


def frame_layer(source: np.ndarray, rims: list[Rim]) -> FrameLayer | None:
    """The layer of the frames `rims` in `source` (the crop, before anything moves): the pixels along each rim's
    line, as wide as the line, whose shade is nearer the rim's than the skin's around it and, beyond the rims,
    whose colour is likelier the frame's than the brows' or the skin's there; a little more, soft."""
    points = np.concatenate([rim.path for rim in rims])
    margin = max(rim.thickness for rim in rims) + 2 * EDGE + 4
    (left, top), (right, bottom) = points.min(axis=0) - margin, points.max(axis=0) + margin
    x0, y0 = max(0, int(left)), max(0, int(top))
    x1, y1 = min(source.shape[1], int(math.ceil(right))), min(source.shape[0], int(math.ceil(bottom)))
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    band, around = np.zeros((y1 - y0, x1 - x0), np.uint8), np.zeros((y1 - y0, x1 - x0), np.uint8)
    for rim in rims:
        line = [fixed_point(rim.path, (x0, y0))]
        cv2.polylines(band, line, rim.closed, 255, max(1, int(round(rim.thickness + 2))), cv2.LINE_8, shift=2)
        cv2.polylines(around, line, rim.closed, 255, max(1, int(round(2 * rim.thickness + 6))), cv2.LINE_8, shift=2)
    # The pixels along the line whose shade is nearer the rim's than the skin's around it, a little more ...
    box = source[y0:y1, x0:x1]
    grey = cv2.cvtColor(box, cv2.COLOR_BGR2GRAY)
    on_line = (np.concatenate([rim.path for rim in rims]) - (x0, y0)).astype(np.float32)
    rim_shade = float(np.median(cv2.remap(grey, on_line[:, 0].reshape(1, -1), on_line[:, 1].reshape(1, -1),
                                          cv2.INTER_LINEAR)))
    ring = np.flatnonzero(((around > 0) & (band == 0)).ravel())
    if len(ring) < 8:  # (a rim almost wholly outside the picture)
        return None
    nearby_shade = grey.ravel()[ring]
    dark = rim_shade < float(np.median(nearby_shade))
    level = (rim_shade + float(np.percentile(nearby_shade, 75 if dark else 25))) / 2
    mask = (((grey <= level) if dark else (grey >= level)) & (band > 0)).astype(np.uint8)
    # ... but not those whose colour is likelier that of one of three parts of what is around (split by shade: a
    # brow's hair, the skin's shadows, the lit skin) than the frame's: shade alone took brow hair touching a rim
    # as frame (laid back, it stayed as dark dashes above a lowered brow), and its tint may differ (interfaces_050:
    # brown hair, B, G, R 30, 40, 60, on black frames, 49, 37, 37).
    planes = cv2.split(box)
    on_rim = np.stack([cv2.remap(plane, on_line[:, 0].reshape(1, -1), on_line[:, 1].reshape(1, -1),
                                 cv2.INTER_LINEAR)[0] for plane in planes]).astype(np.float32)
    nearby = np.stack([plane.ravel()[ring[::AROUND_STRIDE]] for plane in planes]).astype(np.float32)
    # Where the trace strays onto a brow touching the rim its pixels are the brow's: the frame's colours are those
    # of the trace's pixels nearest their mean (twice the three quarters nearest; interfaces_016, whose trace runs
    # along the brow for a stretch: hair left above the left bar after eyebrow -10 on 0.32 of a strip there, 0.17).
    for _ in range(2):
        spread = tone_distances([ToneModel.fit(on_rim)], on_rim)[0]
        on_rim = on_rim[:, spread <= np.percentile(spread, 75)]
    # (where a bar is thicker than the median the ring around takes in frame: that is not what is around)
    nearby = nearby[:, tone_distances([ToneModel.fit(on_rim)], nearby)[0] > AROUND_DISTANCE ** 2]
    shade = np.array([0.114, 0.587, 0.299], np.float32) @ nearby
    thirds = [len(shade) // 3, 2 * len(shade) // 3]
    part = np.searchsorted(np.partition(shade, thirds)[thirds], shade) if len(shade) >= 12 else shade
    around_tones = [ToneModel.fit(nearby[:, part == k]) for k in range(3) if np.count_nonzero(part == k) > 3]
    lenses = np.zeros_like(mask)
    cv2.fillPoly(lenses, [fixed_point(rim.path, (x0, y0)) for rim in rims if rim.closed], 1,
                 shift=2)
    # (only beyond the rims: inside, the lenses' own edges are light lines like the skin, but they are glasses too)
    beyond = np.flatnonzero((mask & (lenses == 0)).ravel())
    if around_tones and len(beyond):
        pixels = np.stack([plane.ravel()[beyond] for plane in planes]).astype(np.float32)
        distances = tone_distances(around_tones, pixels)
        # The trace may keep to one part of a rim of two tones (a lighter stripe along a darker one): what is
        # unlike all around is frame too.
        frame_tone = ToneModel.fit(np.concatenate([on_rim, pixels[:, distances.min(axis=0) > UNLIKE_DISTANCE ** 2]],
                                                  axis=1))
        # (log likelihoods, up to a constant shared by all)
        distances *= -0.5
        distances -= np.array([[tone.log_size] for tone in around_tones], np.float32)
        mask.ravel()[beyond] = -0.5 * tone_distances([frame_tone], pixels)[0] - frame_tone.log_size > \
            distances.max(axis=0)
    mask = trim_top_bars(mask, rims, (x0, y0), lenses > 0)
    if dark:
        mask |= frame_tinted(box, rims, (x0, y0), on_rim, nearby, lenses > 0, grey > level)
    # Closed across a rim's width: a light stripe between two dark lines (interfaces_016's lavender between navy)
    # is frame too (closed 3 px wide, 0.58 of that stripe's pixels stayed put after eyebrow -10; 0.74 now).
    closing = max(3, int(round(min(rim.thickness for rim in rims))) | 1)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (closing, closing)))
    mask = cv2.dilate(mask, np.ones((3, 3), np.uint8)) * 255
    alpha = cv2.GaussianBlur(mask, (0, 0), EDGE / 2).astype(np.float32)[..., None] / 255.0
    return FrameLayer((x0, y0, x1, y1), box.astype(np.float32), alpha, lenses > 0)
