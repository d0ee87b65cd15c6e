"""FaceSynth's desktop panel, from the repo folder: `python launcher.py` (installed: `facesynth panel`).

    python launcher.py                       # open the panel
    python launcher.py --screenshot shot.png # render the panel once, save a PNG of it, exit

The panel itself is the `ui` package; this file only tunes the process and opens it.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Open the panel with the options in `argv` (see `--help`)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from engine.allocator import tune_process

    tune_process()  # before numpy loads: one BLAS thread, frame buffers kept for reuse
    from ui.app import main as panel_main

    return panel_main(argv, prog="launcher.py")


if __name__ == "__main__":
    sys.exit(main())
