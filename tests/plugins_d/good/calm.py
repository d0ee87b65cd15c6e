"""A good drop-in plugin used by the tests: one emotion."""

from engine import hookimpl


@hookimpl
def register_emotions(register):
    """Register 'calm'."""
    register("calm", {"blink": -4, "smile": 0.2}, label="Calm")
