"""The Segmind Expression Editor backend (cloud)."""

from __future__ import annotations

from typing import Any

from engine import hookimpl
from engine.backend import SynthesisRequest, SynthesisResult
from engine.config import key_source
from engine.errors import BackendUnavailable


class SegmindBackend:
    """Sends the picture and the expression vector to Segmind's expression-editor model."""

    id = "segmind"
    label = "Segmind Expression Editor (cloud)"

    def availability(self, settings: Any) -> tuple[bool, str]:
        """Available when an API key is set."""
        if not settings.segmind_api_key:
            return False, f"no API key: set {key_source()}"
        return False, "the Segmind client is not built yet (issue 5)"

    def synthesize(self, request: SynthesisRequest) -> SynthesisResult:
        """Not built yet."""
        raise BackendUnavailable("the Segmind client is not built yet")


@hookimpl
def register_backends(register):
    """Register the Segmind backend."""
    register(SegmindBackend())
