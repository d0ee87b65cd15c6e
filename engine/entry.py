"""The `facesynth` command's entry point: tune the process before numpy and OpenCV load, then run the CLI."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence

from engine.allocator import tune_process

# OpenCV's and FFmpeg's own messages (no camera, a damaged video) would come before our one-line reason; they are
# shown only when debugging (`--log-level debug`, FACESYNTH_LOG_LEVEL=debug, or FACESYNTH_NATIVE_LOGS=1).
QUIET_NATIVE = {"OPENCV_LOG_LEVEL": "SILENT", "OPENCV_FFMPEG_LOGLEVEL": "-8"}  # -8: AV_LOG_QUIET


def wants_native_logs(argv: Sequence[str], env: dict[str, str] | os._Environ[str]) -> bool:
    """Whether the user asked for debug output, so native libraries may speak too."""
    if env.get("FACESYNTH_NATIVE_LOGS") or env.get("FACESYNTH_LOG_LEVEL", "").lower() == "debug":
        return True
    args = list(argv)
    return any(arg == "--log-level=debug" or (arg == "--log-level" and args[i + 1:i + 2] == ["debug"])
               for i, arg in enumerate(args))


class _Interrupts:
    """SIGTERM is handled like Ctrl+C: work in flight is finished or marked interrupted, files are finalised.

    Only the first signal interrupts: a second one (Ctrl+C pressed again, or `timeout` signalling the whole
    process group as well as the command) would otherwise break into that clean-up and leave a half-written
    video and decoding threads behind. The second says to wait; a third quits at once.
    """

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.count == 1:
            raise KeyboardInterrupt
        if self.count == 2:
            os.write(2, b"facesynth: finishing what was written; interrupt once more to quit at once\n")
            return
        os._exit(130)


def main() -> int:
    """Run `facesynth` with the process tuned for the pipeline (one BLAS thread, frame buffers kept, native
    chatter off unless debugging) and SIGTERM handled like SIGINT."""
    if not wants_native_logs(sys.argv[1:], os.environ):
        for name, value in QUIET_NATIVE.items():
            os.environ.setdefault(name, value)
    tune_process()
    interrupts = _Interrupts()
    signal.signal(signal.SIGTERM, interrupts)
    signal.signal(signal.SIGINT, interrupts)
    try:
        from engine.cli import main as cli_main

        code = cli_main()
    except KeyboardInterrupt:  # a signal that landed outside the command's own handling still ends it as one
        print("facesynth: interrupted", file=sys.stderr)
        code = 130
    # The command is done: a late signal must not turn a finished run into a death by SIGINT at exit.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if code == 130:
        # Interrupted: everything is stored and finished by now. Leave at once, as 130: the interpreter's own
        # shutdown after an interrupt sometimes ended the process by SIGINT instead (exit -2; seen about one run
        # in fifteen of apply with a slow backend, cause not found).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    return code


if __name__ == "__main__":
    sys.exit(main())
