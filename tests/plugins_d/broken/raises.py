"""A broken plugin: registering raises."""

from engine import hookimpl


@hookimpl
def register_emotions(register):
    """Registers one emotion, then fails: nothing of this plugin may stay registered."""
    register("half", {"smile": 0.5})
    raise RuntimeError("database of smiles is offline")
