"""Settings precedence: defaults < facesynth.toml < environment < flags."""

import os

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


BAD_SETTINGS = [  # (setting, raw value, fragment of the complaint)
    ("max_megapixels", "nan", "above 0"),
    ("max_megapixels", "-5", "above 0"),
    ("max_megapixels", "inf", "above 0"),
    ("min_face_px", "-1", "at least 0"),
    ("live_max_faces", "0", "at least 1 and at most 8"),
    ("live_max_faces", "1e400", "whole number"),
    ("camera_retries", "-2", "at least 0"),
    ("segmind_connect_timeout", "-1", "above 0"),
    ("segmind_read_timeout", "0", "above 0"),
    ("segmind_read_timeout", "nan", "above 0"),
    ("segmind_url", "api.segmind.com/v1", "http:// or https://"),
    ("segmind_url", "ftp://api.segmind.com/v1", "http:// or https://"),
    ("segmind_url", "https://", "with a host"),
    ("segmind_rpm", "0.001", "at least 0.1"),
    ("segmind_rpm", "-3", "at least 0.1"),
    ("segmind_max_response_mb", "0", "above 0"),
    ("plugin_timeout", "0", "above 0"),
    ("output_dir", "", "must not be empty"),
    ("plugins_dir", f"/a{os.pathsep}{os.pathsep}/b", "empty folder name"),
    ("plugins_dir", f"{os.pathsep}/b", "empty folder name"),
    ("log_level", "loud", "choose one of"),
    ("segmind_url", "https://api.segmind.com/v1\n", "control character"),
    ("output_dir", "out\tput", "control character"),
    ("cache_dir", "ca\x7fche", "control character"),
]


@pytest.mark.parametrize("name, raw, fragment", BAD_SETTINGS)
def test_bad_setting_from_the_environment_names_setting_and_variable(name, raw, fragment):
    variable = f"FACESYNTH_{name.upper()}"
    with pytest.raises(UsageError) as caught:
        load_settings({}, {variable: raw, "XDG_CONFIG_HOME": "/nonexistent"})
    message = str(caught.value)
    assert f"setting {name} from {variable}" in message and fragment in message, message


@pytest.mark.parametrize("text, fragment", [
    ('output_dir = ["a", "b"]\n', "output_dir from {path} has a bad value ['a', 'b'] (expected text)"),
    ("max_megapixels = nan\n", "max_megapixels from {path} is nan"),
    ("max_megapixels = -1\n", "max_megapixels from {path} is -1.0"),
    ("plugins_dir = ['/a', '']\n", "plugins_dir from {path} is ('/a', ''): it holds an empty folder name"),
    ("plugins_dir = [3]\n", "plugins_dir from {path} has a bad value [3]"),
    ('backend = 3\n', "backend from {path} has a bad value 3 (expected text)"),
    ("live_max_faces = true\n", "live_max_faces from {path} has a bad value True"),
    ('output_dir = "a\\u0000b"\n', "output_dir from {path} is 'a\\x00b': it holds a control character"),
    ('landmarker_model = "a\\u0000b"\n', "landmarker_model from {path} is 'a\\x00b': it holds a control"),
    ("output_dir = 1979-05-27\n", "output_dir from {path} has a bad value datetime.date(1979, 5, 27)"),
    ('[segmind]\nrpm = 0.01\n', "segmind_rpm from {path} is 0.01"),
    ('[segmind]\nurl = "localhost:8000"\n', "segmind_url from {path} is 'localhost:8000'"),
    ('[segmind]\nread_timeout = -5\n', "segmind_read_timeout from {path} is -5.0"),
])
def test_bad_setting_in_a_file_names_setting_and_file(tmp_path, text, fragment):
    toml = tmp_path / "facesynth.toml"
    toml.write_text(text)
    with pytest.raises(UsageError) as caught:
        load_settings({}, {"FACESYNTH_CONFIG": str(toml)})
    assert fragment.format(path=toml) in str(caught.value)


def test_bad_flag_names_the_command_line():
    with pytest.raises(UsageError, match="setting output_dir from the command line"):
        load_settings({"output_dir": ""}, {"XDG_CONFIG_HOME": "/nonexistent"})


def test_landmarker_model_must_be_a_landmarker_bundle(tmp_path):
    import zipfile

    from engine.landmarker_model import model_path

    env = {"XDG_CONFIG_HOME": "/nonexistent"}
    text_file = tmp_path / "notes.task"
    text_file.write_text("not a model")
    other_zip = tmp_path / "other.task"
    with zipfile.ZipFile(other_zip, "w") as bundle:
        bundle.writestr("hand_detector.tflite", b"\0" * 16)
    for path, fragment in [(tmp_path / "missing.task", "is not a file"), (tmp_path, "is not a file"),
                           (text_file, "is not a Face Landmarker model"), (other_zip, "lacks face_detector.tflite")]:
        with pytest.raises(UsageError) as caught:
            load_settings({}, {**env, "FACESYNTH_LANDMARKER_MODEL": str(path)})
        assert "setting landmarker_model from FACESYNTH_LANDMARKER_MODEL" in str(caught.value)
        assert fragment in str(caught.value), str(caught.value)
    real = model_path("")  # the packaged model passes (checked without loading MediaPipe)
    assert load_settings({}, {**env, "FACESYNTH_LANDMARKER_MODEL": str(real)}).landmarker_model == str(real)


def test_api_key_is_trimmed_and_a_bad_one_is_refused_without_showing_it(tmp_path):
    env = {"XDG_CONFIG_HOME": "/nonexistent"}
    assert load_settings({}, {**env, "SEGMIND_API_KEY": " sk-abc123\r\n"}).segmind_api_key == "sk-abc123"
    toml = tmp_path / "facesynth.toml"
    toml.write_text('[segmind]\napi_key = "sk-abc123\\n"\n')
    assert load_settings({}, {**env, "FACESYNTH_CONFIG": str(toml)}).segmind_api_key == "sk-abc123"
    for bad, fragment in [("sk-abc\n123", "control character"), ("sk-abc 123", "a space"),
                          ("sk-abc\u00e9123", "non-ASCII"), ("sk-abc\x00123", "control character")]:
        with pytest.raises(UsageError) as caught:
            load_settings({}, {**env, "SEGMIND_API_KEY": bad})
        message = str(caught.value)
        assert "segmind_api_key from SEGMIND_API_KEY" in message and fragment in message
        assert "abc" not in message and "123" not in message
    with pytest.raises(UsageError) as caught:
        load_settings({}, {**env, "FACESYNTH_SEGMIND_API_KEY": ["sk-abc123"]})
    assert "abc" not in str(caught.value)


def test_settings_file_that_is_not_utf8_is_a_usage_error(tmp_path):
    from tests.helpers import assert_one_line_error, clean_env, run_cli

    toml = tmp_path / "facesynth.toml"
    toml.write_bytes(b'output_dir = "caf\xe9"\n')
    with pytest.raises(UsageError, match="not UTF-8"):
        load_settings({}, {"FACESYNTH_CONFIG": str(toml)})
    result = run_cli("plugins", env=clean_env(FACESYNTH_CONFIG=str(toml)))
    assert result.returncode == 2 and result.stdout == ""
    assert_one_line_error(result, str(toml), "not UTF-8")


def test_each_plugin_has_its_own_table_in_the_settings_file(tmp_path):
    config = tmp_path / "facesynth.toml"
    config.write_text('output_dir = "out"\n[plugins.segmind]\nrpm = 3\n[plugins.my-backend]\nquality = "high"\n'
                      'steps = 4\n')
    settings = load_settings({}, {"FACESYNTH_CONFIG": str(config)})
    assert settings.segmind_rpm == 3  # the built-in cloud backend's table is checked like every setting
    assert settings.plugin("my-backend") == {"quality": "high", "steps": 4} and settings.plugin("other") == {}
    assert settings.redacted()["plugin_settings"] == ["my-backend"]
    config.write_text("[plugins.segmind]\nrpm = 0.001\n")
    with pytest.raises(UsageError, match="segmind_rpm"):
        load_settings({}, {"FACESYNTH_CONFIG": str(config)})
    config.write_text('[plugins]\nmine = "not a table"\n')
    with pytest.raises(UsageError, match=r"plugins.mine must be a table"):
        load_settings({}, {"FACESYNTH_CONFIG": str(config)})
