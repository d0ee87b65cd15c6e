"""Storage of captures: one folder each with input.png, output.png, compare.png and meta.json.

The input is written first, before any backend runs, so a failing backend loses nothing. Every file is written
atomically (temporary file, then rename).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from engine.errors import UsageError
from engine.imageio import encode_png, write_atomic

META_VERSION = 1


def check_output_dir(path: str | Path, flag: str = "--out") -> Path:
    """Create the output folder if needed and prove it is writable; a `UsageError` says why not (and names `flag`,
    the option that chose the folder)."""
    folder = Path(path).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".facesynth-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = "a file is in the way where a folder should be" \
            if isinstance(exc, (FileExistsError, NotADirectoryError)) else exc.strerror or str(exc)
        raise UsageError(f"cannot write to the output folder {folder}: {reason}; choose another with {flag}") \
            from None
    return folder


def check_output_file(path: str | Path, flag: str) -> Path:
    """Prove a file we will write at the end (`--stats-json`, `--record`) can be written, before any work starts:
    not a folder, in a folder that exists or can be made and is writable. A `UsageError` names the flag."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise UsageError(f"{flag} {target}: is a folder; give a file name")
    try:
        check_output_dir(target.parent, flag)
    except UsageError as exc:
        raise UsageError(f"{flag} {target}: {exc}".replace(f"; choose another with {flag}", "")) from None
    return target


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:40] or "capture"


class Capture:
    """One capture folder being written. Create it with `CaptureStore.new`."""

    def __init__(self, folder: Path, meta: dict[str, Any]) -> None:
        self.folder = folder
        self.meta = meta

    def write_image(self, name: str, image: np.ndarray) -> Path:
        """Write `name` (e.g. input.png) atomically."""
        return write_atomic(self.folder / name, encode_png(image))

    def write_meta(self, **fields: Any) -> Path:
        """Merge `fields` into the metadata and write meta.json atomically."""
        self.meta.update(fields)
        text = json.dumps(self.meta, indent=2, sort_keys=False, default=_json_default)
        return write_atomic(self.folder / "meta.json", text.encode())


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class CaptureStore:
    """Creates capture folders under one output folder and lists them for galleries."""

    def __init__(self, root: str | Path) -> None:
        self.root = check_output_dir(root)

    def new(self, source: str, meta: Mapping[str, Any] | None = None) -> Capture:
        """A fresh, uniquely named capture folder for `source` (a file name or 'camera')."""
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        base = f"{stamp}_{_slug(Path(source).stem)}"
        folder = self.root / base
        counter = 1
        while True:
            try:
                folder.mkdir(parents=True)
                break
            except FileExistsError:
                counter += 1
                folder = self.root / f"{base}-{counter}"
        created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        return Capture(folder, {"version": META_VERSION, "time": created, "source": str(source), **(meta or {})})

    def list(self) -> list[Path]:
        """Capture folders, newest first (those that have a meta.json)."""
        folders = [p for p in self.root.iterdir() if p.is_dir() and (p / "meta.json").is_file()]
        return sorted(folders, key=lambda p: p.name, reverse=True)


def read_meta(folder: str | Path) -> dict[str, Any]:
    """The metadata of one capture folder."""
    return json.loads((Path(folder) / "meta.json").read_text())
