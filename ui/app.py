"""The panel: builds the window from its parts, runs the render loop, owns the source and the background work.

    facesynth panel                          # open the panel (also: python launcher.py)
    facesynth panel --screenshot shot.png    # render it once, save a PNG, exit

The pipeline runs on worker threads; this module only displays and reacts. Anything a worker wants shown is
posted to the render thread (`post`). The window redraws while something changes (frames, a capture on its way,
the mouse moving) and only a few times a second when nothing does.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from ui.controls import Controls, weights_text
from ui.gallery import Gallery
from ui.log import LogPanel, shorter_paths
from ui.plugins_panel import PluginsPanel
from ui.previews import Previews
from ui.snapshots import SnapshotResult, Snapshots

log = structlog.get_logger()

ROOT = Path(__file__).resolve().parent.parent
LEFT_W = 410
FULL_SIZE = (1560, 1000)  # the viewport on a screen that has room for it
IDLE_FRAME_S = 0.2  # with nothing changing, a frame this often (input is still read)
AWAKE_S = 1.5  # full frame rate this long after the mouse moved
ANALYSE_EVERY_S = 0.5
KEY_REPEAT_S = 0.6  # the same shortcut again within this time is the key repeating, not a new press


_KEEP: list[Any] = []


def screen_size() -> tuple[int, int] | None:
    """The X screen's size in pixels (None when it cannot be read: another platform, no libX11)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("X11")
    if not name or not os.environ.get("DISPLAY"):
        return None
    try:
        x11 = ctypes.CDLL(name)
        x11.XOpenDisplay.restype = ctypes.c_void_p
        x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        for function in (x11.XDefaultScreen, x11.XCloseDisplay):
            function.argtypes = [ctypes.c_void_p]
        for function in (x11.XDisplayWidth, x11.XDisplayHeight):
            function.argtypes = [ctypes.c_void_p, ctypes.c_int]
        display = x11.XOpenDisplay(None)
        if not display:
            return None
        # Left open on purpose: an X server that loses its last client resets, and the window opened next
        # would find no display for a moment.
        _KEEP.append(display)
        screen = x11.XDefaultScreen(display)
        return int(x11.XDisplayWidth(display, screen)), int(x11.XDisplayHeight(display, screen))
    except (OSError, AttributeError):
        return None


def viewport_geometry(screen: tuple[int, int] | None) -> tuple[int, int, int, int]:
    """Width, height, x and y of the viewport: the full size where it fits, else the screen less a margin."""
    if screen is None:
        return (*FULL_SIZE, 40, 40)
    width = min(FULL_SIZE[0], screen[0] - 16)
    height = min(FULL_SIZE[1], screen[1] - 48)  # room for a task bar and a title bar
    return width, height, max(0, (screen[0] - width) // 2), max(0, (screen[1] - height - 32) // 2)


def first_frame(spec: str, max_megapixels: float) -> Any:
    """The first picture of a file or image source (None for cameras, streams and unreadable files)."""
    import cv2

    from engine.capture import IMAGE_SUFFIXES, VIDEO_SUFFIXES
    from engine.imageio import read_image

    path = Path(spec).expanduser()
    if spec.isdigit() or "://" in spec or not path.is_file():
        return None
    try:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return read_image(path, max_megapixels)
        if path.suffix.lower() in VIDEO_SUFFIXES:
            video = cv2.VideoCapture(str(path))
            ok, image = video.read()
            video.release()
            return image if ok else None
    except Exception:  # a first picture is a courtesy: Start reports what is wrong with the source
        return None
    return None


def media_suffixes() -> list[str]:
    """The file name endings a source can have, in lower and upper case."""
    from engine.capture import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    return [case(suffix) for suffix in (*VIDEO_SUFFIXES, *IMAGE_SUFFIXES) for case in (str.lower, str.upper)]


def browse_folder(spec: str) -> Path:
    """Where Browse... opens: the folder of the source in the field when it is a file, else the current folder."""
    path = Path(spec.strip()).expanduser()
    if spec.strip() and path.is_file():
        return path.resolve().parent
    return Path.cwd()


def chosen_path(app_data: dict[str, Any]) -> str:
    """The path a file dialog's answer names: the file clicked, or the name typed (a full path typed too)."""
    typed = str(app_data.get("file_name") or "").strip()
    if typed.startswith(("/", "~")):
        return str(Path(typed).expanduser())
    return str(app_data.get("file_path_name") or "")


class App:
    """The panel."""

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
        check_options(args, self.registry, self.settings)  # before any window: a bad option is a usage error
        self.backend_id = self.settings.backend if self.settings.backend in self.registry.backends else "auto"
        default = ROOT / "samples" / "face.mp4"
        self.source_spec = str(args.source) if args.source else (shorter_paths(str(default)) if default.exists()
                                                                 else "0")
        self.pipeline: Any = None
        self.source: Any = None
        self.worker: threading.Thread | None = None
        self.latest: dict[str, Any] = {}
        self.latest_lock = threading.Lock()
        self.tasks: queue.Queue[Callable[[], None]] = queue.Queue()
        self.figures: dict[str, Any] = {}
        self.frame_times: list[tuple[float, float]] = []
        self.log = LogPanel(dpg)
        self.previews = Previews(dpg)
        self.plugins = PluginsPanel(self)
        self.controls = Controls(self)
        self.gallery = Gallery(self)
        self.snapshots = Snapshots(self.registry, self.settings)
        self.current_input: Any = None  # the Frame the input preview shows (what Capture stores)
        self.input_text = ""
        self.output_key: tuple[Any, ...] = ("none",)  # what the output preview shows now
        # The edit the output preview shows (the live state's version and the faces setting it was made with):
        # with nothing running, an output older than the controls is edited again from the input shown.
        self.shown_recipe: tuple[int, str] = (-1, "")
        self._still_busy = False
        self._capture_recipe: tuple[int, str] = (-1, "")
        self.output_label: tuple[tuple[Any, ...], str] | None = None  # the last analysis and what it measured
        self._analysis_busy = False
        self._last_analysis = 0.0
        self._analyser: Any = None
        self._dump_requested = False
        self._awake_until = 0.0
        self._last_key: tuple[int, float] = (0, 0.0)
        self.face_marks: list[dict[str, Any]] = []  # the faces in the still input shown, numbered as --faces
        self.faces_pick: list[int] = []  # faces clicked to edit (empty: as the faces setting says)
        self.recording: Any = None  # ui.outputs.Recording while Record is on
        self.virtual_camera: Any = None  # ui.outputs.VirtualCameraOutput while Virtual camera is on
        self._outputs_lock = threading.Lock()
        self._fitted = (0, 0)  # the viewport size the layout was fitted to
        self._startup: list[threading.Thread] = []  # first preview and warm-up: the panel is settled after them

    @property
    def synthesizer(self) -> Any:
        """The synthesize stage over the current registry: every call into a backend goes through its guard."""
        from engine.events import EventBus
        from engine.synthesize import Synthesizer

        return Synthesizer(self.registry, self.settings, EventBus())

    def expression(self) -> Any:
        """The expression vector the live state describes."""
        return self.registry.expression(self.state.emotions, self.state.intensity, self.state.overrides)

    def post(self, task: Callable[[], None]) -> None:
        """Run `task` on the render thread (the only one that touches widgets)."""
        self.tasks.put(task)

    def status(self, text: str, level: str = "info") -> None:
        """Set the status line and log the message (render thread)."""
        self.dpg.set_value("status", shorter_paths(text))
        self.log.add(level, text)

    # ------------------------------------------------------------------------------------------ building

    def build(self) -> None:
        """Create the viewport and every widget."""
        dpg = self.dpg
        dpg.create_context()
        # Callbacks run on the render thread, right after the frame that saw the click or key: widgets and the
        # live state are then changed by one thread, and a shortcut sees the modifier keys of its own frame.
        dpg.configure_app(manual_callback_management=True)
        with dpg.texture_registry(tag="textures"):
            self.previews.build_textures()
        for tag, colour, part in (("theme_failed", (255, 90, 90), dpg.mvThemeCol_Text),
                                  ("theme_grey", (130, 130, 130), dpg.mvThemeCol_Text),
                                  ("theme_active", (40, 140, 70), dpg.mvThemeCol_Button)):
            with dpg.theme(tag=tag):
                with dpg.theme_component(dpg.mvAll):
                    dpg.add_theme_color(part, colour)
        with dpg.window(tag="main", no_title_bar=True, no_move=True, no_resize=True):
            with dpg.group(horizontal=True):
                with dpg.child_window(width=LEFT_W, tag="left"):
                    self.plugins.build()
                    dpg.add_separator()
                    self.controls.build()
                with dpg.child_window(tag="right"):
                    self._build_right()
        # The panels are not filled again over the window's own background: with software OpenGL (a virtual
        # display, a machine without a GPU) filling the viewport is much of every frame's time. It looks the same.
        with dpg.theme(tag="theme_main"):
            with dpg.theme_component(dpg.mvAll):
                dpg.add_theme_color(dpg.mvThemeCol_ChildBg, (0, 0, 0, 0))
        dpg.bind_item_theme("main", "theme_main")
        with dpg.handler_registry():
            dpg.add_key_press_handler(callback=lambda s, key: self.on_key(key))
        width, height, x, y = viewport_geometry(screen_size())
        dpg.create_viewport(title="FaceSynth", width=width, height=height, x_pos=x, y_pos=y, min_width=800,
                            min_height=560)
        dpg.set_primary_window("main", True)
        dpg.setup_dearpygui()
        dpg.set_viewport_vsync(False)
        self.plugins.fill()
        self.controls.fill()
        self.controls.sync()

    def _build_right(self) -> None:
        dpg = self.dpg
        with dpg.group(horizontal=True):
            dpg.add_text("Source")
            dpg.add_input_text(tag="source", default_value=self.source_spec, width=380, on_enter=True,
                               hint="camera number (0), video file, stream URL or image",
                               callback=lambda: self.start())
            dpg.add_button(label="Browse...", tag="browse", callback=lambda: self.browse())
            dpg.add_button(label="Start", tag="start", callback=lambda: self.start())
            dpg.add_button(label="Stop", tag="stop", callback=lambda: self.stop())
            dpg.add_button(label="Back to live", tag="back_to_live", show=False, callback=lambda: self.start())
            dpg.add_checkbox(label="Record", tag="record", callback=lambda s, v: self.toggle_record(v))
            dpg.add_checkbox(label="Virtual camera", tag="virtual_camera",
                             callback=lambda s, v: self.toggle_virtual_camera(v))
        self.previews.build()
        with dpg.item_handler_registry(tag="input_handlers"):
            dpg.add_item_clicked_handler(callback=lambda: self.pick_face())
        dpg.bind_item_handler_registry("preview_input", "input_handlers")
        with dpg.group(horizontal=True):
            dpg.add_button(label="Capture", tag="capture", width=120, height=30, callback=lambda: self.capture())
            dpg.add_loading_indicator(tag="busy_indicator", show=False, radius=1.6)
            dpg.add_text("", tag="busy_text")
            dpg.add_text("", tag="fps_text")
        self.gallery.build()
        dpg.add_text("Ready.", tag="status")
        self.log.build()

    def fit(self) -> None:
        """Size the previews and the log to the viewport (called at start and on every resize)."""
        dpg = self.dpg
        width, height = dpg.get_viewport_client_width(), dpg.get_viewport_client_height()
        self._fitted = (width, height)
        log_h = 70 if height < 850 else 100
        dpg.configure_item("log_panel", height=log_h)
        # Everything on the right that is not a preview, measured at this font: rows, gallery, status, log.
        self.previews.fit(width - LEFT_W - 48, height - 330 - log_h)
        dpg.configure_item("gallery_detail", wrap=max(300, width - LEFT_W - 60))

    # ------------------------------------------------------------------------------------------ actions

    def on_key(self, key: int) -> None:
        """The keyboard shortcuts (not while typing in a field or a dialog is open, except Esc closing it)."""
        dpg = self.dpg
        now = time.perf_counter()
        self._awake_until = now + AWAKE_S  # typing comes one key a frame: draw at full rate
        if self._last_key[0] == key and now - self._last_key[1] < KEY_REPEAT_S:
            return  # a held key repeats (and on a slow frame a short press looks held): one capture, not two
        self._last_key = (key, now)
        dialogs = self._dialog_open()
        if dialogs:
            if key == dpg.mvKey_Escape:
                for tag in dialogs:
                    dpg.hide_item(tag)
            return
        if dpg.is_item_active("source"):
            return
        ctrl = any(dpg.is_key_down(k) for k in (dpg.mvKey_LControl, dpg.mvKey_RControl, dpg.mvKey_ModCtrl))
        if ctrl and key == dpg.mvKey_S:
            self.gallery.open_save_as(newest=True)
        elif ctrl and key == dpg.mvKey_Z:
            self.controls.undo()
        elif ctrl:
            return
        elif dpg.mvKey_1 <= key <= dpg.mvKey_9:
            self.controls.choose_number(key - dpg.mvKey_1 + 1)
        elif key == dpg.mvKey_Spacebar:
            self.capture()
        elif key == dpg.mvKey_Escape:
            self.stop()

    def _dialog_open(self) -> list[str]:
        """The dialogs shown now."""
        return [tag for tag in ("save_emotion_window", "save_as_window", "file_dialog")
                if self.dpg.does_item_exist(tag) and self.dpg.get_item_configuration(tag).get("show")]

    def choose_backend(self, backend_id: str) -> None:
        """Use `backend_id` for captures (an unavailable one is refused with the reason)."""
        if backend_id in self.plugins.unavailable:
            self.plugins.select(self.backend_id)
            self.status(f"{backend_id} is unavailable: {self.plugins.unavailable[backend_id]}", "warning")
            return
        self.backend_id = backend_id
        self.plugins.select(backend_id)
        self.status(f"backend: {backend_id} (captures use it; the live preview uses the fastest live backend)")

    def rescan(self) -> None:
        """Reload every plugin without restarting; the controls then show what is in effect."""
        self.registry = self.loader.load()
        self.snapshots.registry = self.registry
        if self.backend_id != "auto" and self.backend_id not in self.registry.backends:
            self.log.add("warning", f"backend {self.backend_id} is gone after the rescan; using auto")
            self.backend_id = "auto"
        gone = self.state.keep_known(self.registry.emotions)
        if self.pipeline is not None:
            self.pipeline.registry = self.registry
        self.plugins.fill()
        self.controls.fill()
        self.controls.sync()
        failed = self.registry.failed_plugins()
        self.status(f"plugins rescanned: {len(self.registry.emotions)} emotions, {len(self.registry.backends)} "
                    f"backends, {len(failed)} failed; showing {weights_text(self.state.emotions)}",
                    "warning" if failed else "info")
        if gone:
            self.log.add("warning", f"no longer loaded, left out of the mix: {', '.join(gone)}")
        for info in failed:
            self.log.add("error", f"plugin {info.name} failed: {info.reason}")

    def browse(self) -> None:
        """Browse...: a file dialog in the current source's folder, listing what a source can be."""
        dpg = self.dpg
        # A new dialog each time: Dear PyGui's keeps its folder after Esc hid it, and opens only where it was made.
        if dpg.does_item_exist("file_dialog"):
            dpg.delete_item("file_dialog")
        width, height = dpg.get_viewport_client_width(), dpg.get_viewport_client_height()
        size = (min(720, width - 40), min(440, height - 60))
        with dpg.file_dialog(tag="file_dialog", label="Choose a source (a video or an image)", width=size[0],
                             height=size[1], default_path=str(browse_folder(dpg.get_value("source"))),
                             default_filename="", callback=lambda s, a: self._chose_file(a)):
            # One filter only: FaceSynth opens no other file, and a plain ".*" filter would turn the name picked
            # into "name.*". Both cases, as cameras and phones name files (IMG_0001.JPG).
            dpg.add_file_extension("Media{" + ",".join(media_suffixes()) + "}")

    def _chose_file(self, app_data: dict[str, Any]) -> None:
        """The file picked in Browse...'s dialog goes into the source field and starts."""
        path = chosen_path(app_data)
        if path:
            self.dpg.set_value("source", shorter_paths(path))
            self.start()

    def start(self) -> None:
        """Open the source in the field and run the live pipeline in the background."""
        from engine.capture import FrameSource
        from engine.errors import FaceSynthError
        from engine.events import Event
        from engine.live import LivePipeline

        self.stop(quiet=True)
        spec = self.dpg.get_value("source").strip()
        try:
            # Files and images at their own frame rate (for viewing), looping.
            source = FrameSource(spec, loop=True, retries=self.settings.camera_retries, paced=True,
                                 max_megapixels=self.settings.max_megapixels)
            pipeline = LivePipeline(self.registry, self.settings, self.state, self.backend_id)
        except FaceSynthError as exc:
            self.status(f"cannot start: {exc}", "error")
            return
        pipeline.bus.on(Event.RENDER, functools.partial(self._on_render, pipeline))
        pipeline.bus.on(Event.RENDER, lambda event: self._to_outputs(event, source))
        pipeline.bus.on(Event.PREPROCESS, self._on_faces)
        pipeline.bus.on(Event.ERROR, lambda e: self.log.add("error", f"{e.stage}: {e.message}"))
        pipeline.bus.on(Event.STATS, lambda e: self.figures.update(e.figures))
        self.figures = {}
        self.face_marks = []  # marks of a still picture: not of the frames to come
        self.pipeline, self.source = pipeline, source
        self.worker = threading.Thread(target=self._run_pipeline, args=(pipeline, source), daemon=True)
        self.worker.start()
        self.dpg.hide_item("back_to_live")
        self.dpg.set_value("fps_text", "starting ...")
        rate = f", {source.fps:.0f} fps" if source.kind == "file" else ""
        self.status(f"running: {spec} ({source.kind}{rate}) with {pipeline.backend_id}")

    def _to_outputs(self, event: Any, source: Any) -> None:
        with self._outputs_lock:
            outputs = [output for output in (self.recording, self.virtual_camera) if output is not None]
        for output in outputs:
            try:
                output(event, source)
            except Exception as exc:  # a full disk, a camera gone: that output stops, the stream goes on
                self.post(functools.partial(self._output_failed, output, exc))

    def _output_failed(self, output: Any, exc: Exception) -> None:
        from engine.synthesize import describe

        if output is self.recording:
            self.toggle_record(False)
            self.dpg.set_value("record", False)
        elif output is self.virtual_camera:
            self.toggle_virtual_camera(False)
            self.dpg.set_value("virtual_camera", False)
        self.status(f"output stopped: {describe(exc)}", "error")

    def toggle_record(self, on: bool) -> None:
        """Record the output (from the next frame of the running source, or from Start)."""
        from ui.outputs import Recording

        if on:
            with self._outputs_lock:
                self.recording = Recording(Path(self.settings.output_dir), self.log.add)
            self.status("recording: " + ("from now on" if self.pipeline is not None else "from Start"))
            return
        with self._outputs_lock:
            recording, self.recording = self.recording, None
        if recording is not None:
            self.status(recording.close(off=True) or "recording off (nothing was recorded)")

    def toggle_virtual_camera(self, on: bool) -> None:
        """Send the output to a virtual camera (at the source's size and rate), or stop sending."""
        from engine.errors import FaceSynthError
        from ui.outputs import VirtualCameraOutput

        if not on:
            with self._outputs_lock:
                camera, self.virtual_camera = self.virtual_camera, None
            if camera is not None:
                self.status(camera.close())
            return
        size = self.source.size if self.source is not None and self.source.size[0] else (640, 480)
        fps = self.source.fps if self.source is not None else 30.0
        try:
            camera = VirtualCameraOutput(size, fps)
        except FaceSynthError as exc:
            self.dpg.set_value("virtual_camera", False)
            self.status(f"virtual camera: {exc}", "error")
            return
        with self._outputs_lock:
            self.virtual_camera = camera
        self.status(f"sending the output to the virtual camera {camera.camera.device} ({size[0]}x{size[1]})")

    def _run_pipeline(self, pipeline: Any, source: Any) -> None:
        figures = pipeline.run(source)
        self.post(lambda: self._ended(pipeline, figures))

    def _ended(self, pipeline: Any, figures: dict[str, Any]) -> None:
        if pipeline is not self.pipeline:  # stopped by the user: stop() said so already
            return
        self._release()
        self.dpg.set_value("fps_text", "stopped")
        if pipeline.error:
            self.status(f"stopped: {pipeline.error}", "error")
        else:
            self.status(f"the source ended after {figures['frames']} frames")

    def _release(self) -> None:
        # Forget the run first: Dear PyGui calls callbacks on a thread of its own, and the render thread must
        # not take this run's end for the source ending by itself.
        pipeline, worker, source = self.pipeline, self.worker, self.source
        self.pipeline = self.worker = self.source = None
        if pipeline is not None:
            pipeline.stop()
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=3)
        if source is not None:
            source.close()
        with self.latest_lock:
            self.latest.pop("render", None)
        with self._outputs_lock:
            recording = self.recording
        if recording is not None:  # the file ends with the run; Record stays on for the next Start
            done = recording.close()
            if done:
                self.log.add("info", done)

    def stop(self, quiet: bool = False) -> bool:
        """Stop the live pipeline (the last frames stay on screen); False when nothing was running."""
        if self.pipeline is None:
            if not quiet:
                self.status("nothing is running")
            return False
        spec, frames = self.source.spec, self.pipeline.frames_done
        fps = self.figures.get("fps", 0)
        self._release()
        self.dpg.set_value("fps_text", "stopped" + (f" (it ran at {fps:.0f} fps)" if fps else ""))
        if not quiet:
            self.status(f"stopped: {spec} after {frames} frames")
        self.request_analysis()  # the output preview now holds still: measure that very frame
        return True

    def _on_render(self, pipeline: Any, event: Any) -> None:
        if pipeline is not self.pipeline:  # a stopped run's last frame (its join timed out on a busy machine)
            return
        with self.latest_lock:
            self.latest["render"] = (event, self.state.version)

    def _on_faces(self, event: Any) -> None:
        from engine.analysis import estimate

        if event.faces:
            self.input_text = "input " + estimate(event.faces[0].blendshapes, self.registry.emotions)["text"]

    def capture(self) -> None:
        """Store the frame in the input preview, edited with the chosen backend, in the background."""
        from engine.capture import Frame

        frame = self.current_input
        if frame is None:  # nothing shown yet: the first picture of the source in the field
            spec = self.dpg.get_value("source").strip()
            image = first_frame(spec, self.settings.max_megapixels)
            if image is None:
                self.status("nothing to capture: start a source first", "warning")
                return
            frame = Frame(image, source=spec)
        recipe = {"emotion": [{"name": n, "weight": w} for n, w in self.state.emotions],
                  "intensity": self.state.intensity}
        self._capture_recipe = self.recipe()
        if self.snapshots.take(frame, self.expression(), self.backend_id, recipe, source=frame.source):
            self.status(f"capturing with {self.backend_id} ({weights_text(self.state.emotions)}) ...")
        else:
            self.status(self.snapshots.status, "warning")

    def open_capture(self, folder: str) -> None:
        """Show a stored capture: its pair, what each side looks like, a summary and the actions on it."""
        from engine.capture import Frame
        from engine.imageio import read_image
        from engine.storage import read_meta

        path = Path(folder)
        was = self.source.spec if self.source is not None else ""
        self.stop(quiet=True)
        images: dict[str, Any] = {}
        for name in ("input.png", "output.png"):
            try:
                images[name] = read_image(path / name, self.settings.max_megapixels)
            except Exception:  # a failed capture has no output: show what there is
                images[name] = None
        self.previews.show(images["input.png"], images["output.png"])
        if images["input.png"] is not None:
            self.current_input = Frame(images["input.png"], source=str(path / "input.png"))
        meta = read_meta(path)
        faces = meta.get("faces") or []
        self.input_text = f"input {faces[0]['expression']['text']}" if faces and "expression" in faces[0] else ""
        self.output_key = ("capture", str(path))
        if meta.get("output_estimate"):
            self.output_label = (self.output_key, meta["output_estimate"])
        elif images["output.png"] is not None:
            self.request_analysis(images["output.png"])
        self.gallery.show(path, meta)
        self.dpg.show_item("back_to_live")
        note = f"; {was} is stopped (Back to live starts it again)" if was else ""
        self.status(f"showing capture {path.name}{note}")

    # ------------------------------------------------------------------------------ what the output looks like

    def request_analysis(self, image: Any = None) -> None:
        """Measure the expression on the output preview's picture (or `image`), in the background."""
        if self._analysis_busy:
            return
        if image is None:
            with self.latest_lock:
                shown = self.latest.get("shown")
            if shown is None:
                return
            image = shown.output
        self._analysis_busy, self._last_analysis = True, time.perf_counter()
        key = self.output_key
        threading.Thread(target=self._analyse, args=(image.copy(), key), daemon=True).start()

    def _analyse(self, image: Any, key: tuple[Any, ...]) -> None:
        from engine.analysis import estimate
        from engine.faces import Landmarker

        try:
            if key[0] != "live":  # a still picture: the still landmarker, which finds small and many faces
                faces = self.snapshots.analyse(image)
            else:  # stream frames: a landmarker of its own, so a capture on its way does not hold this up
                if self._analyser is None:
                    self._analyser = Landmarker(self.settings.landmarker_model, use_detector=False)
                faces = self._analyser.detect(image)
            text = estimate(faces[0].blendshapes, self.registry.emotions)["text"] if faces else "shows no face"
        except Exception as exc:  # analysis is a bonus: say it failed, keep the panel
            text = f"not measured ({exc})"
        finally:
            self._analysis_busy = False
        self.post(lambda: self._analysed(key, text))

    def _analysed(self, key: tuple[Any, ...], text: str) -> None:
        if key != self.output_key and self.output_label is not None and self.output_label[0] == self.output_key:
            return  # a late answer about a picture no longer shown must not replace one about the picture shown
        self.output_label = (key, text)

    def output_text(self) -> str:
        """The line under the output: the measured expression, and whether it is of the picture shown."""
        if self.output_label is None:
            return ""
        key, text = self.output_label
        if key == self.output_key:
            return f"output {text}"
        return f"output {text} (stale: measured before the last change; measuring again)"

    # ------------------------------------------------------------------------------------------ render loop

    def _update(self) -> bool:
        """Bring the widgets up to date; True when anything changed."""
        dpg = self.dpg
        changed = False
        if self._fitted != (dpg.get_viewport_client_width(), dpg.get_viewport_client_height()):
            self.fit()  # the window was resized (checked here: it costs nothing and needs no callback)
            changed = True
        while not self.tasks.empty():
            self.tasks.get()()
            changed = True
        with self.latest_lock:
            latest = self.latest.pop("render", None)
            if latest is not None:
                self.latest["shown"] = latest[0]
        if latest is not None:
            event, version = latest
            self.previews.show(event.frame.image, event.output)
            self.current_input = event.frame
            self.output_key = ("live", version)
            self.shown_recipe = (version, self.settings.faces)
            changed = True
            if time.perf_counter() - self._last_analysis > ANALYSE_EVERY_S:
                self.request_analysis(event.output)
        if self.pipeline is not None and self.figures:
            latency = self.figures.get("latency_ms", {})
            dpg.set_value("fps_text", f"{self.figures.get('fps', 0):.0f} fps, latency {latency.get('median', 0):.0f}"
                                      f" ms (p95 {latency.get('p95', 0):.0f})"
                                      + (f", source {self.source.status}" if self.source else ""))
        busy = self.snapshots.busy
        dpg.configure_item("busy_indicator", show=bool(busy))
        dpg.set_value("busy_text", busy)
        while not self.snapshots.results.empty():
            self._stored(self.snapshots.results.get())
            changed = True
        if self._still_outdated():
            self._edit_still_again()
        for tag, text in (("input_estimate", self.input_text), ("output_estimate", self.output_text())):
            if dpg.get_value(tag) != text:
                dpg.set_value(tag, text)
                changed = True
        return self.log.flush() or changed or bool(busy)

    def _stored(self, result: SnapshotResult) -> None:
        from engine.storage import read_meta

        if result.folder is None:
            self.status(f"capture failed: {result.error}", "error")
            return
        outcome = result.outcome
        if not outcome.ok:
            self.status(f"capture failed: {outcome.error} (input kept in {result.folder})", "error")
        else:
            if outcome.fallback:
                self.log.add("warning", f"fell back to {outcome.backend}: {outcome.fallback}")
            self.status(f"capture stored with {outcome.backend}: {result.folder}")
            credits = outcome.result.info.get("remaining_credits")
            if credits is not None:
                self.dpg.set_value("credits", f"{outcome.backend} credits left: {credits}")
            if self.pipeline is None:  # nothing live to cover it: show the stored pair
                self.previews.show(outcome.frame.image, outcome.result.image)
                self.output_key = ("stored", str(result.folder))
                self.shown_recipe = self._capture_recipe
                meta = read_meta(result.folder)
                if meta.get("output_estimate"):
                    self.output_label = (self.output_key, meta["output_estimate"])
                self.gallery.show(result.folder, meta)
        self.gallery.refresh()

    def pick_face(self) -> None:
        """A click on the input preview: choose that face to edit, or leave it out (the CLI's --faces)."""
        from ui.previews import image_point

        dpg = self.dpg
        if self.current_input is None or not self.face_marks:
            return
        if self.pipeline is not None:
            self.status("stop the source to pick faces on a still picture", "warning")
            return
        height, width = self.current_input.image.shape[:2]
        point = image_point(dpg.get_mouse_pos(local=False), dpg.get_item_rect_min("preview_input"),
                            dpg.get_item_rect_size("preview_input"), (width, height))
        hit = [mark for mark in self.face_marks if point is not None and
               mark["box"][0] <= point[0] <= mark["box"][0] + mark["box"][2] and
               mark["box"][1] <= point[1] <= mark["box"][1] + mark["box"][3]]
        if not hit:
            return
        number = hit[0]["number"]
        if not self.faces_pick:
            self.faces_pick = [number]  # the first click narrows "every face" down to this one
        elif number in self.faces_pick:
            self.faces_pick = [n for n in self.faces_pick if n != number]
        else:
            self.faces_pick = sorted(self.faces_pick + [number])
        self.use_faces(",".join(map(str, self.faces_pick)) or "all")

    def use_faces(self, which: str) -> None:
        """Edit the faces `which` names (as --faces) from now on, and show the still input again with them."""
        import dataclasses

        self.settings = dataclasses.replace(self.settings, faces=which)
        self.snapshots.settings = self.settings
        self.status(f"faces: editing {'every face' if which == 'all' else which} (click faces in the input to "
                    "choose; clicking the last one chosen goes back to every face)")
        # the render loop sees the output is older than the faces setting and edits the input shown again

    def recipe(self) -> tuple[int, str]:
        """The edit the controls describe now: the live state's version and the faces setting."""
        return self.state.version, self.settings.faces

    def _still_outdated(self) -> bool:
        """Nothing runs, a picture is shown (not an opened capture) and its edit is older than the controls."""
        return (self.pipeline is None and not self._still_busy and self.current_input is not None
                and self.output_key[0] != "capture" and self.shown_recipe != self.recipe())

    def _edit_still_again(self) -> None:
        """Edit the input shown with the controls' edit, in the background (one at a time; the render loop asks
        again if the controls moved meanwhile)."""
        self._still_busy = True
        threading.Thread(target=self._preview_again, args=(self.current_input, self.recipe()), daemon=True).start()

    def _preview_again(self, frame: Any, recipe: tuple[int, str]) -> None:
        outcome = None
        try:
            backend = self.synthesizer.live_entry(self.backend_id).id
            outcome = self.snapshots.preview(frame, self.expression(), backend)
        except Exception as exc:  # say it, keep the panel
            self.log.add("warning", f"no preview: {exc}")
        self.post(lambda: self._show_again(frame, outcome, recipe))

    def _show_again(self, frame: Any, outcome: Any, recipe: tuple[int, str]) -> None:
        self._still_busy = False
        if outcome is None:
            self.shown_recipe = recipe  # not asked again until the controls change
        elif self.pipeline is None and self.current_input is frame and self.output_key[0] != "capture":
            self._show_still(frame, outcome, recipe)

    def _first_preview(self) -> None:
        """The source's first picture and its edit in the previews, so the panel never opens on black panes."""
        from engine.capture import Frame

        image = first_frame(self.source_spec, self.settings.max_megapixels)
        if image is None:
            return
        frame = Frame(image, source=self.source_spec)
        recipe = self.recipe()
        try:
            backend = self.synthesizer.live_entry(self.backend_id).id
            outcome = self.snapshots.preview(frame, self.expression(), backend)
        except Exception as exc:  # the preview is a courtesy: Start reports what is wrong
            self.log.add("warning", f"no first preview: {exc}")
            return
        self.post(lambda: self._show_first(frame, outcome, recipe))

    def _show_first(self, frame: Any, outcome: Any, recipe: tuple[int, str]) -> None:
        if self.pipeline is not None or self.current_input is not None:
            return  # started meanwhile: live frames win
        self._show_still(frame, outcome, recipe)

    def _show_still(self, frame: Any, outcome: Any, recipe: tuple[int, str]) -> None:
        """A still input and its edit (made with `recipe`), the faces marked on the input (click one to choose
        which are edited)."""
        from engine.analysis import estimate
        from ui.previews import draw_marks, face_marks

        self.current_input = frame
        self.output_key = ("still", *recipe)
        self.shown_recipe = recipe
        self.face_marks = face_marks(outcome)
        shown = draw_marks(frame.image, self.face_marks) if len(self.face_marks) > 1 or any(
            mark["state"] != "edited" for mark in self.face_marks) else frame.image
        self.previews.show(shown, outcome.result.image if outcome.ok else frame.image)
        if outcome.faces:
            self.input_text = "input " + estimate(outcome.faces[0].blendshapes, self.registry.emotions)["text"]
        if outcome.ok:
            self.request_analysis(outcome.result.image)
        else:
            self.log.add("warning", f"not edited: {outcome.error}")

    def run(self) -> int:
        """Build, then draw until the window closes (or, with --screenshot, save one picture and exit)."""
        dpg = self.dpg
        self.build()
        dpg.show_viewport()
        self.fit()
        self.gallery.refresh()
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
        else:
            self._startup.append(threading.Thread(target=self._first_preview, daemon=True))
        self._startup.append(threading.Thread(target=self.snapshots.warm_up, args=(self.backend_id,), daemon=True))
        for thread in self._startup:
            thread.start()
        signal.signal(signal.SIGTERM, lambda *_: dpg.stop_dearpygui())
        if self.args.dump_on_signal:  # tests ask for the frame buffer with SIGUSR1
            signal.signal(signal.SIGUSR1, lambda *_: setattr(self, "_dump_requested", True))
        try:
            self._loop()
        finally:
            self.stop(quiet=True)
            self.toggle_virtual_camera(False)
            self.snapshots.close()
            if self.args.frame_log:
                from engine.imageio import write_atomic

                write_atomic(Path(self.args.frame_log), json.dumps(self.frame_times).encode())
            dpg.destroy_context()
        return 0

    def _loop(self) -> None:
        from ui import testhooks

        dpg = self.dpg
        layout_written = False
        last_mouse: Any = None
        last_frame = 0.0
        while dpg.is_dearpygui_running():
            started = time.perf_counter()
            changed = self._update()
            mouse = dpg.get_mouse_pos(local=False)
            if mouse != last_mouse:
                last_mouse, self._awake_until = mouse, started + AWAKE_S
            lively = (changed or self.pipeline is not None or started < self._awake_until or self._dump_requested
                      or dpg.is_item_active("source") or self._dialog_open())
            if not lively and started - last_frame < IDLE_FRAME_S:
                time.sleep(1 / 60)
                continue
            dpg.render_dearpygui_frame()
            self.run_callbacks(dpg.get_callback_queue())
            last_frame = time.perf_counter()
            self.frame_times.append((time.time(), last_frame - started))
            settled = not any(thread.is_alive() for thread in self._startup)
            if self.args.layout and not layout_written and len(self.frame_times) > 10 and settled:
                testhooks.write_layout(self, Path(self.args.layout))
                layout_written = True
            if self._dump_requested:
                self._dump_requested = False
                if self.args.layout:
                    testhooks.write_layout(self, Path(self.args.layout))
                testhooks.save_frame_buffer(dpg, Path(self.args.dump_on_signal), threading.Event())
                self._awake_until = time.perf_counter() + 0.5  # the buffer arrives with a later frame
            elapsed = time.perf_counter() - started
            if elapsed < 1 / 60:
                time.sleep(1 / 60 - elapsed)

    def run_callbacks(self, jobs: Any) -> None:
        """Run the clicks' and keys' callbacks of the last frame; one that fails is reported, the panel lives."""
        import inspect

        for job in jobs or []:
            if job[0] is None:
                continue
            try:
                job[0](*job[1:1 + len(inspect.signature(job[0]).parameters)])
            except Exception as exc:  # a defect in one action must not close the window (and lose the session)
                log.exception("panel_callback_failed")
                self.status(f"that did not work: {type(exc).__name__}: {exc}", "error")

    def _screenshot(self, path: Path) -> int:
        """The previews filled with the source's first picture and its edit, rendered, saved as PNG."""
        from ui import testhooks

        dpg = self.dpg
        self._first_preview()
        while not self.tasks.empty():
            self.tasks.get()()
        deadline = time.time() + 20
        while self._analysis_busy and time.time() < deadline:
            time.sleep(0.05)
        while not self.tasks.empty():
            self.tasks.get()()
        self.status(f"Ready: the first frame of {Path(self.source_spec).name} with "
                    f"{weights_text(self.state.emotions)}")
        for _ in range(6):
            self._update()
            dpg.render_dearpygui_frame()
        if self.args.layout:
            testhooks.write_layout(self, Path(self.args.layout))
        done = threading.Event()
        testhooks.save_frame_buffer(dpg, path, done)
        for _ in range(30):
            dpg.render_dearpygui_frame()
            dpg.run_callbacks(dpg.get_callback_queue())
            if done.is_set():
                break
        self.snapshots.close()
        dpg.destroy_context()
        if not done.is_set():
            print("facesynth panel: the frame buffer could not be read", file=sys.stderr)
            return 1
        print(f"screenshot written to {path}")
        return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The panel's options (shared by `python launcher.py` and `facesynth panel`)."""
    parser.add_argument("--screenshot", metavar="FILE", help="render the panel, save it as PNG, and exit")
    parser.add_argument("--source", help="the source to start with (default: the sample video)")
    parser.add_argument("--autostart", action="store_true", help="start the source at once")
    parser.add_argument("--out", help="capture folder (default: setting output_dir)")
    parser.add_argument("--backend", help="backend to select at start")
    parser.add_argument("--plugins-dir", action="append", default=[], metavar="DIR",
                        help="also load drop-in plugins from DIR")
    parser.add_argument("--layout", metavar="FILE", help=argparse.SUPPRESS)  # widget positions, for tests
    parser.add_argument("--frame-log", metavar="FILE", help=argparse.SUPPRESS)  # frame times, for tests
    parser.add_argument("--dump-on-signal", metavar="FILE", help=argparse.SUPPRESS)  # SIGUSR1: frame buffer


def check_options(args: argparse.Namespace, registry: Any, settings: Any) -> None:
    """Refuse a `--backend` or `--source` that `facesynth live` refuses, with the same UsageError.

    The checks are live's own: the registry's backend lookup, and `FrameSource`'s reading of the spec (a missing
    file, or a file that is not a video or an image). Nothing is opened for them: a camera or stream gets an
    opener that declines, and a file that exists but cannot be read is left to Start, which says why.
    """
    from engine.capture import FrameSource
    from engine.errors import FaceSynthError, UsageError

    if args.backend and args.backend != "auto":
        registry.backend(args.backend)
    if args.source:
        try:
            FrameSource(str(args.source), opener=lambda target: None, max_megapixels=settings.max_megapixels).close()
        except UsageError:
            raise
        except FaceSynthError:  # a camera, a stream or an unreadable file: not a usage error
            pass


def run_args(args: argparse.Namespace, prog: str = "facesynth panel") -> int:
    """Open the panel with parsed options; a bad option, a missing display or a bad setting is a one-line message.

    The options are checked (by making the App, which opens no window) before the display is looked for.
    """
    from engine.errors import FaceSynthError

    try:
        app = App(args)
        if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") \
                and not os.environ.get("WAYLAND_DISPLAY"):
            print(f"{prog}: no display found (DISPLAY is not set). Run it on a desktop, or under a virtual display: "
                  f"xvfb-run {prog} --screenshot shot.png", file=sys.stderr)
            return 2
        return app.run()
    except FaceSynthError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exc.exit_code


def main(argv: list[str] | None = None, prog: str = "facesynth panel") -> int:
    """Parse the panel's options and open it."""
    parser = argparse.ArgumentParser(prog=prog, description="FaceSynth's desktop panel (Dear PyGui).")
    add_arguments(parser)
    return run_args(parser.parse_args(argv), prog)
