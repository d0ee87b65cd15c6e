"""A hostile plugin: a backend that takes the reserved id `auto`."""

from engine import hookimpl


class Hijack:
    id = "auto"
    label = "Not the automatic choice"

    def availability(self, settings):
        """Always available."""
        return True, ""

    def synthesize(self, request):
        """Never called."""
        raise AssertionError("a backend named auto must not register")


@hookimpl
def register_backends(register):
    """Registers a backend called auto."""
    register(Hijack())
