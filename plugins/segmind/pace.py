"""One request pace for every process of a batch: Segmind's rate limit is per account, not per process.

`FilePacer` keeps the time the next request may start in a small file, read and advanced under an exclusive
`fcntl` lock, so worker processes (and Ray workers on a shared folder) space their requests as one client would.
A batch names the file in `FACESYNTH_SEGMIND_PACE_FILE`; without it the client keeps its in-process pacer.
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import time
from pathlib import Path
from typing import Any, Callable

import structlog

log = structlog.get_logger()

PACE_FILE_VARIABLE = "FACESYNTH_SEGMIND_PACE_FILE"


class FilePacer:
    """Spaces request starts to a requests-per-minute budget shared through `path` (wall-clock seconds)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._turn = threading.local()  # this thread's last turn: (start, next start after it)

    def wait(self, rpm: float, sleep: Callable[[float], None] = time.sleep) -> float:
        """Block until the next request may start (across every process using the file); returns the wait."""
        interval = 60.0 / rpm if rpm > 0 else 0.0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            raw = os.pread(descriptor, 8, 0)
            planned = struct.unpack("<d", raw)[0] if len(raw) == 8 else 0.0
            now = time.time()
            start = max(now, planned)
            os.pwrite(descriptor, struct.pack("<d", start + interval), 0)
        finally:
            os.close(descriptor)  # closing releases the lock
        self._turn.value = (start, start + interval)
        delay = start - now
        if delay > 0:
            sleep(delay)
        return delay

    def give_back(self) -> None:
        """Return this thread's last turn (its request never reached the server), unless a later one was taken."""
        turn = getattr(self._turn, "value", None)
        self._turn.value = None
        if turn is None:
            return
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            raw = os.pread(descriptor, 8, 0)
            if len(raw) == 8 and struct.unpack("<d", raw)[0] == turn[1]:
                os.pwrite(descriptor, struct.pack("<d", turn[0]), 0)
        finally:
            os.close(descriptor)


def shared_pacer(default: Any) -> Any:
    """The batch's shared pacer when a pace file is named in the environment, else `default`."""
    path = os.environ.get(PACE_FILE_VARIABLE)
    if not path:
        return default
    log.debug("segmind_shared_pace", file=path)
    return FilePacer(path)
