"""Backends that take their worker process down (for the batch's tests): they edit like landmark-warp, except on
pictures marked in their top-left corner (8x8 pixels), where they crash for real.

`crash`: a pure red mark (BGR 0,0,255) calls `os._exit(3)`; a pure green mark (0,255,0) reads address 0 through
ctypes (a segfault, as a broken native library would). `kill-once`: the first picture it gets in a job whose
`FACESYNTH_TEST_KILL_MARKER` file does not exist yet makes the file and SIGKILLs its own process (a worker killed
mid-job, e.g. by the OOM killer); every later call edits like landmark-warp.
"""

import ctypes
import os
import signal

import numpy as np

from engine import hookimpl
from plugins.landmark_warp import LandmarkWarpBackend

RED = np.array([0, 0, 255], np.uint8)
GREEN = np.array([0, 255, 0], np.uint8)


def marked(image, colour):
    return bool((image[:8, :8] == colour).all())


class Crash(LandmarkWarpBackend):
    id = "crash"
    label = "Crashes on marked pictures"

    def synthesize(self, request):
        if marked(request.image, RED):
            os._exit(3)
        if marked(request.image, GREEN):
            ctypes.string_at(0)
        return super().synthesize(request)


class KillOnce(LandmarkWarpBackend):
    id = "kill-once"
    label = "Kills its worker once per job"

    def synthesize(self, request):
        marker = os.environ.get("FACESYNTH_TEST_KILL_MARKER")
        if marker:
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return super().synthesize(request)


@hookimpl
def register_backends(register):
    register(Crash())
    register(KillOnce())
