"""FaceSynth's core engine: plugins, the expression vector, the event bus, the pipeline and the CLI.

Plugins mark their hook implementations with `engine.hookimpl`.
"""

import os

# Our matrices are small; BLAS thread pools would only fight the pipeline's own two workers for two cores.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import pluggy  # noqa: E402

from engine.allocator import keep_freed_memory  # noqa: E402

# Per-frame image buffers are reused instead of being faulted in again every frame (see engine.allocator).
keep_freed_memory()

PROJECT_NAME = "facesynth"
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["PROJECT_NAME", "hookimpl"]
