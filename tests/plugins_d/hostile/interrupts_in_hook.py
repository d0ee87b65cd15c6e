"""A hostile plugin: its hook raises KeyboardInterrupt (the user pressed nothing)."""

from engine import hookimpl


@hookimpl
def register_emotions(register):
    """Pretends to be a Ctrl+C."""
    raise KeyboardInterrupt
