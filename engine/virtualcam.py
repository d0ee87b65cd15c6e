"""Edited frames out to a virtual camera (pyvirtualcam), so a video call or OBS can use them as a webcam.

`open_virtual_camera(width, height, fps, device=None, camera_factory=None) -> VirtualCamera`; then
`camera.send(image_bgr)` for each edited frame and `camera.close()` at the end (or `with`). Frames are sent
by a thread of their own at the camera's frame rate (pyvirtualcam's `sleep_until_next_frame`), through a
one-frame mailbox: a sender never waits, and if frames come faster than the camera takes them the newest one
wins (the older one is counted in `dropped`), as for every other sink. A frame of another size is resized to
the camera's; colours are converted to the pixel format the device was opened with (BGR, else RGB).

Where there is no virtual-camera device, `NoVirtualCamera` says so in one line with how to get one:
Linux: the v4l2loopback kernel module; Windows and macOS: OBS Studio's virtual camera (started once).
`camera_factory` (default `pyvirtualcam.Camera`) is called as `factory(width, height, fps, fmt=..., device=...)`.
"""

from __future__ import annotations

import platform
import threading
from typing import Any, Callable

import cv2
import numpy as np
import structlog

from engine.errors import InputError

log = structlog.get_logger()

LINUX_SETUP = ("load the v4l2loopback module: sudo modprobe v4l2loopback devices=1 exclusive_caps=1 "
               "card_label=FaceSynth (package v4l2loopback-dkms; or OBS Studio's virtual camera, which uses it)")
OBS_SETUP = "install OBS Studio and start its virtual camera once (Start Virtual Camera), then stop it"


class NoVirtualCamera(InputError):
    """There is no virtual-camera device to send to (or pyvirtualcam cannot use it)."""


def setup_hint(system: str | None = None) -> str:
    """How to get a virtual-camera device on this (or the named) operating system."""
    system = system or platform.system()
    return LINUX_SETUP if system == "Linux" else OBS_SETUP


def _first_reason(exc: BaseException) -> str:
    # pyvirtualcam joins one "'backend' backend: reason. hint." line per backend tried: keep the first reason
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    line = line.split("backend: ", 1)[-1]
    return line.split(". ", 1)[0].rstrip(".")


def _default_factory() -> Callable[..., Any]:
    try:
        import pyvirtualcam
    except ImportError as exc:  # a broken install: the wheel's native part did not load
        raise NoVirtualCamera(f"pyvirtualcam cannot be loaded ({exc}); reinstall FaceSynth") from None
    return pyvirtualcam.Camera


def _formats() -> list[Any]:
    from pyvirtualcam import PixelFormat

    return [PixelFormat.BGR, PixelFormat.RGB]  # BGR needs no conversion; RGB is what every backend takes


def open_virtual_camera(width: int, height: int, fps: float, device: str | None = None,
                        camera_factory: Callable[..., Any] | None = None) -> VirtualCamera:
    """Open a virtual camera of this size and frame rate; `NoVirtualCamera` (one line, with set-up hints) if none."""
    factory = camera_factory or _default_factory()
    first_error: BaseException | None = None
    for fmt in _formats():
        try:
            camera = factory(int(width), int(height), float(fps), fmt=fmt, device=device)
        except Exception as exc:  # pyvirtualcam raises RuntimeError/ValueError with each backend's reason
            first_error = first_error or exc
            if "format" in str(exc).lower() or "fourcc" in str(exc).lower():
                continue  # this device takes another pixel format: try the next
            break
        else:
            log.info("virtual_camera_opened", device=str(getattr(camera, "device", device)), width=width,
                     height=height, fps=fps, fmt=str(fmt))
            return VirtualCamera(camera, fmt)
    where = f" {device}" if device else ""
    reason = _first_reason(first_error) if first_error is not None else "no device"
    raise NoVirtualCamera(f"no virtual camera{where} ({reason}): to get one, "
                          f"{setup_hint()}")


class VirtualCamera:
    """Sends BGR frames to an open pyvirtualcam camera from a thread of its own, paced at its frame rate."""

    def __init__(self, camera: Any, fmt: Any) -> None:
        from pyvirtualcam import PixelFormat

        self.camera = camera
        self.size = (int(camera.width), int(camera.height))
        self.fps = float(camera.fps)
        self._conversion = None if fmt == PixelFormat.BGR else cv2.COLOR_BGR2RGB
        self.sent = 0
        self.dropped = 0
        self.error: BaseException | None = None
        self._pending: np.ndarray | None = None
        self._closing = False
        self._condition = threading.Condition()
        self._thread = threading.Thread(target=self._send_loop, name="facesynth-virtualcam", daemon=True)
        self._thread.start()

    @property
    def device(self) -> str:
        """The device's name (a /dev/video path on Linux, the camera's name elsewhere)."""
        return str(getattr(self.camera, "device", ""))

    def send(self, image: np.ndarray, block: bool = False) -> None:
        """Hand one BGR frame to the camera; `block` waits until the previous one was taken (files, tests)."""
        if self.error is not None:
            raise InputError(f"the virtual camera stopped: {self.error}")
        with self._condition:
            if block:
                self._condition.wait_for(lambda: self._pending is None or self._closing)
            if self._pending is not None:
                self.dropped += 1  # the camera is behind: the newest frame replaces the unsent one
            self._pending = image
            self._condition.notify_all()

    def _send_loop(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._pending is not None or self._closing)
                image, self._pending = self._pending, None
                self._condition.notify_all()
            if image is None:
                return
            try:
                self.camera.send(self._prepare(image))
                self.sent += 1
                self.camera.sleep_until_next_frame()
            except Exception as exc:  # the device went away: reported by the next send()
                self.error = exc
                log.warning("virtual_camera_failed", reason=str(exc))
                return

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        if (image.shape[1], image.shape[0]) != self.size:
            shrinking = image.shape[1] > self.size[0]
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        if self._conversion is not None:
            image = cv2.cvtColor(image, self._conversion)
        return np.ascontiguousarray(image)

    def close(self) -> None:
        """Send the frame still waiting, then release the device."""
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        self._thread.join()
        self.camera.close()
        log.info("virtual_camera_closed", sent=self.sent, dropped=self.dropped)

    def __enter__(self) -> VirtualCamera:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
