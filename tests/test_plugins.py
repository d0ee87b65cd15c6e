"""Plugin loading: built-ins, entry points and drop-in files; failures recorded, strict mode, precedence."""

import inspect

import pytest
from structlog.testing import capture_logs

from engine import hookspecs
from engine.config import load_settings
from engine.errors import PluginError
from engine.plugins import hook_docs, load_plugins
from tests.helpers import PLUGIN_FIXTURES

BUILT_IN_EMOTIONS = {"angry", "happy", "sleepy", "surprised"}


def settings(**values):
    return load_settings(values, {"XDG_CONFIG_HOME": "/nonexistent"})


def test_builtins_load():
    registry = load_plugins(settings())
    assert BUILT_IN_EMOTIONS <= set(registry.emotions)
    assert {"landmark-warp", "segmind"} <= set(registry.backends)
    assert registry.emotions["happy"].source == "built-in"
    assert not registry.failed_plugins()


def test_every_broken_plugin_is_recorded_and_the_rest_loads():
    registry = load_plugins(settings(), [str(PLUGIN_FIXTURES / "broken"), str(PLUGIN_FIXTURES / "good")])
    failed = {info.name: info.reason for info in registry.failed_plugins()}
    assert set(failed) == {"syntax_error", "import_error", "unknown_hook", "raises", "out_of_range", "bad_backend"}
    assert "SyntaxError" in failed["syntax_error"]
    assert "facesynth_no_such_module" in failed["import_error"]
    assert "unknown hook register_emotion" in failed["unknown_hook"]
    assert "database of smiles is offline" in failed["raises"]
    assert "smile=5 is out of range" in failed["out_of_range"]
    assert "lacks" in failed["bad_backend"]
    assert "half" not in registry.emotions  # a plugin that failed half-way adds nothing
    assert "calm" in registry.emotions and BUILT_IN_EMOTIONS <= set(registry.emotions)


def test_failed_plugins_are_listed_where_their_hooks_point():
    registry = load_plugins(settings(), [str(PLUGIN_FIXTURES / "broken")])
    listing = registry.listing(settings())
    emotion_rows = {row["id"]: row for row in listing["emotions"]}
    backend_rows = {row["id"]: row for row in listing["backends"]}
    assert emotion_rows["syntax_error"]["status"] == "failed"
    assert emotion_rows["syntax_error"]["source"].endswith("syntax_error.py")
    assert backend_rows["bad_backend"]["status"] == "failed" and "bad_backend" not in emotion_rows


def test_strict_mode_raises():
    with pytest.raises(PluginError, match="failed"):
        load_plugins(settings(strict_plugins=True), [str(PLUGIN_FIXTURES / "broken")])


def test_drop_in_overrides_built_in_and_is_logged():
    with capture_logs() as logs:
        registry = load_plugins(settings(), [str(PLUGIN_FIXTURES / "good")])
    assert registry.emotions["happy"].params == {"smile": 1.3}
    assert registry.emotions["happy"].kind == "drop-in"
    override = [entry for entry in logs if entry["event"] == "plugin_override"]
    assert override and override[0]["id"] == "happy" and override[0]["replaced"] == "built-in"


def _fake_distribution(root, name, module_text):
    """An installed distribution with a facesynth.plugins entry point, as pip would lay it out."""
    (root / f"{name}.py").write_text(module_text)
    info = root / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[facesynth.plugins]\n{name} = {name}\n")


def test_entry_point_plugins_load_and_override_built_ins(tmp_path, monkeypatch):
    _fake_distribution(tmp_path, "fs_ep_good", "from engine import hookimpl\n\n@hookimpl\n"
                       "def register_emotions(register):\n    register('proud', {'eyebrow': 3, 'smile': 0.4})\n"
                       "    register('angry', {'eyebrow': -10})\n")
    _fake_distribution(tmp_path, "fs_ep_broken", "raise ImportError('missing wheel')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = load_plugins(settings())
    assert registry.emotions["proud"].source == "entry point fs_ep_good"
    assert registry.emotions["angry"].kind == "entry point"
    failed = {info.name: info for info in registry.failed_plugins()}
    assert "missing wheel" in failed["fs_ep_broken"].reason
    # A drop-in still beats an entry point.
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "angrier.py").write_text("from engine import hookimpl\n\n@hookimpl\n"
                                     "def register_emotions(register):\n    register('angry', {'eyebrow': -9})\n")
    registry = load_plugins(settings(), [str(drop)])
    assert registry.emotions["angry"].params == {"eyebrow": -9}


def test_every_hook_is_documented_and_tested():
    """Meta-test: each hook has a docstring that names its argument, and this suite exercises it."""
    docs = hook_docs()
    assert set(docs) == set(hookspecs.HOOK_NAMES)
    here = inspect.getsource(inspect.getmodule(test_every_hook_is_documented_and_tested))
    fixtures = "".join(p.read_text() for p in PLUGIN_FIXTURES.rglob("*.py"))
    for name, doc in docs.items():
        assert ":param register:" in doc and "Called" in doc, name
        assert name in here or name in fixtures, f"hook {name} has no test"


def test_backends_register_through_register_backends():
    registry = load_plugins(settings())
    assert registry.backends["landmark-warp"].backend.availability(settings()) == (True, "")
    ok, reason = registry.backends["segmind"].backend.availability(settings())
    assert not ok and "SEGMIND_API_KEY" in reason


def test_pipeline_prepare_loads_backends_and_survives_a_failing_one():
    import sys

    from engine.pipeline import Pipeline
    from engine.registry import DROP_IN, BackendEntry

    class Slow:
        id, label = "slow", "Slow (test)"
        prepared = 0

        def availability(self, settings):
            return True, ""

        def prepare(self, settings):
            Slow.prepared += 1

        def synthesize(self, request):
            raise AssertionError("not called")

    class Broken(Slow):
        id = "broken"

        def prepare(self, settings):
            raise RuntimeError("model file missing")

    registry = load_plugins(settings())
    for backend in (Slow(), Broken()):
        registry.add_backend(BackendEntry(backend.id, backend.label, backend, "test", DROP_IN))
    pipeline = Pipeline(registry, settings())
    pipeline.prepare("slow")
    assert Slow.prepared == 1
    with capture_logs() as logs:
        pipeline.prepare("broken")
    assert any(e["event"] == "backend_prepare_failed" and "model file missing" in e["reason"] for e in logs)
    pipeline.prepare("landmark-warp")  # the local backend loads its warp and compiled loops
    assert "plugins.landmark_warp.warp" in sys.modules
    pipeline.prepare("segmind")  # no prepare: nothing to do
