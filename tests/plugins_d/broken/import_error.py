"""A broken plugin: it imports a module that does not exist."""

import facesynth_no_such_module  # noqa: F401

from engine import hookimpl


@hookimpl
def register_emotions(register):
    """Never reached."""
    register("never", {"smile": 1})
