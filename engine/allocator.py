"""Keep freed memory in the process for reuse.

Every frame allocates and frees a few megabytes of image buffers (the face crop, its maps, the remapped copy).
By default glibc hands large freed blocks back to the operating system and the next frame faults the same pages
in again: on the development VM that page-faulting took more time than the warp's arithmetic (a 640x480 face,
sleepy preset: 5.1 ms per face with freed memory kept, 11.0 ms without, in back-to-back runs). The price is resident
memory: up to 64 MB of free memory may stay with each of malloc's arenas. It stays flat (a 10-minute live run:
244.2 MB after warm-up, 245.0 MB at the end).
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters (glibc's malloc.h)
M_MMAP_THRESHOLD = -3
TRIM_BYTES = 64 << 20  # free memory kept at the top of the heap before any is given back
MMAP_BYTES = 32 << 20  # blocks below this come from the heap, not a fresh mapping (glibc's largest allowed value)


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed buffers for reuse; False where that is not possible (not Linux/glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
    except (OSError, AttributeError):  # no mallopt (e.g. musl): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def tune_process() -> None:
    """What the entry points (the CLI, the panel) do first, before numpy loads: one BLAS thread (our matrices are
    small; BLAS thread pools would only fight the pipeline's own two workers for two cores) and freed frame
    buffers kept for reuse. Importing `engine` changes neither, so a program embedding it keeps its own."""
    import os

    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    keep_freed_memory()
