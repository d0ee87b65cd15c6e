"""Errors a user can cause. Each carries a message a person can act on; the CLI prints it, not a traceback."""

from __future__ import annotations


class FaceSynthError(Exception):
    """Base class of every error the app reports to a user as a one-line message."""

    exit_code = 1


class UsageError(FaceSynthError):
    """The command or setting as given cannot run (unknown emotion, value out of range, bad flag)."""

    exit_code = 2


class InputError(FaceSynthError):
    """One input could not be processed (unreadable file, no face); other inputs still are."""


class BackendError(FaceSynthError):
    """A synthesis backend failed on one input; `retryable` says whether trying later may succeed."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class BackendUnavailable(BackendError):
    """A backend cannot run at all here (no key, no model, offline)."""


class PluginError(FaceSynthError):
    """A plugin failed to load or register (raised only in strict mode)."""
