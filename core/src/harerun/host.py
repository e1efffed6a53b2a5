"""The plugin host: builds the plugin manager and keeps the name -> class registries.

Environment:
    HARERUN_DISABLE_PLUGIN_AUTOLOAD=1  do not load entry-point plugins (tests use it)
    HARERUN_BLOCKED_PLUGINS=a,b        never load the plugins named a and b
"""

from __future__ import annotations

import difflib
import importlib.metadata
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pluggy
from pydantic import BaseModel

from harerun import hookspecs
from harerun.errors import PluginError

BUILTIN_PACKAGE = "harerun"


@dataclass(frozen=True)
class Registered:
    """A registered component and where it came from."""

    cls: type
    plugin: str
    package: str


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class PluginHost:
    """Typed facade over pluggy: nothing else in Hare Run calls ``pm.hook`` directly."""

    def __init__(
        self,
        *,
        plugins: Iterable[Any] = (),
        autoload: bool | None = None,
        blocked: Iterable[str] | None = None,
    ) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        if blocked is None:
            blocked = [b.strip() for b in os.environ.get("HARERUN_BLOCKED_PLUGINS", "").split(",") if b.strip()]
        for name in blocked:
            self.pm.set_blocked(name)
        self._packages: dict[str, str] = {}

        from harerun.face import backends  # built-in face backends

        self._register(backends, "harerun.face", BUILTIN_PACKAGE)
        for plugin in plugins:
            self._register(plugin, None, getattr(plugin, "__name__", type(plugin).__name__))
        if autoload is None:
            autoload = not _env_flag("HARERUN_DISABLE_PLUGIN_AUTOLOAD")
        if autoload:
            self._load_entry_points()

        self.detectors = self._collect("register_detectors", "detector", ("analyze",))
        self.face_backends = self._collect("register_face_detectors", "face backend", ("detect",))

    def _register(self, plugin: Any, name: str | None, package: str) -> None:
        registered_name = self.pm.register(plugin, name=name)
        if registered_name is not None:
            self._packages[registered_name] = package

    def _load_entry_points(self) -> None:
        for dist in importlib.metadata.distributions():
            for ep in dist.entry_points:
                if ep.group != hookspecs.ENTRY_POINT_GROUP:
                    continue
                if self.pm.is_blocked(ep.name) or self.pm.has_plugin(ep.name):
                    continue
                package = dist.metadata["Name"]
                try:
                    plugin = ep.load()
                except Exception as exc:
                    raise PluginError(
                        f"plugin '{ep.name}' from package '{package}' failed to import: "
                        f"{type(exc).__name__}: {exc}. Reinstall or uninstall '{package}', "
                        f"or block it with HARERUN_BLOCKED_PLUGINS={ep.name}."
                    ) from exc
                self._register(plugin, ep.name, package)

    def _collect(self, hook_name: str, kind: str, methods: tuple[str, ...]) -> dict[str, Registered]:
        registry: dict[str, Registered] = {}
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            package = self._packages.get(impl.plugin_name, impl.plugin_name)

            def register(cls: type, _plugin: str = impl.plugin_name, _package: str = package) -> None:
                _check_component(cls, kind, _package, methods)
                if cls.name in registry:
                    first = registry[cls.name]
                    raise PluginError(
                        f"{kind} name '{cls.name}' is registered twice: by package '{first.package}' "
                        f"and by package '{_package}'. Uninstall one of them or block one with "
                        f"HARERUN_BLOCKED_PLUGINS."
                    )
                registry[cls.name] = Registered(cls, _plugin, _package)

            impl.function(**{arg: register for arg in impl.argnames})
        return registry

    # -- look-ups -----------------------------------------------------------------

    def detector(self, name: str) -> Registered:
        try:
            return self.detectors[name]
        except KeyError:
            raise PluginError(self.unknown_detector_message(name)) from None

    def unknown_detector_message(self, name: str) -> str:
        return (
            f"detector '{name}' is not registered{did_you_mean(name, self.detectors)} "
            f"(plugin may not be installed; `harerun plugins list` shows what is)"
        )

    def face_backend(self, name: str) -> Registered:
        try:
            return self.face_backends[name]
        except KeyError:
            raise PluginError(
                f"face backend '{name}' is not registered{did_you_mean(name, self.face_backends)} "
                f"(plugin may not be installed)"
            ) from None

    # -- lifecycle hooks ----------------------------------------------------------

    def before_detector_run(self, detector_id: str, detector: Any, ctx: Any) -> None:
        self.pm.hook.before_detector_run(detector_id=detector_id, detector=detector, ctx=ctx)

    def after_detector_run(self, detector_id: str, detector: Any, result: Any, elapsed_ms: float) -> None:
        self.pm.hook.after_detector_run(
            detector_id=detector_id, detector=detector, result=result, elapsed_ms=elapsed_ms
        )

    def on_detector_error(self, detector_id: str, detector: Any, error: BaseException) -> None:
        self.pm.hook.on_detector_error(detector_id=detector_id, detector=detector, error=error)

    def after_pipeline_run(self, pipeline: str, result: Any) -> None:
        self.pm.hook.after_pipeline_run(pipeline=pipeline, result=result)


def _check_component(cls: Any, kind: str, package: str, methods: tuple[str, ...]) -> None:
    problems = []
    if not isinstance(cls, type):
        problems.append("it is not a class")
    else:
        if not isinstance(getattr(cls, "name", None), str) or not cls.name:
            problems.append("it has no string attribute 'name'")
        if not isinstance(getattr(cls, "version", None), str):
            problems.append("it has no string attribute 'version'")
        params = getattr(cls, "Params", None)
        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            problems.append("its 'Params' is not a pydantic model")
        for m in methods:
            if not callable(getattr(cls, m, None)):
                problems.append(f"it has no method '{m}'")
    if problems:
        raise PluginError(f"package '{package}' registered an invalid {kind} {cls!r}: " + "; ".join(problems))
