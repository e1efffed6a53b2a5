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

Where things are
----------------
- ``store.py``: :class:`ModelStore` — ``resolve``, ``fetch``, ``status`` (what it reports),
  ``publish``; ``ModelStore._lookup`` is the one place with the order local → cache → S3.
- ``local.py``: the models folders and the cache on disk, SHA-256 of files, :class:`ResolvedModel`.
- ``s3.py``: every S3 call — client and time-outs, endpoint-outage memory,
  :func:`local_only_in_this_thread`, download (verify, then rename), publish, :func:`describe_s3_error`.
- ``manifest.py``: ``name@version`` specs, version order, ``models.yaml``.
- ``loaded.py``: :class:`LoadedModels` (load once per process) and load times.
- ``errors.py``: :class:`ModelUnavailable`, :class:`InvalidModelSpec`.

Why not pooch or fsspec for download-verify-cache: pooch checks hashes and caches, but
fetches over HTTP(S)/FTP/DOI only, so S3 would still need boto3 (or presigned URLs) and pooch
would save only the hash-then-rename lines; fsspec + s3fs would add aiobotocore and aiohttp
(aiobotocore pins botocore narrowly, against boto3's), its file cache does not check SHA-256,
and the bounded time-outs, the outage memory and the error wording would still be ours.
boto3 (the ``[s3]`` extra) and some 40 lines of download code in ``s3.py`` are less to own.
"""

from harerun.modelstore.errors import InvalidModelSpec, ModelUnavailable
from harerun.modelstore.loaded import LoadedModels, record_load, timed_load
from harerun.modelstore.local import ResolvedModel, Source, sha256_file
from harerun.modelstore.manifest import MANIFEST_NAME, ManifestEntry, load_manifest, parse_spec, version_key
from harerun.modelstore.s3 import (
    DEFAULT_S3_PREFIX,
    S3_CONNECT_TIMEOUT_S,
    S3_DOWN_S,
    S3_DOWNLOAD_READ_TIMEOUT_S,
    S3_READ_TIMEOUT_S,
    describe_s3_error,
    forget_s3_outages,
    local_only_in_this_thread,
    s3_endpoint_label,
)
from harerun.modelstore.store import DEFAULT_CACHE_DIR, ModelStore

__all__ = [
    "DEFAULT_CACHE_DIR",
    "DEFAULT_S3_PREFIX",
    "MANIFEST_NAME",
    "S3_CONNECT_TIMEOUT_S",
    "S3_DOWNLOAD_READ_TIMEOUT_S",
    "S3_DOWN_S",
    "S3_READ_TIMEOUT_S",
    "InvalidModelSpec",
    "LoadedModels",
    "ManifestEntry",
    "ModelStore",
    "ModelUnavailable",
    "ResolvedModel",
    "Source",
    "describe_s3_error",
    "forget_s3_outages",
    "load_manifest",
    "local_only_in_this_thread",
    "parse_spec",
    "record_load",
    "s3_endpoint_label",
    "sha256_file",
    "timed_load",
    "version_key",
]
