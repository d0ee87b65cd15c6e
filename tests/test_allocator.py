"""Freed frame buffers are kept for reuse: the entry points tune malloc (see engine.allocator)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A frame's worth of buffers as the warp makes them (crop, maps, four-channel copy, remapped copy), freed again;
# prints the page faults of 20 such frames after three warm-up frames.
FRAMES = textwrap.dedent("""
    import resource, sys
    import numpy as np
    if sys.argv[1] == "engine":
        from engine.allocator import tune_process
        tune_process()
    def frame():
        crop = np.ones((480, 420, 3), np.uint8)
        maps = np.ones((480, 420, 2), np.float32)
        bgra = np.ones((480, 420, 4), np.uint8)
        out = bgra + 1
        del maps, out
        return crop.sum() + bgra.sum()
    for _ in range(3):
        frame()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        frame()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def page_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", FRAMES, mode], cwd=ROOT, capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux only")
def test_frame_buffers_are_reused_instead_of_faulted_in_again():
    from engine.allocator import keep_freed_memory

    if not keep_freed_memory():
        pytest.skip("this C library has no mallopt")
    plain, tuned = page_faults("plain"), page_faults("engine")
    # Without the tuning every frame faults its buffers in again (about 700 pages a frame).
    assert plain > 20 * 300, plain
    assert tuned < plain / 20, (plain, tuned)


def test_importing_the_engine_leaves_the_process_alone_and_the_entry_point_tunes_it():
    probe = textwrap.dedent("""
        import os, sys
        import engine, engine.pipeline
        print(os.environ.get("OPENBLAS_NUM_THREADS", "unset"))
    """)
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("OPENBLAS_NUM_THREADS",)}
    plain = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, env=env, check=True)
    assert plain.stdout.strip() == "unset"
    tuned = subprocess.run([sys.executable, "-c", "from engine.allocator import tune_process; tune_process(); "
                            "import numpy, os; print(os.environ['OPENBLAS_NUM_THREADS'])"],
                           cwd=ROOT, capture_output=True, text=True, env=env, check=True)
    assert tuned.stdout.strip() == "1"
