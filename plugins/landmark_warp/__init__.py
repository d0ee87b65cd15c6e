"""The local landmark-warp backend: offline, no account, real time on a CPU.

It turns the expression vector into target positions of landmark groups and warps each face with one smooth
displacement field (see `warp.py`), painting what a warp cannot make: the inside of an opening mouth, lids
over a closing eye, irises moving inside the eye.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import structlog

from engine import hookimpl
from engine.backend import SynthesisRequest, SynthesisResult
from engine.errors import InputError

MAX_ABS_YAW = 50.0  # beyond this the far side of the face is hidden: leave the face as it is
MAX_TURN = 50.0  # nor a face turned further from the camera than this, sideways and up or down together


def turned_too_far(face: Any) -> str:
    """Why a face is too turned to edit cleanly ('' when it is not): in profile, or turned sideways and tilted up
    or down so far that its far side is hidden all the same (the angle between the face's own forward direction
    and the camera's, from its yaw and pitch; roll only turns it in the picture)."""
    if abs(face.yaw) > MAX_ABS_YAW:
        return f"face in profile (yaw {face.yaw:.0f} degrees): turned too far"
    turn = math.degrees(math.acos(max(-1.0, min(1.0, math.cos(math.radians(face.yaw)) *
                                                 math.cos(math.radians(face.pitch))))))
    if turn > MAX_TURN:
        return f"face turned too far (yaw {face.yaw:.0f}, pitch {face.pitch:.0f} degrees: {turn:.0f} from the camera)"
    return ""

log = structlog.get_logger()


def kernels_cached(folder: Path = Path(__file__).parent / "__pycache__") -> bool:
    """Whether numba's cache beside the compiled modules holds code for this Python: if not, the first use on
    this machine compiles it (8-20 s here, once; see kernels.py)."""
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    return all(any(folder.glob(f"{module}.*.{tag}.nbi")) for module in ("kernels", "geometry", "glasses"))


class LandmarkWarpBackend:
    """Renders any expression vector by warping the image around the face landmarks."""

    id = "landmark-warp"
    label = "Landmark warp (local)"
    live = True  # a few milliseconds a face: fast enough for every frame of a stream
    rank = 10  # `auto` prefers backends of higher rank when they are available

    def bench_sections(self) -> dict[str, Any]:
        """This backend's own `facesynth bench` section: the warp alone, per face, on one core."""
        from plugins.landmark_warp.bench import SECTIONS

        return SECTIONS

    def availability(self, settings: Any) -> tuple[bool, str]:
        """Always available: it needs nothing but the landmarks."""
        return True, ""

    def prepare(self, settings: Any = None) -> None:
        """Load the warp and its compiled loops (numba: about 1 s, or 8-20 s to compile them the first time
        on a machine)."""
        if "plugins.landmark_warp.warp" not in sys.modules and not kernels_cached():
            log.warning("warp_compiling", note="the first use of the local backend on this machine compiles it: "
                        "8-20 s, once")
        import plugins.landmark_warp.warp  # noqa: F401

    def synthesize(self, request: SynthesisRequest) -> SynthesisResult:
        """Edit every face of the request on a copy of the image."""
        self.prepare()
        from plugins.landmark_warp.warp import edit_face

        output = request.image.copy()
        params = request.expression.as_dict()
        edited, skipped = 0, []
        for face in request.faces:
            reason = turned_too_far(face)
            if reason:
                skipped.append({"box": list(face.box), "reason": reason})
                continue
            edit_face(output, face.landmarks, params)
            edited += 1
        if not edited:
            raise InputError("; ".join(item["reason"] for item in skipped) +
                             f" (the local backend edits faces turned up to {MAX_TURN:g} degrees)")
        return SynthesisResult(output, self.id, edited, {"skipped": skipped} if skipped else {})


@hookimpl
def register_backends(register):
    """Register the landmark-warp backend."""
    register(LandmarkWarpBackend())
