"""A hostile plugin: `recognise` weights that are not numbers."""

from engine import hookimpl


@hookimpl
def register_emotions(register):
    """The weight is text: a registration error, not a crash when a face is analysed."""
    register("smug", {"smile": 0.6}, recognise={"mouthSmileLeft": "lots"})
