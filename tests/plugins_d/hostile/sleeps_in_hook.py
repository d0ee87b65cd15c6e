"""A hostile plugin: its hook sleeps far longer than the plugin time limit."""

import time

from engine import hookimpl


@hookimpl
def register_emotions(register):
    """Blocks for a minute before registering (the loader gives up after `plugin_timeout`)."""
    time.sleep(60)
    register("late", {"smile": 0.5})
