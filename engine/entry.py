"""The `facesynth` command's entry point: tune the process before numpy loads, then run the CLI."""

from __future__ import annotations

import sys

from engine.allocator import tune_process


def main() -> int:
    """Run `facesynth` with the process tuned for the pipeline (one BLAS thread, frame buffers kept)."""
    tune_process()
    from engine.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
