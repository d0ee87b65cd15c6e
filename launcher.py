"""FaceSynth's Dear PyGui panel: plugins, expression controls, live previews, captures and a gallery.

    python launcher.py                       # open the panel
    python launcher.py --screenshot shot.png # render the panel once, save a PNG of it, exit

The pipeline runs on worker threads; this module only displays and reacts to clicks. Slow work (a cloud call,
a capture) runs in the background, so the panel keeps drawing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
PREVIEW_W, PREVIEW_H = 528, 396
THUMB_W, THUMB_H = 120, 90


class LogPanel:
    """A small scrolling log (after DearPyGui_Ext's mvLogger): owns its widgets, exposes plain methods."""

    COLOURS = {"info": (200, 200, 200), "warning": (255, 200, 80), "error": (255, 90, 90)}

    def __init__(self, dpg: Any, parent: int | str, height: int = 110) -> None:
        self.dpg = dpg
        self.child = dpg.add_child_window(parent=parent, height=height, tag="log_panel")
        self.lines: list[tuple[str, str]] = []
        self._pending: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def add(self, level: str, message: str) -> None:
        """Queue a line (safe from any thread; drawn by the render loop)."""
        with self._lock:
            self._pending.append((level, f"{time.strftime('%H:%M:%S')} {message}"))

    def flush(self) -> None:
        """Draw queued lines (render thread only)."""
        with self._lock:
            pending, self._pending = self._pending, []
        for level, text in pending:
            self.lines.append((level, text))
            self.dpg.add_text(text, parent=self.child, color=self.COLOURS.get(level, (200, 200, 200)), wrap=0)
        if pending:
            children = self.dpg.get_item_children(self.child, 1) or []
            for item in children[:-200]:
                self.dpg.delete_item(item)
            self.dpg.set_y_scroll(self.child, self.dpg.get_y_scroll_max(self.child) + 100)


def to_texture(image: Any, width: int, height: int) -> Any:
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


class Launcher:
    """The panel: builds the widgets, runs the render loop, and owns the background work."""

    def __init__(self, args: argparse.Namespace) -> None:
        import dearpygui.dearpygui as dpg

        from engine import log as logsetup
        from engine.config import load_settings
        from engine.live import LiveState
        from engine.plugins import PluginLoader

        self.dpg = dpg
        self.args = args
        self.settings = load_settings({"output_dir": args.out, "backend": args.backend})
        logsetup.configure(self.settings.log_level, None)
        self.loader = PluginLoader(self.settings, args.plugins_dir)
        self.registry = self.loader.load()
        self.state = LiveState([("happy", 1.0)])
        self.backend_id = self.settings.backend if self.settings.backend in self.registry.backends else "auto"
        self.source_spec = args.source or str(ROOT / "samples" / "face.mp4")
        self.pipeline: Any = None
        self.source: Any = None
        self.worker: threading.Thread | None = None
        self.latest: dict[str, Any] = {}
        self.latest_lock = threading.Lock()
        self.busy = ""
        self.results: list[Any] = []
        self.frame_times: list[tuple[float, float]] = []
        self.figures: dict[str, Any] = {}
        self.input_estimate = ""
        self.output_estimate = ""
        self._analysis_busy = False
        self._last_analysis = 0.0
        self.thumbnails: dict[str, str] = {}
        self._still: Any = None
        self._still_lock = threading.Lock()

    @property
    def synthesizer(self) -> Any:
        """The synthesize stage over the current registry: every call into a backend goes through its guard."""
        from engine.events import EventBus
        from engine.synthesize import Synthesizer

        return Synthesizer(self.registry, self.settings, EventBus())

    # ------------------------------------------------------------------------------------------ building

    def build(self) -> None:
        """Create the viewport and every widget."""
        dpg = self.dpg
        dpg.create_context()
        with dpg.texture_registry(tag="textures"):
            blank = to_texture(None, PREVIEW_W, PREVIEW_H)
            dpg.add_dynamic_texture(PREVIEW_W, PREVIEW_H, blank, tag="tex_input")
            dpg.add_dynamic_texture(PREVIEW_W, PREVIEW_H, blank, tag="tex_output")
        with dpg.theme(tag="theme_failed"):
            with dpg.theme_component(dpg.mvAll):
                dpg.add_theme_color(dpg.mvThemeCol_Text, (255, 90, 90))
        with dpg.window(tag="main", no_title_bar=True, no_move=True, no_resize=True):
            with dpg.group(horizontal=True):
                with dpg.child_window(width=430, tag="left"):
                    self._build_left()
                with dpg.child_window(tag="right"):
                    self._build_right()
        # The two panels are not filled again over the window's own background: with software OpenGL (a virtual
        # display, a machine without a GPU) filling the viewport is much of every frame's time. It looks the same.
        with dpg.theme(tag="theme_main"):
            with dpg.theme_component(dpg.mvAll):
                dpg.add_theme_color(dpg.mvThemeCol_ChildBg, (0, 0, 0, 0))
        dpg.bind_item_theme("main", "theme_main")
        dpg.create_viewport(title="FaceSynth", width=1560, height=1000)
        dpg.set_primary_window("main", True)
        dpg.setup_dearpygui()
        dpg.set_viewport_vsync(False)

    def _build_left(self) -> None:
        dpg = self.dpg
        dpg.add_text("Plugins")
        with dpg.group(tag="plugins_box"):
            self._fill_plugins()
        dpg.add_button(label="Rescan plugins.d", tag="rescan", callback=lambda: self.rescan())
        dpg.add_separator()
        dpg.add_text("Backend")
        with dpg.group(tag="backend_box"):
            self._fill_backends()
        dpg.add_text("", tag="credits")
        dpg.add_separator()
        dpg.add_text("Emotion")
        with dpg.group(tag="emotion_box"):
            self._fill_emotions()
        dpg.add_slider_float(label="intensity", tag="intensity", min_value=0.0, max_value=1.5, default_value=1.0,
                             width=220, callback=lambda s, v: self._set_intensity(v))
        with dpg.collapsing_header(label="Mix emotions", tag="mix_header", default_open=False):
            with dpg.group(tag="mix_box"):
                self._fill_mix()
        with dpg.collapsing_header(label="Advanced: every parameter", tag="advanced", default_open=True):
            from engine.expression import PARAMETERS

            for spec in PARAMETERS:
                dpg.add_slider_float(label=spec.name, tag=f"param_{spec.name}", min_value=spec.minimum,
                                     max_value=spec.maximum, default_value=spec.default, width=220,
                                     callback=lambda s, v, u: self._set_override(u, v), user_data=spec.name)
                with dpg.tooltip(f"param_{spec.name}"):
                    dpg.add_text(spec.meaning)
            dpg.add_button(label="Reset parameters", tag="reset", callback=lambda: self._reset_overrides())

    def _build_right(self) -> None:
        dpg = self.dpg
        with dpg.group(horizontal=True):
            dpg.add_text("Source")
            dpg.add_input_text(tag="source", default_value=self.source_spec, width=520,
                               hint="camera number (0), video file, stream URL or image")
            dpg.add_button(label="Browse...", callback=lambda: dpg.show_item("file_dialog"))
            dpg.add_button(label="Start", tag="start", callback=lambda: self.start())
            dpg.add_button(label="Stop", tag="stop", callback=lambda: self.stop())
        with dpg.file_dialog(tag="file_dialog", show=False, width=700, height=420,
                             callback=lambda s, a: self._chose_file(a)):
            dpg.add_file_extension("Media{.mp4,.avi,.mov,.mkv,.webm,.png,.jpg,.jpeg,.webp,.bmp,.tif,.tiff}")
            dpg.add_file_extension(".*")
        with dpg.group(horizontal=True):
            with dpg.group():
                dpg.add_text("Input", tag="input_caption")
                dpg.add_image("tex_input", width=PREVIEW_W, height=PREVIEW_H, tag="preview_input")
                dpg.add_text("", tag="input_estimate")
            with dpg.group():
                dpg.add_text("Output", tag="output_caption")
                dpg.add_image("tex_output", width=PREVIEW_W, height=PREVIEW_H, tag="preview_output")
                dpg.add_text("", tag="output_estimate")
        with dpg.group(horizontal=True):
            dpg.add_button(label="Capture", tag="capture", width=120, height=32, callback=lambda: self.capture())
            dpg.add_loading_indicator(tag="busy_indicator", show=False, radius=1.6)
            dpg.add_text("", tag="busy_text")
            dpg.add_text("", tag="fps_text")
        dpg.add_text("Gallery (click a capture to open it)")
        with dpg.child_window(height=THUMB_H + 30, horizontal_scrollbar=True, tag="gallery_window"):
            dpg.add_group(horizontal=True, tag="gallery")
        dpg.add_text("", tag="gallery_detail", wrap=1100)
        dpg.add_text("Ready.", tag="status")
        self.log = LogPanel(dpg, "right")

    def _fill_plugins(self) -> None:
        dpg = self.dpg
        listing = self.registry.listing(self.settings)
        for kind in ("emotions", "backends"):
            with dpg.table(parent="plugins_box", header_row=True, tag=f"plugins_{kind}", borders_innerH=True,
                           policy=dpg.mvTable_SizingFixedFit):
                for column in (kind, "status", "source"):
                    dpg.add_table_column(label=column)
                for row in listing[kind]:
                    with dpg.table_row():
                        name = dpg.add_text(row["id"])
                        status = dpg.add_text(row["status"])
                        source = row["source"]
                        dpg.add_text(source if len(source) < 30 else "..." + source[-27:])
                        if row["status"] != "loaded":
                            for item in (name, status):
                                if row["status"] == "failed":
                                    dpg.bind_item_theme(item, "theme_failed")
                                with dpg.tooltip(item):
                                    dpg.add_text(row["reason"] or row["status"], wrap=420)

    def _fill_backends(self) -> None:
        dpg = self.dpg
        for entry in sorted(self.registry.backends.values(), key=lambda e: e.id):
            ok, reason = self.synthesizer.availability(entry)
            item = dpg.add_selectable(label=f"{entry.id}  ({entry.label})", parent="backend_box",
                                      tag=f"backend_{entry.id}", enabled=ok, default_value=entry.id == self.backend_id,
                                      callback=lambda s, v, u: self._choose_backend(u), user_data=entry.id)
            if not ok:
                with dpg.tooltip(item):
                    dpg.add_text(f"unavailable: {reason}", wrap=420)
        if "auto" not in self.registry.backends:
            dpg.add_selectable(label="auto  (best available)", parent="backend_box", tag="backend_auto",
                               default_value=self.backend_id == "auto",
                               callback=lambda s, v, u: self._choose_backend(u), user_data="auto")

    def _fill_emotions(self) -> None:
        dpg = self.dpg
        with dpg.group(horizontal=True, parent="emotion_box", tag="emotion_row"):
            for emotion_id in sorted(self.registry.emotions):
                dpg.add_button(label=emotion_id, tag=f"emotion_{emotion_id}",
                               callback=lambda s, a, u: self._choose_emotion(u), user_data=emotion_id)

    def _fill_mix(self) -> None:
        dpg = self.dpg
        for emotion_id in sorted(self.registry.emotions):
            dpg.add_slider_float(label=emotion_id, tag=f"mix_{emotion_id}", min_value=0.0, max_value=2.0,
                                 default_value=1.0 if emotion_id == "happy" else 0.0, width=200, parent="mix_box",
                                 callback=lambda: self._mix_changed())

    # ---------------------------------------------------------------------------------------------- actions

    def status(self, text: str, level: str = "info") -> None:
        """Set the status line and log the message."""
        self.dpg.set_value("status", text)
        self.log.add(level, text)

    def rescan(self) -> None:
        """Reload every plugin (built-ins, entry points, drop-ins) without restarting."""
        dpg = self.dpg
        self.registry = self.loader.load()
        for box in ("plugins_box", "backend_box", "emotion_box", "mix_box"):
            dpg.delete_item(box, children_only=True)
        self._fill_plugins()
        self._fill_backends()
        self._fill_emotions()
        self._fill_mix()
        failed = self.registry.failed_plugins()
        self.status(f"plugins rescanned: {len(self.registry.emotions)} emotions, {len(self.registry.backends)} "
                    f"backends, {len(failed)} failed", "warning" if failed else "info")
        for info in failed:
            self.log.add("error", f"plugin {info.name} failed: {info.reason}")
        if self.pipeline is not None:
            self.pipeline.registry = self.registry

    def sync_sliders(self) -> None:
        """Show the effective vector on the parameter sliders (overridden ones keep the user's value)."""
        try:
            values = self.expression().as_dict()
        except Exception:  # an unknown emotion after a rescan: leave the sliders
            return
        for name, value in values.items():
            if name not in self.state.overrides and self.dpg.does_item_exist(f"param_{name}"):
                self.dpg.set_value(f"param_{name}", value)

    def _choose_backend(self, backend_id: str) -> None:
        self.backend_id = backend_id
        for entry in list(self.registry.backends) + ["auto"]:
            if self.dpg.does_item_exist(f"backend_{entry}"):
                self.dpg.set_value(f"backend_{entry}", entry == backend_id)
        self.status(f"backend: {backend_id} (live preview uses landmark-warp; captures use {backend_id})")

    def _choose_emotion(self, emotion_id: str) -> None:
        self.state.emotions = [(emotion_id, 1.0)]
        self.state.version += 1
        for other in self.registry.emotions:
            if self.dpg.does_item_exist(f"mix_{other}"):
                self.dpg.set_value(f"mix_{other}", 1.0 if other == emotion_id else 0.0)
        self.sync_sliders()
        self.status(f"emotion: {emotion_id}")

    def _mix_changed(self) -> None:
        weights = [(e, self.dpg.get_value(f"mix_{e}")) for e in sorted(self.registry.emotions)
                   if self.dpg.does_item_exist(f"mix_{e}")]
        self.state.emotions = [(e, w) for e, w in weights if w > 0]
        self.state.version += 1
        self.sync_sliders()

    def _set_intensity(self, value: float) -> None:
        self.state.intensity = round(float(value), 3)
        self.state.version += 1
        self.sync_sliders()

    def _set_override(self, name: str, value: float) -> None:
        self.state.overrides[name] = round(float(value), 3)
        self.state.version += 1

    def _reset_overrides(self) -> None:

        self.state.overrides = {}
        self.state.version += 1
        self.sync_sliders()
        self.status("parameters reset to the emotion's values")

    def _chose_file(self, app_data: dict[str, Any]) -> None:
        path = app_data.get("file_path_name", "")
        if path:
            self.dpg.set_value("source", path)

    def expression(self) -> Any:
        """The expression vector the controls describe."""
        return self.registry.expression(self.state.emotions, self.state.intensity, self.state.overrides)

    def start(self) -> None:
        """Open the source and run the live pipeline in the background."""
        from engine.capture import FrameSource
        from engine.errors import FaceSynthError
        from engine.events import Event
        from engine.live import LivePipeline

        self.stop()
        spec = self.dpg.get_value("source").strip()
        try:
            self.source = FrameSource(spec, loop=True, retries=self.settings.camera_retries, paced=True,
                                      max_megapixels=self.settings.max_megapixels)
        except FaceSynthError as exc:
            self.status(f"cannot start: {exc} (files and images still work)", "error")
            return
        self.pipeline = LivePipeline(self.registry, self.settings, self.state, self.backend_id)
        self.pipeline.bus.on(Event.RENDER, self._on_render)
        self.pipeline.bus.on(Event.PREPROCESS, self._on_faces)
        self.pipeline.bus.on(Event.ERROR, lambda e: self.log.add("error", f"{e.stage}: {e.message}"))
        self.pipeline.bus.on(Event.STATS, lambda e: self.figures.update(e.figures))
        pipeline, source = self.pipeline, self.source
        self.worker = threading.Thread(target=self._run_pipeline, args=(pipeline, source), daemon=True)
        self.worker.start()
        self.status(f"running: {spec} ({source.kind})")

    def _run_pipeline(self, pipeline: Any, source: Any) -> None:
        pipeline.run(source)
        if pipeline.error:
            self.log.add("error", pipeline.error)
            self.dpg.set_value("status", f"stopped: {pipeline.error}")

    def stop(self) -> None:
        """Stop the live pipeline (the last frames stay on screen)."""
        if self.pipeline is not None:
            self.pipeline.stop()
        if self.worker is not None:
            self.worker.join(timeout=3)
        if self.source is not None:
            self.source.close()
        self.pipeline = self.worker = self.source = None
        with self.latest_lock:
            self.latest.pop("render", None)

    def _on_render(self, event: Any) -> None:
        with self.latest_lock:
            self.latest["render"] = event

    def _on_faces(self, event: Any) -> None:
        from engine.analysis import estimate

        if event.faces:
            self.input_estimate = estimate(event.faces[0].blendshapes, self.registry.emotions)["text"]

    def capture(self) -> None:
        """Store a capture of the current frame with the chosen backend, in the background."""
        import cv2

        from engine.capture import Frame

        if self.busy:
            self.status("a capture is already running; wait for it", "warning")
            return
        with self.latest_lock:
            event = self.latest.get("render") or self.latest.get("shown")
        if event is not None:
            frame = event.frame
        else:
            spec = self.dpg.get_value("source").strip()
            image = cv2.imread(spec) if Path(spec).is_file() else None
            if image is None:
                self.status("nothing to capture: start a source first", "warning")
                return
            frame = Frame(image, source=spec)
        self.busy = f"capturing with {self.backend_id} ..."
        threading.Thread(target=self._capture_work, args=(frame, self.expression(), self.backend_id),
                         daemon=True).start()

    def still_pipeline(self) -> Any:
        """One still-image pipeline for every capture (its landmarker takes a moment to start)."""
        from engine.pipeline import Pipeline

        with self._still_lock:
            if self._still is None:
                self._still = Pipeline(self.registry, self.settings)
                self._still.landmarker  # noqa: B018 - start it now
            self._still.registry = self.registry
            return self._still

    def _warm_up(self) -> None:
        """Start the still pipeline's landmarker and let the chosen backend load (the first Start or Capture then
        does not wait for them)."""
        self.still_pipeline().prepare(self.backend_id)

    def _capture_work(self, frame: Any, expression: Any, backend_id: str) -> None:
        from engine.storage import CaptureStore

        pipeline = self.still_pipeline()
        try:
            recipe = {"emotion": [{"name": n, "weight": w} for n, w in self.state.emotions],
                      "intensity": self.state.intensity}
            capture, outcome = pipeline.store_capture(frame, expression, backend_id,
                                                      CaptureStore(self.settings.output_dir), recipe)
            self.results.append(("capture", capture.folder, outcome))
        except Exception as exc:  # the panel must live on whatever a backend does
            self.results.append(("error", None, str(exc)))

    # ----------------------------------------------------------------------------------------- render loop

    def _analyse_output(self, image: Any) -> None:
        from engine.analysis import estimate
        from engine.faces import Landmarker

        try:
            if not hasattr(self, "_analyser"):
                self._analyser = Landmarker(self.settings.landmarker_model, use_detector=False)
            faces = self._analyser.detect(image)
            self.output_estimate = estimate(faces[0].blendshapes, self.registry.emotions)["text"] if faces else \
                "no face"
        finally:
            self._analysis_busy = False

    def _update(self) -> None:
        dpg = self.dpg
        with self.latest_lock:
            event = self.latest.pop("render", None)
            if event is not None:
                self.latest["shown"] = event
        if event is not None:
            dpg.set_value("tex_input", to_texture(event.frame.image, PREVIEW_W, PREVIEW_H))
            dpg.set_value("tex_output", to_texture(event.output, PREVIEW_W, PREVIEW_H))
            now = time.perf_counter()
            if not self._analysis_busy and now - self._last_analysis > 0.5:
                self._analysis_busy, self._last_analysis = True, now
                threading.Thread(target=self._analyse_output, args=(event.output.copy(),), daemon=True).start()
        dpg.set_value("input_estimate", self.input_estimate)
        dpg.set_value("output_estimate", self.output_estimate)
        if self.figures:
            latency = self.figures.get("latency_ms", {})
            dpg.set_value("fps_text", f"{self.figures.get('fps', 0):.0f} fps, latency {latency.get('median', 0):.0f}"
                                      f" ms (p95 {latency.get('p95', 0):.0f})"
                                      + (f", source {self.source.status}" if self.source else ""))
        dpg.configure_item("busy_indicator", show=bool(self.busy))
        dpg.set_value("busy_text", self.busy)
        while self.results:
            kind, folder, payload = self.results.pop(0)
            self.busy = ""
            if kind == "error":
                self.status(f"capture failed: {payload}", "error")
                continue
            outcome = payload
            if outcome.ok:
                if outcome.fallback:
                    self.log.add("warning", f"fell back to {outcome.backend}: {outcome.fallback}")
                self.status(f"capture stored with {outcome.backend}: {folder}")
                dpg.set_value("tex_input", to_texture(outcome.frame.image, PREVIEW_W, PREVIEW_H))
                dpg.set_value("tex_output", to_texture(outcome.result.image, PREVIEW_W, PREVIEW_H))
                credits = outcome.result.info.get("remaining_credits")
                if credits is not None:
                    dpg.set_value("credits", f"segmind credits left: {credits}")
            else:
                self.status(f"capture failed: {outcome.error} (input kept in {folder})", "error")
            self.refresh_gallery()
        self.log.flush()

    def refresh_gallery(self) -> None:
        """Thumbnails of the stored captures, newest first."""
        import cv2

        from engine.storage import CaptureStore

        dpg = self.dpg
        try:
            folders = CaptureStore(self.settings.output_dir).list()[:30]
        except Exception as exc:
            self.log.add("warning", f"gallery: {exc}")
            return
        dpg.delete_item("gallery", children_only=True)
        for folder in folders:
            picture = folder / ("compare.png" if (folder / "compare.png").exists() else "input.png")
            key = str(folder)
            if key not in self.thumbnails:
                image = cv2.imread(str(picture))
                tag = f"thumb_{len(self.thumbnails)}"
                dpg.add_static_texture(THUMB_W, THUMB_H, to_texture(image, THUMB_W, THUMB_H), tag=tag,
                                       parent="textures")
                self.thumbnails[key] = tag
            dpg.add_image_button(self.thumbnails[key], width=THUMB_W, height=THUMB_H, parent="gallery",
                                 callback=lambda s, a, u: self.open_capture(u), user_data=key)

    def open_capture(self, folder: str) -> None:
        """Show a stored capture's pair in the previews, and its parameters."""
        import cv2

        from engine.storage import read_meta

        path = Path(folder)
        self.stop()
        for name, texture in (("input.png", "tex_input"), ("output.png", "tex_output")):
            image = cv2.imread(str(path / name)) if (path / name).exists() else None
            self.dpg.set_value(texture, to_texture(image, PREVIEW_W, PREVIEW_H))
        meta = read_meta(path)
        changed = {k: v for k, v in meta.get("parameters", {}).items() if v}
        self.dpg.set_value("gallery_detail", f"{path.name}: {meta.get('status')}, backend {meta.get('backend')}, "
                                             f"parameters {changed}")

    def run(self) -> int:
        """Build, then draw until the window closes (or, with --screenshot, save one picture and exit)."""
        dpg = self.dpg
        self.build()
        dpg.show_viewport()
        self.sync_sliders()
        self.refresh_gallery()
        for info in self.registry.failed_plugins():
            self.log.add("error", f"plugin {info.name} failed: {info.reason} ({info.source})")
        for entry in self.registry.backends.values():
            ok, reason = self.synthesizer.availability(entry)
            if not ok:
                self.log.add("warning", f"backend {entry.id} unavailable: {reason}")
            figures = self.synthesizer.account(entry)
            if figures.get("remaining_credits") is not None:
                dpg.set_value("credits", f"{entry.id} credits left: {figures['remaining_credits']} "
                                         f"(as of {figures.get('seen', '?')})")
        if self.args.screenshot:
            return self._screenshot(Path(self.args.screenshot))
        if self.args.autostart:
            self.start()
        threading.Thread(target=self._warm_up, daemon=True).start()
        import signal

        signal.signal(signal.SIGTERM, lambda *_: dpg.stop_dearpygui())
        if self.args.dump_on_signal:  # tests ask for the frame buffer with SIGUSR1
            signal.signal(signal.SIGUSR1, lambda *_: setattr(self, "_dump_requested", True))
        layout_written = False
        try:
            while dpg.is_dearpygui_running():
                started = time.perf_counter()
                self._update()
                dpg.render_dearpygui_frame()
                elapsed = time.perf_counter() - started
                self.frame_times.append((time.time(), elapsed))
                if self.args.layout and not layout_written and len(self.frame_times) > 10:
                    self._write_layout(Path(self.args.layout))
                    layout_written = True
                if getattr(self, "_dump_requested", False):
                    self._dump_requested = False
                    if self.args.layout:
                        self._write_layout(Path(self.args.layout))
                    self._save_frame_buffer(Path(self.args.dump_on_signal), threading.Event())
                if elapsed < 1 / 60:
                    time.sleep(1 / 60 - elapsed)
        finally:
            self.stop()
            if self._still is not None:
                self._still.close()
            if self.args.frame_log:
                from engine.imageio import write_atomic

                write_atomic(Path(self.args.frame_log), json.dumps(self.frame_times).encode())
            dpg.destroy_context()
        return 0

    def _write_layout(self, path: Path) -> None:
        """Where the main widgets are on screen (for tests that click them)."""
        dpg = self.dpg
        from engine.expression import PARAMETER_NAMES

        tags = ["start", "stop", "capture", "rescan", "reset", "preview_input", "preview_output", "intensity",
                "source"] + [f"emotion_{e}" for e in self.registry.emotions] + \
               [f"param_{name}" for name in PARAMETER_NAMES] + \
               [f"backend_{b}" for b in list(self.registry.backends) + ["auto"]]
        layout = {tag: {"min": dpg.get_item_rect_min(tag), "size": dpg.get_item_rect_size(tag)}
                  for tag in tags if dpg.does_item_exist(tag)}
        layout["viewport"] = {"pos": dpg.get_viewport_pos()}
        from engine.imageio import write_atomic

        write_atomic(path, json.dumps(layout).encode())  # a reader never sees a half-written file

    def _save_frame_buffer(self, path: Path, done: threading.Event) -> None:
        """Ask DPG for the frame buffer; it arrives with the next frame and is written as PNG (atomically)."""
        import cv2

        path.parent.mkdir(parents=True, exist_ok=True)

        def save(sender: Any, buffer: Any) -> None:
            import numpy as np

            from engine.imageio import encode_png, write_atomic

            width, height = buffer.get_width(), buffer.get_height()
            pixels = (np.array(buffer, dtype=np.float32).reshape(height, width, 4) * 255).astype(np.uint8)
            write_atomic(path, encode_png(cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGR)))
            done.set()

        self.dpg.output_frame_buffer(callback=save)

    def _screenshot(self, path: Path) -> int:
        """Fill the previews with the sample photo and its edit, render, save the frame buffer as PNG."""

        from engine.analysis import estimate
        from engine.bench import read_frames
        from engine.capture import Frame
        from engine.pipeline import Pipeline

        dpg = self.dpg
        sample = read_frames(ROOT / "samples" / "face.mp4", 1)[0]
        pipeline = Pipeline(self.registry, self.settings)
        try:
            outcome = pipeline.process(Frame(sample, source="samples/face.mp4"), self.expression(), "landmark-warp")
            edited = outcome.result.image if outcome.ok else None
            after = pipeline.landmarker.detect(edited) if edited is not None else []
        finally:
            pipeline.close()
        dpg.set_value("tex_input", to_texture(sample, PREVIEW_W, PREVIEW_H))
        dpg.set_value("tex_output", to_texture(edited, PREVIEW_W, PREVIEW_H))
        if outcome.faces:
            dpg.set_value("input_estimate", estimate(outcome.faces[0].blendshapes, self.registry.emotions)["text"])
        if after:
            dpg.set_value("output_estimate", estimate(after[0].blendshapes, self.registry.emotions)["text"])
        dpg.set_value("status", "Ready: the first frame of samples/face.mp4 with happy (landmark-warp)")
        for _ in range(6):
            self.log.flush()
            dpg.render_dearpygui_frame()
        if self.args.layout:
            self._write_layout(Path(self.args.layout))
        done = threading.Event()
        self._save_frame_buffer(path, done)
        for _ in range(30):
            dpg.render_dearpygui_frame()
            if done.is_set():
                break
        dpg.destroy_context()
        if not done.is_set():
            print("launcher: the frame buffer could not be read", file=sys.stderr)
            return 1
        print(f"screenshot written to {path}")
        return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: `python launcher.py [--screenshot FILE]`."""
    parser = argparse.ArgumentParser(prog="launcher.py", description="FaceSynth's desktop panel (Dear PyGui).")
    parser.add_argument("--screenshot", metavar="FILE", help="render the panel, save it as PNG, and exit")
    parser.add_argument("--source", help="the source to start with (default: samples/face.mp4)")
    parser.add_argument("--autostart", action="store_true", help="start the source at once")
    parser.add_argument("--out", help="capture folder (default: setting output_dir)")
    parser.add_argument("--backend", help="backend to select at start")
    parser.add_argument("--plugins-dir", action="append", default=[], metavar="DIR",
                        help="also load drop-in plugins from DIR")
    parser.add_argument("--layout", metavar="FILE", help=argparse.SUPPRESS)  # widget positions, for tests
    parser.add_argument("--frame-log", metavar="FILE", help=argparse.SUPPRESS)  # frame times, for tests
    parser.add_argument("--dump-on-signal", metavar="FILE", help=argparse.SUPPRESS)  # SIGUSR1: frame buffer
    args = parser.parse_args(argv)
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        print("launcher: no display found (DISPLAY is not set). Run it on a desktop, or under a virtual display: "
              "xvfb-run python launcher.py --screenshot shot.png", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    from engine.allocator import tune_process

    tune_process()  # before numpy loads: one BLAS thread, frame buffers kept for reuse
    from engine.errors import FaceSynthError

    try:
        return Launcher(args).run()
    except FaceSynthError as exc:
        print(f"launcher: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
