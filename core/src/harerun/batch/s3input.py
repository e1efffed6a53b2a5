"""Photos in S3 as batch inputs: ``s3://bucket/prefix/`` listed with a paginator (image keys only),
each object streamed and hashed as it is read.

The client is the model store's, bounded the same way (connect and read time-outs, few retries;
:mod:`harerun.modelstore.s3`): one per process, made on first use. The endpoint is
``HARERUN_S3_ENDPOINT_URL`` when set, else boto3's own ``AWS_ENDPOINT_URL(_S3)``, else AWS;
credentials come from boto3's usual chain.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

from harerun.errors import HareRunError, ImageError
from harerun.modelstore.s3 import S3_CONNECT_TIMEOUT_S, S3_DOWNLOAD_READ_TIMEOUT_S, describe_s3_error

#: The error code of a photo S3 did not deliver (time-out, access denied, ...): the runner's
#: failure, not the photo's, so ``--resume`` reads it again.
S3_READ_FAILED = "S3_READ_FAILED"

_lock = threading.Lock()
_client: Any = None


def _forget_client() -> None:
    # A forked analysis process must not share the runner's pooled connections.
    global _client, _lock
    _client, _lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_client)


def is_s3(name: str) -> bool:
    return name.startswith("s3://")


def split_url(url: str) -> tuple[str, str]:
    """(bucket, key or prefix) of ``s3://bucket/rest``."""
    bucket, _, rest = url[len("s3://") :].partition("/")
    return bucket, rest


def endpoint_url() -> str | None:
    return os.environ.get("HARERUN_S3_ENDPOINT_URL") or None


def client() -> Any:
    """This process's S3 client (boto3 clients are thread-safe; their sessions are not)."""
    global _client
    with _lock:
        if _client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                from harerun.batch.inputs import NoPhotos

                raise NoPhotos("s3:// inputs need boto3: pip install 'harerun[s3]'", code="MISSING_EXTRA") from None
            _client = boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint_url(),
                config=Config(
                    connect_timeout=S3_CONNECT_TIMEOUT_S,
                    read_timeout=S3_DOWNLOAD_READ_TIMEOUT_S,
                    retries={"total_max_attempts": 3, "mode": "standard"},
                ),
            )
        return _client


def _describe(exc: BaseException, bucket: str) -> str:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    if code == "NoSuchBucket":
        return f"bucket '{bucket}' does not exist on {endpoint_url() or 'AWS S3'}; check the URL (and HARERUN_S3_ENDPOINT_URL)"
    return describe_s3_error(exc, bucket, endpoint_url())


def list_photos(url: str, wanted: Callable[[str], bool]) -> Iterator[str]:
    """The ``s3://`` URL of every key under ``url`` that ``wanted`` accepts; ``url`` naming one such
    key is that photo. A prefix is a folder: ``s3://b/photos`` lists ``photos/...``, not ``photos2/...``."""
    from harerun.batch.inputs import NoPhotos

    bucket, key = split_url(url)
    if not bucket:
        raise NoPhotos(f"{url}: no bucket; write s3://bucket/prefix/")
    if wanted(key):
        yield url
        return
    prefix = key.rstrip("/") + "/" if key.strip("/") else ""
    try:
        for page in client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if wanted(obj["Key"]) and not obj["Key"].endswith("/"):
                    yield f"s3://{bucket}/{obj['Key']}"
    except HareRunError:
        raise
    except Exception as exc:
        raise NoPhotos(f"{url}: cannot list the photos: {_describe(exc, bucket)}") from None


def read(url: str, max_bytes: int) -> tuple[bytes | None, str, int]:
    """(bytes, SHA-256, size) of one object, streamed; over ``max_bytes`` the bytes are hashed, not kept.

    A missing object is :class:`ImageError` (``UNREADABLE_IMAGE``); any other S3 failure is
    :data:`S3_READ_FAILED`."""
    bucket, key = split_url(url)
    try:
        body = client().get_object(Bucket=bucket, Key=key)["Body"]
        h, chunks, size = hashlib.sha256(), [], 0
        for chunk in iter(lambda: body.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
            if size <= max_bytes:
                chunks.append(chunk)
    except HareRunError:
        raise
    except Exception as exc:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "404"):
            raise ImageError(f"{url}: no such object (deleted since it was listed?)") from None
        raise HareRunError(f"{url}: {_describe(exc, bucket)}", code=S3_READ_FAILED) from None
    return (b"".join(chunks) if size <= max_bytes else None), h.hexdigest(), size
