"""FaceSynth's user interfaces: the Dear PyGui panel (`ui.app`) and the OpenCV live window (`ui.live_window`).

Only this package draws; `engine/` never imports it or dearpygui.
"""

from __future__ import annotations


def run(argv: list[str] | None = None) -> int:
    """Open the panel (`facesynth panel`, `python launcher.py`); returns the exit code."""
    from ui.app import main

    return main(argv)
