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
