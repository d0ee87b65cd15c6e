"""The expression controls: emotion buttons, intensity, the mixer, every parameter, Save as emotion.

The widgets only ever show the live state (`engine.live.LiveState`) and change it through its methods; after
any change (a click, a key, undo, a rescan) `sync` puts the state back on every widget, so what the sliders
show is what the pipeline uses.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from ui.keys import emotion_order

NAME_RULE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# Four emotion buttons to a row fit the left pane (410 px) with its scroll bar, which a 1366x768 screen shows:
# 410 - 2 x 8 padding - 14 scroll bar - 3 x 8 spacing = 356 for four
BUTTON_W = 88


def weights_text(emotions: list[tuple[str, float]]) -> str:
    """'happy 0.6 + surprised 0.4' (or 'no emotion')."""
    return " + ".join(f"{name} {weight:.2g}" for name, weight in emotions) or "no emotion"


def emotion_file(emotion_id: str, label: str, params: dict[str, float]) -> str:
    """The text of a drop-in plugin file that registers one emotion with these parameter values."""
    values = ", ".join(f'"{name}": {value:g}' for name, value in params.items())
    return (f'"""The emotion \'{emotion_id}\', saved from the FaceSynth panel on {time.strftime("%Y-%m-%d %H:%M")}."""'
            "\n\nfrom engine import hookimpl\n\n\n@hookimpl\ndef register_emotions(register):\n"
            f'    """Register \'{emotion_id}\'."""\n'
            f"    register({emotion_id!r}, {{{values}}}, label={label!r})\n")


class Controls:
    """Owns the emotion, intensity, mix and parameter widgets and the Save as emotion dialog."""

    def __init__(self, app: Any) -> None:
        self.app, self.dpg = app, app.dpg
        self.order: list[str] = []

    def build(self) -> None:
        """The widgets (inside the current container) and the dialog."""
        from engine.expression import PARAMETERS

        dpg = self.dpg
        with dpg.item_handler_registry(tag="mix_handlers"):
            dpg.add_item_deactivated_after_edit_handler(callback=lambda s, a: self._log_mix())
        with dpg.item_handler_registry(tag="param_handlers"):
            dpg.add_item_deactivated_after_edit_handler(callback=lambda s, a: self._log_param(a))
        dpg.add_text("Emotion (keys 1-9)")
        dpg.add_group(tag="emotion_box")
        dpg.add_text("", tag="emotion_caption", wrap=380)
        dpg.add_slider_float(label="intensity", tag="intensity", min_value=0.0, max_value=1.5, default_value=1.0,
                             width=200, callback=lambda s, v: self._set_intensity(v))
        dpg.bind_item_handler_registry("intensity", "param_handlers")
        with dpg.collapsing_header(label="Mix emotions", tag="mix_header", default_open=True):
            dpg.add_group(tag="mix_box")
        with dpg.collapsing_header(label="Every parameter", tag="advanced", default_open=True):
            for spec in PARAMETERS:
                dpg.add_slider_float(label=spec.name, tag=f"param_{spec.name}", min_value=spec.minimum,
                                     max_value=spec.maximum, default_value=spec.default, width=200,
                                     callback=lambda s, v, u: self._set_override(u, v), user_data=spec.name)
                dpg.bind_item_handler_registry(f"param_{spec.name}", "param_handlers")
                with dpg.tooltip(f"param_{spec.name}"):
                    dpg.add_text(spec.meaning)
            with dpg.group(horizontal=True):
                dpg.add_button(label="Reset parameters", tag="reset", callback=lambda: self.reset())
                dpg.add_button(label="Save as emotion...", tag="save_emotion", callback=lambda: self.open_save())
        with dpg.window(label="Save as emotion", tag="save_emotion_window", show=False, modal=True, no_resize=True,
                        width=460, height=170, pos=(120, 120)):
            dpg.add_text("", tag="save_emotion_what", wrap=440)
            dpg.add_input_text(label="id", tag="save_emotion_name", width=240, on_enter=True,
                               hint="lower case, digits, _", callback=lambda: self.save_emotion())
            dpg.add_input_text(label="label", tag="save_emotion_label", width=240, on_enter=True,
                               callback=lambda: self.save_emotion())
            with dpg.group(horizontal=True):
                dpg.add_button(label="Save", tag="save_emotion_ok", callback=lambda: self.save_emotion())
                dpg.add_button(label="Cancel", callback=lambda: dpg.hide_item("save_emotion_window"))

    def fill(self) -> None:
        """One button and one mix slider per emotion of the current registry."""
        dpg = self.dpg
        for box in ("emotion_box", "mix_box"):
            dpg.delete_item(box, children_only=True)
        self.order = emotion_order(self.app.registry.emotions)
        row = None
        for number, emotion_id in enumerate(self.order):
            if number % 4 == 0:
                row = dpg.add_group(horizontal=True, parent="emotion_box")
            label = f"{number + 1} {emotion_id}" if number < 9 else emotion_id
            dpg.add_button(label=label, tag=f"emotion_{emotion_id}", parent=row, width=BUTTON_W,
                           callback=lambda s, a, u: self.choose(u), user_data=emotion_id)
        for emotion_id in self.order:
            dpg.add_slider_float(label=emotion_id, tag=f"mix_{emotion_id}", min_value=0.0, max_value=2.0,
                                 width=200, parent="mix_box", callback=lambda: self._mix_changed())
            dpg.bind_item_handler_registry(f"mix_{emotion_id}", "mix_handlers")

    # ------------------------------------------------------------------------------------ state -> widgets

    def sync(self) -> None:
        """Show the live state on every control: active emotions highlighted, mix, intensity, parameters."""
        dpg, state = self.dpg, self.app.state
        weights = dict(state.emotions)
        for emotion_id in self.order:
            dpg.bind_item_theme(f"emotion_{emotion_id}", "theme_active" if weights.get(emotion_id) else 0)
            dpg.set_value(f"mix_{emotion_id}", weights.get(emotion_id, 0.0))
        dpg.set_value("intensity", state.intensity)
        try:
            values = self.app.expression().as_dict()
        except Exception:  # a state the registry cannot mix: leave the sliders (the status says why)
            return
        for name, value in values.items():
            dpg.set_value(f"param_{name}", value)
        dpg.set_value("emotion_caption", f"showing {weights_text(state.emotions)}, intensity {state.intensity:g}"
                      + (f", {len(state.overrides)} parameter(s) pinned" if state.overrides else ""))

    def active(self) -> list[str]:
        """The emotions whose buttons show as active (read back from the widgets, for the test hooks)."""
        return [e for e in self.order if self.dpg.get_item_info(f"emotion_{e}").get("theme")]

    # ------------------------------------------------------------------------------------ widgets -> state

    def choose(self, emotion_id: str) -> None:
        """Show one emotion (a button or a number key)."""
        self.app.state.set_emotion(emotion_id)
        self.sync()
        self.app.status(f"emotion: {emotion_id}")

    def choose_number(self, number: int) -> None:
        """Key `number` (1-9): the emotion on that button."""
        if 1 <= number <= min(9, len(self.order)):
            self.choose(self.order[number - 1])

    def _mix_changed(self) -> None:
        self.app.state.set_mix([(e, self.dpg.get_value(f"mix_{e}")) for e in self.order])
        self.sync()

    def _log_mix(self) -> None:
        self.app.status(f"mix: {weights_text(self.app.state.emotions)}")

    def _log_param(self, item: Any) -> None:
        alias = self.dpg.get_item_alias(item) or str(item)
        value = self.dpg.get_value(item)
        self.app.status(f"{alias.removeprefix('param_')}: {value:.2f}")

    def _set_intensity(self, value: float) -> None:
        self.app.state.set_intensity(value)
        self.sync()

    def _set_override(self, name: str, value: float) -> None:
        self.app.state.set_override(name, value)

    def reset(self) -> None:
        """Let every parameter follow the emotions again."""
        self.app.state.reset_overrides()
        self.sync()
        self.app.status("parameters reset to the emotions' values")

    def undo(self) -> None:
        """Undo the last change (Ctrl+Z)."""
        if self.app.state.undo():
            self.sync()
            self.app.status(f"undone: now {weights_text(self.app.state.emotions)}, intensity "
                            f"{self.app.state.intensity:g}, {len(self.app.state.overrides)} parameter(s) pinned")
        else:
            self.app.status("nothing to undo", "warning")

    # -------------------------------------------------------------------------------------- save as emotion

    def open_save(self) -> None:
        """Open the Save as emotion dialog (its id defaults to the emotion shown, to save an edit back)."""
        state = self.app.state
        current = state.emotions[0][0] if len(state.emotions) == 1 else ""
        entry = self.app.registry.emotions.get(current)
        self.dpg.set_value("save_emotion_name", current)
        self.dpg.set_value("save_emotion_label", entry.label if entry else "")
        self.dpg.set_value("save_emotion_what", f"Saves the parameters shown now as an emotion in "
                           f"{self.user_folder()} (an existing id there is overwritten; a built-in one is "
                           "overridden), and loads it.")
        self.dpg.show_item("save_emotion_window")
        self.dpg.focus_item("save_emotion_name")

    @staticmethod
    def user_folder() -> Path:
        """The user's drop-in folder (~/.config/facesynth/plugins.d)."""
        from engine.config import user_config_dir

        return user_config_dir() / "plugins.d"

    def save_emotion(self) -> None:
        """Write the current parameters as a drop-in emotion, rescan, and show it."""
        from engine.imageio import write_atomic

        emotion_id = self.dpg.get_value("save_emotion_name").strip()
        label = self.dpg.get_value("save_emotion_label").strip() or emotion_id.replace("_", " ").capitalize()
        if not NAME_RULE.match(emotion_id):
            self.app.status(f"emotion id '{emotion_id}': use a lower-case letter, then letters, digits or _",
                            "error")
            return
        params = {name: round(value, 2) for name, value in self.app.expression().as_dict().items()
                  if abs(value) >= 0.005}
        path = self.user_folder() / f"{emotion_id}.py"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, emotion_file(emotion_id, label, params).encode())
        except OSError as exc:
            self.app.status(f"cannot save the emotion to {path}: {exc.strerror or exc}", "error")
            return
        self.dpg.hide_item("save_emotion_window")
        self.app.rescan()
        if emotion_id in self.app.registry.emotions:
            self.app.state.apply([(emotion_id, 1.0)], 1.0, {})
            self.sync()
            self.app.status(f"emotion '{emotion_id}' saved to {path} and loaded")
        else:
            self.app.status(f"emotion '{emotion_id}' saved to {path} but did not load: see the plugin table",
                            "error")
