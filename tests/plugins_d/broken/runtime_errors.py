"""Backends that load fine and fail at run time, each in its own way (for the guard's tests).

`raises` raises ValueError, `garbage` returns something that is not a picture, `wrong-size` returns a picture of
another size, `exits` calls sys.exit, `hangs` does not answer for `HANG_S` seconds (then returns the input).
"""

import sys
import time

from engine import hookimpl
from engine.backend import SynthesisResult

HANG_S = 4.0


class Raises:
    id = "raises"
    label = "Raises at run time"

    def availability(self, settings):
        return True, ""

    def synthesize(self, request):
        raise ValueError("the model's weights are corrupt")


class Garbage(Raises):
    id = "garbage"
    label = "Returns garbage"

    def synthesize(self, request):
        return "an edited face, honestly"


class WrongSize(Raises):
    id = "wrong-size"
    label = "Returns a thumbnail"

    def synthesize(self, request):
        return SynthesisResult(request.image[::2, ::2].copy(), self.id, 1)


class Exits(Raises):
    id = "exits"
    label = "Calls sys.exit"

    def synthesize(self, request):
        sys.exit(3)


class Hangs(Raises):
    id = "hangs"
    label = "Does not answer"
    live = True

    def synthesize(self, request):
        time.sleep(HANG_S)
        return SynthesisResult(request.image.copy(), self.id, 1)


@hookimpl
def register_backends(register):
    """Register every misbehaving backend."""
    for backend in (Raises(), Garbage(), WrongSize(), Exits(), Hangs()):
        register(backend)
