"""Fuzzing the HTTP API against its own OpenAPI schema with schemathesis: no 5xx, ever.

Runs in process (ASGI) with the real engine and pipelines. Each photo-taking operation
gets ``HARERUN_FUZZ_EXAMPLES`` generated requests (default 520, so well over 1,000 in
all); a bench run can raise it.
"""

from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="pip install -r requirements-dev.txt (schemathesis)")

from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from harerun.api import Settings, create_app  # noqa: E402
from harerun.api.service import Service  # noqa: E402

EXAMPLES = int(os.environ.get("HARERUN_FUZZ_EXAMPLES", "520"))
CALLS: dict[str, int] = {}
STATUSES: dict[int, int] = {}


SETTINGS = Settings(warm_up=False, request_timeout_s=60)
APP = create_app(SETTINGS)  # cheap: the engine is built by the fixture below
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def started_service():
    service = Service.create(SETTINGS, APP.state.metrics)
    service.start()
    APP.state.service = service
    yield service
    APP.state.service = None
    service.pool.shutdown()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_request_makes_a_server_error(case):
    response = case.call()
    key = f"{case.method} {case.path}"
    CALLS[key] = CALLS.get(key, 0) + 1
    STATUSES[response.status_code] = STATUSES.get(response.status_code, 0) + 1
    case.validate_response(
        response,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
    assert response.status_code < 500, response.text[:500]


def test_fuzzing_ran_enough_cases():
    if len(CALLS) < 2:
        pytest.skip("run the whole module to count the fuzzing cases")
    total = sum(CALLS.values())
    print(f"schemathesis: {total} requests {CALLS}; statuses {dict(sorted(STATUSES.items()))}")
    assert total >= min(1000, 2 * EXAMPLES)
