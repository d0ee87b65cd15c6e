"""The gallery: stored captures as thumbnails; one opened shows its pair, a readable summary and actions."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

THUMB_W, THUMB_H = 120, 90
SHOWN = 30  # newest captures in the strip


def number(value: float) -> str:
    """A parameter value without float noise: 1.4504998326301575 -> '1.45', 44.0 -> '44'."""
    return f"{round(float(value), 2):g}"


def describe_capture(name: str, meta: dict[str, Any]) -> str:
    """One line about a stored capture: status, backend, emotions, intensity and the parameters that moved."""
    emotions = " + ".join(f"{e.get('name')} {number(e.get('weight', 1.0))}" for e in meta.get("emotion") or [])
    moved = [f"{key} {number(value)}" for key, value in (meta.get("parameters") or {}).items() if abs(value) >= 0.005]
    parts = [f"{name}: {meta.get('status', '?')}"]
    if meta.get("backend"):
        parts.append(f"with {meta['backend']}")
    if emotions:
        parts.append(f"{emotions}, intensity {number(meta.get('intensity', 1.0))}")
    parts.append("parameters: " + (", ".join(moved) or "all neutral"))
    if meta.get("errors"):
        parts.append("error: " + "; ".join(meta["errors"]))
    return "; ".join(parts)


def parameters_to_state(meta: dict[str, Any], registry: Any) -> tuple[list[tuple[str, float]], float,
                                                                        dict[str, float]]:
    """The emotions, intensity and pinned parameters that reproduce a capture's stored parameters."""
    stored = {k: float(v) for k, v in (meta.get("parameters") or {}).items()}
    emotions = [(e["name"], float(e.get("weight", 1.0))) for e in meta.get("emotion") or []
                if e.get("name") in registry.emotions]
    intensity = float(meta.get("intensity", 1.0))
    try:
        mixed = registry.expression(emotions, intensity, {}).as_dict()
    except Exception:  # the emotions no longer mix: pin every stored value instead
        emotions, mixed = [], {}
    pinned = {k: v for k, v in stored.items() if abs(mixed.get(k, 0.0) - v) > 1e-6}
    return emotions, intensity, pinned


class Gallery:
    """Owns the thumbnail strip, the detail line, the capture actions and the Save as dialog."""

    def __init__(self, app: Any) -> None:
        self.app, self.dpg = app, app.dpg
        self.thumbnails: dict[str, str] = {}
        self.listed: list[Path] = []
        self.selected: Path | None = None

    def build(self) -> None:
        """The widgets (inside the current container) and the dialog."""
        dpg = self.dpg
        dpg.add_text("Gallery (click a capture to open it)")
        with dpg.child_window(height=THUMB_H + 26, horizontal_scrollbar=True, tag="gallery_window"):
            dpg.add_group(horizontal=True, tag="gallery")
        with dpg.group(horizontal=True, tag="capture_actions", show=False):
            dpg.add_button(label="Use these parameters", tag="use_parameters", callback=lambda: self.use_parameters())
            dpg.add_button(label="Save as...", tag="save_as", callback=lambda: self.open_save_as())
            dpg.add_button(label="Open folder", tag="open_folder", callback=lambda: self.open_folder())
        dpg.add_text("", tag="gallery_detail", wrap=900)
        with dpg.window(label="Save the output as", tag="save_as_window", show=False, modal=True, no_resize=True,
                        width=560, height=120, pos=(200, 200)):
            dpg.add_input_text(label="file (.png, .jpg)", tag="save_as_path", width=400, on_enter=True,
                               callback=lambda: self.save_as())
            with dpg.group(horizontal=True):
                dpg.add_button(label="Save", tag="save_as_ok", callback=lambda: self.save_as())
                dpg.add_button(label="Cancel", callback=lambda: dpg.hide_item("save_as_window"))

    def refresh(self) -> None:
        """Thumbnails of the stored captures, newest first (rebuilt only when the list changed)."""
        import cv2

        from engine.storage import CaptureStore

        dpg = self.dpg
        try:
            folders = CaptureStore(self.app.settings.output_dir).list()[:SHOWN]
        except Exception as exc:  # an unreadable folder: say so, keep the panel
            self.app.log.add("warning", f"gallery: {exc}")
            return
        if folders == self.listed:
            return
        self.listed = folders
        dpg.delete_item("gallery", children_only=True)
        from ui.previews import to_texture

        for number_, folder in enumerate(folders):
            picture = folder / ("compare.png" if (folder / "compare.png").exists() else "input.png")
            key = str(folder)
            if key not in self.thumbnails:
                tag = f"thumb_{len(self.thumbnails)}"
                dpg.add_static_texture(THUMB_W, THUMB_H, to_texture(cv2.imread(str(picture)), THUMB_W, THUMB_H),
                                       tag=tag, parent="textures")
                self.thumbnails[key] = tag
            dpg.add_image_button(self.thumbnails[key], width=THUMB_W, height=THUMB_H, parent="gallery",
                                 tag=f"gallery_item_{number_}", callback=lambda s, a, u: self.app.open_capture(u),
                                 user_data=key)

    def show(self, folder: Path, meta: dict[str, Any]) -> None:
        """Select a capture: its summary and the actions on it."""
        self.selected = folder
        self.dpg.set_value("gallery_detail", describe_capture(folder.name, meta))
        self.dpg.show_item("capture_actions")

    def use_parameters(self) -> None:
        """Put the selected capture's emotions, intensity and parameters on the controls (and the stream)."""
        from engine.storage import read_meta

        if self.selected is None:
            return
        emotions, intensity, pinned = parameters_to_state(read_meta(self.selected), self.app.registry)
        self.app.state.apply(emotions, intensity, pinned)
        self.app.controls.sync()
        self.app.status(f"using the parameters of {self.selected.name}: "
                        f"{' + '.join(n for n, _ in emotions) or 'no emotion'}, intensity {intensity:g}, "
                        f"{len(pinned)} pinned")

    def open_save_as(self, newest: bool = False) -> None:
        """Ask where to save the selected capture's output (with `newest`, the newest one when none is)."""
        if self.selected is None and newest and self.listed:
            self.selected = self.listed[0]
        if self.selected is None:
            self.app.status("open a capture first (click one in the gallery)", "warning")
            return
        pictures = Path.home() / "Pictures"
        folder = pictures if pictures.is_dir() else Path.home()
        self.dpg.set_value("save_as_path", str(folder / f"{self.selected.name}.png"))
        self.dpg.show_item("save_as_window")
        self.dpg.focus_item("save_as_path")

    def save_as(self) -> None:
        """Write the selected output as PNG or JPEG (by the name's suffix)."""
        import cv2

        from engine.imageio import write_atomic

        assert self.selected is not None
        target = Path(self.dpg.get_value("save_as_path").strip()).expanduser()
        suffix = target.suffix.lower()
        if suffix not in (".png", ".jpg", ".jpeg"):
            self.app.status(f"Save as: '{target.name}' must end in .png, .jpg or .jpeg", "error")
            return
        source = self.selected / ("output.png" if (self.selected / "output.png").exists() else "input.png")
        image = cv2.imread(str(source))
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix != ".png" else []
        ok, data = cv2.imencode(".png" if suffix == ".png" else ".jpg", image, params) if image is not None else \
            (False, None)
        try:
            if not ok or data is None:
                raise OSError(f"cannot read {source}")
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, data.tobytes())
        except OSError as exc:
            self.app.status(f"cannot save {target}: {exc.strerror or exc}", "error")
            return
        self.dpg.hide_item("save_as_window")
        self.app.status(f"saved {source.name} of {self.selected.name} as {target}")

    def open_folder(self) -> None:
        """Show the selected capture's folder in the file manager."""
        if self.selected is None:
            return
        opener = shutil.which("xdg-open") or shutil.which("open")
        if opener is None:
            self.app.status(f"no file manager found (xdg-open); the capture is in {self.selected}", "warning")
            return
        subprocess.Popen([opener, str(self.selected)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
        self.app.status(f"opened {self.selected} in the file manager")
