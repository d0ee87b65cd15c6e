"""Hook specifications: what a FaceSynth plugin may implement.

A plugin is a module (or object) with functions marked `@engine.hookimpl` whose names are below. Hooks are
for discovery only: they run once at start-up (and on a rescan). Per-frame work is plain method calls on the
objects a plugin registers.
"""

from __future__ import annotations

from typing import Callable

import pluggy

from engine import PROJECT_NAME

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def register_emotions(register: Callable[..., None]) -> None:
    """Register emotion presets. Called once per plugin at start-up and on every rescan.

    :param register: call it once per emotion as
        ``register(id, params, *, label=None, description="", recognise=None)``:
        ``id`` a short lowercase name (``"happy"``); ``params`` a partial expression vector, parameter name to
        value, each inside its range (see ``engine.expression.PARAMETERS``); ``label`` the name shown in the
        UI; ``recognise`` an optional mapping of blendshape name to weight that says how the analysis stage
        recognises this emotion on a face (positive weights for blendshapes that rise with it).

    Results are not combined: everything is done through ``register``. A later source overrides an earlier
    one with the same id (built-in < entry point < drop-in file), and the override is logged.
    """


@hookspec
def register_backends(register: Callable[..., None]) -> None:
    """Register synthesis backends. Called once per plugin at start-up and on every rescan.

    :param register: call it once per backend as ``register(backend)``, where ``backend`` follows the
        ``engine.backend.Backend`` protocol: attributes ``id`` and ``label``, and methods
        ``availability(settings) -> (bool, reason)`` and ``synthesize(request) -> SynthesisResult``, and
        optionally ``prepare(settings)`` (load what the first request needs; see the protocol).

    Overrides by id follow the same precedence as emotions.
    """


HOOK_NAMES = ("register_emotions", "register_backends")
