"""A hostile plugin: its hook calls sys.exit."""

import sys

from engine import hookimpl


@hookimpl
def register_emotions(register):
    """Tries to end the app."""
    sys.exit(3)
