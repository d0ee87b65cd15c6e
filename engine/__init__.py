"""FaceSynth's core engine: plugins, the expression vector, the event bus, the stages and the CLI.

Plugins mark their hook implementations with `engine.hookimpl`. Importing the engine changes nothing about the
process; the entry points (`engine.entry`, the panel) tune it (see `engine.allocator.tune_process`).
"""

import pluggy

PROJECT_NAME = "facesynth"
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["PROJECT_NAME", "hookimpl"]
