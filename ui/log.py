"""The panel's log: a small scrolling list of lines (after DearPyGui_Ext's mvLogger)."""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog

log = structlog.get_logger()

COLOURS = {"info": (200, 200, 200), "warning": (255, 200, 80), "error": (255, 90, 90)}
KEEP = 200  # lines kept on screen


def shorter_paths(text: str) -> str:
    """Paths under the current folder relative to it, and the home folder as ~ (shorter, and no machine paths)."""
    import os
    from pathlib import Path

    here, home = str(Path.cwd()), str(Path.home())
    if len(here) > 1:
        text = text.replace(here + os.sep, "")
    return text.replace(home + os.sep, "~" + os.sep) if len(home) > 1 else text


class LogPanel:
    """Owns its child window; `add` is safe from any thread, `flush` draws on the render thread."""

    def __init__(self, dpg: Any) -> None:
        self.dpg = dpg
        self.child: int | str = 0
        self.lines: list[tuple[str, str]] = []
        self._pending: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def build(self, height: int = 100) -> None:
        """Create the widget (inside the current container)."""
        self.child = self.dpg.add_child_window(height=height, tag="log_panel")

    def add(self, level: str, message: str) -> None:
        """Queue a line (and send it to the structured log too)."""
        log.debug("panel_log", level=level, message=message)
        message = shorter_paths(message)
        with self._lock:
            self._pending.append((level, f"{time.strftime('%H:%M:%S')} {message}"))

    def flush(self) -> bool:
        """Draw queued lines; True when there were any."""
        with self._lock:
            pending, self._pending = self._pending, []
        for level, text in pending:
            self.lines.append((level, text))
            self.dpg.add_text(text, parent=self.child, color=COLOURS.get(level, COLOURS["info"]), wrap=0)
        if pending:
            del self.lines[:-KEEP]
            children = self.dpg.get_item_children(self.child, 1) or []
            for item in children[:-KEEP]:
                self.dpg.delete_item(item)
            self.dpg.set_y_scroll(self.child, self.dpg.get_y_scroll_max(self.child) + 100)
        return bool(pending)
