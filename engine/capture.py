"""Capture: frames and where they come from."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class Frame:
    """One picture entering the pipeline: BGR pixels, its number in the stream, its capture time
    (`time.perf_counter()` seconds) and the source it came from."""

    image: np.ndarray
    index: int = 0
    captured_at: float = field(default_factory=time.perf_counter)
    source: str = ""

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.image.shape[1], self.image.shape[0]
