"""Every call to S3: the client with bounded timeouts, the memory of endpoints that did not
answer, the per-thread "never call S3" switch, finding an object and its checksum, the
download into the cache (verify, then rename) and publishing. :func:`describe_s3_error`
turns any failure into a sentence that says what to do.

Layout: ``s3://<bucket>/<prefix>/<name>/<version>/<file>`` with object metadata ``sha256``
and a sidecar ``<file>.sha256``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harerun.modelstore.errors import ModelUnavailable
from harerun.modelstore.local import Cache, ResolvedModel, sha256_file, sidecar_text
from harerun.modelstore.manifest import ManifestEntry, version_key

DEFAULT_S3_PREFIX = "models"
#: Every S3 call is bounded: connect, then each read (``HARERUN_S3_TIMEOUT_S`` for look-ups;
#: a download's body may take longer per read), and look-ups are not retried.
S3_CONNECT_TIMEOUT_S = 1.0
S3_READ_TIMEOUT_S = float(os.environ.get("HARERUN_S3_TIMEOUT_S") or 1.5)
S3_DOWNLOAD_READ_TIMEOUT_S = 15.0
#: An endpoint that did not answer (timeout, refused) is not asked again for this long, so a
#: black-hole endpoint costs one time-out per process and half-minute, not one per model.
S3_DOWN_S = 30.0

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


class _S3Problem(Exception):
    """An S3 problem already phrased for the user."""


@dataclass(frozen=True)
class S3Object:
    """A model found in S3 (HEAD only, not downloaded) and the checksum it must have."""

    name: str
    version: str
    key: str
    sha256: str
    size_bytes: int
    source: Literal["s3"] = "s3"


class S3Bucket:
    """The models under ``s3://<bucket>/<prefix>/`` on one endpoint."""

    def __init__(self, bucket: str | None, prefix: str = DEFAULT_S3_PREFIX, endpoint_url: str | None = None) -> None:
        self.bucket = bucket or None
        self.prefix = (prefix or "").strip("/")
        self.endpoint_url = endpoint_url or None
        self._clients: dict[bool, Any] | None = None
        self._clients_lock = threading.Lock()

    def key(self, name: str, version: str, file: str) -> str:
        return "/".join(p for p in (self.prefix, name, version, Path(file).name) if p)

    # -- the client -----------------------------------------------------------------------

    def _client(self, *, download: bool = False):
        """The S3 client (``download``: the one whose reads may take longer). Raises when this
        thread must not call S3 or the endpoint did not answer in the last :data:`S3_DOWN_S`."""
        if _local_only():
            raise _S3Problem(
                "not fetched while a photo waits: the server fetches missing models at start-up "
                "and in the background (GET /ready says which are missing)"
            )
        with _down_lock:
            when, why = _down.get((self.endpoint_url, self.bucket), (None, ""))
        if when is not None and time.monotonic() - when < S3_DOWN_S:
            ago = time.monotonic() - when
            raise _S3Problem(f"{why} ({ago:.0f} s ago; not asked again for {S3_DOWN_S - ago:.0f} s)")
        with self._clients_lock:  # boto3 sessions are not thread-safe; the client is
            if self._clients is None:
                self._clients = self._make_clients()
            return self._clients[download]

    def _make_clients(self) -> dict[bool, Any]:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:
            raise _S3Problem("boto3 is not installed (pip install 'harerun[s3]')") from exc
        session = boto3.session.Session()
        return {
            d: session.client(
                "s3",
                endpoint_url=self.endpoint_url,
                config=Config(
                    connect_timeout=S3_CONNECT_TIMEOUT_S,
                    read_timeout=S3_DOWNLOAD_READ_TIMEOUT_S if d else S3_READ_TIMEOUT_S,
                    retries={"total_max_attempts": 2 if d else 1, "mode": "standard"},
                ),
            )
            for d in (False, True)
        }

    def failed(self, exc: BaseException) -> str:
        """Describe an S3 failure; an endpoint that did not answer is remembered as down
        (the clock starts now, when the call has ended)."""
        why = describe_s3_error(exc, self.bucket, self.endpoint_url)
        if _unreachable(exc):
            with _down_lock:
                _down[(self.endpoint_url, self.bucket)] = (time.monotonic(), why)
        return why

    # -- find, download, publish --------------------------------------------------------------

    def find(self, name: str, version: str | None, entry: ManifestEntry | None) -> S3Object:
        """The object for a model and its expected SHA-256 (HEAD and LIST only, nothing downloaded).
        Without a version: the highest version (natural order: 2 < 10 < 2023mar), newest object within it."""
        s3 = self._client()
        if entry is not None:
            key, version = self.key(name, entry.version, entry.file), entry.version
        else:
            base = "/".join(p for p in (self.prefix, name) if p) + "/"
            if version:
                base += version + "/"
            objs = []
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
                objs += [o for o in page.get("Contents", []) if not o["Key"].endswith(".sha256")]
            if not objs:
                raise _S3Problem(
                    f"no object under s3://{self.bucket}/{base} "
                    f"(publish it with `harerun models publish FILE --name {name} --version V`)"
                )
            newest = max(objs, key=lambda o: (version_key(o["Key"][len(base) :].split("/")[0]), o["LastModified"]))
            key = newest["Key"]
            version = version or key[len(base) :].split("/")[0]
        head = s3.head_object(Bucket=self.bucket, Key=key)
        sha = self._expected_sha(key, head, entry)
        return S3Object(name, version, key, sha, int(head.get("ContentLength", 0)))

    def _expected_sha(self, key: str, head: dict, entry: ManifestEntry | None) -> str:
        """The manifest's checksum, else the object's ``sha256`` metadata, else its sidecar."""
        if entry is not None and entry.sha256:
            return entry.sha256
        sha = (head.get("Metadata") or {}).get("sha256")
        if sha:
            return sha.lower()
        try:
            body = self._client().get_object(Bucket=self.bucket, Key=key + ".sha256")["Body"].read().decode()
            return body.split()[0].lower()
        except Exception:
            raise _S3Problem(
                f"s3://{self.bucket}/{key} has no sha256 (not in the manifest, no 'sha256' "
                f"metadata, no .sha256 sidecar); re-publish it with `harerun models publish`"
            ) from None

    def download(self, obj: S3Object, cache: Cache) -> ResolvedModel:
        """Download ``obj`` into ``cache``: to a temporary file beside its place, hashed while
        written, renamed into place only when the hash matches; then its sidecar. Raises
        :class:`ModelUnavailable` (``MODEL_CHECKSUM_MISMATCH``) on a bad hash, and the S3 or
        ``OSError`` as is otherwise; nothing half-written is kept."""
        dest = cache.path(obj.name, obj.version, obj.key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            h = hashlib.sha256()
            body = self._client(download=True).get_object(Bucket=self.bucket, Key=obj.key)["Body"]
            with os.fdopen(fd, "wb") as f:
                for chunk in iter(lambda: body.read(1 << 20), b""):
                    h.update(chunk)
                    f.write(chunk)
            actual = h.hexdigest()
            if actual != obj.sha256:
                raise ModelUnavailable(
                    f"s3://{self.bucket}/{obj.key} failed verification: sha256 {actual} but expected "
                    f"{obj.sha256}; the download was discarded (re-publish the model or fix the manifest)",
                    name=obj.name,
                    version=obj.version,
                    code="MODEL_CHECKSUM_MISMATCH",
                )
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        dest.with_name(dest.name + ".sha256").write_text(sidecar_text(obj.sha256, dest.name))
        return ResolvedModel(obj.name, obj.version, dest, "s3", obj.sha256, dest.stat().st_size)

    def publish(self, file: Path, *, name: str, version: str) -> dict[str, Any]:
        """Upload ``file`` as ``name@version`` with its SHA-256 (metadata and sidecar)."""
        sha = sha256_file(file)
        key = self.key(name, version, file.name)
        try:
            s3 = self._client()
            with open(file, "rb") as f:
                s3.put_object(Bucket=self.bucket, Key=key, Body=f, Metadata={"sha256": sha})
            s3.put_object(Bucket=self.bucket, Key=key + ".sha256", Body=sidecar_text(sha, file.name).encode())
        except Exception as exc:
            raise ModelUnavailable(self.failed(exc), name=name, version=version) from None
        return {
            "name": name,
            "version": version,
            "file": file.name,
            "sha256": sha,
            "size_bytes": file.stat().st_size,
            "bucket": self.bucket,
            "key": key,
            "uri": f"s3://{self.bucket}/{key}",
        }


# -- wording ----------------------------------------------------------------------------------


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
    except ImportError:  # pragma: no cover - boto3 missing is reported by S3Bucket._client()
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
