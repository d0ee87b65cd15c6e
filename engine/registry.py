"""The registry: every emotion and backend the plugins registered, with where each came from.

Duplicate ids are resolved here: a drop-in file overrides an entry point, which overrides a built-in; among
equals the later one wins. Every override is logged.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import structlog

from engine.backend import Backend
from engine.errors import FaceSynthError, UsageError
from engine.expression import Expression, check_value, mix
from engine.guard import guard

log = structlog.get_logger()

BUILTIN, ENTRY_POINT, DROP_IN = "built-in", "entry point", "drop-in"
AUTO_ID = "auto"  # the --backend value that picks among backends; no backend may take it
SOURCE_RANK = {BUILTIN: 0, ENTRY_POINT: 1, DROP_IN: 2}


@dataclass(frozen=True)
class PluginInfo:
    """One plugin as loaded: its name, where it came from, and whether it loaded."""

    name: str
    kind: str  # built-in, entry point, drop-in
    source: str  # "built-in", "entry point <name>", or the drop-in file's path
    status: str  # loaded or failed
    reason: str = ""
    hooks: tuple[str, ...] = ()


@dataclass(frozen=True)
class EmotionEntry:
    """A registered emotion: a named preset of the expression vector."""

    id: str
    label: str
    params: Mapping[str, float]
    source: str
    kind: str
    description: str = ""
    recognise: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class BackendEntry:
    """A registered backend object with its provenance."""

    id: str
    label: str
    backend: Backend
    source: str
    kind: str


def make_emotion(emotion_id: Any, params: Any, *, label: str | None = None, description: str = "",
                 recognise: Mapping[str, float] | None = None, source: str = BUILTIN,
                 kind: str = BUILTIN) -> EmotionEntry:
    """Validate what a plugin passed to `register` for an emotion and build its entry."""
    if not isinstance(emotion_id, str) or not emotion_id.strip() or any(ch in emotion_id for ch in ":= "):
        raise ValueError(f"an emotion id must be a non-empty name without ':', '=' or spaces, got {emotion_id!r}")
    if not isinstance(params, Mapping) or not params:
        raise ValueError(f"emotion {emotion_id}: params must be a non-empty mapping of parameter to value")
    if not isinstance(label, (str, type(None))) or not isinstance(description, str):
        raise ValueError(f"emotion {emotion_id}: label and description must be text")
    try:
        checked = {name: check_value(name, value) for name, value in params.items()}
    except UsageError as exc:
        raise ValueError(f"emotion {emotion_id}: {exc}") from None
    return EmotionEntry(id=emotion_id.strip().lower(), label=label or emotion_id.strip().capitalize(),
                        params=checked, source=source, kind=kind, description=description,
                        recognise=_check_recognise(emotion_id, recognise))


def _check_recognise(emotion_id: str, recognise: Any) -> dict[str, float]:
    """The `recognise` weights as blendshape name -> finite number; anything else is a registration error."""
    if recognise is None:
        return {}
    if not isinstance(recognise, Mapping):
        raise ValueError(f"emotion {emotion_id}: recognise must be a mapping of blendshape name to weight, "
                         f"got {type(recognise).__name__}")
    weights = {}
    for name, weight in recognise.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"emotion {emotion_id}: recognise has a blendshape name {name!r}; names are text")
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(weight):
            raise ValueError(f"emotion {emotion_id}: recognise weight of {name} is {weight!r}; weights are "
                             "finite numbers")
        weights[name] = float(weight)
    return weights


def check_backend(backend: Any) -> None:
    """Raise ValueError when `backend` lacks what the Backend protocol needs."""
    missing = [name for name in ("id", "label", "availability", "synthesize") if not hasattr(backend, name)]
    if missing:
        raise ValueError(f"backend {backend!r} lacks {', '.join(missing)}")
    if not isinstance(backend.id, str) or not backend.id.strip() or backend.id != backend.id.strip():
        raise ValueError(f"backend {backend!r} has no usable id (a non-empty name without surrounding spaces)")
    if backend.id.lower() == AUTO_ID:
        raise ValueError(f"a backend may not take the id '{AUTO_ID}': it names the automatic choice among backends")
    if not isinstance(backend.label, str):
        raise ValueError(f"backend {backend.id}: label must be text")


class Registry:
    """Emotions, backends and plugin records, looked up by id."""

    def __init__(self) -> None:
        self.emotions: dict[str, EmotionEntry] = {}
        self.backends: dict[str, BackendEntry] = {}
        self.plugins: list[PluginInfo] = []

    def _place(self, table: dict, entry: Any, what: str) -> None:
        current = table.get(entry.id)
        if current is not None:
            if SOURCE_RANK[entry.kind] < SOURCE_RANK[current.kind]:
                log.info("override_ignored", what=what, id=entry.id, kept=current.source, ignored=entry.source)
                return
            log.warning("plugin_override", what=what, id=entry.id, replaced=current.source, by=entry.source)
        table[entry.id] = entry

    def add_emotion(self, entry: EmotionEntry) -> None:
        """Add an emotion, resolving a duplicate id by source precedence."""
        self._place(self.emotions, entry, "emotion")

    def add_backend(self, entry: BackendEntry) -> None:
        """Add a backend, resolving a duplicate id by source precedence."""
        self._place(self.backends, entry, "backend")

    def emotion(self, name: str) -> EmotionEntry:
        """The emotion called `name`; an unknown name is a UsageError that lists the known ones."""
        try:
            return self.emotions[name.strip().lower()]
        except KeyError:
            known = ", ".join(sorted(self.emotions)) or "none loaded"
            raise UsageError(f"unknown emotion '{name}'; known emotions: {known}") from None

    def backend(self, backend_id: str) -> BackendEntry:
        """The backend with id `backend_id`; an unknown id is a UsageError that lists the known ones."""
        try:
            return self.backends[backend_id]
        except KeyError:
            known = ", ".join(sorted(self.backends) + ["auto"])
            raise UsageError(f"unknown backend '{backend_id}'; known backends: {known}") from None

    def expression(self, emotions: Iterable[tuple[str, float]] = (), intensity: float = 1.0,
                   overrides: Mapping[str, float] | None = None) -> Expression:
        """The vector for a weighted mix of named emotions, scaled by `intensity`, then exact overrides."""
        presets = [(self.emotion(name).params, weight) for name, weight in emotions]
        return mix(presets, intensity).with_overrides(overrides or {})

    def failed_plugins(self) -> list[PluginInfo]:
        """Plugins that failed to load, with their reasons."""
        return [info for info in self.plugins if info.status == "failed"]

    def listing(self, settings: Any) -> dict[str, list[dict[str, Any]]]:
        """What `facesynth plugins` shows: every emotion and backend with id, label, source, status, reason.

        A plugin that failed is listed with status `failed` under the kind(s) of hook it declares (emotions
        when that cannot be told), so a broken file is visible where a user looks for what it should add.
        """
        emotions = [{"id": e.id, "label": e.label, "source": e.source, "status": "loaded", "reason": ""}
                    for e in sorted(self.emotions.values(), key=lambda e: e.id)]
        backends = []
        for entry in sorted(self.backends.values(), key=lambda b: b.id):
            try:  # plugin code: through the guard, so a failing check is a reason, not a crash
                ok, reason = guard(entry.id, "availability", entry.backend.availability, settings)
            except FaceSynthError as exc:
                ok, reason = False, str(exc)
            row: dict[str, Any] = {"id": entry.id, "label": entry.label, "source": entry.source,
                                   "status": "loaded" if ok else "unavailable", "reason": "" if ok else reason}
            account = getattr(entry.backend, "account", None)
            if callable(account):
                try:  # accounting is a courtesy: never break the listing
                    figures = guard(entry.id, "account", account, settings)
                except FaceSynthError:
                    figures = {}
                if figures:
                    row["account"] = figures
            backends.append(row)
        for info in self.failed_plugins():
            row = {"id": info.name, "label": info.name, "source": info.source, "status": "failed",
                   "reason": info.reason}
            if "register_backends" in info.hooks:
                backends.append(dict(row))
            if "register_emotions" in info.hooks or "register_backends" not in info.hooks:
                emotions.append(dict(row))
        return {"emotions": emotions, "backends": backends}
