"""Overlays (issue #15 item 6): `harerun analyze --overlay` writes one panel per detector, the face
with only that detector's marks and a legend beside it; nothing but those marks touches the photo."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import yaml

from harerun.engine import Engine
from harerun.overlay import BACKGROUND, LEGEND_W, PALETTE, draw_overlay, draw_panel, draw_panels, face_view
from harerun.results import Evidence
from harerun.testing import FAST_PIPELINE, run_cli

MARKERS = [[230.0, 120.0, 6.0], [260.0, 140.0, 3.0]]  # on the astronaut's face, photo pixels


@pytest.fixture(scope="module")
def run(tmp_path_factory, astronaut_bgr):
    """The fast pipeline on the astronaut, with acne's evidence replaced by two known markers."""
    d = tmp_path_factory.mktemp("overlay")
    (d / "fast.yaml").write_text(FAST_PIPELINE)
    real = Engine().run(astronaut_bgr, pipeline=str(d / "fast.yaml"))
    results = dict(real.result.results)
    results["acne"] = results["acne"].model_copy(update={"evidence": Evidence(markers=MARKERS)})
    return dataclasses.replace(real, result=real.result.model_copy(update={"results": results}))


def _drawn(run, step_id: str, view) -> np.ndarray:
    """Where the panel may differ from the photo: the detector's zone outlines and its marker
    circles (with their rims), a few pixels wide, drawn independently of overlay.py."""
    h, w = view.photo(run.image).shape[:2]
    allowed = np.zeros((h, w), np.uint8)
    res = run.result.results[step_id]

    def to_panel(pts):
        return (np.asarray(pts, float) - [view.x0, view.y0]) * view.k

    for name, zone in run.result.face.zones.items():
        if name in res.zones and zone.visible and zone.polygon:
            cv2.polylines(allowed, [to_panel(zone.polygon).round().astype(np.int32)], True, 255, 4)
    for x, y, r in res.evidence.markers:
        (cx, cy), rr = to_panel([x, y]), max(3, r * view.k)
        cv2.circle(allowed, (round(cx), round(cy)), round(rr), 255, 8)
    return allowed > 0


def test_the_photo_is_unchanged_outside_the_drawn_marks(run):
    view = face_view(run)
    panel = draw_panel(run, "acne", view)
    photo = view.photo(run.image)
    h, w = photo.shape[:2]
    changed = np.any(panel[:h, :w] != photo, axis=2)
    allowed = _drawn(run, "acne", view)
    assert changed.any() and not (changed & ~allowed).any()  # marks only where zones and markers are
    assert changed.mean() < 0.08  # thin outlines, small circles: the face stays visible
    for x, y, _r in MARKERS:  # each marker's ring is drawn in acne's colour
        cx, cy = ((np.array([x, y]) - [view.x0, view.y0]) * view.k).round().astype(int)
        ring = panel[cy - 40 : cy + 40, cx - 40 : cx + 40]
        assert (np.abs(ring.astype(int) - PALETTE[0]).sum(axis=2) < 60).any()


def test_the_face_fills_the_panel_and_the_legend_sits_beside_it(run):
    view = face_view(run)
    x, y, bw, bh = run.result.face.box
    assert view.x0 <= x and view.y0 <= y and view.x1 >= x + bw and view.y1 >= y + bh
    assert (view.x1 - view.x0) < run.image.shape[1] / 2  # cropped to the face, not the whole photo
    panel = draw_panel(run, "acne", view)
    h, w = view.photo(run.image).shape[:2]
    assert panel.shape[1] == w + LEGEND_W and max(h, w) == 440
    legend = panel[:, w:]
    ink = np.any(legend != BACKGROUND, axis=2)
    assert 0.01 < ink.mean() < 0.3  # text, swatches and bars on white
    assert ink[: h // 2].sum() > ink[h // 2 :].sum()  # the key starts at the top, beside the face


def test_the_marker_key_is_there_when_there_are_markers(run):
    def key_in_acne_colour(r) -> bool:
        panel = draw_panel(r, "acne")
        legend = panel[:, panel.shape[1] - LEGEND_W :].astype(int)
        return bool((np.abs(legend - PALETTE[0]).sum(axis=2) < 30).any())

    results = dict(run.result.results)
    results["acne"] = results["acne"].model_copy(update={"evidence": Evidence()})
    bare = dataclasses.replace(run, result=run.result.model_copy(update={"results": results}))
    assert key_in_acne_colour(run) and not key_in_acne_colour(bare)


def _photo_regions(sheet: np.ndarray) -> int:
    """Photo-like areas of a sheet: what is not background after text-sized things are opened away."""
    busy = np.any(sheet != BACKGROUND, axis=2).astype(np.uint8)
    busy = cv2.morphologyEx(busy, cv2.MORPH_OPEN, np.ones((41, 41), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(busy)
    return sum(1 for a in stats[1:, cv2.CC_STAT_AREA] if a > 200 * 200)


def test_one_panel_per_detector_or_the_named_ones(run):
    assert _photo_regions(draw_panels(run)) == len(run.result.results) == 2
    assert _photo_regions(draw_panels(run, ["redness"])) == 1


def test_the_photo_overlay_has_no_text_and_keeps_the_photo_size(run):
    out = draw_overlay(run)
    assert out.shape == run.image.shape
    assert np.array_equal(out[:60, :160], run.image[:60, :160])  # where the legend used to be drawn


def test_cli_overlay_detector(tmp_path, astronaut_bgr):
    cv2.imwrite(str(tmp_path / "a.jpg"), astronaut_bgr)
    (tmp_path / "fast.yaml").write_text(FAST_PIPELINE)
    base = ["analyze", tmp_path / "a.jpg", "--pipeline", tmp_path / "fast.yaml"]
    out = run_cli(*base, "--overlay", tmp_path / "all.png")
    assert out.returncode == 0, out.stderr
    out = run_cli(*base, "--overlay", tmp_path / "one.png", "--overlay-detector", "redness")
    assert out.returncode == 0, out.stderr
    assert _photo_regions(cv2.imread(str(tmp_path / "all.png"))) == len(yaml.safe_load(FAST_PIPELINE)["detectors"])
    assert _photo_regions(cv2.imread(str(tmp_path / "one.png"))) == 1
    out = run_cli(*base, "--overlay", tmp_path / "x.png", "--overlay-detector", "rednes")
    assert out.returncode == 2 and not (tmp_path / "x.png").exists()
    assert "--overlay-detector rednes: not in pipeline clitest; its detectors are acne, redness" in out.stderr
    assert "Traceback" not in out.stderr
    out = run_cli(*base, "--overlay-detector", "acne")
    assert out.returncode == 2 and "--overlay-detector needs --overlay" in out.stderr
