"""Fixtures shared by the tests: the development photos and one landmarker per session (helpers: helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import faces_dir


@pytest.fixture
def dev_faces() -> Path:
    """The development photo folder; tests that need it are skipped where it is not laid out."""
    folder = faces_dir()
    if folder is None:
        pytest.skip("the development photos (../shared/faces) are not here")
    return folder


@pytest.fixture(scope="session")
def landmarker():
    """One still-image landmarker for the whole session (it takes a moment to start)."""
    from engine.faces import Landmarker

    with Landmarker() as instance:
        yield instance
