"""The one way Hare Run reads its YAML config files (pipelines, experiments, ``models.yaml``).

:func:`load_yaml` is ``yaml.safe_load`` (no Python objects) with limits that keep a
hostile file from costing more than its size:

* files over :data:`MAX_BYTES` are refused before parsing;
* YAML aliases (``*name``) are refused: a few lines of nested anchors and aliases
  ("billion laughs") stand for billions of values, and no Hare Run file needs them;
* nesting deeper than :data:`MAX_DEPTH` and integers longer than :data:`MAX_INT_CHARS`
  are refused (Python cannot even print an integer of more than 4300 digits).

Every refusal is a :class:`YamlFileError` whose message names the file and the line.
:func:`clip` and :func:`show` keep user values echoed in error messages short.
"""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1_000_000
MAX_DEPTH = 50
MAX_INT_CHARS = 1000
#: Longest user value (repr) an error message shows.
MAX_SHOWN = 200

_INT_TAG = "tag:yaml.org,2002:int"


class YamlFileError(ValueError):
    """A config file cannot be read or parsed, or breaks a limit; the message says where."""


def clip(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` cut to ``limit`` characters, ending in "…" when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _ShortRepr(reprlib.Repr):
    def repr_int(self, x: int, level: int) -> str:
        try:
            return super().repr_int(x, level)
        except ValueError:  # more digits than Python converts to text
            return f"{'a negative' if x < 0 else 'an'} integer of about {int(x.bit_length() * 0.30103)} digits"


_repr = _ShortRepr()
_repr.maxlevel, _repr.maxstring, _repr.maxother, _repr.maxlong = 3, MAX_SHOWN, MAX_SHOWN, MAX_SHOWN
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 10


def show(value: Any, limit: int = MAX_SHOWN) -> str:
    """A short repr of a user value for an error message: at most ``limit`` characters,
    without ever building the whole repr of a huge value."""
    try:
        text = _repr.repr(value)
    except Exception:  # a message must never fail for the value it quotes
        text = f"a {type(value).__name__}"
    return clip(text, limit)


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses aliases, deep nesting and over-long integers."""

    origin = "<yaml>"
    depth = 0

    def _refuse(self, mark: yaml.Mark, what: str) -> YamlFileError:
        return YamlFileError(f"{self.origin} line {mark.line + 1}: {what}")

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise self._refuse(
                event.start_mark, f"YAML aliases (*{clip(event.anchor, 40)}) are not allowed in Hare Run config files"
            )
        if self.depth >= MAX_DEPTH:
            raise self._refuse(self.peek_event().start_mark, f"nested more than {MAX_DEPTH} levels deep")
        self.depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        if node.tag == _INT_TAG and isinstance(node.value, str) and len(node.value) > MAX_INT_CHARS:
            key = f"{clip(index.value, 60)}: " if isinstance(index, yaml.ScalarNode) else ""
            raise self._refuse(
                node.start_mark,
                f"{key}integer of {len(node.value)} digits is out of range (at most {MAX_INT_CHARS} digits)",
            )
        return node


def load_yaml(source: str | Path, origin: str | None = None) -> Any:
    """Parse a YAML file (a ``Path``) or YAML text safely; ``origin`` names it in messages
    (default: the file name). Raises :class:`YamlFileError`; a missing file raises
    ``FileNotFoundError`` for the caller to report."""
    origin = origin or (source.name if isinstance(source, Path) else "<yaml>")
    too_large = YamlFileError(f"{origin}: larger than {MAX_BYTES // 1_000_000} MB, the limit for Hare Run config files")
    if isinstance(source, Path):
        try:
            with source.open("rb") as f:
                raw = f.read(MAX_BYTES + 1)  # never more, whatever the file is
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise YamlFileError(f"{origin}: cannot be read: {exc.strerror or exc}") from None
        if len(raw) > MAX_BYTES:
            raise too_large
        try:
            source = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise YamlFileError(f"{origin}: cannot be read: not UTF-8 text (byte {exc.start})") from None
    if len(source) > MAX_BYTES:
        raise too_large
    loader = None
    try:
        loader = _Loader(source)
        loader.origin = loader.name = origin  # marks in PyYAML's messages name the file
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise YamlFileError(f"{origin}: not valid YAML: {clip(str(exc), 600)}") from None
    finally:
        if loader is not None:
            loader.dispose()
