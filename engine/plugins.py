"""Finding and loading plugins: built-ins, installed entry points, and drop-in `.py` files.

Each plugin is loaded and registered on its own, inside its own `try`: a plugin that fails (syntax error,
import error, unknown hook, exception while registering) is recorded with a short reason and everything else
still loads. `FACESYNTH_STRICT_PLUGINS=1` (setting `strict_plugins`) turns the first failure into an error.

Drop-in files are code: they are loaded only from the app's `plugins.d/`, the user's config folder
(`~/.config/facesynth/plugins.d/`) and folders named by `FACESYNTH_PLUGINS_DIR` or `--plugins-dir`, never
from the current directory.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable

import pluggy
import structlog

from engine import PROJECT_NAME, hookspecs
from engine.config import APP_DIR, Settings, user_config_dir
from engine.errors import PluginError
from engine.registry import (BUILTIN, DROP_IN, ENTRY_POINT, BackendEntry, PluginInfo, Registry, check_backend,
                             make_emotion)

log = structlog.get_logger()

# Built-in behaviour is written as plugins too, listed explicitly (no scanning of plugins/).
BUILTIN_PLUGINS = ("plugins.emotions", "plugins.landmark_warp", "plugins.segmind")
ENTRY_POINT_GROUP = "facesynth.plugins"
_IMPL_ATTR = f"{PROJECT_NAME}_impl"


def dropin_dirs(settings: Settings, extra: Iterable[str] = ()) -> list[Path]:
    """Folders searched for drop-in plugin files, in load order (later ones override earlier ones)."""
    folders = [APP_DIR / "plugins.d", user_config_dir() / "plugins.d"]
    folders += [Path(p).expanduser() for p in (*settings.plugins_dir, *extra)]
    unique: list[Path] = []
    for folder in folders:
        resolved = folder.resolve()
        if resolved not in unique:
            unique.append(resolved)
    return unique


def _short_reason(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _declared_hooks(module: Any, text: str = "") -> tuple[str, ...]:
    """The hook names a plugin declares, from its functions or, if it did not import, from its source text."""
    if module is not None:
        return tuple(name for name in hookspecs.HOOK_NAMES if hasattr(getattr(module, name, None), _IMPL_ATTR))
    return tuple(name for name in hookspecs.HOOK_NAMES if name in text)


class PluginLoader:
    """Loads every plugin into a fresh `Registry`; call `load()` again to rescan."""

    def __init__(self, settings: Settings, extra_dirs: Iterable[str] = ()) -> None:
        self.settings = settings
        self.extra_dirs = tuple(extra_dirs)

    def load(self) -> Registry:
        """Load built-ins, then entry points, then drop-in files, and return the registry."""
        self.registry = Registry()
        self.manager = pluggy.PluginManager(PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        for module_name in BUILTIN_PLUGINS:
            self._load(module_name, BUILTIN, BUILTIN, lambda name=module_name: importlib.import_module(name))
        for entry_point in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            self._load(entry_point.name, ENTRY_POINT, f"entry point {entry_point.name}", entry_point.load)
        for folder in dropin_dirs(self.settings, self.extra_dirs):
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.py")):
                if not path.name.startswith("_"):
                    self._load(path.stem, DROP_IN, str(path), lambda p=path: _import_file(p))
        return self.registry

    def _fail(self, name: str, kind: str, source: str, exc: BaseException, hooks: tuple[str, ...]) -> None:
        reason = _short_reason(exc)
        self.registry.plugins.append(PluginInfo(name, kind, source, "failed", reason, hooks))
        log.warning("plugin_failed", plugin=name, source=source, reason=reason)
        if self.settings.strict_plugins:
            raise PluginError(f"plugin {name} ({source}) failed: {reason}") from exc

    def _load(self, name: str, kind: str, source: str, importer: Callable[[], Any]) -> None:
        text = Path(source).read_text(errors="replace") if kind == DROP_IN else ""
        try:
            plugin = importer()
        except BaseException as exc:  # SystemExit in a plugin's import must not end the app either
            if isinstance(exc, KeyboardInterrupt):
                raise
            self._fail(name, kind, source, exc, _declared_hooks(None, text))
            return
        hooks = _declared_hooks(plugin)
        try:
            unknown = [attr for attr in dir(plugin)
                       if hasattr(getattr(plugin, attr, None), _IMPL_ATTR) and attr not in hookspecs.HOOK_NAMES]
            if unknown:
                raise PluginError(f"unknown hook {', '.join(unknown)}; known hooks: {', '.join(hookspecs.HOOK_NAMES)}")
            if not hooks:
                raise PluginError("no hook implementations (mark functions with @engine.hookimpl)")
            registered_name = f"{kind}:{source}"
            if self.manager.get_plugin(registered_name) is not None:
                self.manager.unregister(name=registered_name)
            self.manager.register(plugin, name=registered_name)
            staged = self._collect(plugin, kind, source)
        except Exception as exc:
            if self.manager.is_registered(plugin):
                self.manager.unregister(plugin)
            self._fail(name, kind, source, exc, hooks)
            return
        # Only a plugin whose every hook succeeded adds anything: no half-registered plugins.
        for add, entry in staged:
            add(entry)
        self.registry.plugins.append(PluginInfo(name, kind, source, "loaded", "", hooks))
        log.info("plugin_loaded", plugin=name, source=source, hooks=list(hooks))

    def _collect(self, plugin: Any, kind: str, source: str) -> list[tuple[Callable[[Any], None], Any]]:
        staged: list[tuple[Callable[[Any], None], Any]] = []

        def register_emotion(emotion_id: str, params: Any = None, **options: Any) -> None:
            staged.append((self.registry.add_emotion,
                           make_emotion(emotion_id, params, source=source, kind=kind, **options)))

        def register_backend(backend: Any) -> None:
            check_backend(backend)
            staged.append((self.registry.add_backend,
                           BackendEntry(backend.id, getattr(backend, "label", backend.id), backend, source, kind)))

        registers = {"register_emotions": register_emotion, "register_backends": register_backend}
        for hook_name, register in registers.items():
            for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
                if impl.plugin is plugin:
                    impl.function(*[register for _ in impl.argnames])
        return staged


def _import_file(path: Path) -> ModuleType:
    """Import one drop-in file under a private module name (two folders may hold files of the same name)."""
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    module_name = f"facesynth_dropin_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def load_plugins(settings: Settings, extra_dirs: Iterable[str] = ()) -> Registry:
    """Load every plugin and return the registry (the usual entry point for the CLI and the launcher)."""
    return PluginLoader(settings, extra_dirs).load()


def hook_docs() -> dict[str, str]:
    """Each hook's docstring, by name (for docs and the meta-test that every hook is documented)."""
    return {name: inspect.getdoc(getattr(hookspecs, name)) or "" for name in hookspecs.HOOK_NAMES}
