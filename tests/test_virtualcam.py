"""The virtual camera: the real no-device error here, and the sending code against a stand-in device.

There is no v4l2loopback device on this machine (nor can there be), so the stand-in replaces only the device:
it is registered as a pyvirtualcam backend, and the real `pyvirtualcam.Camera` (shape checks, pacing) runs.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest

pyvirtualcam = pytest.importorskip("pyvirtualcam")

from engine.errors import InputError  # noqa: E402
from engine.virtualcam import NoVirtualCamera, open_virtual_camera, setup_hint  # noqa: E402


class StandInDevice:
    """A virtual-camera device that keeps what it receives; like OBS on some systems, it takes only RGB."""

    received: list[tuple[float, np.ndarray]] = []

    def __init__(self, *, width, height, fps, fourcc, device, **kw):
        if fourcc != pyvirtualcam.util.encode_fourcc(pyvirtualcam.PixelFormat.RGB.value):
            raise RuntimeError("unsupported pixel format")
        self.width, self.height = width, height
        StandInDevice.received = []

    def send(self, frame):
        StandInDevice.received.append((time.perf_counter(), frame.reshape(self.height, self.width, 3).copy()))

    def device(self):
        return "stand-in"

    def native_fourcc(self):
        return None

    def close(self):
        pass


@pytest.fixture
def stand_in(monkeypatch):
    monkeypatch.setitem(pyvirtualcam.camera.BACKENDS, "stand-in", StandInDevice)
    return functools.partial(pyvirtualcam.Camera, backend="stand-in")


def test_no_device_here_is_one_clear_line():
    with pytest.raises(NoVirtualCamera) as caught:
        open_virtual_camera(640, 480, 30)
    message = str(caught.value)
    assert "\n" not in message
    assert "no virtual camera" in message and "v4l2loopback" in message and "OBS" in message
    assert "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=FaceSynth" in message
    assert caught.value.exit_code == 1
    with pytest.raises(NoVirtualCamera, match="/dev/video63"):
        open_virtual_camera(640, 480, 30, device="/dev/video63")
    assert "OBS Studio" in setup_hint("Windows") and "OBS Studio" in setup_hint("Darwin")


def test_frames_arrive_sized_converted_and_paced(stand_in):
    fps, count = 20.0, 12
    camera = open_virtual_camera(320, 240, fps, camera_factory=stand_in)
    assert camera.device == "stand-in" and camera.size == (320, 240)
    started = time.perf_counter()
    for index in range(count):
        frame = np.zeros((480, 640, 3), np.uint8)  # twice the camera's size: resized
        frame[:, :, 0] = 200  # blue in BGR
        frame[:, :, 2] = index * 10  # red numbers the frame
        camera.send(frame, block=True)
    camera.close()
    arrived = StandInDevice.received
    assert len(arrived) == count and camera.sent == count and camera.dropped == 0
    for index, (_, image) in enumerate(arrived):
        assert image.shape == (240, 320, 3)
        assert image[0, 0, 2] == 200 and image[0, 0, 0] == index * 10  # RGB now, in order
    # paced at the camera's rate: never faster than fps (sleeping only ever makes it slower)
    assert arrived[-1][0] - started >= (count - 1) / fps * 0.9


def test_a_fast_producer_never_waits_and_the_newest_frame_wins(stand_in):
    camera = open_virtual_camera(64, 48, 10.0, camera_factory=stand_in)
    started = time.perf_counter()
    for index in range(30):
        camera.send(np.full((48, 64, 3), index, np.uint8))
    sending = time.perf_counter() - started
    camera.close()
    values = [int(image[0, 0, 0]) for _, image in StandInDevice.received]
    assert sending < 1.0  # 30 frames handed over without waiting for a 10 fps camera (3 s of frames)
    assert len(values) < 30 and camera.dropped == 30 - len(values)
    assert values[-1] == 29 and values == sorted(values)


def test_device_failure_is_reported_by_the_next_send(stand_in, monkeypatch):
    camera = open_virtual_camera(64, 48, 30.0, camera_factory=stand_in)

    def unplugged(frame):
        raise OSError("No such device")

    monkeypatch.setattr(camera.camera._backend, "send", unplugged)
    camera.send(np.zeros((48, 64, 3), np.uint8), block=True)
    deadline = time.perf_counter() + 5
    while camera.error is None and time.perf_counter() < deadline:
        time.sleep(0.01)
    with pytest.raises(InputError, match="virtual camera stopped: No such device"):
        camera.send(np.zeros((48, 64, 3), np.uint8))
    camera.close()


def test_live_without_a_virtual_camera_says_so_in_one_line():
    from tests.helpers import VIDEO, assert_one_line_error, run_cli

    result = run_cli("live", "--source", VIDEO, "--headless", "--max-frames", 5, "--virtual-camera", timeout=60)
    assert result.returncode == 1
    assert_one_line_error(result, "no virtual camera", "v4l2loopback")
    assert len(result.stderr.strip().splitlines()) == 1
