"""Errors keep their whole state through pickling (analysis processes send them back)."""

from __future__ import annotations

import pickle

from harerun.api.errors import ServiceUnavailable
from harerun.errors import ImageError, NoUsableFace, PipelineError, UnknownPipeline


def test_errors_survive_pickling_with_code_status_and_details():
    cases = [
        ImageError("too big", code="IMAGE_TOO_LARGE", details={"max_bytes": 10}),
        NoUsableFace("rejected", code="QUALITY_REJECTED", issues=["BLURRY", "TOO_DARK"]),
        PipelineError("bad pipeline", problems=["a: missing", "b: unknown key"]),
        UnknownPipeline("no such pipeline"),
        ServiceUnavailable("busy", code="WORKER_LOST", retry_after_s=3),
    ]
    for err in cases:
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err)
        assert (back.code, back.http_status, back.message, str(back)) == (
            err.code,
            err.http_status,
            err.message,
            str(err),
        )
        assert back.__dict__ == err.__dict__
    assert pickle.loads(pickle.dumps(cases[0])).http_status == 413
