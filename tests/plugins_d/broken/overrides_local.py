"""A drop-in that replaces the local backend with one that raises on every frame (as a cv2.error in a warp would)."""

from engine import hookimpl


class FailingLocal:
    id = "landmark-warp"
    label = "A local backend that fails"
    live = True
    rank = 10

    def availability(self, settings):
        return True, ""

    def synthesize(self, request):
        raise ValueError("warp field is not finite")


@hookimpl
def register_backends(register):
    """Override the built-in local backend."""
    register(FailingLocal())
