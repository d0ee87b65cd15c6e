"""A broken plugin: a backend object without the protocol's methods."""

from engine import hookimpl


class NotABackend:
    id = "nothing"


@hookimpl
def register_backends(register):
    """Registers an object that cannot synthesize."""
    register(NotABackend())
