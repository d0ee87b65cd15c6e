"""A broken plugin: a syntax error."""

from engine import hookimpl


@hookimpl
def register_emotions(register)
    register("never", {"smile": 1})
