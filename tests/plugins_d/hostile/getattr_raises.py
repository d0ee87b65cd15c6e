"""A hostile plugin: asking the module for any name it lacks raises (a module-level __getattr__)."""

from engine import hookimpl


def __getattr__(name):
    raise RuntimeError(f"no attribute {name} here")


@hookimpl
def register_emotions(register):
    """Would register, but looking for the other hooks fails first."""
    register("odd", {"smile": 0.1})
