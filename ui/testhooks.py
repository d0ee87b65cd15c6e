"""What tests read from a running panel: where widgets are, what they show, what the state is, the pixels.

`--layout FILE` writes it once the panel is up and again on SIGUSR1, when `--dump-on-signal FILE` also gets
the frame buffer as PNG. Files are written atomically: a reader never sees half of one.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

TEXTS = ("status", "fps_text", "input_estimate", "output_estimate", "gallery_detail", "source", "busy_text",
         "emotion_caption", "credits", "save_emotion_name", "save_as_path")
FLAGS = ("back_to_live", "capture_actions", "save_emotion_window", "save_as_window", "file_dialog")


def layout(app: Any) -> dict[str, Any]:
    """Boxes of the clickable widgets, the texts shown, which controls show what, the live state, the log."""
    from engine.expression import PARAMETER_NAMES

    dpg = app.dpg
    tags = ["start", "stop", "back_to_live", "capture", "rescan", "reset", "save_emotion", "save_emotion_name",
            "status", "record", "virtual_camera", "save_emotion_ok", "preview_input", "preview_output", "intensity",
            "source", "browse", "use_parameters", "save_as", "save_as_path", "save_as_ok", "open_folder",
            "gallery_window", "log_panel", "left", "right"]
    tags += [f"emotion_{e}" for e in app.registry.emotions] + [f"mix_{e}" for e in app.registry.emotions]
    tags += [f"param_{name}" for name in PARAMETER_NAMES]
    tags += [f"backend_{b}" for b in list(app.registry.backends) + ["auto"]]
    tags += [f"gallery_item_{n}" for n in range(len(app.gallery.listed))]
    boxes: dict[str, Any] = {}
    for tag in tags:
        state = dpg.get_item_state(tag) if dpg.does_item_exist(tag) else {}
        if "rect_min" in state:  # items not drawn yet (a closed dialog's) have no rectangle
            boxes[tag] = {"min": state["rect_min"], "size": state["rect_size"], "visible": state.get("visible")}
        elif "content_region_avail" in state:  # a pane: where it is, and the width inside (less a scroll bar)
            boxes[tag] = {"min": state["pos"], "size": state["rect_size"],
                          "inner_width": state["content_region_avail"][0]}
    if dpg.does_item_exist("file_dialog"):  # Dear PyGui gives no position for it: tests find it on screen
        boxes["file_dialog"] = {key: dpg.get_item_configuration("file_dialog")[key] for key in ("width", "height")}
    boxes["viewport"] = {"pos": dpg.get_viewport_pos(), "width": dpg.get_viewport_client_width(),
                         "height": dpg.get_viewport_client_height()}
    state = app.state
    boxes["shows"] = {
        "texts": {tag: dpg.get_value(tag) for tag in TEXTS if dpg.does_item_exist(tag)},
        "flags": {tag: bool(dpg.get_item_configuration(tag).get("show")) for tag in FLAGS if dpg.does_item_exist(tag)},
        "toggles": {tag: bool(dpg.get_value(tag)) for tag in ("record", "virtual_camera")},
        "active_emotions": app.controls.active(),
        "faces": app.face_marks,
        "faces_setting": app.settings.faces,
        "mix": {e: round(dpg.get_value(f"mix_{e}"), 3) for e in app.controls.order},
        "intensity": round(dpg.get_value("intensity"), 3),
        "parameters": {name: round(dpg.get_value(f"param_{name}"), 3) for name in PARAMETER_NAMES},
        "emotion_order": app.controls.order,
        "plugin_emotions": sorted(e for e in app.registry.emotions),
        "log": [text for _, text in app.log.lines[-40:]],
    }
    boxes["state"] = {"emotions": state.emotions, "intensity": state.intensity, "overrides": state.overrides,
                      "running": app.pipeline is not None, "backend": app.backend_id,
                      "frames": app.pipeline.frames_done if app.pipeline is not None else 0,
                      "parameters": {k: round(v, 3) for k, v in app.expression().as_dict().items()}}
    return boxes


def write_layout(app: Any, path: Path) -> None:
    """Write `layout(app)` as JSON."""
    from engine.imageio import write_atomic

    write_atomic(path, json.dumps(layout(app), default=str).encode())


def save_frame_buffer(dpg: Any, path: Path, done: threading.Event) -> None:
    """Ask DPG for the frame buffer; it arrives with the next frame and is written as PNG."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)

    def save(sender: Any, buffer: Any) -> None:
        import numpy as np

        from engine.imageio import encode_png, write_atomic

        width, height = buffer.get_width(), buffer.get_height()
        pixels = (np.array(buffer, dtype=np.float32).reshape(height, width, 4) * 255).astype(np.uint8)
        write_atomic(path, encode_png(cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGR)))
        done.set()

    dpg.output_frame_buffer(callback=save)
