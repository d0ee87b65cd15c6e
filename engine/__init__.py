"""FaceSynth's core engine: plugins, the expression vector, the event bus, the pipeline and the CLI.

Plugins mark their hook implementations with `engine.hookimpl`.
"""

import pluggy

PROJECT_NAME = "facesynth"
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["PROJECT_NAME", "hookimpl"]
