"""What a synthesis backend is: the request it gets, the result it returns, and its protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

from engine.expression import Expression


@dataclass(frozen=True, eq=False)
class SynthesisRequest:
    """One image to edit: the picture (BGR, uint8), the faces to edit, the expression, and the settings."""

    image: np.ndarray
    faces: tuple  # of engine.faces.Face
    expression: Expression
    settings: Any  # engine.config.Settings
    live: bool = False


@dataclass(frozen=True, eq=False)
class SynthesisResult:
    """The edited picture (same size as the input) and what the backend wants recorded about it."""

    image: np.ndarray
    backend: str
    faces_edited: int = 0
    info: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """A synthesis backend. Plugins register objects with these members through `register_backends`.

    A backend may also have `prepare(settings)`: load what it needs before its first request (the panel calls
    it on a background thread at start-up, so the first frame does not wait). It may be called more than once.
    """

    id: str
    label: str

    def availability(self, settings: Any) -> tuple[bool, str]:
        """Whether the backend can run with these settings, and if not, why (a sentence for the user)."""
        ...

    def synthesize(self, request: SynthesisRequest) -> SynthesisResult:
        """Render `request.expression` on every face of `request.faces`; raise `BackendError` on failure."""
        ...
