"""A cap on requests in progress per server process, answered in the API's own JSON.

Photo requests are refused with 503 OVERLOADED + Retry-After before their body is read
once ``max_requests`` are in progress, so slow or numerous uploads cannot pile up memory
(each holds at most one body of the upload limit). Health, readiness and metrics are
never refused: probes keep working under load.
"""

from __future__ import annotations

from typing import Any

from harerun.api.errors import error_response
from harerun.api.metrics import Metrics

EXEMPT = ("/health", "/ready", "/metrics")


class RequestLimitMiddleware:
    def __init__(self, app: Any, max_requests: int, retry_after_s: int, metrics: Metrics) -> None:
        self.app = app
        self.max_requests = max_requests
        self.retry_after_s = retry_after_s
        self.metrics = metrics
        self.active = 0  # only touched on the event loop thread

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT:
            await self.app(scope, receive, send)
            return
        if self.active >= self.max_requests:
            self.metrics.rejected.labels("TOO_MANY_REQUESTS").inc()
            response = error_response(
                503,
                "OVERLOADED",
                f"the server has {self.active} requests in progress (limit {self.max_requests}); retry shortly",
                headers={"Retry-After": str(self.retry_after_s), "Connection": "close"},
            )
            await response(scope, receive, send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
