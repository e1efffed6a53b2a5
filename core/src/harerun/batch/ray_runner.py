"""``harerun batch --ray``: the same analysis on Ray Data, for collections larger than one machine.

The photo names go into a dataset (``from_items``), ``map_batches`` runs them through a fixed pool
of actors (each builds one :class:`~harerun.batch.records.Analyzer`: plugins and models load once
per actor) and the driver streams the outcomes back and writes them through the same sink as the
local runner, so the records are the same, and ``--resume``, the summary and the exit code work
alike. Actors read the photos themselves (local paths must be on storage every node sees; ``s3://``
with the node's own credentials).
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import socket
from collections.abc import Iterator
from typing import Any

import numpy as np

from harerun.batch.inputs import NoPhotos
from harerun.batch.records import Analyzer, Outcome, Settings
from harerun.errors import HareRunError

#: Photos per Ray block: outcomes stream back a block at a time.
PHOTOS_PER_BLOCK = 4
#: Memory Ray reserves per actor when placing them: one analysis peaks at 250-375 MB (bench/memory.py).
ACTOR_MEMORY_BYTES = 512 * 1024 * 1024
#: How long a cluster address may take to accept a connection.
CONNECT_TIMEOUT_S = 5.0
#: Environment the actors need from the driver: where models, plugins and S3 are. Never credentials
#: or server secrets (HARERUN_API_KEYS, ...): nodes use their own.
FORWARDED_ENV = (
    "HARERUN_S3_",
    "HARERUN_MODEL_",
    "HARERUN_CACHE_DIR",
    "HARERUN_MEDIAPIPE_DIR",
    "HARERUN_YUNET_MODEL",
    "HARERUN_PIPELINES_DIR",
    "HARERUN_BLOCKED_PLUGINS",
    "HARERUN_DISABLE_PLUGIN_AUTOLOAD",
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
)


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise NoPhotos("--ray needs Ray Data: pip install 'harerun[ray]'", code="MISSING_EXTRA") from None
    return ray


def _check_reachable(address: str) -> None:
    """Refuse a ``HOST:PORT`` or ``ray://HOST:PORT`` nothing answers at: Ray itself retries for minutes."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", or not an address: Ray says what is wrong
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise NoPhotos(
            f"--ray {address}: nothing answers there ({exc.strerror or exc}); is the Ray head running "
            f"(`ray status` on it), and is the address its GCS port (6379) or Ray Client port (ray://HOST:10001)?"
        ) from None


def connect(address: str) -> bool:
    """Join the Ray cluster at ``address`` (``local``: start one here, or join ``RAY_ADDRESS``);
    True when this call connected (and so :func:`disconnect` should undo it)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    _check_reachable(os.environ.get("RAY_ADDRESS", "") if address == "local" else address)
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}
    try:
        ray.init(
            address=None if address == "local" else address,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
            runtime_env={"env_vars": env} if env else None,
        )
    except Exception as exc:
        raise NoPhotos(f"--ray {address}: cannot start or join Ray ({type(exc).__name__}: {exc})") from None
    return True


def disconnect() -> None:
    _ray().shutdown()


class RayAnalyzer:
    """A Ray Data actor: one analyzer, batches of ``{"path", "variants"}`` to pickled outcome lists."""

    settings: Settings

    def __init__(self) -> None:
        self.analyzer = Analyzer(self.settings)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = [
            pickle.dumps(self.analyzer.analyze(str(path), tuple(int(i) for i in str(variants).split(","))))
            for path, variants in zip(batch["path"], batch["variants"], strict=True)
        ]
        return {"outcomes": np.array(out, dtype=object)}


def default_jobs(threads: int) -> int:
    """Actors to start: the cluster's CPUs over the threads each uses."""
    cpus = _ray().cluster_resources().get("CPU", 1)
    return max(1, int(cpus // threads))


def ray_results(
    tasks: list[tuple[str, tuple[int, ...]]], settings: Settings, jobs: int, stop: Any
) -> Iterator[list[Outcome]]:
    """Each photo's outcomes as Ray delivers them (a block at a time); stops handing out blocks on ``stop``."""
    if not tasks:
        return
    ray = _ray()
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the runner draws its own
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    items = [{"path": path, "variants": ",".join(map(str, variants))} for path, variants in tasks]
    ds = ray.data.from_items(items, override_num_blocks=math.ceil(len(items) / PHOTOS_PER_BLOCK))
    # The settings travel in the actor class itself (pickled by value), not as constructor arguments
    # in the object store, which Ray warns an actor restart may not find.
    actor = type("RayAnalyzer", (RayAnalyzer,), {"settings": settings})
    ds = ds.map_batches(
        actor,
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=min(jobs, ds.num_blocks())),
        num_cpus=settings.threads or 1,
        memory=ACTOR_MEMORY_BYTES,
    )
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for blob in batch["outcomes"]:
                yield pickle.loads(blob)
            if stop.signal:
                return
    except HareRunError:
        raise
    except Exception as exc:
        if stop.signal:
            return
        raise HareRunError(
            f"the Ray run failed: {type(exc).__name__}: {str(exc)[:2000]}\n(every Ray node needs harerun, its "
            f"plugins and their models installed; see docs/batch.md)",
            code="RAY_FAILED",
        ) from None
