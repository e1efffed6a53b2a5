"""Test fixtures shared by the core and plugin tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent


def shared_path() -> Path:
    """Where the shared photos and models are: $HARERUN_SHARED or ../shared."""
    return Path(os.environ.get("HARERUN_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_path()
    if not (path / "data").is_dir():
        pytest.skip(f"shared data not found at {path} (set HARERUN_SHARED to the folder holding data/ and models/)")
    return path


@pytest.fixture(scope="session")
def astronaut_bgr():
    """scikit-image's bundled astronaut photo (public domain) as BGR uint8."""
    import numpy as np
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


@pytest.fixture(scope="module")
def pipelines_dir(tmp_path_factory) -> Path:
    """The configured pipelines plus `strict`, whose quality gate refuses every photo (API tests)."""
    import shutil

    import yaml

    from harerun.pipeline import default_pipelines_dir

    out = tmp_path_factory.mktemp("pipelines")
    for f in default_pipelines_dir().glob("*.yaml"):
        shutil.copy(f, out / f.name)
    default = yaml.safe_load((out / "default.yaml").read_text())
    strict = {
        "schema_version": 1,
        "name": "strict",
        "description": "refuses everything (test)",
        "face": default.get("face", {}),
        "quality": {"reject": True, "min_brightness": 99.0},
        "detectors": default["detectors"][:1],
    }
    (out / "strict.yaml").write_text(yaml.safe_dump(strict))
    return out
