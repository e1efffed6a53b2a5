"""Hostile config files (issue #12, items 3 and 4): alias bombs, huge integers, huge or deep files.

Each is refused or reported as a problem -- file, location, short message -- never a crash, a
hang or a message of megabytes; a bad file in the pipelines folder does not stop the server.
"""

from __future__ import annotations

import resource
import shutil
from pathlib import Path

import cv2
import pytest
from fastapi.testclient import TestClient

from harerun.api import Settings, create_app
from harerun.errors import HareRunError, PipelineError
from harerun.experiments import load_experiments
from harerun.host import PluginHost
from harerun.modelstore import load_manifest
from harerun.pipeline import default_pipelines_dir, load_pipeline_file, parse_pipeline
from harerun.testing import run_cli

ANALYZE = "/api/v6/skin/analyze-hare-run"
KB = 1024
HEAD = "schema_version: 1\nname: hostile\n"
BIG_INT = "1234567890" * 500  # 5000 digits: more than Python converts from text (4300)


def alias_bomb(depth: int, width: int = 9) -> str:
    """A flow list of nested anchors whose last one stands for width**depth strings ("billion laughs")."""
    levels = ["&a0 [" + ", ".join(['"lol"'] * width) + "]"]
    levels += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, depth)]
    return "[" + ", ".join(levels) + "]"


def _limit_memory() -> None:
    # A regression must fail with MemoryError, not take the machine's memory (the CLI needs ~1 GB of address space).
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def harerun(*args, cwd):
    return run_cli(*args, cwd=cwd, timeout=120, preexec_fn=_limit_memory)


@pytest.fixture(scope="module")
def host():
    return PluginHost()


# -- alias bombs ------------------------------------------------------------------------


def test_alias_bomb_pipeline_is_refused_by_the_cli(tmp_path):
    (tmp_path / "bomb.yaml").write_text(HEAD + f"description: {alias_bomb(9)}\ndetectors: [{{plugin: acne}}]\n")
    out = harerun("pipelines", "validate", "bomb.yaml", cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-500:]
    assert len(out.stderr) <= KB, out.stderr[:500]
    assert out.stderr.strip() == "bomb.yaml line 3: YAML aliases (*a0) are not allowed in Hare Run config files"


def test_alias_bomb_experiments_file_is_refused(tmp_path):
    path = tmp_path / "experiments.yaml"
    path.write_text(
        f"schema_version: 1\nexperiments:\n  x:\n    description: {alias_bomb(9)}\n"
        "    variants: [{name: A, pipeline: default, weight: 1}]\n"
    )
    with pytest.raises(PipelineError, match=r"experiments.yaml line 4: YAML aliases \(\*a0\) are not allowed") as info:
        load_experiments(path)
    assert len(str(info.value)) <= KB


def test_alias_bomb_model_manifest_is_refused(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(f"models:\n  - {{name: m, version: '1', file: m.onnx, notes: {alias_bomb(9)}}}\n")
    with pytest.raises(HareRunError, match=r"models.yaml line 2: YAML aliases \(\*a0\) are not allowed") as info:
        load_manifest(path)
    assert len(str(info.value)) <= KB


def test_even_a_harmless_alias_is_refused(tmp_path, host):
    path = tmp_path / "alias.yaml"
    path.write_text(HEAD + "description: &d hello\ndetectors: [{plugin: acne, id: *d}]\n")
    with pytest.raises(PipelineError, match=r"alias.yaml line 4: YAML aliases \(\*d\) are not allowed"):
        load_pipeline_file(path, host)


# -- huge values ------------------------------------------------------------------------


def test_5000_digit_param_is_a_reported_problem(tmp_path, astronaut_bgr):
    cv2.imwrite(str(tmp_path / "photo.jpg"), astronaut_bgr)
    (tmp_path / "bigint.yaml").write_text(
        HEAD + f"detectors:\n  - plugin: acne\n    params:\n      min_separation_px: {BIG_INT}\n"
    )
    for args in (("pipelines", "validate", "bigint.yaml"), ("analyze", "photo.jpg", "--pipeline", "bigint.yaml")):
        out = harerun(*args, cwd=tmp_path)
        assert out.returncode == 2, out.stderr[-500:]
        assert "Traceback" not in out.stderr and len(out.stderr) <= KB, out.stderr[-500:]
        assert "bigint.yaml line 6: min_separation_px: integer of 5000 digits is out of range" in out.stderr


def test_huge_values_are_reported_like_any_out_of_range_value(host):
    data = {
        "schema_version": 1,
        "name": "big",
        "detectors": [
            {"plugin": "acne", "params": {"min_separation_px": 10**5000, "max_radius_px": 10**400}},
        ],
    }
    with pytest.raises(PipelineError) as info:
        parse_pipeline(data, host, origin="big.yaml")
    huge, large = info.value.problems
    assert huge == (
        "big.yaml: detectors[0].params.min_separation_px: must be ≤ 20 (got an integer of about 5000 digits)"
    )
    assert large.startswith("big.yaml: detectors[0].params.max_radius_px: is out of range (got 1000000000")
    assert len(large) < 300


def test_echoed_values_and_keys_are_cut_short(host):
    lol = ["lol"] * 9
    for _ in range(5):
        lol = [lol] * 9  # 9**6 strings, shared: a few bytes in memory, megabytes as text
    data = {
        "schema_version": 1,
        "name": "echo",
        "description": lol,
        "face": {"backend": "b" * 100_000},
        "detectors": [
            {"plugin": "acne", "params": {"k" * 100_000: 1, "min_separation_px": 10**4000}},
            {"plugin": "p" * 100_000},
        ],
    }
    with pytest.raises(PipelineError) as info:
        parse_pipeline(data, host, origin="echo.yaml")
    problems = info.value.problems
    assert len(problems) == 5
    assert all(len(p) <= KB for p in problems), [len(p) for p in problems]
    assert any(p.startswith("echo.yaml: description: input should be a valid string (got [[[") for p in problems)
    assert any("min_separation_px: must be ≤ 20 (got 1000000" in p for p in problems)


# -- huge or deep files -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (HEAD + "# " + "x" * 1_000_000 + "\n", "big.yaml: larger than 1 MB, the limit for Hare Run config files"),
        (
            HEAD + "description: " + "[" * 10_000 + "]" * 10_000 + "\n",
            "big.yaml line 3: nested more than 50 levels deep",
        ),
    ],
)
def test_huge_or_deep_files_are_refused(tmp_path, host, text, message):
    path = tmp_path / "big.yaml"
    path.write_text(text)
    with pytest.raises(PipelineError) as info:
        load_pipeline_file(path, host)
    assert str(info.value) == message


# -- the server -------------------------------------------------------------------------


def test_server_reports_and_skips_bad_pipeline_files(tmp_path, astronaut_bgr, monkeypatch):
    shutil.copy(default_pipelines_dir() / "default.yaml", tmp_path / "default.yaml")
    (tmp_path / "bigint.yaml").write_text(
        HEAD + f"detectors:\n  - plugin: acne\n    params:\n      min_separation_px: {BIG_INT}\n"
    )
    (tmp_path / "bomb.yaml").write_text(HEAD + f"description: {alias_bomb(3)}\ndetectors: [{{plugin: acne}}]\n")
    (tmp_path / "crash.yaml").write_text(HEAD + "detectors: [{plugin: acne}]\n")

    import harerun.engine

    real = harerun.engine.load_pipeline_file

    def load(path, host):  # any other failure while loading one file, e.g. a plugin bug
        if Path(path).name == "crash.yaml":
            raise RuntimeError("plugin bug")
        return real(path, host)

    monkeypatch.setattr(harerun.engine, "load_pipeline_file", load)
    photo = cv2.imencode(".jpg", astronaut_bgr)[1].tobytes()
    app = create_app(Settings(pipelines_dir=tmp_path, warm_up=False))
    with TestClient(app, raise_server_exceptions=False) as client:
        body = client.get("/api/pipelines").json()
        assert [p["name"] for p in body["pipelines"]] == ["default"]
        assert body["unavailable"] == {
            "bigint": "bigint.yaml line 6: min_separation_px: integer of 5000 digits is out of range "
            "(at most 1000 digits)",
            "bomb": "bomb.yaml line 3: YAML aliases (*a0) are not allowed in Hare Run config files",
            "crash": "crash.yaml: RuntimeError: plugin bug",
        }
        assert all(len(m) <= KB for m in app.state.service.pipeline_errors.values())

        r = client.post(ANALYZE, files={"image": ("a.jpg", photo, "image/jpeg")})
        assert r.status_code == 200, r.text[:500]
        assert r.json()["pipeline"] == "default"
        r = client.post(ANALYZE, params={"pipeline": "bigint"}, files={"image": ("a.jpg", photo, "image/jpeg")})
        assert r.status_code == 404 and "cannot be used" in r.json()["error"]["message"]
