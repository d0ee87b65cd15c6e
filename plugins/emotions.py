"""The four built-in emotions, as presets of the expression vector.

`recognise` tells the analysis stage which blendshapes rise with each emotion.
"""

from engine import hookimpl


@hookimpl
def register_emotions(register):
    """Register happy, surprised, angry and sleepy."""
    register("happy", {"smile": 1.0, "eee": 4, "blink": -3}, label="Happy",
             description="a broad smile: corners up and out, cheeks lifted",
             recognise={"mouthSmileLeft": 0.5, "mouthSmileRight": 0.5, "cheekSquintLeft": 0.1,
                        "cheekSquintRight": 0.1})
    register("surprised", {"aaa": 72, "eyebrow": 12, "blink": 4, "woo": 6, "smile": -0.1}, label="Surprised",
             description="jaw dropped, brows raised, eyes wide",
             recognise={"jawOpen": 0.4, "browInnerUp": 0.3, "browOuterUpLeft": 0.1, "browOuterUpRight": 0.1,
                        "eyeWideLeft": 0.05, "eyeWideRight": 0.05})
    register("angry", {"eyebrow": -10, "smile": -0.3, "aaa": -20, "eee": -3, "woo": 2}, label="Angry",
             description="brows lowered and knit, lips pressed, corners down",
             recognise={"browDownLeft": 0.35, "browDownRight": 0.35, "mouthPressLeft": 0.1,
                        "mouthPressRight": 0.1, "mouthFrownLeft": 0.05, "mouthFrownRight": 0.05})
    register("sleepy", {"blink": -20},
             label="Sleepy", description="heavy eyelids falling shut",
             recognise={"eyeBlinkLeft": 0.4, "eyeBlinkRight": 0.4, "eyeSquintLeft": 0.1, "eyeSquintRight": 0.1})
