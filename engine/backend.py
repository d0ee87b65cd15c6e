"""What a synthesis backend is: the request it gets, the result it returns, and its protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Protocol, runtime_checkable

import numpy as np

from engine.expression import Expression

if TYPE_CHECKING:
    from engine.config import Settings
    from engine.face import Face


@dataclass(frozen=True, eq=False)
class SynthesisRequest:
    """One image to edit: the picture (BGR, uint8), the faces to edit, the expression, and the settings."""

    image: np.ndarray
    faces: tuple[Face, ...]
    expression: Expression
    settings: Settings
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

    Optional members, read with getattr (the core works without them):
    - `live: bool`: fast enough for every frame of a stream (default False: stills only);
    - `rank: float`: `auto` tries available backends of higher rank first (default 0);
    - `prepare(settings)`: load what the first request needs (the panel calls it on a background thread at
      start-up, live mode before its first frame); it may be called more than once;
    - `account(settings) -> dict`: figures such as `remaining_credits` (shown by `plugins` and the panel);
    - `bench_sections() -> {name: engine.bench.BenchSection}`: the backend's own `facesynth bench` sections.
    Every call goes through `engine.guard.guard`: whatever a backend raises is reported with its id.
    """

    id: str
    label: str

    def availability(self, settings: Settings) -> tuple[bool, str]:
        """Whether the backend can run with these settings, and if not, why (a sentence for the user)."""
        ...

    def synthesize(self, request: SynthesisRequest) -> SynthesisResult:
        """Render `request.expression` on every face of `request.faces`; raise `BackendError` on failure."""
        ...
