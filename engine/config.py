"""Settings: defaults < facesynth.toml (app folder, then user config folder) < environment < command-line flags.

Every setting has one name. In `facesynth.toml` it is a top-level key (or `key` inside a `[segmind]` table
for the `segmind_*` settings); in the environment it is `FACESYNTH_` + the name in upper case; the Segmind key
is also read from `SEGMIND_API_KEY`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

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

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with the API key hidden (safe to log or store)."""
        values = dataclasses.asdict(self)
        values["segmind_api_key"] = "set" if self.segmind_api_key else ""
        return values

    def resolved_cache_dir(self) -> Path:
        """Where cached backend results live (a setting, else the user's cache folder)."""
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "facesynth"


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_CHOICES = {"faces": None, "segmind_upload": ("face", "full"), "segmind_image_format": ("png", "jpeg", "webp"),
            "log_level": ("debug", "info", "warning", "error")}


def _coerce(name: str, value: Any, origin: str) -> Any:
    """Turn a raw value (TOML value or environment string) into the type of setting `name`."""
    kind = _FIELDS[name].type
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
        if kind == "int":
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError(value)
            return int(float(value))
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if kind == "tuple[str, ...]":
            if isinstance(value, str):
                return tuple(part for part in value.split(os.pathsep) if part)
            return tuple(str(part) for part in value)
        return str(value)
    except (TypeError, ValueError):
        raise UsageError(f"setting {name} from {origin} has a bad value {value!r} (expected {kind})") from None


def _check_choice(name: str, value: Any, origin: str) -> None:
    choices = _CHOICES.get(name)
    if choices and value not in choices:
        raise UsageError(f"setting {name} from {origin} is {value!r}; choose one of {', '.join(choices)}")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key == "segmind" and isinstance(value, dict):
            flat.update({f"segmind_{inner}": inner_value for inner, inner_value in value.items()})
        else:
            flat[key] = value
    unknown = sorted(set(flat) - set(_FIELDS))
    if unknown:
        raise UsageError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(_FIELDS)}")
    return {key: _coerce(key, value, str(path)) for key, value in flat.items()}


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
            raise UsageError(f"settings file {path} (from FACESYNTH_CONFIG) does not exist")
        values.update(_read_toml(path))
    for name in _FIELDS:
        key = f"FACESYNTH_{name.upper()}"
        if key in env:
            values[name] = _coerce(name, env[key], key)
    if env.get("SEGMIND_API_KEY") and "FACESYNTH_SEGMIND_API_KEY" not in env:
        values["segmind_api_key"] = env["SEGMIND_API_KEY"]
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = _coerce(name, value, "the command line")
    for name, value in values.items():
        _check_choice(name, value, "settings")
    return Settings(**values)


def key_source() -> str:
    """Where the Segmind key is read from, for error messages (never the key itself)."""
    files = " or ".join(str(path) for path in (APP_DIR / "facesynth.toml", user_config_dir() / "facesynth.toml"))
    return f"SEGMIND_API_KEY (environment) or segmind.api_key in {files}"
