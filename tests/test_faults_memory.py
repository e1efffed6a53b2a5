"""Large photos (issue #12 item 8): analysed on a working-size copy, reported in the photo's own pixels.

A 6300x6300 PNG of one colour (116 KB) or a 7300x5475 JPEG used to cost 1.2-1.5 GB per
analysis process. The photo is now decoded reduced to ``WORK_SIDE``; boxes, landmarks,
zones and markers are mapped back to the photo's pixels and ``image`` keeps its size.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
from PIL import Image

from harerun.engine import Engine
from harerun.imageio import WORK_SIDE, load_image

#: Peak resident memory allowed to one analysis process (models loaded), in MiB.
PEAK_MB = 400


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _peak_mb_of_analysis(path, *, overlay: bool) -> tuple[float, str]:
    """Peak RSS (MiB) of a fresh process that analyses ``path`` (and draws the overlay).

    ``VmHWM`` is the process's own high-water mark: ``ru_maxrss`` would carry over the
    size of this pytest process, which ``exec`` passes on to its children on Linux."""
    code = textwrap.dedent(f"""
        import re
        from harerun.engine import Engine
        from harerun.errors import HareRunError
        try:
            run = Engine().run({str(path)!r})
            found = str(run.result.face.box)
            if {overlay}:
                from harerun.overlay import draw_overlay, encode_png
                encode_png(draw_overlay(run))
        except HareRunError as exc:
            found = exc.code
        print(int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024, found)
    """)
    env = {k: v for k, v in os.environ.items() if k != "HARERUN_DISABLE_PLUGIN_AUTOLOAD"}  # the whole pipeline
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak, found = proc.stdout.strip().splitlines()[-1].split(" ", 1)
    return float(peak), found


@pytest.fixture(scope="module")
def big_files(tmp_path_factory, astronaut_bgr):
    d = tmp_path_factory.mktemp("big")
    Image.new("RGB", (6300, 6300), (200, 150, 120)).save(d / "flat6300.png")
    big = cv2.resize(astronaut_bgr, (7300, 5475), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(d / "astronaut7300.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return d


@pytest.mark.parametrize(
    ("name", "overlay", "found"),
    [
        ("flat6300.png", False, "NO_FACE"),
        ("astronaut7300.jpg", True, "["),
    ],
)
def test_one_analysis_of_a_large_photo_stays_under_the_memory_limit(big_files, name, overlay, found):
    peak, what = _peak_mb_of_analysis(big_files / name, overlay=overlay)
    assert what.startswith(found)
    assert peak <= PEAK_MB, f"{name}: peak RSS {peak:.0f} MiB > {PEAK_MB} MiB"


def _gradient(w: int, h: int) -> np.ndarray:
    """An RGB photo whose colours change slowly (a shrink of it is well defined)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([xx / w * 255, yy / h * 255, (xx + yy) / (w + h) * 255], axis=2)
    return rgb.astype(np.uint8)


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [
        ("JPEG", "RGB"),
        ("JPEG", "L"),
        ("JPEG", "CMYK"),
        ("PNG", "RGB"),
        ("PNG", "L"),
        ("PNG", "P"),
        ("PNG", "RGBA"),
        ("PNG", "I;16"),
        ("WEBP", "RGB"),
        ("WEBP", "RGBA"),
        ("TIFF", "RGB"),
        ("TIFF", "P"),
        ("TIFF", "CMYK"),
        ("TIFF", "I;16"),
        ("BMP", "RGB"),
        ("BMP", "P"),
    ],
)
def test_decoding_reduced_bounds_the_array_and_keeps_the_photo_size(fmt, mode):
    rgb = _gradient(2600, 1700)
    img = Image.fromarray(rgb)
    if mode == "I;16":
        img = Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257)
    elif mode != "RGB":
        img = img.convert(mode)
    data = _encode(img, fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    full, info_full = load_image(data)
    small, info = load_image(data, max_side=1000)
    assert (info.width, info.height) == (info_full.width, info_full.height) == (2600, 1700)
    assert small.shape == (round(1700 * 1000 / 2600), 1000, 3) and small.dtype == np.uint8
    expected = cv2.resize(full, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
    # The same picture, area-averaged (a palette photo is dithered: its averages differ more).
    assert np.abs(small.astype(int) - expected).mean() < (2.5 if mode == "P" else 0.5)


def test_exif_orientation_of_a_reduced_jpeg():
    img = Image.fromarray(_gradient(3000, 2000))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = _encode(img, "JPEG", exif=exif.tobytes())
    full, info_full = load_image(data)
    small, info = load_image(data, max_side=1500)
    assert (info.width, info.height) == (info_full.width, info_full.height) == (2000, 3000)
    assert small.shape == (1500, 1000, 3)
    expected = cv2.resize(full, (1000, 1500), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - expected).mean() < 0.5


def test_engine_decodes_a_large_photo_to_the_working_size(big_files):
    bgr, info = Engine().decode(big_files / "flat6300.png")
    assert max(bgr.shape[:2]) == WORK_SIDE and (info.width, info.height) == (6300, 6300)
    arr, info = Engine().decode(np.zeros((3000, 5000, 3), np.uint8))
    assert arr.shape == (1229, WORK_SIDE, 3) and (info.width, info.height) == (5000, 3000)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, astronaut_bgr):
    """The astronaut analysed as it is and upscaled x5 (PNG) and x8 (JPEG: DCT-scaled decoding)."""
    d = tmp_path_factory.mktemp("upscaled")
    engine = Engine()
    out = {1: engine.run(astronaut_bgr)}
    for k, ext in ((5, ".png"), (8, ".jpg")):
        path = d / f"astronaut_x{k}{ext}"
        cv2.imwrite(str(path), cv2.resize(astronaut_bgr, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC))
        out[k] = engine.run(path)
    return out


@pytest.mark.parametrize("k", [5, 8])
def test_results_of_an_upscaled_photo_are_in_its_own_pixels(runs, k):
    small, big = runs[1].result, runs[k].result
    assert max(runs[k].image.shape[:2]) <= WORK_SIDE  # analysed on the working-size copy
    assert (big.image.width, big.image.height) == (512 * k, 512 * k)
    side = small.face.box[2] * k
    tol = 0.03 * side
    assert np.allclose(big.face.box, np.multiply(small.face.box, k), atol=tol), (big.face.box, small.face.box)
    assert big.face.landmarks.keys() == small.face.landmarks.keys()
    for name, p in small.face.landmarks.items():
        assert np.hypot(*np.subtract(big.face.landmarks[name], np.multiply(p, k))) < tol, name
    for name, zone in small.face.zones.items():
        if zone.visible and len(zone.polygon) > 2:
            centre = np.mean(big.face.zones[name].polygon, axis=0)
            assert np.hypot(*(centre - np.mean(zone.polygon, axis=0) * k)) < tol, name
    assert big.quality.metrics["face_px"] == pytest.approx(small.quality.metrics["face_px"] * k, rel=0.03)
    x, y, w, h = big.face.box
    for res in big.results.values():  # evidence markers lie on the face, in photo pixels
        for mx, my, _r in res.evidence.markers:
            assert x - 0.5 * w <= mx <= x + 1.5 * w and y - 0.5 * h <= my <= y + 1.5 * h


def test_overlay_of_a_reduced_photo_lines_up_with_the_face(runs):
    from harerun.overlay import draw_overlay

    run = runs[8]
    out = draw_overlay(run)
    assert out.shape == run.image.shape and max(out.shape[:2]) <= WORK_SIDE  # drawn on the working copy
    s = out.shape[1] / run.result.image.width
    x, y, w, h = (round(v * s) for v in run.result.face.box)
    top_edge = out[y, x + w // 4 : x + 3 * w // 4]
    assert (top_edge == (0, 255, 0)).all(axis=1).mean() > 0.5  # the green face box, where the face is


def test_webp_over_20_megapixels_is_refused_before_decoding():
    """WebP cannot be decoded reduced: a 40-megapixel WebP (a few KB) is IMAGE_TOO_LARGE, one of
    20 megapixels is decoded to the working size."""
    from harerun.imageio import WEBP_MAX_PIXELS, ImageError

    def webp(w: int, h: int) -> bytes:
        buf = io.BytesIO()
        Image.new("RGBA", (w, h), (200, 150, 120, 255)).save(buf, "WEBP", lossless=True)
        return buf.getvalue()

    with pytest.raises(ImageError) as err:
        load_image(webp(7300, 5475), max_side=WORK_SIDE)
    assert err.value.code == "IMAGE_TOO_LARGE" and "WebP" in err.value.message
    assert 5160 * 3870 <= WEBP_MAX_PIXELS
    bgr, info = load_image(webp(5160, 3870), max_side=WORK_SIDE)
    assert max(bgr.shape[:2]) == WORK_SIDE and (info.width, info.height) == (5160, 3870)
