"""``ModelStore``: the one object plugins and the server ask for a model file.

``resolve`` (find, download if needed), ``fetch`` (into the cache) and ``status`` (report, never
download) all go through :meth:`ModelStore._lookup`, the one place that holds the order
local → cache → S3 and what is said when a step finds nothing. ``publish`` uploads to S3.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import Any, Literal

from harerun.modelstore.errors import ModelUnavailable
from harerun.modelstore.loaded import recorded_load_ms
from harerun.modelstore.local import Cache, ModelFolders, ResolvedModel, sha256_file
from harerun.modelstore.manifest import MANIFEST_NAME, ManifestEntry, load_manifest, parse_spec
from harerun.modelstore.s3 import DEFAULT_S3_PREFIX, S3Bucket, S3Object

DEFAULT_CACHE_DIR = Path("~/.cache/harerun/models")
_REPO_MODELS = Path(__file__).resolve().parents[4] / "models"  # editable install: <repo>/models

#: Errors writing a download into the cache: disk full, file too large, quota, read-only, permission.
_DISK_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}

#: What a look-up may do with S3 after local and cache missed: download the file, only ask
#: whether it is there (HEAD), or not call S3 at all.
S3Step = Literal["download", "ask", "skip"]


class ModelStore:
    """Finds, downloads and verifies model files (see :mod:`harerun.modelstore`)."""

    def __init__(
        self,
        model_dir: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        *,
        s3_bucket: str | None = None,
        s3_prefix: str = DEFAULT_S3_PREFIX,
        s3_endpoint_url: str | None = None,
        manifests: list[str | os.PathLike] | None = None,
        fallback_dirs: list[str | os.PathLike] | None = None,
    ) -> None:
        model_dir = Path(model_dir).expanduser() if model_dir else None
        if manifests is None:
            manifests = [p / MANIFEST_NAME for p in (model_dir, _REPO_MODELS) if p is not None]
        self.manifest_paths = list(dict.fromkeys(Path(p).absolute() for p in manifests))
        # Searched after model_dir: the project's own shipped models stay usable when
        # HARERUN_MODEL_DIR points elsewhere (e.g. at a folder holding only the YuNet file).
        fallbacks = [Path(d) for d in fallback_dirs or [] if Path(d) != model_dir]
        self.folders = ModelFolders(model_dir, fallbacks, self.manifest_paths)
        self.cache = Cache(Path(cache_dir).expanduser() if cache_dir else DEFAULT_CACHE_DIR.expanduser())
        self.s3 = S3Bucket(s3_bucket, s3_prefix, s3_endpoint_url)
        self._entries: list[ManifestEntry] | None = None
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    @classmethod
    def from_env(cls) -> ModelStore:
        """Build the store from ``HARERUN_MODEL_DIR``, ``HARERUN_CACHE_DIR``, ``HARERUN_S3_*``.

        ``HARERUN_MODEL_DIR`` defaults to ``./models`` when it exists, else to the
        repository's ``models/`` (editable install). ``HARERUN_MODEL_MANIFEST``
        adds a manifest that takes precedence over the others.
        """
        env = os.environ
        model_dir = env.get("HARERUN_MODEL_DIR")
        if not model_dir:
            model_dir = Path("models") if Path("models").is_dir() else (_REPO_MODELS if _REPO_MODELS.is_dir() else None)
        model_dir = Path(model_dir).expanduser().absolute() if model_dir else None
        manifests = [Path(env["HARERUN_MODEL_MANIFEST"])] if env.get("HARERUN_MODEL_MANIFEST") else []
        manifests += [p / MANIFEST_NAME for p in (model_dir, _REPO_MODELS) if p is not None]
        return cls(
            model_dir,
            env.get("HARERUN_CACHE_DIR") or None,
            s3_bucket=env.get("HARERUN_S3_BUCKET") or None,
            s3_prefix=env.get("HARERUN_S3_PREFIX", DEFAULT_S3_PREFIX),
            s3_endpoint_url=env.get("HARERUN_S3_ENDPOINT_URL") or None,
            manifests=manifests,
            fallback_dirs=[_REPO_MODELS] if _REPO_MODELS.is_dir() else [],
        )

    # -- the settings, as the CLI, the server and the plugins read them ------------------

    @property
    def model_dir(self) -> Path | None:
        return self.folders.model_dir

    @property
    def fallback_dirs(self) -> list[Path]:
        return self.folders.fallback_dirs

    @property
    def cache_dir(self) -> Path:
        return self.cache.folder

    @property
    def s3_bucket(self) -> str | None:
        return self.s3.bucket

    @property
    def s3_prefix(self) -> str:
        return self.s3.prefix

    @property
    def s3_endpoint_url(self) -> str | None:
        return self.s3.endpoint_url

    def s3_key(self, name: str, version: str, file: str) -> str:
        return self.s3.key(name, version, file)

    # -- manifest -----------------------------------------------------------------------

    @property
    def entries(self) -> list[ManifestEntry]:
        """Manifest entries from every manifest found; the first manifest listing a name@version wins."""
        if self._entries is None:
            seen: dict[tuple[str, str], ManifestEntry] = {}
            for path in self.manifest_paths:
                if path.is_file():
                    for e in load_manifest(path):
                        seen.setdefault((e.name, e.version), e)
            self._entries = list(seen.values())
        return self._entries

    def entry(self, name: str, version: str | None) -> ManifestEntry | None:
        """The manifest entry for ``name@version``; without a version the last one listed for ``name``."""
        matches = [e for e in self.entries if e.name == name and (version is None or e.version == version)]
        return matches[-1] if matches else None

    # -- the look-up ----------------------------------------------------------------------

    def _lookup(
        self, name: str, version: str | None, entry: ManifestEntry | None, *, local: bool = True, s3: S3Step
    ) -> tuple[ResolvedModel | S3Object | None, list[str]]:
        """Look for a model in the models folders (unless ``local=False``), the cache, then S3.

        Returns the first hit (an :class:`S3Object` only when ``s3="ask"``) and, when nothing
        was found, every place tried in plain words. Raises :class:`ModelUnavailable` only for
        a download that failed verification (code ``MODEL_CHECKSUM_MISMATCH``).
        """
        tried: list[str] = []
        hit = self.folders.find(name, version, entry, tried) if local else None
        hit = hit or self.cache.find(name, version, entry, tried)
        if hit:
            return hit, tried
        if not self.s3.bucket:
            tried.append(
                "s3: no bucket configured (set HARERUN_S3_BUCKET, and HARERUN_S3_ENDPOINT_URL for a non-AWS server)"
            )
            return None, tried
        if s3 == "skip":
            tried.append(f"s3: not downloaded from s3://{self.s3.bucket}")
            return None, tried
        try:
            if s3 == "ask":
                return self.s3.find(name, version, entry), tried
            with self._lock(f"{name}@{version}"):
                hit = self.cache.find(name, version, entry, [])  # another thread may have just fetched it
                return hit or self.s3.download(self.s3.find(name, version, entry), self.cache), tried
        except ModelUnavailable:  # the download failed verification: said with its own code
            raise
        except Exception as exc:  # botocore errors, OSError, an S3 problem already phrased
            if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:  # nothing half-written is kept
                tried.append(
                    f"cache: cannot write to {self.cache.folder} ({exc.strerror}); free disk space or set "
                    f"HARERUN_CACHE_DIR to a writable folder"
                )
            else:
                tried.append("s3: " + self.s3.failed(exc))
        return None, tried

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    # -- what callers use -------------------------------------------------------------------

    def resolve(self, spec: str, *, path: str | os.PathLike | None = None) -> ResolvedModel:
        """Find ``spec`` (``name`` or ``name@version``) and return a verified local file,
        downloading it from S3 into the cache when neither the models folders nor the cache have it.

        Raises :class:`ModelUnavailable` (with every place tried in ``reason``).
        """
        name, version = parse_spec(spec)
        if path:
            p = Path(path).expanduser()
            if not p.is_file():
                raise ModelUnavailable(
                    f"explicit model path {p} does not exist; fix the 'model_path' parameter or remove it "
                    f"to use the model store",
                    name=name,
                    version=version,
                )
            return ResolvedModel(name, version or "local", p, "local", sha256_file(p), p.stat().st_size)
        entry = self.entry(name, version)
        version = entry.version if entry else version
        hit, tried = self._lookup(name, version, entry, s3="download")
        if hit is None:
            raise ModelUnavailable("; ".join(tried), name=name, version=version)
        return hit

    def fetch(self, spec: str) -> ResolvedModel:
        """Make sure ``spec`` is in the cache (download from S3 if needed) and return it."""
        name, version = parse_spec(spec)
        entry = self.entry(name, version)
        version = entry.version if entry else version
        hit, tried = self._lookup(name, version, entry, local=False, s3="download")
        if hit is None:
            raise ModelUnavailable("; ".join(tried), name=name, version=version)
        return hit

    def status(self, specs: list[str] | None = None, *, remote: bool = True) -> list[dict[str, Any]]:
        """Availability of each model (default: every manifest entry), JSON-native, without downloading.

        Each dict: name, version, available, source (local / cache / s3 / None),
        sha256, size_bytes, load_ms (when a plugin loaded it in this process), reason.
        A model only in S3 is checked with a HEAD request and reported available with source
        "s3" and the reason "not downloaded yet"; with ``remote=False`` it is reported
        unavailable without asking S3.
        """
        if specs is None:
            specs = [f"{e.name}@{e.version}" for e in self.entries]
        out = []
        for spec in specs:
            row: dict[str, Any] = {
                "name": spec,
                "version": None,
                "available": False,
                "source": None,
                "sha256": None,
                "size_bytes": None,
                "load_ms": None,
                "reason": None,
            }
            try:
                name, version = parse_spec(spec)
                entry = self.entry(name, version)
                version = entry.version if entry else version
                row.update(name=name, version=version)
                hit, tried = self._lookup(name, version, entry, s3="ask" if remote else "skip")
                if hit is None:
                    row["reason"] = "; ".join(tried)
                else:
                    row.update(
                        available=True,
                        source=hit.source,
                        sha256=hit.sha256,
                        size_bytes=hit.size_bytes,
                        version=hit.version,
                    )
                    if isinstance(hit, S3Object):
                        row["reason"] = "not downloaded yet; fetched from S3 on first use"
                row["load_ms"] = recorded_load_ms(row["name"], row["version"])
            except ModelUnavailable as exc:
                row["reason"] = exc.reason
            out.append(row)
        return out

    def publish(self, file: str | os.PathLike, *, name: str, version: str) -> dict[str, Any]:
        """Upload ``file`` as ``name@version`` with its SHA-256 (object metadata and a ``.sha256`` sidecar)."""
        parse_spec(f"{name}@{version}")
        p = Path(file)
        if not p.is_file():
            raise ModelUnavailable(f"{p} is not a file", name=name, version=version, code="INVALID_MODEL_FILE")
        if not self.s3.bucket:
            raise ModelUnavailable("no bucket configured (set HARERUN_S3_BUCKET)", name=name, version=version)
        return self.s3.publish(p, name=name, version=version)
