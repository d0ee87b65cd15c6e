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
