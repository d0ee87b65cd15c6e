"""The one guard around calls into plugin code: a plugin can fail, never take the app down.

Every call the core makes into a plugin (a backend's `availability`, `prepare`, `synthesize`, `account`, its
benchmarks, a hook) goes through `guard`. An exception (or a plugin calling `sys.exit`) becomes a
`BackendError` that names the plugin and what it was doing; the traceback goes to the debug log. Errors of our
own (`FaceSynthError`: a plugin saying "no face", "out of credits") pass through unchanged, since their
messages are meant for the user. With a time-out the call runs on a thread of its own, and a call that does
not return in time is abandoned with an error instead of hanging its caller.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, TypeVar

import structlog

from engine.errors import BackendError, FaceSynthError

log = structlog.get_logger()

T = TypeVar("T")
REASON_MAX = 300  # characters of a plugin's own message kept in ours (it may be long or multi-line)


def failure_reason(exc: BaseException) -> str:
    """A plugin's exception as one short line: its type and message."""
    text = " ".join(str(exc).split()) or "no message"
    if len(text) > REASON_MAX:
        text = text[:REASON_MAX - 3] + "..."
    return f"{type(exc).__name__}: {text}"


def _call(plugin_id: str, what: str, call: Callable[..., T], args: tuple, kwargs: dict) -> T:
    try:
        return call(*args, **kwargs)
    except FaceSynthError:
        raise
    except KeyboardInterrupt as exc:
        if threading.current_thread() is threading.main_thread():
            raise  # the user's Ctrl+C (or SIGTERM) reaches the main thread only: let it stop the command
        log.debug("plugin_failed", plugin=plugin_id, call=what, exc_info=True)  # off the main thread: the plugin's
        raise BackendError(f"{plugin_id} failed in {what}: {failure_reason(exc)}") from None
    except (Exception, SystemExit) as exc:  # a plugin's code: any failure is reported, never raised as is
        log.debug("plugin_failed", plugin=plugin_id, call=what, exc_info=True)
        raise BackendError(f"{plugin_id} failed in {what}: {failure_reason(exc)}") from None


def guard(plugin_id: str, what: str, call: Callable[..., T], *args: Any, timeout: float | None = None,
          **kwargs: Any) -> T:
    """Call `call(*args, **kwargs)`, plugin code of `plugin_id`, doing `what` (e.g. "synthesize").

    Returns its result; raises `BackendError` naming the plugin for any failure, or when `timeout` seconds pass
    without an answer (the call is then left running on its own daemon thread, and its result is dropped).
    """
    if timeout is None:
        return _call(plugin_id, what, call, args, kwargs)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = _call(plugin_id, what, call, args, kwargs)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, name=f"facesynth-plugin-{plugin_id}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        log.warning("plugin_timeout", plugin=plugin_id, call=what, seconds=timeout)
        raise BackendError(f"{plugin_id} did not answer within {timeout:g} s in {what}", retryable=True)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
