"""``harerun serve``: run the HTTP API with uvicorn."""

from __future__ import annotations

import argparse
import os
import tempfile


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # /metrics adds up every worker's values from files in this folder.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="harerun-metrics-")
    uvicorn.run(
        "harerun.api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        timeout_keep_alive=5,
        proxy_headers=False,
    )
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the HTTP API and the page at / (settings: HARERUN_* environment variables)",
        description="Run the HTTP API with uvicorn. Settings come from HARERUN_* environment variables "
        "(HARERUN_PIPELINES_DIR, HARERUN_DEFAULT_PIPELINE, HARERUN_MAX_UPLOAD_BYTES, "
        "HARERUN_ANALYSIS_THREADS, HARERUN_ANALYSIS_PROCESSES, HARERUN_QUEUE_SIZE, HARERUN_REQUEST_TIMEOUT_S, "
        "HARERUN_CORS_ORIGINS, ...).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="server processes (default 1); each has its own threads")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)
