"""A bounded pool of analysis threads or processes.

CPU-heavy work never runs on the event loop. At most ``workers`` photos are analysed
at once and at most ``queue_size`` more wait; past that a request is refused at once
with 503 + Retry-After instead of queueing without bound. A slot is released only when
its worker has really finished (a timed-out request's work keeps its slot until done),
so the count always matches the CPU actually in use.

Threads share the process (and its GIL); processes (``processes > 0``, started with
``spawn``) analyse truly in parallel from one shared queue, so the load is balanced
whichever connection a photo came in on. A process that dies (killed, out of memory)
breaks the whole pool: the pool is rebuilt and every photo it held or queued is sent to the
new one, once; a photo lost twice (it may be what kills the process) gets 503 ``WORKER_LOST``.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from harerun.api.errors import ServiceUnavailable

T = TypeVar("T")
log = logging.getLogger("harerun.api")

#: Times a photo lost with a broken process pool is sent to the rebuilt one.
RESENDS = 1


class WorkerPool:
    def __init__(
        self,
        threads: int,
        queue_size: int,
        *,
        processes: int = 0,
        initializer: Callable[..., None] | None = None,
        initargs: tuple = (),
        thread_initializer: Callable[[], None] | None = None,
        retry_after_s: int = 1,
        on_change: Callable[[int], None] | None = None,
    ) -> None:
        self.processes = processes
        self.workers = processes or threads
        self.capacity = self.workers + queue_size
        self.retry_after_s = retry_after_s
        self._initializer, self._initargs = initializer, initargs
        self._thread_initializer = thread_initializer
        self._in_flight = 0
        self._lock = threading.Lock()
        self._on_change = on_change or (lambda n: None)
        self._executor = self._new_executor()

    def _new_executor(self) -> Executor:
        if self.processes:
            ctx = multiprocessing.get_context("spawn")  # no fork of a threaded server
            return ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=ctx,
                initializer=_process_init,
                initargs=(ctx.Barrier(self.processes), os.getpid(), self._initializer, self._initargs),
            )
        return ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="harerun-analysis", initializer=self._thread_initializer
        )

    def start(self, *, timeout_s: float = 600.0) -> None:
        """Start every worker process now and wait until all have run the initializer
        (loaded and warmed up); nothing to do for threads."""
        if not self.processes:
            return
        futures = [self._executor.submit(_all_started, timeout_s) for _ in range(self.processes)]
        for f in futures:
            f.result(timeout=timeout_s)

    @property
    def in_flight(self) -> int:
        """Photos being analysed or waiting for a worker."""
        return self._in_flight

    def has_room(self) -> bool:
        return self._in_flight < self.capacity

    def overloaded(self) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"the server is busy ({self._in_flight} photos in progress, limit {self.capacity}); retry shortly",
            code="OVERLOADED",
            retry_after_s=self.retry_after_s,
        )

    def _release(self, _: Future) -> None:
        with self._lock:
            self._in_flight -= 1
            self._on_change(self._in_flight)

    def _replace_broken(self, broken: Executor) -> None:
        with self._lock:
            if self._executor is broken:
                log.error(
                    "an analysis process stopped unexpectedly; starting a new pool and sending it the photos "
                    "in progress"
                )
                self._executor = self._new_executor()
        broken.shutdown(wait=False, cancel_futures=True)

    def _lost(self) -> ServiceUnavailable:
        return ServiceUnavailable(
            "the analysis process handling this photo stopped unexpectedly; retry shortly",
            code="WORKER_LOST",
            retry_after_s=self.retry_after_s,
        )

    def _acquire(self, *, check: bool = True) -> None:
        with self._lock:
            if check and self._in_flight >= self.capacity:
                raise self.overloaded()
            self._in_flight += 1
            self._on_change(self._in_flight)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on a worker; raise 503 OVERLOADED when the pool and queue are full.

        For processes ``fn`` and ``args`` must pickle (a module-level function)."""
        self._acquire()
        for attempt in range(1 + RESENDS):
            if attempt:
                self._acquire(check=False)  # the same photo again: it had its place
            executor = self._executor
            try:
                future = executor.submit(fn, *args)
            except BrokenProcessPool:
                self._release(None)
                self._replace_broken(executor)
                continue
            except BaseException:
                self._release(None)
                raise
            future.add_done_callback(self._release)
            try:
                return await asyncio.wrap_future(future)
            except BrokenProcessPool:
                self._replace_broken(executor)
        raise self._lost()

    def shutdown(self) -> None:
        # Processes are waited for (each finishes the photo it holds): the server may end by a
        # signal right after this (uvicorn re-raises SIGTERM), with no later chance to stop them.
        self._executor.shutdown(wait=bool(self.processes), cancel_futures=True)


_start_barrier: Any = None


def _process_init(barrier: Any, parent: int, initializer: Callable[..., None] | None, initargs: tuple) -> None:
    global _start_barrier
    _start_barrier = barrier

    # The server's pid comes from the server itself: a process still starting (importing) when
    # the server was killed would otherwise take its new parent (init) for the server and stay.
    def exit_with_parent() -> None:  # a server killed outright (SIGKILL, OOM) leaves no orphans
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=exit_with_parent, name="harerun-parent-watch", daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


def _all_started(timeout_s: float) -> None:
    """Returns once every process of the pool is running it: each start-up call blocks
    its process until all are initialised, so the calls land on distinct processes."""
    _start_barrier.wait(timeout=timeout_s)
