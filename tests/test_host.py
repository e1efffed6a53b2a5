"""Plugin host: registration, duplicates, invalid plugins, blocking, lifecycle hooks."""

from __future__ import annotations

import types

import pytest
from pydantic import Field

from harerun import hookimpl
from harerun.detector import Detector, DetectorParams
from harerun.errors import PluginError
from harerun.host import PluginHost
from harerun.results import DetectorResult


class Bright(Detector):
    name = "bright"
    version = "1.2.3"

    class Params(DetectorParams):
        level: float = Field(0.5, ge=0, le=1, description="how bright")

    def analyze(self, ctx):
        return DetectorResult(score=100 * self.params.level)


def plugin_module(name: str, *classes) -> types.ModuleType:
    mod = types.ModuleType(name)

    @hookimpl
    def register_detectors(register):
        for cls in classes:
            register(cls)

    mod.register_detectors = register_detectors
    return mod


def test_registered_detector_is_listed_with_its_package():
    host = PluginHost(autoload=False, plugins=[plugin_module("pkg_a", Bright)])
    reg = host.detector("bright")
    assert reg.cls is Bright and reg.package == "pkg_a"
    assert {"haar", "yunet"} <= set(host.face_backends)  # built-in face backends


def test_class_keywords_declare_a_detector():
    class Params(DetectorParams):
        level: float = Field(0.5, ge=0, le=1)

    class Keyworded(Detector, name="keyworded", version="2.0.1", params=Params):
        def analyze(self, ctx):
            return DetectorResult(score=100 * self.params.level)

    host = PluginHost(autoload=False, plugins=[plugin_module("pkg_k", Keyworded)])
    reg = host.detector("keyworded")
    assert (Keyworded.name, Keyworded.version, Keyworded.Params, Keyworded.Measurements) == (
        "keyworded",
        "2.0.1",
        Params,
        None,
    )
    assert reg.cls is Keyworded and reg.package == "pkg_k"
    assert Keyworded().analyze(None).score == 50.0
    assert Bright.name == "bright" and Detector.version == "0.0.0"  # attributes still work; the base is untouched


def test_duplicate_names_fail_naming_both_packages():
    with pytest.raises(PluginError) as info:
        PluginHost(autoload=False, plugins=[plugin_module("pkg_a", Bright), plugin_module("pkg_b", Bright)])
    msg = str(info.value)
    assert "'bright'" in msg and "pkg_a" in msg and "pkg_b" in msg


def test_invalid_detector_class_is_refused_with_reasons():
    class NoName:
        version = "1"

    with pytest.raises(PluginError) as info:
        PluginHost(autoload=False, plugins=[plugin_module("pkg_bad", NoName)])
    msg = str(info.value)
    assert "pkg_bad" in msg and "'name'" in msg and "Params" in msg and "analyze" in msg


def test_unknown_detector_suggests_a_name():
    host = PluginHost(autoload=False, plugins=[plugin_module("pkg_a", Bright)])
    with pytest.raises(PluginError) as info:
        host.detector("brigth")
    assert "did you mean 'bright'?" in str(info.value) and "plugin may not be installed" in str(info.value)


def test_blocked_plugins_are_not_registered(monkeypatch):
    mod = plugin_module("pkg_a", Bright)
    host = PluginHost(autoload=False, plugins=[mod], blocked=["pkg_a"])
    assert "bright" not in host.detectors
    monkeypatch.setenv("HARERUN_BLOCKED_PLUGINS", "pkg_a, other")
    assert "bright" not in PluginHost(autoload=False, plugins=[mod]).detectors


def test_autoload_finds_the_installed_builtin_plugins(monkeypatch):
    monkeypatch.delenv("HARERUN_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    host = PluginHost()
    for name in ("acne", "redness", "dark_spots", "texture", "pores", "wrinkles", "pigmentation"):
        assert host.detectors[name].package == f"harerun-{name.replace('_', '-')}", name
    monkeypatch.setenv("HARERUN_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "acne" not in PluginHost().detectors
    monkeypatch.setenv("HARERUN_DISABLE_PLUGIN_AUTOLOAD", "0")
    monkeypatch.setenv("HARERUN_BLOCKED_PLUGINS", "acne")
    assert "acne" not in PluginHost().detectors and "redness" in PluginHost().detectors


def test_lifecycle_hooks_fire_with_keyword_arguments():
    calls = []

    class Recorder:
        @hookimpl
        def before_detector_run(self, detector_id):  # takes fewer arguments than the spec
            calls.append(("before", detector_id))

        @hookimpl
        def after_detector_run(self, detector_id, result, elapsed_ms):
            calls.append(("after", detector_id, result.score, elapsed_ms >= 0))

        @hookimpl
        def on_detector_error(self, detector_id, error):
            calls.append(("error", detector_id, str(error)))

    host = PluginHost(autoload=False, plugins=[Recorder()])
    host.before_detector_run("x", None, None)
    host.after_detector_run("x", None, DetectorResult(score=5), 1.0)
    host.on_detector_error("x", None, ValueError("boom"))
    assert calls == [("before", "x"), ("after", "x", 5.0, True), ("error", "x", "boom")]


def command_plugin(name: str, *commands: str, run=lambda args: 0) -> types.ModuleType:
    mod = types.ModuleType(name)

    @hookimpl
    def register_commands(register):
        for command in commands:
            register(command, run, help=f"{command} from {name}")

    mod.register_commands = register_commands
    return mod


def test_plugin_commands_are_collected_with_their_package():
    host = PluginHost(autoload=False, plugins=[command_plugin("pkg_a", "hello", "train toy")])
    commands = host.commands()
    assert set(commands) == {"hello", "train toy"}
    assert commands["train toy"].package == "pkg_a" and commands["train toy"].help == "train toy from pkg_a"
    assert host.commands() is commands  # collected once


def test_duplicate_command_names_fail_naming_both_packages():
    host = PluginHost(
        autoload=False, plugins=[command_plugin("pkg_a", "train toy"), command_plugin("pkg_b", "train toy")]
    )
    with pytest.raises(PluginError) as info:
        host.commands()
    msg = str(info.value)
    assert "'harerun train toy'" in msg and "pkg_a" in msg and "pkg_b" in msg and "HARERUN_BLOCKED_PLUGINS" in msg


def test_invalid_command_is_refused_with_reasons():
    host = PluginHost(autoload=False, plugins=[command_plugin("pkg_bad", "Train Toy now", run="not callable")])
    with pytest.raises(PluginError) as info:
        host.commands()
    msg = str(info.value)
    assert "pkg_bad" in msg and "'Train Toy now'" in msg and "one word" in msg and "'run' is not callable" in msg


def test_observers_are_added_and_removed_through_the_host():
    calls = []

    class Timer:
        @hookimpl
        def after_detector_run(self, detector_id, elapsed_ms):
            calls.append(detector_id)

    host = PluginHost(autoload=False)
    host.add_observer(Timer(), "timer")
    host.after_detector_run("x", None, DetectorResult(score=5), 1.0)
    host.remove_observer("timer")
    host.after_detector_run("y", None, DetectorResult(score=5), 1.0)
    assert calls == ["x"]
    with pytest.raises(ValueError, match="no observer named 'timer'"):
        host.remove_observer("timer")


def test_an_observer_may_not_register_components():
    class Sneaky:
        @hookimpl
        def register_detectors(self, register):
            register(Bright)

    host = PluginHost(autoload=False)
    with pytest.raises(PluginError, match="register_detectors"):
        host.add_observer(Sneaky(), "sneaky")
    assert "bright" not in host.detectors
