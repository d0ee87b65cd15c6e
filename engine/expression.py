"""The expression vector: the Expression Editor parameters, their ranges, and how presets combine.

One table (`PARAMETERS`) is the single source of truth for names, ranges, defaults and meanings; every
other part of the app (CLI help, GUI sliders, the Segmind payload, the warp) reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterable, Mapping

from engine.errors import UsageError


@dataclass(frozen=True)
class Parameter:
    """One expression parameter: its range, default and what it does to the face."""

    name: str
    minimum: float
    maximum: float
    default: float
    meaning: str


# Ranges and defaults of the reference implementation (ComfyUI-AdvancedLivePortrait's Expression Editor).
PARAMETERS: tuple[Parameter, ...] = (
    Parameter("rotate_pitch", -20, 20, 0, "head nods (degrees)"),
    Parameter("rotate_yaw", -20, 20, 0, "head turns left/right (degrees)"),
    Parameter("rotate_roll", -20, 20, 0, "head tilts sideways (degrees)"),
    Parameter("blink", -20, 5, 0, "negative closes both eyelids (-20 fully shut), positive opens eyes wide"),
    Parameter("eyebrow", -10, 15, 0, "positive raises brows; negative lowers them and draws them together"),
    Parameter("wink", 0, 25, 0, "closes one eye, with a slight cheek raise"),
    Parameter("pupil_x", -15, 15, 0, "gaze left/right: the iris moves inside the eye"),
    Parameter("pupil_y", -15, 15, 0, "gaze up/down"),
    Parameter("aaa", -30, 120, 0, "jaw opens as in 'aah'; negative presses the lips"),
    Parameter("eee", -20, 15, 0, "lips stretch wide as in 'eee'"),
    Parameter("woo", -20, 15, 0, "lips round and pucker as in 'ooh'"),
    Parameter("smile", -0.3, 1.3, 0, "mouth corners up and out, cheeks lift; negative turns them down"),
)
PARAMETER_BY_NAME: Mapping[str, Parameter] = MappingProxyType({p.name: p for p in PARAMETERS})
PARAMETER_NAMES: tuple[str, ...] = tuple(p.name for p in PARAMETERS)

INTENSITY_MIN, INTENSITY_MAX = 0.0, 1.5


def _known_parameters() -> str:
    return ", ".join(PARAMETER_NAMES)


def parameter(name: str) -> Parameter:
    """Look a parameter up by name; an unknown name is a `UsageError` listing the known ones."""
    try:
        return PARAMETER_BY_NAME[name]
    except KeyError:
        raise UsageError(f"unknown parameter '{name}'; known parameters: {_known_parameters()}") from None


def check_value(name: str, value: float) -> float:
    """Return `value` as a float if it lies in the range of parameter `name`, else raise `UsageError`."""
    spec = parameter(name)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a number, got {value!r}") from None
    if number != number:  # NaN
        raise UsageError(f"{name} must be a number, got {value!r}")
    if not spec.minimum <= number <= spec.maximum:
        raise UsageError(f"{name}={value} is out of range: {name} takes {spec.minimum:g} to {spec.maximum:g}")
    return number


@dataclass(frozen=True)
class Expression:
    """A full, validated expression vector: every parameter has a value inside its range."""

    values: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checked = {p.name: p.default for p in PARAMETERS}
        for name, value in dict(self.values).items():
            checked[name] = check_value(name, value)
        object.__setattr__(self, "values", MappingProxyType(checked))

    def __getitem__(self, name: str) -> float:
        return self.values[parameter(name).name]

    def as_dict(self) -> dict[str, float]:
        """The vector as a plain dict in table order (for JSON and API payloads)."""
        return dict(self.values)

    def is_neutral(self) -> bool:
        """True when every parameter is at its default."""
        return all(self.values[p.name] == p.default for p in PARAMETERS)

    def with_overrides(self, overrides: Mapping[str, float]) -> "Expression":
        """A copy with single parameters set to exact values (validated, never clamped)."""
        merged = dict(self.values)
        merged.update({name: check_value(name, value) for name, value in overrides.items()})
        return Expression(merged)

    @classmethod
    def neutral(cls) -> "Expression":
        """The all-defaults vector."""
        return cls({})


def clamp(name: str, value: float) -> float:
    """Clamp `value` into the range of parameter `name` (used only after intensity scaling)."""
    spec = parameter(name)
    return min(spec.maximum, max(spec.minimum, float(value)))


def check_intensity(intensity: float) -> float:
    """Validate an emotion intensity (0 to 1.5)."""
    try:
        number = float(intensity)
    except (TypeError, ValueError):
        raise UsageError(f"intensity must be a number, got {intensity!r}") from None
    if number != number:  # NaN
        raise UsageError(f"intensity must be a number, got {intensity!r}")
    if not INTENSITY_MIN <= number <= INTENSITY_MAX:
        raise UsageError(f"intensity {intensity} is out of range: it takes {INTENSITY_MIN:g} to {INTENSITY_MAX:g}")
    return number


def mix(weighted_presets: Iterable[tuple[Mapping[str, float], float]], intensity: float = 1.0) -> Expression:
    """Mix presets as a weighted sum, scale the sum by `intensity`, and clamp each parameter to its range.

    `weighted_presets` yields (preset, weight) pairs; a preset is a partial vector (missing parameters are at
    their default). Scaling is relative to the default, so a default stays a default at any intensity.
    """
    scale = check_intensity(intensity)
    total = {p.name: 0.0 for p in PARAMETERS}
    for preset, weight in weighted_presets:
        for name, value in preset.items():
            spec = parameter(name)
            total[name] += float(weight) * (float(value) - spec.default)
    return Expression({name: clamp(name, PARAMETER_BY_NAME[name].default + scale * delta)
                       for name, delta in total.items()})


def parse_assignment(text: str) -> tuple[str, float]:
    """Parse `PARAM=VALUE` (as given to `--set`) into a validated (name, value) pair."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name or not raw.strip():
        raise UsageError(f"--set takes PARAM=VALUE, got '{text}'")
    return name, check_value(parameter(name).name, raw.strip())  # type: ignore[arg-type]  # parsed there


def parse_weighted_name(text: str) -> tuple[str, float]:
    """Parse `NAME[:WEIGHT]` (as given to `--emotion`) into (name, weight); weight defaults to 1."""
    name, sep, raw = text.partition(":")
    name = name.strip()
    if not name:
        raise UsageError(f"--emotion takes NAME[:WEIGHT], got '{text}'")
    if not sep:
        return name, 1.0
    try:
        weight = float(raw)
    except ValueError:
        raise UsageError(f"the weight in --emotion {text} must be a number") from None
    if weight != weight:  # NaN
        raise UsageError(f"the weight in --emotion {text} must be a number")
    if not 0.0 <= weight <= 2.0:
        raise UsageError(f"the weight in --emotion {text} is out of range: weights take 0 to 2")
    return name, weight
