"""A drop-in that overrides the built-in 'happy' (drop-in beats built-in)."""

from engine import hookimpl


@hookimpl
def register_emotions(register):
    """Register a stronger 'happy'."""
    register("happy", {"smile": 1.3}, label="Very happy")
