"""The README's "Write your own detector" guide, run for real.

The plugin package is written from the README's code blocks into a temp dir,
built and installed into a separate target folder (nothing in the core
changes), and a fresh `harerun` process must list it and run it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_files() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", text, flags=re.S)
    return dict(blocks)


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    root = tmp_path_factory.mktemp("guide")
    files = readme_files()
    assert {
        "acme_shine/pyproject.toml",
        "acme_shine/acme_shine/__init__.py",
        "acme_shine/acme_shine/algorithm.py",
        "acme_shine/tests/test_shine.py",
        "acme_shine/shine.yaml",
    } <= set(files)
    for rel, body in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(body)
    site = root / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(root / "acme_shine"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    env = {**os.environ, "PYTHONPATH": str(site), "HARERUN_DISABLE_PLUGIN_AUTOLOAD": "0"}
    env.pop("HARERUN_BLOCKED_PLUGINS", None)
    return root, env


def harerun(args, env, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "harerun.cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_guide_plugin_is_listed(installed_plugin):
    _, env = installed_plugin
    out = harerun(["plugins", "list", "--json"], env)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["shine"] == {
        "name": "shine",
        "version": "0.1.0",
        "package": "acme-shine",
        "params": {"min_lightness": 90.0, "smooth_mm": 0.5},
    }


def test_guide_plugin_runs_in_a_pipeline(installed_plugin, astronaut_bgr):
    root, env = installed_plugin
    photo = root / "astronaut.png"
    cv2.imwrite(str(photo), astronaut_bgr)
    out = harerun(["analyze", str(photo), "--pipeline", str(root / "acme_shine" / "shine.yaml"), "--json"], env)
    assert out.returncode == 0, out.stderr
    shine = json.loads(out.stdout)["results"]["shine"]
    assert shine["status"] == "ok" and 0 <= shine["score"] <= 100
    assert 0 <= shine["measurements"]["shiny_pct"] <= 100 and set(shine["zones"]) >= {"forehead", "nose"}


def test_guide_plugin_own_tests_pass(installed_plugin):
    """The guide's test, with synthetic ground truth, runs against the installed package."""
    root, env = installed_plugin
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "acme_shine" / "tests")],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "2 passed" in out.stdout


def test_guide_plugin_is_absent_without_the_package(installed_plugin):
    _, env = installed_plugin
    out = harerun(["plugins", "list", "--json"], {**env, "PYTHONPATH": ""})
    assert out.returncode == 0 and "shine" not in {r["name"] for r in json.loads(out.stdout)}
