"""A hostile plugin: importing it takes a minute."""

import time

from engine import hookimpl

time.sleep(60)


@hookimpl
def register_emotions(register):
    """Never reached in time."""
    register("slow_import", {"smile": 0.5})
