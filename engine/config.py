"""Settings: defaults < facesynth.toml (app folder, then user config folder) < environment < command-line flags.

Every setting has one name. In `facesynth.toml` it is a top-level key (or `key` inside a `[segmind]` table
for the `segmind_*` settings); in the environment it is `FACESYNTH_` + the name in upper case; the Segmind key
is also read from `SEGMIND_API_KEY`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from engine.errors import UsageError

APP_DIR = Path(__file__).resolve().parent.parent


def user_config_dir() -> Path:
    """The user's config folder for FaceSynth (XDG_CONFIG_HOME/facesynth, else ~/.config/facesynth)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "facesynth"


@dataclass(frozen=True)
class Settings:
    """Every setting of the app with its default. Read with `load_settings`."""

    output_dir: str = "captures"
    backend: str = "landmark-warp"
    faces: str = "all"
    log_json: bool = False
    log_level: str = "warning"
    plugins_dir: tuple[str, ...] = ()
    strict_plugins: bool = False
    landmarker_model: str = ""
    max_megapixels: float = 50.0
    min_face_px: float = 20.0
    live_max_faces: int = 1
    camera_retries: int = 5
    segmind_api_key: str = field(default="", repr=False)
    segmind_url: str = "https://api.segmind.com/v1"
    segmind_rpm: float = 5.0
    segmind_connect_timeout: float = 5.0
    segmind_read_timeout: float = 60.0
    segmind_upload: str = "face"
    segmind_image_format: str = "png"
    segmind_max_response_mb: float = 40.0
    cache_dir: str = ""
    no_cache: bool = False
    plugin_timeout: float = 10.0
    workers: int = 0  # worker processes for a batch; 0: one per core
    output_format: str = ""  # png, jpg or webp; empty: each input's own format
    video_crf: int = 20
    camera_size: str = ""  # WxH asked of a camera; empty: the camera's default
    camera_fps: float = 0.0  # frames per second asked of a camera; 0: the camera's default
    # Each plugin's own table, `[plugins.<id>]` in facesynth.toml (Segmind's is also read as its settings
    # above, for which `[segmind]` is the older spelling).
    plugin_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def plugin(self, plugin_id: str) -> Mapping[str, Any]:
        """A plugin's own settings: the `[plugins.<id>]` table of facesynth.toml (empty when there is none).
        The plugin reads and checks them itself; the core only carries them."""
        return self.plugin_settings.get(plugin_id, {})

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with the API key hidden (safe to log or store)."""
        values = dataclasses.asdict(self)
        values["segmind_api_key"] = "set" if self.segmind_api_key else ""
        values["plugin_settings"] = sorted(self.plugin_settings)  # a plugin's table may hold its secrets
        return values

    def resolved_cache_dir(self) -> Path:
        """Where cached backend results live (a setting, else the user's cache folder)."""
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "facesynth"


_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name != "plugin_settings"}
BUILT_IN_TABLES = ("segmind",)  # plugins whose settings are core fields (segmind_*), checked by the rules below


def api_key_problem(key: str) -> str:
    """What is wrong with an API key for an HTTP header ('' when nothing); never quotes the key itself."""
    bad = [ch for ch in key if not "!" <= ch <= "~"]
    if not bad:
        return ""
    kinds = sorted({"a space" if ch == " " else "a non-ASCII character" if ord(ch) > 127
                    else "a control character (line break, tab)" for ch in bad})
    return f"holds {' and '.join(kinds)} that an HTTP header cannot carry; copy the key again"

LANDMARKER_FILES = ("face_detector.tflite", "face_landmarks_detector.tflite", "face_blendshapes.tflite")
MIN_RPM = 0.1  # below this the next call would wait over ten minutes: surely a mistake


def _choice(*choices: str) -> Callable[[Any], str]:
    return lambda value: "" if value in choices else f"choose one of {', '.join(choices)}"


def _number(low: float, high: float = math.inf, *, low_open: bool = False, why: str = "") -> Callable[[Any], str]:
    """A check for a number in [low, high] (or (low, high] with `low_open`); nan and infinities never pass."""
    def check(value: float) -> str:
        inside = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
        if inside:
            return ""
        lower = f"above {low:g}" if low_open else f"at least {low:g}"
        upper = f" and at most {high:g}" if math.isfinite(high) else ""
        return f"it must be a number {lower}{upper}{why}"
    return check


def _control(value: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in value)


def _text(value: str) -> str:
    if _control(value):
        return "it holds a control character (a line break, a tab or a NUL)"
    return "" if value.strip() else "it must not be empty"


def _camera_size(value: str) -> str:
    """A camera size `WxH` (or empty for the camera's default)."""
    if not value:
        return ""
    width, sep, height = value.lower().partition("x")
    if sep and width.isdigit() and height.isdigit() and 16 <= int(width) <= 8192 and 16 <= int(height) <= 8192:
        return ""
    return "give it as WIDTHxHEIGHT, e.g. 1920x1080"


def _optional_path(value: str) -> str:
    return "it holds a control character (a line break, a tab or a NUL)" if _control(value) else ""


def _folders(value: tuple[str, ...]) -> str:
    if any(not part.strip() for part in value):
        return "it holds an empty folder name, which would mean the current folder; name each folder"
    return next((problem for problem in map(_text, value) if problem), "")


def _url(value: str) -> str:
    if any(not "!" <= ch <= "~" for ch in value):
        return "it holds a space, a control character or a non-ASCII character; give a plain address"
    parts = urllib.parse.urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc:
        return ""
    return "it must be an http:// or https:// address with a host, e.g. https://api.segmind.com/v1"


def _landmarker_model(value: str) -> str:
    """'' (the packaged model) or a Face Landmarker bundle: a zip holding the landmarker's model files."""
    if not value or _optional_path(value):
        return _optional_path(value)
    path = Path(value).expanduser()
    if not path.is_file():
        return f"{path} is not a file"
    try:
        with zipfile.ZipFile(path) as bundle:
            names = set(bundle.namelist())
    except (zipfile.BadZipFile, OSError):
        return f"{path} is not a Face Landmarker model (a face_landmarker.task bundle)"
    missing = [name for name in LANDMARKER_FILES if name not in names]
    if missing:
        return f"{path} is not a Face Landmarker model bundle (it lacks {', '.join(missing)})"
    return ""


# Each setting's check: value -> "" when fine, else what is wrong (a sentence part that never quotes a secret).
_RULES: dict[str, Callable[[Any], str]] = {
    "output_dir": _text,
    "backend": _text,
    "faces": _text,
    "log_level": _choice("debug", "info", "warning", "error"),
    "plugins_dir": _folders,
    "landmarker_model": _landmarker_model,
    "max_megapixels": _number(0, 1000, low_open=True),
    "min_face_px": _number(0, 10000),
    "live_max_faces": _number(1, 8),
    "camera_retries": _number(0, 1000),
    "segmind_api_key": api_key_problem,
    "segmind_url": _url,
    "segmind_rpm": _number(MIN_RPM, why=f" (requests per minute; below {MIN_RPM:g} a call waits over 10 minutes)"),
    "segmind_connect_timeout": _number(0, 3600, low_open=True, why=" (seconds)"),
    "segmind_read_timeout": _number(0, 3600, low_open=True, why=" (seconds)"),
    "segmind_upload": _choice("face", "full"),
    "segmind_image_format": _choice("png", "jpeg", "webp"),
    "segmind_max_response_mb": _number(0, 1000, low_open=True),
    "cache_dir": _optional_path,
    "plugin_timeout": _number(0, 3600, low_open=True, why=" (seconds)"),
    "output_format": lambda value: "" if value in ("", "png", "jpg", "jpeg", "webp") else
    "choose one of png, jpg, webp (or leave it empty for each input's own format)",
    "workers": _number(0, 256, why=" (0: one per core)"),
    "video_crf": _number(0, 51, why=" (x264's quality scale: lower is better and larger; 20 by default)"),
    "camera_size": _camera_size,
    "camera_fps": _number(0, 240, why=" (0: the camera's own)"),
}


def _coerce(name: str, value: Any, origin: str) -> Any:
    """Turn a raw value (TOML value or environment string) into the type of setting `name`."""
    kind = str(_FIELDS[name].type)
    raw: Any = value  # checked below; kept untyped so each branch converts it as its kind needs
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(value)
        if isinstance(value, bool) or not isinstance(value, (str, int, float) if kind != "tuple[str, ...]"
                                                     else (str, list, tuple)):
            raise TypeError(value)
        if kind == "int":
            if float(raw) != int(float(raw)):
                raise ValueError(value)
            return int(float(raw))
        if kind == "float":
            return float(raw)
        if kind == "tuple[str, ...]":
            if isinstance(value, str):
                # an empty variable means no folders; an empty entry inside a list is refused by its rule
                return tuple(value.split(os.pathsep)) if value else ()
            if not all(isinstance(part, str) for part in raw):
                raise TypeError(value)
            return tuple(raw)
        if not isinstance(value, str):
            raise TypeError(value)
        return value.strip() if name == "segmind_api_key" else value
    except (TypeError, ValueError, OverflowError):
        expected = {"tuple[str, ...]": "a list of folder names", "str": "text", "float": "a number",
                    "int": "a whole number", "bool": "true or false"}.get(kind, kind)
        shown = "(hidden)" if name == "segmind_api_key" else repr(value)
        raise UsageError(f"setting {name} from {origin} has a bad value {shown} (expected {expected})") from None


def _setting(name: str, raw: Any, origin: str) -> Any:
    """One setting's value from `origin`, coerced to its type and checked against its rule."""
    value = _coerce(name, raw, origin)
    problem = _RULES.get(name, lambda _: "")(value)
    if problem:
        shown = "" if name == "segmind_api_key" else f" is {value!r}:"  # a key is never quoted
        raise UsageError(f"setting {name} from {origin}{shown} {problem}")
    return value


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"settings file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise UsageError(f"cannot read settings file {path}: {exc.strerror}") from None
    flat: dict[str, Any] = {}
    tables: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if key == "plugins" and isinstance(value, dict):
            for plugin_id, table in value.items():
                if not isinstance(table, dict):
                    raise UsageError(f"{path}: plugins.{plugin_id} must be a table ([plugins.{plugin_id}])")
                if plugin_id in BUILT_IN_TABLES:
                    flat.update({f"{plugin_id}_{inner}": inner_value for inner, inner_value in table.items()})
                else:
                    tables[plugin_id] = dict(table)
        elif key in BUILT_IN_TABLES and isinstance(value, dict):
            flat.update({f"{key}_{inner}": inner_value for inner, inner_value in value.items()})
        else:
            flat[key] = value
    unknown = sorted(set(flat) - set(_FIELDS))
    if unknown:
        raise UsageError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(_FIELDS)}")
    checked = {key: _setting(key, value, str(path)) for key, value in flat.items()}
    if tables:
        checked["plugin_settings"] = tables
    return checked


def config_files(env: Mapping[str, str]) -> list[Path]:
    """The settings files read, lowest precedence first (FACESYNTH_CONFIG names one explicitly)."""
    if env.get("FACESYNTH_CONFIG"):
        return [Path(env["FACESYNTH_CONFIG"]).expanduser()]
    return [path for path in (APP_DIR / "facesynth.toml", user_config_dir() / "facesynth.toml") if path.is_file()]


def load_settings(flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from defaults, files, environment and `flags` (None values in flags are ignored)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for path in config_files(env):
        if not path.is_file():
            raise UsageError(f"settings file {path} (from FACESYNTH_CONFIG) does not exist or is not a file")
        read = _read_toml(path)
        tables = {**values.get("plugin_settings", {}), **read.pop("plugin_settings", {})}
        values.update(read)
        if tables:
            values["plugin_settings"] = tables
    for name in _FIELDS:
        key = f"FACESYNTH_{name.upper()}"
        if key in env:
            values[name] = _setting(name, env[key], key)
    if env.get("SEGMIND_API_KEY") and "FACESYNTH_SEGMIND_API_KEY" not in env:
        values["segmind_api_key"] = _setting("segmind_api_key", env["SEGMIND_API_KEY"], "SEGMIND_API_KEY")
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = _setting(name, value, "the command line")
    return Settings(**values)


def key_source() -> str:
    """Where the Segmind key is read from, for error messages (never the key itself)."""
    files = " or ".join(str(path) for path in (APP_DIR / "facesynth.toml", user_config_dir() / "facesynth.toml"))
    return f"SEGMIND_API_KEY (environment) or segmind.api_key in {files}"
