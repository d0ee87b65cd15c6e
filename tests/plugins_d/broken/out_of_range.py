"""A broken plugin: a preset value outside its parameter's range."""

from engine import hookimpl


@hookimpl
def register_emotions(register):
    """smile takes -0.3 to 1.3."""
    register("ecstatic", {"smile": 5})
