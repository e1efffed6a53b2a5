"""A bounded pool of analysis threads.

CPU-heavy work never runs on the event loop. At most ``threads`` photos are analysed
at once and at most ``queue_size`` more wait; past that a request is refused at once
with 503 + Retry-After instead of queueing without bound. A slot is released only when
its thread has really finished (a timed-out request's work keeps its slot until done),
so the count always matches the CPU actually in use.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from harerun.api.errors import ServiceUnavailable

T = TypeVar("T")


class WorkerPool:
    def __init__(
        self, threads: int, queue_size: int, *, retry_after_s: int = 1, on_change: Callable[[int], None] | None = None
    ) -> None:
        self.threads = threads
        self.capacity = threads + queue_size
        self.retry_after_s = retry_after_s
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="harerun-analysis")
        self._in_flight = 0
        self._lock = threading.Lock()
        self._on_change = on_change or (lambda n: None)

    @property
    def in_flight(self) -> int:
        """Photos being analysed or waiting for a thread."""
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

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on a pool thread; raise 503 OVERLOADED when the pool and queue are full."""
        with self._lock:
            if self._in_flight >= self.capacity:
                raise self.overloaded()
            self._in_flight += 1
            self._on_change(self._in_flight)
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            with self._lock:
                self._in_flight -= 1
                self._on_change(self._in_flight)
            raise
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
