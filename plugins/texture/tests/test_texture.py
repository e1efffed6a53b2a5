"""Texture detector: LBP ground truth, smooth vs rough ladders, zone localisation, real photo, discovery."""

from __future__ import annotations

import cv2
import numpy as np
import pydantic
import pytest

from harerun.testing import acne_photo, canonical_zones, make_context, synthetic_skin
from harerun_texture import algorithm
from harerun_texture.plugin import TextureDetector


def test_lbp_labels_on_known_patterns():
    flat = np.full((9, 9), 120, np.uint8)
    assert (algorithm.lbp_riu2(flat, radius=1, threshold=3) == 0).all()
    pit = flat.copy()
    pit[4, 4] = 100
    assert algorithm.lbp_riu2(pit, radius=1, threshold=3)[4, 4] == 8
    step = flat.copy()
    step[:, 5:] = 160  # brighter on the right: the pixel left of the edge sees 3 brighter neighbours
    labels = algorithm.lbp_riu2(step, radius=1, threshold=3)
    assert labels[4, 4] == 3 and labels[4, 2] == 0
    # the threshold keeps small differences flat
    assert algorithm.lbp_riu2(pit, radius=1, threshold=25)[4, 4] == 0


def bumpy_skin(amplitude: float, n: int = 2000, seed: int = 0) -> np.ndarray:
    """Synthetic skin with ``n`` dark Gaussian pits (sigma 2 px) of depth ``amplitude`` grey levels."""
    img = synthetic_skin(512, seed=seed).astype(np.float32)
    rng = np.random.default_rng(seed + 1)
    pits = np.zeros((512, 512), np.float32)
    xs, ys = rng.integers(60, 452, (2, n))
    pits[ys, xs] = 1.0
    pits = cv2.GaussianBlur(pits, (0, 0), 2.0)
    pits *= amplitude * 2 * np.pi * 2.0**2  # a lone pit is exactly `amplitude` deep
    return np.clip(img - pits[..., None], 0, 255).astype(np.uint8)


def test_smooth_skin_scores_near_zero():
    res = TextureDetector().analyze(make_context(synthetic_skin(512)))
    assert res.status == "ok"
    assert res.score < 5
    assert res.measurements["structured_fraction"] < 0.02


def test_noise_amplitude_ladder_is_monotone():
    scores = [TextureDetector().analyze(make_context(synthetic_skin(512, noise=s))).score for s in (2, 4, 8, 16, 32)]
    assert scores == sorted(scores) and scores[-1] > scores[0] + 40, scores


def test_bump_amplitude_ladder_is_monotone():
    scores = [TextureDetector().analyze(make_context(bumpy_skin(a))).score for a in (0, 8, 16, 32, 64)]
    assert scores == sorted(scores) and scores[-1] > scores[0] + 15, scores


def test_rough_zone_is_localised():
    smooth = synthetic_skin(512, seed=3)
    rough = synthetic_skin(512, noise=16, seed=3)
    cheek = canonical_zones(512)["left_cheek"] > 0
    img = smooth.copy()
    img[cheek] = rough[cheek]
    res = TextureDetector().analyze(make_context(img))
    assert res.zones["left_cheek"] > 20
    assert all(v < 5 for k, v in res.zones.items() if k != "left_cheek"), res.zones
    assert res.evidence.mask.shape == (512, 512) and res.evidence.mask[cheek].mean() > res.evidence.mask[~cheek].mean()


def test_params_are_validated():
    with pytest.raises(pydantic.ValidationError):
        TextureDetector.Params(lbp_radius_px=9)
    with pytest.raises(pydantic.ValidationError):
        TextureDetector.Params(radius=2)


@pytest.mark.shared
def test_real_acne_photo_in_range(shared):
    img = acne_photo(shared, 5)
    res = TextureDetector().analyze(make_context(img))
    assert res.status == "ok" and 0 <= res.score <= 100
    assert set(res.zones) == set(canonical_zones(512))
    assert sum(res.measurements["lbp_riu2_hist"]) == pytest.approx(1.0)
    # real skin is rougher than the synthetic smooth patch
    assert res.score > TextureDetector().analyze(make_context(synthetic_skin(512))).score + 10


def test_discovered_through_entry_point():
    from harerun.host import PluginHost

    reg = PluginHost(autoload=True).detectors["texture"]
    assert reg.cls is TextureDetector
    assert reg.package == "harerun-texture"
