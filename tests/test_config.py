"""Settings precedence: defaults < facesynth.toml < environment < flags."""

import pytest

from engine.config import load_settings
from engine.errors import UsageError


def test_precedence(tmp_path):
    toml = tmp_path / "facesynth.toml"
    toml.write_text('backend = "auto"\noutput_dir = "from-file"\nmax_megapixels = 10\n'
                    '[segmind]\nrpm = 3\napi_key = "file-key"\n')
    env = {"FACESYNTH_CONFIG": str(toml), "FACESYNTH_OUTPUT_DIR": "from-env"}
    settings = load_settings({"output_dir": None}, env)
    assert settings.backend == "auto" and settings.max_megapixels == 10 and settings.segmind_rpm == 3
    assert settings.output_dir == "from-env"
    assert settings.segmind_api_key == "file-key"
    assert load_settings({"output_dir": "from-flag"}, env).output_dir == "from-flag"
    assert load_settings({}, {**env, "SEGMIND_API_KEY": "env-key"}).segmind_api_key == "env-key"


def test_key_is_redacted():
    settings = load_settings({}, {"SEGMIND_API_KEY": "sk-secret"})
    assert "sk-secret" not in repr(settings) and "sk-secret" not in str(settings.redacted())


def test_bad_files_and_values(tmp_path):
    toml = tmp_path / "facesynth.toml"
    toml.write_text("colour = 3\n")
    with pytest.raises(UsageError, match="unknown setting.*colour"):
        load_settings({}, {"FACESYNTH_CONFIG": str(toml)})
    toml.write_text("backend = \n")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_settings({}, {"FACESYNTH_CONFIG": str(toml)})
    with pytest.raises(UsageError, match="FACESYNTH_MAX_MEGAPIXELS"):
        load_settings({}, {"FACESYNTH_MAX_MEGAPIXELS": "lots"})
    with pytest.raises(UsageError, match="segmind_upload"):
        load_settings({"segmind_upload": "everything"}, {})


def test_plugins_dir_is_pathsep_separated(tmp_path):
    import os

    settings = load_settings({}, {"FACESYNTH_PLUGINS_DIR": f"/a{os.pathsep}/b"})
    assert settings.plugins_dir == ("/a", "/b")
