"""``harerun serve``: run the HTTP API with uvicorn."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from typing import Any

import h11
from uvicorn.protocols.http import h11_impl
from uvicorn.protocols.http.h11_impl import H11Protocol

#: Seconds a connection may take to send a complete request head (after connecting, or after
#: its previous response); one that dawdles (slowloris, a socket opened and left) is closed.
HEADER_TIMEOUT_S = float(os.environ.get("HARERUN_HEADER_TIMEOUT_S") or 10.0)


async def json_service_unavailable(scope: dict, receive: object, send: Any) -> None:
    """The answer past ``HARERUN_MAX_CONNECTIONS`` (uvicorn's ``limit_concurrency``) as the API's
    own ``ErrorResponse``, not uvicorn's plain-text 503."""
    body = json.dumps(
        {"error": {"code": "OVERLOADED", "message": "the server has too many open connections; retry shortly"}}
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(b"retry-after", b"1"), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head: uvicorn's own keep-alive
    timer starts only after a response, and any byte received stops it. Requests past the
    connection limit get :func:`json_service_unavailable`."""

    _head_timer: asyncio.TimerHandle | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn picks its 503 app from this module global when over limit_concurrency; set here
        # so that it holds in every server process (--workers spawns fresh interpreters).
        h11_impl.service_unavailable = json_service_unavailable

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:  # still waiting for a complete request head
            self._arm_head_timer()
        elif self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:  # one deadline per head, not reset by each byte
            self._head_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._head_timeout)

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from harerun.api.logs import log_config
    from harerun.api.settings import load_settings
    from harerun.errors import ConfigError

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"harerun serve: {exc.message}", file=sys.stderr)
        return 2
    metrics_dir = None
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # /metrics adds up every worker's values from files in this folder.
        metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="harerun-metrics-")
    try:
        uvicorn.run(
            "harerun.api.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
            log_config=log_config(args.log_level, settings.log_format),
            access_log=False,
            http=TimedH11Protocol,
            timeout_keep_alive=5,
            limit_concurrency=settings.max_connections,
            proxy_headers=False,
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def cmd_keys_new(args: argparse.Namespace) -> int:
    from harerun.api.auth import key_hash, new_key

    if not args.name.replace("-", "").replace("_", "").isalnum():
        print(f"harerun keys new: the name {args.name[:40]!r} must be letters, digits, '-' or '_'")
        return 2
    key = new_key()
    entry = f"{args.name}:{key_hash(key).hex()}" + (":operator" if args.operator else "")
    print(f"key (give it to the client; it is not stored anywhere): {key}")
    print(f"entry (add it to HARERUN_API_KEYS, comma-separated): {entry}")
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the HTTP API and the page at / (settings: HARERUN_* environment variables)",
        description="Run the HTTP API with uvicorn. Settings come from HARERUN_* environment variables "
        "(HARERUN_PIPELINES_DIR, HARERUN_DEFAULT_PIPELINE, HARERUN_MAX_UPLOAD_BYTES, "
        "HARERUN_ANALYSIS_THREADS, HARERUN_ANALYSIS_PROCESSES, HARERUN_QUEUE_SIZE, HARERUN_REQUEST_TIMEOUT_S, "
        "HARERUN_API_KEYS, HARERUN_MAX_CONNECTIONS, HARERUN_CORS_ORIGINS, ...).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="server processes (default 1); each has its own threads")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)

    keys = subparsers.add_parser("keys", help="API keys for `harerun serve` (HARERUN_API_KEYS)")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    k = ksub.add_parser("new", help="print a fresh API key and its HARERUN_API_KEYS entry (only its hash)")
    k.add_argument("name", help="who the key is for (letters, digits, - and _)")
    k.add_argument("--operator", action="store_true", help="may read /metrics and unredacted model details")
    k.set_defaults(func=cmd_keys_new)
