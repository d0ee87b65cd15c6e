"""Contact sheets: faces x emotions (or x values of one parameter) in one picture, for people to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from engine.expression import Expression, parameter
from engine.render import label_panel

CELL_HEIGHT = 220


def face_crop(image: np.ndarray, box: Sequence[int], margin: float = 0.45) -> np.ndarray:
    """The face's box grown by `margin` of its size on each side, clipped to the image."""
    x, y, w, h = box
    height, width = image.shape[:2]
    x0, y0 = max(0, int(x - margin * w)), max(0, int(y - margin * h))
    x1, y1 = min(width, int(x + w + margin * w)), min(height, int(y + h + margin * h))
    return image[y0:y1, x0:x1]


def _cell(image: np.ndarray, caption: str, cell_width: int) -> np.ndarray:
    scale = CELL_HEIGHT / image.shape[0]
    resized = cv2.resize(image, (max(1, int(round(image.shape[1] * scale))), CELL_HEIGHT),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    canvas = np.full((CELL_HEIGHT, cell_width, 3), 255, np.uint8)
    width = min(cell_width, resized.shape[1])
    start = (cell_width - width) // 2
    canvas[:, start:start + width] = resized[:, (resized.shape[1] - width) // 2:][:, :width]
    return label_panel(canvas, caption)


def sweep_values(name: str, steps: int = 5) -> list[float]:
    """Evenly spaced values across a parameter's whole range, its default included."""
    spec = parameter(name)
    values = list(np.linspace(spec.minimum, spec.maximum, steps))
    if spec.default not in values:
        values.append(spec.default)
    return sorted(float(round(v, 3)) for v in values)


def contact_sheet(rows: Sequence[tuple[str, np.ndarray, Sequence[int]]],
                  columns: Sequence[tuple[str, Expression]],
                  render: Callable[[np.ndarray, Expression], np.ndarray]) -> np.ndarray:
    """A grid: one row per (name, image, face box), the input then one column per (caption, expression).

    `render(image, expression)` returns the edited image (the whole picture; the face is cropped from it).
    """
    cell_width = int(CELL_HEIGHT * 0.85)
    grid = []
    for name, image, box in rows:
        cells = [_cell(face_crop(image, box), f"{Path(name).stem[:18]}", cell_width)]
        for caption, expression in columns:
            cells.append(_cell(face_crop(render(image, expression), box), caption, cell_width))
        grid.append(np.hstack([np.pad(c, ((2, 2), (2, 2), (0, 0)), constant_values=255) for c in cells]))
    return np.vstack(grid)


def emotion_columns(registry: Any, names: Sequence[str], intensity: float) -> list[tuple[str, Expression]]:
    """One column per emotion at `intensity`."""
    return [(name, registry.expression([(name, 1.0)], intensity)) for name in names]


def sweep_columns(base: Expression, name: str) -> list[tuple[str, Expression]]:
    """One column per value of parameter `name` across its range, the rest of `base` kept."""
    return [(f"{name}={value:g}", base.with_overrides({name: value})) for value in sweep_values(name)]
