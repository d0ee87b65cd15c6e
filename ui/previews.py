"""The input and output previews: two textures shown at the size the window allows, always 4:3."""

from __future__ import annotations

from typing import Any

TEX_W, TEX_H = 640, 480  # the textures; the image widgets scale them, keeping this aspect


def to_texture(image: Any, width: int = TEX_W, height: int = TEX_H) -> Any:
    """A BGR image letterboxed into width x height, as the flat RGBA float32 data a DPG texture takes."""
    import cv2
    import numpy as np

    canvas = np.zeros((height, width, 3), np.uint8)
    if image is not None:
        scale = min(width / image.shape[1], height / image.shape[0])
        size = (max(1, int(image.shape[1] * scale)), max(1, int(image.shape[0] * scale)))
        resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        x0, y0 = (width - size[0]) // 2, (height - size[1]) // 2
        canvas[y0:y0 + size[1], x0:x0 + size[0]] = resized
    rgba = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGBA).astype(np.float32) / 255.0
    return rgba.ravel()


class Previews:
    """Owns the two textures, the image widgets and the lines under them."""

    def __init__(self, dpg: Any) -> None:
        self.dpg = dpg
        self.size = (TEX_W * 3 // 4, TEX_H * 3 // 4)

    def build_textures(self) -> None:
        """Blank textures (inside the texture registry)."""
        blank = to_texture(None)
        self.dpg.add_dynamic_texture(TEX_W, TEX_H, blank, tag="tex_input")
        self.dpg.add_dynamic_texture(TEX_W, TEX_H, blank, tag="tex_output")

    def build(self) -> None:
        """The two previews side by side (inside the current container)."""
        dpg = self.dpg
        with dpg.group(horizontal=True, tag="previews"):
            for side, caption in (("input", "Input"), ("output", "Output")):
                with dpg.group():
                    dpg.add_text(caption, tag=f"{side}_caption")
                    dpg.add_image(f"tex_{side}", width=self.size[0], height=self.size[1], tag=f"preview_{side}")
                    dpg.add_text("", tag=f"{side}_estimate")

    def show(self, input_image: Any = None, output_image: Any = None) -> None:
        """Put new pictures in (None leaves a side as it is)."""
        if input_image is not None:
            self.dpg.set_value("tex_input", to_texture(input_image))
        if output_image is not None:
            self.dpg.set_value("tex_output", to_texture(output_image))

    def fit(self, width: float, height: float) -> None:
        """Make both previews as large as `width` x `height` allows for the pair, keeping 4:3."""
        each_w = max(160.0, (width - 16) / 2)
        each_h = max(120.0, height)
        scale = min(each_w / TEX_W, each_h / TEX_H)
        self.size = (int(TEX_W * scale), int(TEX_H * scale))
        for side in ("input", "output"):
            self.dpg.configure_item(f"preview_{side}", width=self.size[0], height=self.size[1])
            self.dpg.configure_item(f"{side}_estimate", wrap=self.size[0])


MARK_COLOURS = {"edited": (80, 200, 80), "skipped": (60, 60, 230), "not chosen": (160, 160, 160)}


def face_marks(outcome: Any) -> list[dict[str, Any]]:
    """Every face found in a still input: its number (as `--faces` counts), box, state and why it is not edited."""
    refused = {tuple(item["box"]): item["reason"] for item in outcome.skipped}
    if outcome.result is not None:
        refused.update({tuple(item["box"]): item["reason"] for item in outcome.result.info.get("skipped", [])
                        if isinstance(item, dict) and "box" in item})
        edited = {id(face) for face in outcome.edited_faces()}
    else:
        edited = set()
    marks = []
    for number, face in enumerate(outcome.faces, start=1):
        box = [int(v) for v in face.box]
        if id(face) in edited:
            state, reason = "edited", ""
        elif tuple(face.box) in refused:
            state, reason = "skipped", refused[tuple(face.box)]
        else:
            state, reason = "not chosen", "click it to edit it too"
        marks.append({"number": number, "box": box, "state": state, "reason": reason})
    return marks


def draw_marks(image: Any, marks: list[dict[str, Any]]) -> Any:
    """The image with each face's box and number; a skipped face says why (too small, turned away)."""
    import cv2

    canvas = image.copy()
    thick = max(1, round(max(image.shape[:2]) / 400))
    for mark in marks:
        x, y, w, h = mark["box"]
        colour = MARK_COLOURS[mark["state"]]
        cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, thick)
        text = f"{mark['number']}" + ("" if mark["state"] == "edited" else f" {mark['state']}")
        if mark["state"] == "skipped":
            text += ": " + mark["reason"].split(" (")[0]
        scale = 0.3 * thick + 0.1
        (text_w, text_h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        left = max(0, min(x, canvas.shape[1] - text_w - 2))  # kept inside the picture, near its face
        top = y - 4 if y - 4 - text_h >= 0 else y + h + text_h + 4
        cv2.putText(canvas, text, (left, top), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)
    return canvas


def image_point(click: tuple[float, float], box_min: tuple[float, float], box_size: tuple[float, float],
                image_size: tuple[int, int]) -> tuple[float, float] | None:
    """Where a click on a preview (viewport pixels) falls in the picture shown letterboxed in it (None: outside)."""
    u, v = (click[0] - box_min[0]) / box_size[0] * TEX_W, (click[1] - box_min[1]) / box_size[1] * TEX_H
    width, height = image_size
    scale = min(TEX_W / width, TEX_H / height)
    x, y = (u - (TEX_W - width * scale) / 2) / scale, (v - (TEX_H - height * scale) / 2) / scale
    return (x, y) if 0 <= x < width and 0 <= y < height else None
