"""Model specs (``name@version``), version order and the manifest (``models.yaml``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harerun.errors import ConfigError
from harerun.modelstore.errors import InvalidModelSpec
from harerun.problems import validate
from harerun.yamlfile import YamlFileError, load_yaml

MANIFEST_NAME = "models.yaml"

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``"name@version"`` (version optional); raise :class:`InvalidModelSpec` if malformed."""
    name, _, version = str(spec).strip().partition("@")
    if not _NAME_RE.match(name) or (version and not _VERSION_RE.match(version)) or (_ and not version):
        raise InvalidModelSpec(
            f"'{spec}' is not a model spec; write 'name' or 'name@version' "
            f"(lower-case name of letters, digits, '.', '_' or '-'), e.g. 'acne-grade@1'",
            name=None,
        )
    return name, version or None


def version_key(version: str) -> tuple:
    """Natural sort key for versions: digit runs compare as numbers ("2" < "10" < "2023mar")."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.findall(r"\d+|\D+", version))


@dataclass(frozen=True)
class ManifestEntry:
    name: str
    version: str
    file: str
    sha256: str | None = None
    size_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


class _ManifestItem(BaseModel):
    """One ``models:`` entry of a manifest as written; keys beyond these are kept as ``extra``."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(pattern=_NAME_RE.pattern)
    version: str = Field(pattern=_VERSION_RE.pattern)
    file: str = Field(min_length=1)
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    size_bytes: int | None = Field(None, ge=0)

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v


class _Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    models: list[_ManifestItem] = Field(default_factory=list)


def load_manifest(path: Path) -> list[ManifestEntry]:
    """Read a ``models.yaml``: ``models: [{name, version, file, sha256, size_bytes, ...}, ...]``;
    every problem is reported at once (:mod:`harerun.problems`)."""
    try:
        data = load_yaml(path, str(path))
    except YamlFileError as exc:
        raise ConfigError(str(exc)) from None
    manifest = validate(_Manifest, data or {}, str(path), "model manifest")
    return [
        ManifestEntry(
            m.name, m.version, m.file, m.sha256.lower() if m.sha256 else None, m.size_bytes, dict(m.model_extra or {})
        )
        for m in manifest.models
    ]
