"""Model files on this machine: the models folders and the download cache, each file checked
against its SHA-256 before use. Every miss is appended to ``tried`` in plain words."""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from harerun.modelstore.manifest import ManifestEntry, version_key

Source = Literal["local", "cache", "s3"]


@dataclass
class ResolvedModel:
    """A verified model file and where it came from."""

    name: str
    version: str
    path: Path
    source: Source
    sha256: str
    size_bytes: int
    load_ms: float | None = None

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


# -- checksums -------------------------------------------------------------------

_HASH_MEMO: dict[tuple[str, int, int], str] = {}
_HASH_LOCK = threading.Lock()


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, memoised per (path, size, mtime)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _HASH_LOCK:
        if key in _HASH_MEMO:
            return _HASH_MEMO[key]
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _HASH_LOCK:
        _HASH_MEMO[key] = digest
    return digest


def sidecar_text(sha256: str, file_name: str) -> str:
    """A ``<file>.sha256`` sidecar, in ``sha256sum`` format."""
    return f"{sha256}  {file_name}\n"


def _read_sidecar(path: Path) -> str | None:
    try:
        text = path.read_text().split()
    except OSError:
        return None
    return text[0].lower() if text else None


def _verified(
    path: Path, expected: str | None, name: str, version: str, source: Source, tried: list[str]
) -> ResolvedModel | None:
    actual = sha256_file(path)
    if expected and actual != expected:
        tried.append(
            f"{source} {path}: checksum mismatch (sha256 {actual[:12]}…, expected {expected[:12]}…); "
            f"file not used — delete it or fetch it again"
        )
        return None
    return ResolvedModel(name, version, path, source, actual, path.stat().st_size)


# -- the models folders ------------------------------------------------------------


class ModelFolders:
    """``HARERUN_MODEL_DIR``, then the fallback folders: only manifest-listed files are used."""

    def __init__(self, model_dir: Path | None, fallback_dirs: list[Path], manifest_paths: list[Path]) -> None:
        self.model_dir = model_dir
        self.fallback_dirs = fallback_dirs
        self.manifest_paths = manifest_paths

    def find(
        self, name: str, version: str | None, entry: ManifestEntry | None, tried: list[str]
    ) -> ResolvedModel | None:
        try:
            return self._find(name, version, entry, tried)
        except OSError as exc:  # e.g. a models folder this user may not read
            tried.append(f"local: cannot read {exc.filename or self.model_dir} ({exc.strerror or exc})")
            return None

    def _find(self, name, version, entry, tried) -> ResolvedModel | None:
        if self.model_dir is None:
            tried.append("local: no models directory (set HARERUN_MODEL_DIR)")
            return None
        if entry is None:
            tried.append(
                f"local: {name}{'@' + version if version else ''} is not listed in any manifest "
                f"({', '.join(str(p) for p in self.manifest_paths) or 'none'})"
            )
            return None
        for folder in (self.model_dir, *self.fallback_dirs):
            p = folder / entry.file
            if p.is_file():
                return _verified(p, entry.sha256, name, entry.version, "local", tried)
            tried.append(f"local: {p} not found")
        return None


# -- the download cache --------------------------------------------------------------


class Cache:
    """``<cache>/<name>/<version>/<file>`` with ``<file>.sha256`` beside it (written by the download)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, name: str, version: str, file: str) -> Path:
        return self.folder / name / version / Path(file).name

    def find(
        self, name: str, version: str | None, entry: ManifestEntry | None, tried: list[str]
    ) -> ResolvedModel | None:
        try:
            return self._find(name, version, entry, tried)
        except OSError as exc:  # a cache folder this user may not read (HOME not theirs, ...)
            tried.append(
                f"cache: cannot read {exc.filename or self.folder} ({exc.strerror or exc}); "
                f"set HARERUN_CACHE_DIR to a folder this user owns"
            )
            return None

    def _find(self, name, version, entry, tried) -> ResolvedModel | None:
        if version is None:  # unlisted name without version: highest cached version
            version = self._highest_version(name)
            if version is None:
                tried.append(f"cache: nothing for {name} in {self.folder}")
                return None
        if entry is not None:
            candidates = [self.path(name, version, entry.file)]
        else:
            vdir = self.folder / name / version
            candidates = (
                sorted(p for p in vdir.glob("*") if p.is_file() and not p.name.endswith(".sha256"))
                if vdir.is_dir()
                else []
            )
        for p in candidates:
            if not p.is_file():
                continue
            expected = (
                entry.sha256 if entry is not None and entry.sha256 else _read_sidecar(p.with_name(p.name + ".sha256"))
            )
            if not expected:
                tried.append(f"cache: {p} has no checksum to verify against; not used")
                continue
            hit = _verified(p, expected, name, version, "cache", tried)
            if hit:
                return hit
        tried.append(f"cache: {name}@{version} not in {self.folder}")
        return None

    def _highest_version(self, name: str) -> str | None:
        folder = self.folder / name
        if not folder.is_dir():
            return None
        versions = [d.name for d in folder.glob("*") if d.is_dir()]
        return max(versions, key=version_key) if versions else None
