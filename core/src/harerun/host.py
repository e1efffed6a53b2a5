"""The plugin host: builds the plugin manager and keeps the name -> class registries.

Environment:
    HARERUN_DISABLE_PLUGIN_AUTOLOAD=1  do not load entry-point plugins (tests use it)
    HARERUN_BLOCKED_PLUGINS=a,b        never load the plugins named a and b
"""

from __future__ import annotations

import argparse
import difflib
import importlib.metadata
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy
from pydantic import BaseModel

from harerun import hookspecs
from harerun.errors import PluginError

if TYPE_CHECKING:
    from harerun.detector import Detector, FaceContext
    from harerun.results import AnalysisResult, DetectorResult

BUILTIN_PACKAGE = "harerun"
#: A command is one word (``harerun NAME``) or a group and a word (``harerun train NAME``).
COMMAND_NAME = re.compile(r"[a-z][a-z0-9-]*( [a-z][a-z0-9-]*)?")


@dataclass(frozen=True)
class Registered:
    """A registered component and where it came from."""

    cls: type
    plugin: str
    package: str


@dataclass(frozen=True)
class Command:
    """A command a plugin adds to the ``harerun`` command line (see ``hookspecs.register_commands``)."""

    name: str
    run: Callable[[argparse.Namespace], int]
    add_arguments: Callable[[argparse.ArgumentParser], None] | None
    help: str | None
    description: str | None
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
        self._commands: dict[str, Command] | None = None
        self._observers: set[str] = set()

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

    def _call_register_hook(self, hook_name: str, make_register: Callable[[str, str], Callable[..., None]]) -> None:
        """Call each plugin's ``hook_name`` with a ``register`` callback of its own, so that
        whatever it registers is known to come from its package."""
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            package = self._packages.get(impl.plugin_name, impl.plugin_name)
            register = make_register(impl.plugin_name, package)
            impl.function(**{arg: register for arg in impl.argnames})

    def _collect(self, hook_name: str, kind: str, methods: tuple[str, ...]) -> dict[str, Registered]:
        registry: dict[str, Registered] = {}

        def make_register(plugin: str, package: str) -> Callable[[type], None]:
            def register(cls: type) -> None:
                _check_component(cls, kind, package, methods)
                if cls.name in registry:
                    raise PluginError(_twice(f"{kind} name '{cls.name}'", registry[cls.name].package, package))
                registry[cls.name] = Registered(cls, plugin, package)

            return register

        self._call_register_hook(hook_name, make_register)
        return registry

    def commands(self) -> dict[str, Command]:
        """The commands plugins add to the command line, by name. Collected on the first call
        (only the command line needs them); a name registered twice raises :class:`PluginError`."""
        if self._commands is not None:
            return self._commands
        registry: dict[str, Command] = {}

        def make_register(plugin: str, package: str) -> hookspecs.RegisterCommand:
            def register(
                name: str,
                run: Callable[[argparse.Namespace], int],
                *,
                add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
                help: str | None = None,
                description: str | None = None,
            ) -> None:
                command = Command(name, run, add_arguments, help, description, plugin, package)
                _check_command(command)
                if name in registry:
                    raise PluginError(_twice(f"command 'harerun {name}'", registry[name].package, package))
                registry[name] = command

            return register

        self._call_register_hook("register_commands", make_register)
        self._commands = registry
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

    def add_observer(self, observer: Any, name: str) -> None:
        """Register ``observer``, an object implementing lifecycle hooks only (timing, metrics,
        logging), under ``name`` after start-up, e.g. the HTTP API's detector timer."""
        registering = [h for h in _REGISTRATION_HOOKS if self.pm.parse_hookimpl_opts(observer, h) is not None]
        if registering:
            raise PluginError(
                f"observer '{name}' implements {', '.join(registering)}, which were called at start-up; "
                f"an observer may implement only the lifecycle hooks. Install it as an entry-point plugin instead."
            )
        self.pm.register(observer, name=name)
        self._observers.add(name)

    def remove_observer(self, name: str) -> None:
        """Unregister the observer added as ``name``; its hooks are no longer called."""
        if name not in self._observers:
            raise ValueError(f"no observer named '{name}' was added to this host")
        self.pm.unregister(name=name)
        self._observers.discard(name)

    def before_detector_run(self, detector_id: str, detector: Detector, ctx: FaceContext) -> None:
        self.pm.hook.before_detector_run(detector_id=detector_id, detector=detector, ctx=ctx)

    def after_detector_run(
        self, detector_id: str, detector: Detector, result: DetectorResult, elapsed_ms: float
    ) -> None:
        self.pm.hook.after_detector_run(
            detector_id=detector_id, detector=detector, result=result, elapsed_ms=elapsed_ms
        )

    def on_detector_error(self, detector_id: str, detector: Detector, error: BaseException) -> None:
        self.pm.hook.on_detector_error(detector_id=detector_id, detector=detector, error=error)

    def after_pipeline_run(self, pipeline: str, result: AnalysisResult) -> None:
        self.pm.hook.after_pipeline_run(pipeline=pipeline, result=result)


_REGISTRATION_HOOKS = ("register_detectors", "register_face_detectors", "register_commands")


def _twice(what: str, first: str, second: str) -> str:
    return (
        f"{what} is registered twice: by package '{first}' and by package '{second}'. "
        f"Uninstall one of them or block one with HARERUN_BLOCKED_PLUGINS."
    )


def _check_command(command: Command) -> None:
    problems = []
    if not isinstance(command.name, str) or not COMMAND_NAME.fullmatch(command.name):
        problems.append(
            "its name must be one word of lower-case letters, digits and '-' (harerun NAME), "
            "or a group and such a word ('train NAME')"
        )
    if not callable(command.run):
        problems.append("'run' is not callable")
    if command.add_arguments is not None and not callable(command.add_arguments):
        problems.append("'add_arguments' is not callable")
    for field in ("help", "description"):
        if not isinstance(getattr(command, field), str | None):
            problems.append(f"'{field}' is not a string")
    if problems:
        raise PluginError(
            f"package '{command.package}' registered an invalid command {command.name!r}: " + "; ".join(problems)
        )


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
