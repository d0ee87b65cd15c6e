"""Finding and loading plugins: built-ins, installed entry points, and drop-in `.py` files.

Each plugin is loaded and registered on its own, inside its own `try`: a plugin that fails (syntax error,
import error, unknown hook, exception while registering) is recorded with a short reason and everything else
still loads. `FACESYNTH_STRICT_PLUGINS=1` (setting `strict_plugins`) turns the first failure into an error.

Drop-in files are code: they are loaded only from the app's `plugins.d/`, the user's config folder
(`~/.config/facesynth/plugins.d/`) and folders named by `FACESYNTH_PLUGINS_DIR` or `--plugins-dir`, never
from the current directory (an empty folder name is refused). The built-ins are imported from the app's own
`plugins/` package, whatever `sys.path` holds, so a `./plugins/` folder cannot stand in for them.

Third-party code (entry points, drop-ins) runs on a helper thread with a time limit (setting `plugin_timeout`):
a plugin that hangs, calls `sys.exit` or raises `KeyboardInterrupt` is a failed plugin with its reason, and a
real Ctrl+C still reaches the main thread, which only waits.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import stat
import sys
import threading
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable

import pluggy
import structlog

from engine import PROJECT_NAME, hookspecs
from engine.config import APP_DIR, Settings, user_config_dir
from engine.errors import PluginError, UsageError
from engine.registry import (
    BUILTIN,
    DROP_IN,
    ENTRY_POINT,
    BackendEntry,
    PluginInfo,
    Registry,
    check_backend,
    make_emotion,
)

log = structlog.get_logger()

# Built-in behaviour is written as plugins too, listed explicitly (no scanning of plugins/).
BUILTIN_PLUGINS = ("plugins.emotions", "plugins.landmark_warp", "plugins.segmind")
ENTRY_POINT_GROUP = "facesynth.plugins"
_IMPL_ATTR = f"{PROJECT_NAME}_impl"


def dropin_dirs(settings: Settings, extra: Iterable[str] = ()) -> list[Path]:
    """Folders searched for drop-in plugin files, in load order (later ones override earlier ones).

    An empty name would mean the current folder, so it is a usage error, wherever it comes from.
    """
    named = [*settings.plugins_dir, *extra]
    if any(not str(name).strip() for name in named):
        raise UsageError("an empty plugin folder name (--plugins-dir, FACESYNTH_PLUGINS_DIR or plugins_dir) would "
                         "load code from the current folder; name the folder, e.g. --plugins-dir ./my-plugins")
    folders = [APP_DIR / "plugins.d", user_config_dir() / "plugins.d"]
    folders += [Path(p).expanduser() for p in named]
    unique: list[Path] = []
    for folder in folders:
        resolved = folder.resolve()
        if resolved not in unique:
            unique.append(resolved)
    return unique


class PluginTimeout(Exception):
    """A plugin's import or hook did not finish within the setting `plugin_timeout`."""


class PluginRaised(Exception):
    """Plugin code run by `run_limited` raised `original` (any BaseException, SystemExit and
    KeyboardInterrupt included), so that only the waiting thread's own KeyboardInterrupt stays one."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


def _short_reason(exc: BaseException) -> str:
    if isinstance(exc, PluginRaised):
        exc = exc.original
    if isinstance(exc, (PluginTimeout, PluginError)):  # our own sentences
        return str(exc)
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r}){where}"
    if isinstance(exc, KeyboardInterrupt):
        return f"raised KeyboardInterrupt{where}"
    return f"{type(exc).__name__}: {exc}{where}"


SLOW_NOTICE = 1.0  # seconds: plugin code still running after this is reported while it is waited for


def run_limited(call: Callable[[], Any], seconds: float, what: str, plugin: str = "") -> Any:
    """Run plugin code on a daemon thread and wait at most `seconds` for it.

    Whatever the code raises (SystemExit and KeyboardInterrupt included) is raised here wrapped in
    PluginRaised; a call that does not finish raises PluginTimeout and is left behind (a daemon thread does not
    hold the app at exit). The calling thread only waits, so a real Ctrl+C reaches it as KeyboardInterrupt.
    Code still running after `SLOW_NOTICE` seconds is logged (`plugin_slow`, naming `plugin`): a start that
    seems to hang says what it waits for.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: B036 (handed to the waiting thread, which decides)
            outcome["error"] = exc

    worker = threading.Thread(target=target, name=f"plugin {what}", daemon=True)
    worker.start()
    worker.join(min(seconds, SLOW_NOTICE))
    if worker.is_alive() and seconds > SLOW_NOTICE:
        log.warning("plugin_slow", plugin=plugin, call=what, limit_s=seconds,
                    note="still waiting for it (setting plugin_timeout); Ctrl+C stops facesynth")
        worker.join(seconds - SLOW_NOTICE)
    if worker.is_alive():
        raise PluginTimeout(f"did not finish {what} within {seconds:g} s (setting plugin_timeout)")
    if "error" in outcome:
        raise PluginRaised(outcome["error"]) from outcome["error"]
    return outcome.get("value")


def _check_dropin(path: Path) -> str:
    """Why `path` cannot be a drop-in file ('' when it can): folders, dangling links, devices are refused."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "a link to nothing (dangling symbolic link)" if path.is_symlink() else "vanished while loading"
    except OSError as exc:
        return f"cannot be read: {exc.strerror}"
    if stat.S_ISDIR(mode):
        return "a folder, not a .py file"
    if not stat.S_ISREG(mode):
        return "not a regular file (a pipe or a device)"
    return ""


def _builtin_package() -> ModuleType:
    """The app's own `plugins` package, loaded from the folder next to `engine/`, never found on sys.path.

    An empty entry in PYTHONPATH puts the current folder on sys.path, where a `./plugins/` folder would win.
    """
    package_dir = (APP_DIR / "plugins").resolve()
    current = sys.modules.get("plugins")
    if current is not None:
        if _inside(getattr(current, "__file__", None), package_dir):
            return current
        where = getattr(current, "__file__", None) or list(getattr(current, "__path__", []))
        raise ImportError(f"another module named 'plugins' ({where}) was imported instead of the built-ins in "
                          f"{package_dir}; start facesynth from another folder or remove empty PYTHONPATH entries")
    spec = importlib.util.spec_from_file_location("plugins", package_dir / "__init__.py",
                                                  submodule_search_locations=[str(package_dir)])
    if spec is None or spec.loader is None:
        raise ImportError(f"the built-in plugins are missing from {package_dir}")
    package = importlib.util.module_from_spec(spec)
    sys.modules["plugins"] = package
    try:
        spec.loader.exec_module(package)
    except BaseException:
        sys.modules.pop("plugins", None)
        raise
    return package


def _inside(filename: str | None, folder: Path) -> bool:
    if not filename:
        return False
    try:
        Path(filename).resolve().relative_to(folder)
    except ValueError:
        return False
    return True


def _import_builtin(module_name: str) -> ModuleType:
    """Import a built-in plugin module from the app's `plugins/` folder (see `_builtin_package`)."""
    package_dir = Path(str(_builtin_package().__file__)).resolve().parent
    module = importlib.import_module(module_name)
    if not _inside(getattr(module, "__file__", None), package_dir):
        raise ImportError(f"{module_name} was imported from {getattr(module, '__file__', '?')}, outside {package_dir}")
    return module


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
        folders = dropin_dirs(self.settings, self.extra_dirs)  # a bad folder name stops before any code runs
        for module_name in BUILTIN_PLUGINS:
            self._load(module_name, BUILTIN, BUILTIN, functools.partial(_import_builtin, module_name))
        for entry_point in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            self._load(entry_point.name, ENTRY_POINT, f"entry point {entry_point.name}", entry_point.load)
        named = {Path(p).expanduser().resolve() for p in (*self.settings.plugins_dir, *self.extra_dirs)}
        for folder in folders:
            if not folder.is_dir():
                if folder in named:  # named by the user: say so, it may be a typo
                    log.warning("plugin_folder_missing", folder=str(folder))
                continue
            for path in sorted(folder.glob("*.py")):
                if not path.name.startswith("_"):
                    self._load(path.stem, DROP_IN, str(path), functools.partial(_import_file, path))
        return self.registry

    def _limited(self, kind: str, call: Callable[[], Any], what: str, source: str) -> Any:
        """Built-ins run as they are; third-party code (from `source`) runs with the `plugin_timeout` limit."""
        if kind == BUILTIN:
            return call()
        return run_limited(call, self.settings.plugin_timeout, what, source)

    def _fail(self, name: str, kind: str, source: str, exc: BaseException, hooks: tuple[str, ...]) -> None:
        reason = _short_reason(exc)
        self.registry.plugins.append(PluginInfo(name, kind, source, "failed", reason, hooks))
        log.warning("plugin_failed", plugin=name, source=source, reason=reason)
        if self.settings.strict_plugins:
            raise PluginError(f"plugin {name} ({source}) failed: {reason}") from exc

    def _load(self, name: str, kind: str, source: str, importer: Callable[[], Any]) -> None:
        text = ""
        if kind == DROP_IN:
            problem = _check_dropin(Path(source))
            if problem:
                self._fail(name, kind, source, PluginError(problem), ())
                return
            try:
                text = Path(source).read_text(errors="replace")
            except OSError as exc:
                self._fail(name, kind, source, PluginError(f"cannot be read: {exc.strerror}"), ())
                return
        try:
            plugin = self._limited(kind, importer, "loading", source)
        except KeyboardInterrupt:
            raise  # the user's Ctrl+C (a plugin's own comes wrapped in PluginRaised)
        except BaseException as exc:  # SystemExit in a built-in's import must not end the app either
            self._fail(name, kind, source, exc, _declared_hooks(None, text))
            return
        hooks: tuple[str, ...] = ()
        try:
            hooks = _declared_hooks(plugin)  # inside the guard: a module's own __getattr__ may raise
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
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a hook's sys.exit (or a KeyboardInterrupt it raised) is its failure
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
                    arguments = [register for _ in impl.argnames]
                    self._limited(kind, functools.partial(impl.function, *arguments), f"its hook {hook_name}",
                                  source)
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
