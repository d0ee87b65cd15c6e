"""Fixtures shared by the tests: the development photos and one landmarker per session (helpers: helpers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import ROOT, faces_dir

# No test reads the developer's own config folder (plugins.d, facesynth.toml): the tests' `load_settings(...,
# {"XDG_CONFIG_HOME": ...})` keeps its settings out, but the plugin folders are found from the process's own
# environment (engine.config.user_config_dir), where a user's emotion plugin could change a preset under a test.
os.environ["XDG_CONFIG_HOME"] = str(ROOT / "tests" / "data" / "no-config")


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
