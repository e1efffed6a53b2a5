"""The model store: find a named, versioned model file, locally or in S3.

Plugins never open model files by path; they ask the store::

    model = ModelStore.from_env().resolve("acne-grade@1")   # or "yunet", "yunet@2023mar"
    load(model.path)

Resolution order (first hit wins):

1. an explicit ``path=`` given by the caller (a pipeline param);
2. the local models directory (``HARERUN_MODEL_DIR``);
3. the local cache (``HARERUN_CACHE_DIR``, default ``~/.cache/harerun/models``);
4. S3 (``HARERUN_S3_BUCKET``, ``HARERUN_S3_PREFIX``, optional ``HARERUN_S3_ENDPOINT_URL``
   for S3-compatible servers; credentials from boto3's standard chain).

Every file that is not an explicit path is checked against a SHA-256 before it
is used: from the manifest (``models.yaml``) when it lists the model, else from
the S3 object's ``sha256`` metadata or its ``<key>.sha256`` sidecar. A download
goes to a temporary file next to its cache location, is hashed, and only then
atomically renamed into the cache, so a half-written or corrupt file is never
used. Every failure (no credentials, endpoint down, 403, missing object,
timeout, bad checksum) becomes :class:`ModelUnavailable` with a reason that
says what to do; callers turn it into ``status: "unavailable"``.

S3 layout: ``s3://<bucket>/<prefix>/<name>/<version>/<file>`` with object
metadata ``sha256`` and a sidecar ``<file>.sha256`` (``harerun models publish``
writes both). The cache mirrors it: ``<cache>/<name>/<version>/<file>``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harerun.errors import ConfigError, HareRunError
from harerun.problems import validate
from harerun.yamlfile import YamlFileError, load_yaml

MANIFEST_NAME = "models.yaml"
DEFAULT_CACHE_DIR = Path("~/.cache/harerun/models")
DEFAULT_S3_PREFIX = "models"
#: Every S3 call is bounded: connect, then each read (``HARERUN_S3_TIMEOUT_S`` for look-ups;
#: a download's body may take longer per read), and look-ups are not retried.
S3_CONNECT_TIMEOUT_S = 1.0
S3_READ_TIMEOUT_S = float(os.environ.get("HARERUN_S3_TIMEOUT_S") or 1.5)
S3_DOWNLOAD_READ_TIMEOUT_S = 15.0
#: An endpoint that did not answer (timeout, refused) is not asked again for this long, so a
#: black-hole endpoint costs one time-out per process and half-minute, not one per model.
S3_DOWN_S = 30.0

_REPO_MODELS = Path(__file__).resolve().parents[3] / "models"  # editable install: <repo>/models
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

Source = Literal["local", "cache", "s3"]

#: Errors writing a download into the cache: disk full, file too large, quota, read-only, permission.
_DISK_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}

_down_lock = threading.Lock()
_down: dict[tuple[str | None, str | None], tuple[float, str]] = {}  # (endpoint, bucket) -> (when, why)
_thread = threading.local()


def local_only_in_this_thread() -> None:
    """From now on, model look-ups made by this thread never call S3 (a server's analysis
    threads and processes after start-up: models are fetched at start-up and in the
    background, never while a photo waits). Look-ups that would need S3 are unavailable."""
    _thread.local_only = True


def _local_only() -> bool:
    return getattr(_thread, "local_only", False)


def forget_s3_outages() -> None:
    """Ask every endpoint again on the next look-up (tests, or after fixing the network)."""
    with _down_lock:
        _down.clear()


class ModelUnavailable(HareRunError):
    """A model cannot be found, downloaded or verified. ``reason`` says why and what to do."""

    code = "MODEL_UNAVAILABLE"
    http_status = 503
    exit_code = 4

    def __init__(self, reason: str, *, name: str | None = None, version: str | None = None, code: str | None = None):
        label = f"{name}@{version}" if name and version else (name or "model")
        super().__init__(
            f"model {label} is unavailable: {reason}", code=code, details={"name": name, "version": version}
        )
        self.reason = reason
        self.name = name
        self.version = version


class InvalidModelSpec(ModelUnavailable):
    """A model spec that is not ``name`` or ``name@version``."""

    code = "INVALID_MODEL_SPEC"
    http_status = 400
    exit_code = 2


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


@dataclass(frozen=True)
class ManifestEntry:
    name: str
    version: str
    file: str
    sha256: str | None = None
    size_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


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


def _read_sidecar(path: Path) -> str | None:
    try:
        text = path.read_text().split()
    except OSError:
        return None
    return text[0].lower() if text else None


# -- load times (filled by the plugins that load a model; shown by status) -----------

_LOAD_TIMES: dict[tuple[str, str], float] = {}


def record_load(model: ResolvedModel, load_ms: float) -> None:
    """Remember how long loading ``model`` into memory took (shown by :meth:`ModelStore.status`)."""
    model.load_ms = round(float(load_ms), 2)
    _LOAD_TIMES[(model.name, model.version)] = model.load_ms


# -- manifest ----------------------------------------------------------------------------


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


class ModelStore:
    """Finds, downloads and verifies model files (see the module docstring)."""

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
        self.model_dir = Path(model_dir).expanduser() if model_dir else None
        # Searched after model_dir: the project's own shipped models stay usable when
        # HARERUN_MODEL_DIR points elsewhere (e.g. at a folder holding only the YuNet file).
        self.fallback_dirs = [Path(d) for d in fallback_dirs or [] if Path(d) != self.model_dir]
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else DEFAULT_CACHE_DIR.expanduser()
        self.s3_bucket = s3_bucket or None
        self.s3_prefix = (s3_prefix or "").strip("/")
        self.s3_endpoint_url = s3_endpoint_url or None
        if manifests is None:
            manifests = [p / MANIFEST_NAME for p in (self.model_dir, _REPO_MODELS) if p is not None]
        self.manifest_paths = list(dict.fromkeys(Path(p).absolute() for p in manifests))
        self._entries: list[ManifestEntry] | None = None
        self._client = None
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

    # -- resolution ---------------------------------------------------------------------

    def resolve(self, spec: str, *, path: str | os.PathLike | None = None) -> ResolvedModel:
        """Find ``spec`` (``name`` or ``name@version``) and return a verified local file.

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
        if entry is not None:
            version = entry.version
        tried: list[str] = []
        hit = self._find_local(name, version, entry, tried) or self._find_cached(name, version, entry, tried)
        if hit is not None:
            return hit
        with self._lock(f"{name}@{version}"):
            hit = self._find_cached(name, version, entry, [])  # another thread may have fetched it
            return hit or self._download(name, version, entry, tried)

    def fetch(self, spec: str) -> ResolvedModel:
        """Make sure ``spec`` is in the cache (download from S3 if needed) and return it."""
        name, version = parse_spec(spec)
        entry = self.entry(name, version)
        if entry is not None:
            version = entry.version
        tried: list[str] = []
        with self._lock(f"{name}@{version}"):
            return self._find_cached(name, version, entry, tried) or self._download(name, version, entry, tried)

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _verified(
        self, path: Path, expected: str | None, name: str, version: str, source: Source, tried: list[str]
    ) -> ResolvedModel | None:
        actual = sha256_file(path)
        if expected and actual != expected:
            tried.append(
                f"{source} {path}: checksum mismatch (sha256 {actual[:12]}…, expected {expected[:12]}…); "
                f"file not used — delete it or fetch it again"
            )
            return None
        return ResolvedModel(name, version, path, source, actual, path.stat().st_size)

    def _find_local(self, name, version, entry, tried) -> ResolvedModel | None:
        try:
            return self._look_local(name, version, entry, tried)
        except OSError as exc:  # e.g. a models folder this user may not read
            tried.append(f"local: cannot read {exc.filename or self.model_dir} ({exc.strerror or exc})")
            return None

    def _look_local(self, name, version, entry, tried) -> ResolvedModel | None:
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
                return self._verified(p, entry.sha256, name, entry.version, "local", tried)
            tried.append(f"local: {p} not found")
        return None

    def _cache_path(self, name: str, version: str, file: str) -> Path:
        return self.cache_dir / name / version / Path(file).name

    def _find_cached(self, name, version, entry, tried) -> ResolvedModel | None:
        try:
            return self._look_cached(name, version, entry, tried)
        except OSError as exc:  # a cache folder this user may not read (HOME not theirs, ...)
            tried.append(
                f"cache: cannot read {exc.filename or self.cache_dir} ({exc.strerror or exc}); "
                f"set HARERUN_CACHE_DIR to a folder this user owns"
            )
            return None

    def _look_cached(self, name, version, entry, tried) -> ResolvedModel | None:
        if version is None:  # unlisted name without version: highest cached version
            vdirs = (
                sorted(
                    (d for d in (self.cache_dir / name).glob("*") if d.is_dir()),
                    key=lambda d: version_key(d.name),
                    reverse=True,
                )
                if (self.cache_dir / name).is_dir()
                else []
            )
            version = vdirs[0].name if vdirs else None
            if version is None:
                tried.append(f"cache: nothing for {name} in {self.cache_dir}")
                return None
        if entry is not None:
            candidates = [self._cache_path(name, version, entry.file)]
        else:
            vdir = self.cache_dir / name / version
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
            hit = self._verified(p, expected, name, version, "cache", tried)
            if hit:
                return hit
        tried.append(f"cache: {name}@{version} not in {self.cache_dir}")
        return None

    # -- S3 -----------------------------------------------------------------------------

    def s3_key(self, name: str, version: str, file: str) -> str:
        return "/".join(p for p in (self.s3_prefix, name, version, Path(file).name) if p)

    def _s3(self, *, download: bool = False):
        """The S3 client (``download``: the one whose reads may take longer). Raises when this
        thread must not call S3 or the endpoint did not answer in the last :data:`S3_DOWN_S`."""
        if _local_only():
            raise _S3Problem(
                "not fetched while a photo waits: the server fetches missing models at start-up "
                "and in the background (GET /ready says which are missing)"
            )
        with _down_lock:
            when, why = _down.get((self.s3_endpoint_url, self.s3_bucket), (None, ""))
        if when is not None and time.monotonic() - when < S3_DOWN_S:
            ago = time.monotonic() - when
            raise _S3Problem(f"{why} ({ago:.0f} s ago; not asked again for {S3_DOWN_S - ago:.0f} s)")
        with self._locks_guard:  # boto3 sessions are not thread-safe; the client is
            return self._s3_client(download)

    def _s3_client(self, download: bool):
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError as exc:
                raise _S3Problem("boto3 is not installed (pip install 'harerun[s3]')") from exc
            session = boto3.session.Session()
            self._client = {
                d: session.client(
                    "s3",
                    endpoint_url=self.s3_endpoint_url,
                    config=Config(
                        connect_timeout=S3_CONNECT_TIMEOUT_S,
                        read_timeout=S3_DOWNLOAD_READ_TIMEOUT_S if d else S3_READ_TIMEOUT_S,
                        retries={"total_max_attempts": 2 if d else 1, "mode": "standard"},
                    ),
                )
                for d in (False, True)
            }
        return self._client[download]

    def _s3_failed(self, exc: BaseException) -> str:
        """Describe an S3 failure; an endpoint that did not answer is remembered as down
        (the clock starts now, when the call has ended)."""
        why = describe_s3_error(exc, self.s3_bucket, self.s3_endpoint_url)
        if _unreachable(exc):
            with _down_lock:
                _down[(self.s3_endpoint_url, self.s3_bucket)] = (time.monotonic(), why)
        return why

    def _s3_locate(self, name: str, version: str | None, entry: ManifestEntry | None) -> tuple[str, str, dict]:
        """Find the S3 object for a model: (key, version, head_object response)."""
        s3 = self._s3()
        if entry is not None:
            key = self.s3_key(name, entry.version, entry.file)
            return key, entry.version, s3.head_object(Bucket=self.s3_bucket, Key=key)
        base = "/".join(p for p in (self.s3_prefix, name) if p) + "/"
        if version:
            base += version + "/"
        objs = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.s3_bucket, Prefix=base):
            objs += [o for o in page.get("Contents", []) if not o["Key"].endswith(".sha256")]
        if not objs:
            raise _S3Problem(
                f"no object under s3://{self.s3_bucket}/{base} "
                f"(publish it with `harerun models publish FILE --name {name} --version V`)"
            )
        # without a version: the highest version (natural order: 2 < 10 < 2023mar), newest object within it
        newest = max(objs, key=lambda o: (version_key(o["Key"][len(base) :].split("/")[0]), o["LastModified"]))
        key = newest["Key"]
        return (
            key,
            key[len(base) :].split("/")[0] if not version else version,
            s3.head_object(Bucket=self.s3_bucket, Key=key),
        )

    def _s3_expected_sha(self, key: str, head: dict, entry: ManifestEntry | None) -> str:
        if entry is not None and entry.sha256:
            return entry.sha256
        sha = (head.get("Metadata") or {}).get("sha256")
        if sha:
            return sha.lower()
        try:
            body = self._s3().get_object(Bucket=self.s3_bucket, Key=key + ".sha256")["Body"].read().decode()
            return body.split()[0].lower()
        except Exception:
            raise _S3Problem(
                f"s3://{self.s3_bucket}/{key} has no sha256 (not in the manifest, no 'sha256' "
                f"metadata, no .sha256 sidecar); re-publish it with `harerun models publish`"
            ) from None

    def _download(self, name, version, entry, tried) -> ResolvedModel:
        label_version = version
        if not self.s3_bucket:
            tried.append(
                "s3: no bucket configured (set HARERUN_S3_BUCKET, and HARERUN_S3_ENDPOINT_URL for a non-AWS server)"
            )
            raise ModelUnavailable("; ".join(tried), name=name, version=label_version)
        try:
            key, version, head = self._s3_locate(name, version, entry)
            expected = self._s3_expected_sha(key, head, entry)
            dest = self._cache_path(name, version, key)
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
            tmp = Path(tmp_name)
            try:
                h = hashlib.sha256()
                body = self._s3(download=True).get_object(Bucket=self.s3_bucket, Key=key)["Body"]
                with os.fdopen(fd, "wb") as f:
                    for chunk in iter(lambda: body.read(1 << 20), b""):
                        h.update(chunk)
                        f.write(chunk)
                actual = h.hexdigest()
                if actual != expected:
                    raise ModelUnavailable(
                        f"s3://{self.s3_bucket}/{key} failed verification: sha256 {actual} but expected "
                        f"{expected}; the download was discarded (re-publish the model or fix the manifest)",
                        name=name,
                        version=version,
                        code="MODEL_CHECKSUM_MISMATCH",
                    )
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
            dest.with_name(dest.name + ".sha256").write_text(f"{expected}  {dest.name}\n")
        except ModelUnavailable:
            raise
        except Exception as exc:  # botocore errors, OSError, _S3Problem
            if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:  # nothing half-written is kept
                tried.append(
                    f"cache: cannot write to {self.cache_dir} ({exc.strerror}); free disk space or set "
                    f"HARERUN_CACHE_DIR to a writable folder"
                )
            else:
                tried.append("s3: " + self._s3_failed(exc))
            raise ModelUnavailable("; ".join(tried), name=name, version=label_version) from None
        return ResolvedModel(name, version, dest, "s3", expected, dest.stat().st_size)

    def publish(self, file: str | os.PathLike, *, name: str, version: str) -> dict[str, Any]:
        """Upload ``file`` as ``name@version`` with its SHA-256 (metadata and sidecar)."""
        parse_spec(f"{name}@{version}")
        p = Path(file)
        if not p.is_file():
            raise ModelUnavailable(f"{p} is not a file", name=name, version=version, code="INVALID_MODEL_FILE")
        if not self.s3_bucket:
            raise ModelUnavailable("no bucket configured (set HARERUN_S3_BUCKET)", name=name, version=version)
        sha = sha256_file(p)
        key = self.s3_key(name, version, p.name)
        try:
            s3 = self._s3()
            with open(p, "rb") as f:
                s3.put_object(Bucket=self.s3_bucket, Key=key, Body=f, Metadata={"sha256": sha})
            s3.put_object(Bucket=self.s3_bucket, Key=key + ".sha256", Body=f"{sha}  {p.name}\n".encode())
        except Exception as exc:
            raise ModelUnavailable(self._s3_failed(exc), name=name, version=version) from None
        return {
            "name": name,
            "version": version,
            "file": p.name,
            "sha256": sha,
            "size_bytes": p.stat().st_size,
            "bucket": self.s3_bucket,
            "key": key,
            "uri": f"s3://{self.s3_bucket}/{key}",
        }

    # -- status -------------------------------------------------------------------------

    def status(self, specs: list[str] | None = None, *, remote: bool = True) -> list[dict[str, Any]]:
        """Availability of each model, JSON-native, without downloading anything.

        Each dict: name, version, available, source (local / cache / s3 / None),
        sha256, size_bytes, load_ms (when a plugin loaded it in this process), reason.
        A model only in S3 is checked with a HEAD request and reported with source "s3";
        with ``remote=False`` it is reported unavailable without asking S3.
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
                tried: list[str] = []
                hit = self._find_local(name, version, entry, tried) or self._find_cached(name, version, entry, tried)
                if hit is not None:
                    row.update(
                        available=True,
                        source=hit.source,
                        sha256=hit.sha256,
                        size_bytes=hit.size_bytes,
                        version=hit.version,
                    )
                elif not self.s3_bucket:
                    row["reason"] = "; ".join(tried + ["s3: no bucket configured (set HARERUN_S3_BUCKET)"])
                elif not remote:
                    row["reason"] = "; ".join(tried + [f"s3: not downloaded from s3://{self.s3_bucket}"])
                else:
                    try:
                        key, version, head = self._s3_locate(name, version, entry)
                        row.update(
                            available=True,
                            source="s3",
                            version=version,
                            sha256=self._s3_expected_sha(key, head, entry),
                            size_bytes=int(head.get("ContentLength", 0)),
                            reason="not downloaded yet; fetched from S3 on first use",
                        )
                    except Exception as exc:
                        row["reason"] = "; ".join(tried + ["s3: " + self._s3_failed(exc)])
                row["load_ms"] = _LOAD_TIMES.get((row["name"], row["version"]))
            except ModelUnavailable as exc:
                row["reason"] = exc.reason
            out.append(row)
        return out


class _S3Problem(Exception):
    """An S3 problem already phrased for the user."""


def _unreachable(exc: BaseException) -> bool:
    """The endpoint did not answer at all (time-out, refused, dropped), as opposed to an answer
    such as 403 or 404."""
    try:
        from botocore import exceptions as bce
    except ImportError:
        return False
    return isinstance(
        exc, (bce.ConnectTimeoutError, bce.ReadTimeoutError, bce.EndpointConnectionError, bce.ConnectionClosedError)
    )


def s3_endpoint_label(endpoint: str | None) -> str:
    """The endpoint boto3 talks to: the configured one, else ``AWS_ENDPOINT_URL(_S3)``, else AWS S3."""
    return endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"


def describe_s3_error(exc: BaseException, bucket: str | None, endpoint: str | None) -> str:
    """Say what went wrong talking to S3 and what to do about it."""
    where = s3_endpoint_label(endpoint)
    if isinstance(exc, _S3Problem):
        return str(exc)
    try:
        from botocore import exceptions as bce
    except ImportError:  # pragma: no cover - boto3 missing is reported by _s3()
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError)):
        return (
            "no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, "
            "or use an instance role)"
        )
    if isinstance(exc, (bce.ConnectTimeoutError, bce.ReadTimeoutError)):
        return f"timed out talking to {where} ({exc}); check HARERUN_S3_ENDPOINT_URL and the network"
    if isinstance(exc, (bce.EndpointConnectionError, bce.ConnectionClosedError)):
        return f"cannot reach {where} ({exc}); check HARERUN_S3_ENDPOINT_URL and that the server is up"
    if isinstance(exc, bce.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch") or status == 403:
            return (
                f"access denied to bucket '{bucket}' on {where} ({code}); check the credentials and "
                f"their permissions (s3:GetObject, s3:ListBucket)"
            )
        if code == "NoSuchBucket":
            return f"bucket '{bucket}' does not exist on {where}; check HARERUN_S3_BUCKET"
        if code in ("404", "NoSuchKey", "NotFound") or status == 404:
            return (
                f"the model is not in s3://{bucket} (404); publish it with "
                f"`harerun models publish FILE --name NAME --version V`"
            )
        return f"S3 error {code or status} from {where}: {err.get('Message', exc)}"
    if isinstance(exc, bce.BotoCoreError):
        return f"S3 client error talking to {where}: {exc}"
    return f"{type(exc).__name__}: {exc}"


def timed_load(model: ResolvedModel, loader) -> Any:
    """Call ``loader(model.path)``, record its duration on ``model`` and for ``status``."""
    t0 = time.perf_counter()
    obj = loader(model.path)
    record_load(model, (time.perf_counter() - t0) * 1000.0)
    return obj


class LoadedModels:
    """Models a plugin has loaded, once per process and key; a failed load is remembered for
    ``retry_after_s`` (a dead S3 endpoint or a missing file must not cost every photo a retry).

    ``get(key, load)`` returns the model for ``key``, calling ``load()`` under a lock the first
    time; a :class:`ModelUnavailable` it raises is raised again for the same key until the time
    is up. ``clear()`` forgets both (tests, or after fixing the configuration).
    """

    def __init__(self, retry_after_s: float = 30.0) -> None:
        self.retry_after_s = retry_after_s
        self._models: dict[Any, Any] = {}
        self._failures: dict[Any, tuple[float, ModelUnavailable]] = {}
        self._lock = threading.Lock()

    def get(self, key, load):
        model = self._models.get(key)
        if model is not None:
            return model
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                return model
            failed = self._failures.get(key)
            if failed is not None and time.monotonic() - failed[0] < self.retry_after_s:
                raise failed[1]
            try:
                model = load()
            except ModelUnavailable as exc:
                self._failures[key] = (time.monotonic(), exc)
                raise
            self._failures.pop(key, None)
            self._models[key] = model
            return model

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            self._failures.clear()
