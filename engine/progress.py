"""The one progress bar of long jobs (a batch of inputs, the frames of a video): count, rate and ETA, by tqdm.

The bar is drawn on stderr only when stderr is a terminal, and never inside a batch's worker processes (the
job's own bar counts their inputs): `quiet_in_this_process()` turns every later bar of the process off.
"""

from __future__ import annotations

import shutil
import sys
from typing import Any

_QUIET = False


def quiet_in_this_process() -> None:
    """Draw no bars in this process (a batch worker: the parent draws the job's bar)."""
    global _QUIET
    _QUIET = True


class Progress:
    """A bar over `total` items (0 when unknown), labelled `label`, advanced with `update(done)`."""

    def __init__(self, total: int, label: str, unit: str = "it", stream: Any = None, show: bool = True) -> None:
        from tqdm import tqdm

        self.stream = stream or sys.stderr
        self.enabled = show and not _QUIET and hasattr(self.stream, "isatty") and self.stream.isatty()
        # A terminal that reports no size (0x0, as some pseudo-terminals do) would hide the bar: assume 100x20.
        size = shutil.get_terminal_size((100, 20))
        self._bar = tqdm(total=total or None, desc=label, unit=unit, file=self.stream, disable=not self.enabled,
                         ncols=size.columns, nrows=size.lines, mininterval=0.1, leave=True)
        self.done = 0

    def update(self, done: int) -> None:
        """Move the bar to `done` items (it redraws at most ten times a second)."""
        if done > self.done:
            self._bar.update(done - self.done)
            self.done = done

    def advance(self, count: int = 1) -> None:
        """Count `count` more items."""
        self.update(self.done + count)

    def note(self, text: str) -> None:
        """Show `text` after the figures (e.g. the last input's name)."""
        self._bar.set_postfix_str(text, refresh=False)

    def writing(self) -> Any:
        """A context in which other output may be printed: the bar steps aside and is drawn again after."""
        from tqdm import tqdm

        return tqdm.external_write_mode(file=self.stream)

    def close(self) -> None:
        """End the bar's line."""
        self._bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
