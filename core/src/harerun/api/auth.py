"""Optional API keys, a rate limit per key, and what only operators may see.

``HARERUN_API_KEYS`` lists the keys the server accepts, comma-separated, each as
``NAME:SHA256`` or ``NAME:SHA256:operator``. Only the SHA-256 of a key is configured, never
the key: ``harerun keys new NAME [--operator]`` prints a fresh key and its entry. Clients send
``Authorization: Bearer KEY`` or ``X-API-Key: KEY``. Without ``HARERUN_API_KEYS`` the API is
open, as before.

- no key or an unknown one: 401 ``UNAUTHORIZED``; a key past its rate: 429 ``RATE_LIMITED``
  with ``Retry-After``; an operator-only route with another key: 403 ``FORBIDDEN``.
- ``/health``, ``/ready``, the page and the API docs stay open; ``/metrics`` needs an
  operator key (unless ``HARERUN_METRICS_OPEN=true``).
- Server paths, the cache folder, the bucket and the endpoint in messages (model status,
  a detector's "model unavailable") are shown to operators only; others see them redacted.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from harerun.errors import HareRunError


class Unauthorized(HareRunError):
    code = "UNAUTHORIZED"
    http_status = 401


class Forbidden(HareRunError):
    code = "FORBIDDEN"
    http_status = 403


class RateLimited(HareRunError):
    code = "RATE_LIMITED"
    http_status = 429

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class ApiKey:
    name: str
    sha256: bytes
    operator: bool = False


@dataclass(frozen=True)
class Caller:
    """Who sent a request: a key's name (``anonymous`` on an open server) and whether it is an operator."""

    name: str
    operator: bool


ANONYMOUS = Caller("anonymous", operator=False)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.strip().encode("utf-8")).digest()


def new_key() -> str:
    return "hr_" + secrets.token_urlsafe(32)


def parse_keys(text: str) -> list[ApiKey]:
    """``NAME:SHA256[:operator]``, comma-separated; raises ValueError naming the bad entry."""
    keys = []
    for n, entry in enumerate((e.strip() for e in text.split(",")), 1):
        if not entry:
            continue
        parts = entry.split(":")
        if (
            len(parts) not in (2, 3)
            or not parts[0]
            or not _HEX64.match(parts[1].lower())
            or (len(parts) == 3 and parts[2] != "operator")
        ):
            raise ValueError(
                f"HARERUN_API_KEYS entry {n} is not NAME:SHA256 or NAME:SHA256:operator "
                f"(`harerun keys new NAME` prints one)"
            )
        keys.append(ApiKey(parts[0], bytes.fromhex(parts[1].lower()), operator=len(parts) == 3))
    return keys


class KeyRing:
    """The configured keys and a token bucket per key (``per_minute`` requests, that many in a burst)."""

    def __init__(self, keys: list[ApiKey], per_minute: int = 0) -> None:
        self.keys = keys
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, when)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def identify(self, presented: str) -> ApiKey | None:
        """The key whose hash matches, compared in constant time against every key."""
        digest = key_hash(presented)
        found = None
        for k in self.keys:
            if hmac.compare_digest(digest, k.sha256):
                found = k
        return found

    def take(self, name: str) -> float:
        """Spend one request of ``name``'s rate: 0 when allowed, else seconds until one is."""
        if self.per_minute <= 0:
            return 0.0
        rate = self.per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, when = self._buckets.get(name, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - when) * rate)
            if tokens < 1.0:
                self._buckets[name] = (tokens, now)
                return (1.0 - tokens) / rate
            self._buckets[name] = (tokens - 1.0, now)
            return 0.0


_bearer = HTTPBearer(auto_error=False, description="an API key from HARERUN_API_KEYS, as `Bearer KEY`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key from HARERUN_API_KEYS")


async def caller(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> Caller:
    """Who is calling; raises 401 / 429 when keys are configured."""
    ring: KeyRing = request.app.state.keys
    if not ring.enabled:
        return ANONYMOUS
    presented = (bearer.credentials if bearer else None) or header
    if not presented:
        raise Unauthorized("an API key is required: send `Authorization: Bearer KEY` or `X-API-Key: KEY`")
    key = ring.identify(presented)
    if key is None:
        raise Unauthorized("unknown API key; ask the server's operator for one")
    wait = ring.take(key.name)
    if wait:
        raise RateLimited(
            f"key '{key.name}' is over its rate of {ring.per_minute} requests a minute; retry after the pause",
            retry_after_s=max(1, math.ceil(wait)),
        )
    return Caller(key.name, key.operator)


CallerDep = Annotated[Caller, Depends(caller)]


async def operator(request: Request, who: CallerDep) -> Caller:
    """Routes for operators only (when keys are configured)."""
    if request.app.state.keys.enabled and not who.operator:
        raise Forbidden(f"key '{who.name}' may not use this endpoint; it needs an operator key")
    return who


async def metrics_access(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> None:
    """``/metrics`` needs an operator key when keys are set, unless ``HARERUN_METRICS_OPEN``."""
    if request.app.state.keys.enabled and not request.app.state.settings.metrics_open:
        await operator(request, await caller(request, bearer, header))


# -- redaction --------------------------------------------------------------------------

_URL = re.compile(r"\b(?:https?|s3)://[^\s;,()'\"]+")
_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s;:,()'\"/]+/)*([^\s;:,()'\"/]*)")


def redact(text: str | None) -> str | None:
    """``text`` without server paths, URLs, bucket names or endpoints: ``/srv/models/x.onnx`` becomes
    ``…/x.onnx``, ``s3://bucket/models/a`` and ``http://minio:9000`` become ``<s3>`` / ``<endpoint>``."""
    if not text:
        return text
    text = _URL.sub(lambda m: "<s3>" if m.group(0).startswith("s3:") else "<endpoint>", text)
    text = re.sub(r"bucket '[^']*'", "bucket <bucket>", text)
    return _PATH.sub(lambda m: "…/" + m.group(1) if m.group(1) else "…/", text)


def redact_results(payload: dict[str, Any]) -> dict[str, Any]:
    """An analysis payload with every detector message redacted (in place)."""
    for result in (payload.get("results") or {}).values():
        if isinstance(result, dict) and result.get("message"):
            result["message"] = redact(result["message"])
    return payload
