"""An example drop-in emotion: one raised brow look, a half smile and a sideways glance.

Copy this file, rename it, change the numbers: that is a new emotion. See README.md in this folder.
"""

from engine import hookimpl


@hookimpl
def register_emotions(register):
    """Register the 'skeptical' emotion."""
    register(
        "skeptical",
        {"eyebrow": 6, "smile": 0.3, "woo": 3, "pupil_x": 8, "rotate_yaw": -4, "blink": -4},
        label="Skeptical",
        description="a sideways glance with a doubtful half smile",
        recognise={"browOuterUpLeft": 0.3, "browOuterUpRight": 0.3, "mouthPucker": 0.2, "eyeLookOutLeft": 0.2},
    )
