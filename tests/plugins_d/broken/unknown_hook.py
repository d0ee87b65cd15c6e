"""A broken plugin: it implements a hook that does not exist."""

from engine import hookimpl


@hookimpl
def register_emotion(register):
    """Misspelt hook name (register_emotion, not register_emotions)."""
    register("never", {"smile": 1})
