"""Helpers for detector tests: synthetic skin and a hand-built FaceContext.

Plugin tests use these to draw features of known position, size and contrast
on skin and check the detector finds exactly those, without running the face
stage.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from harerun.detector import FaceContext

#: Typical light skin tone in BGR.
SKIN_BGR = (150, 170, 215)


def synthetic_skin(size: int = 512, *, bgr=SKIN_BGR, noise: float = 2.0, seed: int = 0) -> np.ndarray:
    """A smooth skin-coloured patch with faint low-frequency shading and fine noise."""
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3), np.float32)
    img[:] = bgr
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    shading = 1.0 + 0.04 * np.sin(2 * np.pi * xx) * np.cos(np.pi * yy)
    img *= shading[..., None]
    img += rng.normal(0, noise, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def canonical_zones(size: int = 512) -> dict[str, np.ndarray]:
    """Zone masks for a frontal face filling a ``size`` square ROI, eyes at 38% height."""
    s = size / 512.0

    def poly(points) -> np.ndarray:
        m = np.zeros((size, size), np.uint8)
        cv2.fillPoly(m, [np.round(np.array(points, np.float32) * s).astype(np.int32)], 255)
        return m

    return {
        "forehead": poly([(130, 60), (382, 60), (382, 160), (130, 160)]),
        "under_eye_left": poly([(120, 225), (220, 225), (220, 260), (120, 260)]),
        "under_eye_right": poly([(292, 225), (392, 225), (392, 260), (292, 260)]),
        "nose": poly([(225, 200), (287, 200), (300, 330), (212, 330)]),
        "left_cheek": poly([(90, 270), (205, 270), (205, 380), (110, 380)]),
        "right_cheek": poly([(307, 270), (422, 270), (402, 380), (307, 380)]),
        "chin": poly([(190, 420), (322, 420), (322, 490), (190, 490)]),
    }


def make_context(
    image: np.ndarray,
    *,
    skin_mask: np.ndarray | None = None,
    zones: dict[str, np.ndarray] | None = None,
    px_per_mm: float | None = 4.0,
    offset: tuple[float, float] = (0.0, 0.0),
    scale: float = 1.0,
) -> FaceContext:
    """A FaceContext for ``image`` as if it were the aligned ROI.

    The ROI maps to the "original photo" by ``x * scale + offset`` so tests can
    check that markers come back in original-photo coordinates.
    """
    h, w = image.shape[:2]
    if skin_mask is None:
        skin_mask = np.full((h, w), 255, np.uint8)
    if zones is None:
        zones = canonical_zones(h) if h == w else {"forehead": skin_mask.copy()}
    m = np.array([[scale, 0.0, offset[0]], [0.0, scale, offset[1]]])
    return FaceContext(
        image=image,
        skin_mask=skin_mask,
        zones=zones,
        roi_to_image=m,
        face_box=[int(offset[0]), int(offset[1]), int(w * scale), int(h * scale)],
        landmarks={"left_eye": (0.35 * w, 0.38 * h), "right_eye": (0.65 * w, 0.38 * h)},
        px_per_mm=px_per_mm,
    )


def mesh_feature_masks(stage) -> dict[str, np.ndarray]:
    """The analysed face's non-skin features (eyes, brows, lips, nostrils) from its mesh,
    filled on the ROI of a :class:`harerun.face.stage.FaceStage`."""
    from harerun.face.geometry import feature_polygons
    from harerun.face.roi import invert_affine

    size = stage.ctx.image.shape[0]
    roi_mesh = stage.faces[0].mesh.affine(invert_affine(stage.ctx.roi_to_image))
    out = {}
    for name, rings in feature_polygons(roi_mesh.points).items():
        out[name] = np.zeros((size, size), np.uint8)
        cv2.fillPoly(out[name], [np.round(r).astype(np.int32) for r in rings], 255)
    return out


def val_photo_contexts(shared, n: int = 6):
    """Face contexts of the first ``n`` ``val`` close-ups in ``shared``/data/acne, each photo taken
    whole as the ROI with the core's skin classifier as its mask and no pixel scale (a detector's
    "runs in range on real photos" test)."""
    import csv

    from harerun.face.skin import classify_skin_pixels

    data = shared / "data" / "acne"
    with open(data / "labels.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "val"][:n]
    for r in rows:
        img = cv2.imread(str(data / "images" / r["image"]))
        yield make_context(img, skin_mask=classify_skin_pixels(img), px_per_mm=None)


def acne_photo(shared, index: int, size: int = 512) -> np.ndarray:
    """The ``index``-th photo listed in ``shared``/data/acne/labels.csv, resized to ``size`` x ``size``
    BGR (a real close-up for a detector's "runs in range" test on a hand-built context)."""
    import csv

    data = shared / "data" / "acne"
    with open(data / "labels.csv", newline="") as f:
        name = list(csv.DictReader(f))[index]["image"]
    return cv2.resize(cv2.imread(str(data / "images" / name)), (size, size))


#: A two-detector pipeline on the Haar backend: quick CLI tests.
FAST_PIPELINE = """schema_version: 1
name: clitest
face: {backend: haar}
detectors:
  - {id: acne, plugin: acne}
  - {id: redness, plugin: redness}
"""


def run_cli(*args, cwd=None, prefix=(), timeout: float = 300, preexec_fn=None):
    """``harerun ARGS`` in a fresh process, as a user runs it (every installed plugin loaded):
    the ``subprocess.CompletedProcess`` with text stdout and stderr. ``prefix`` goes before the
    interpreter (e.g. ``setpriv ...``); a generous ``timeout`` turns a hang into a failure."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "HARERUN_DISABLE_PLUGIN_AUTOLOAD"}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "harerun.cli", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec_fn,
    )


#: Debian's Chromium (``apt-get install -y chromium``; ``.ci/run`` installs it) and the flags it runs
#: with here: headless, as root, and with none of its background connections (this machine has no
#: network but the package registries; see the workplace notes on Chromium).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@contextmanager
def chromium(*extra_args: str):
    """A headless Chromium browser (Playwright's sync API driving Debian's build; ``playwright
    install`` is never used). Skips the calling test, saying what to install, when the
    ``playwright`` package or Chromium is missing."""
    import pytest

    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download needed)")
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium not found: apt-get install -y chromium")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args], headless=True)
        try:
            yield browser
        finally:
            browser.close()
