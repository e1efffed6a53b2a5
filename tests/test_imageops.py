"""The shared detector scaffolding: imageops.Window, subsample, union and FaceContext's zone helpers."""

from __future__ import annotations

import numpy as np

from harerun.imageops import Window, mask_window, subsample, union
from harerun.testing import make_context, synthetic_skin


def test_window_shrinks_samples_maps_back_and_pastes():
    img = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    win = Window(slice(8, 40), slice(16, 48), step=4)
    assert win.shape == (32, 32) and win.grid_shape == (8, 8)
    small = win.shrink(img)
    assert small.shape == (8, 8) and small[0, 0] == img[8:12, 16:20].mean()  # area average of one cell
    mask = np.zeros((64, 64), np.uint8)
    mask[10, 18] = 255  # the centre pixel of the first cell (offset step // 2)
    assert win.sample(mask)[0, 0] == 255 and np.count_nonzero(win.sample(mask)) == 1
    # a circle in the grid's cell (1, 2) comes back at that cell's centre in image pixels, radius x step
    assert np.allclose(win.to_roi(np.array([[2.0, 1.0, 1.5]])), [[16 + 8 + 1.5, 8 + 4 + 1.5, 6.0]])
    values = np.full((8, 8), 200, np.uint8)
    keep = np.zeros((64, 64), np.uint8)
    keep[8:20, 16:30] = 255
    out = win.paste(values, (64, 64), mask=keep)
    assert out.shape == (64, 64) and out[10, 20] == 200 and out[30, 40] == 0 and out[0, 0] == 0


def test_subsample_and_union():
    mask = np.zeros((8, 8), np.uint8)
    mask[1::2, 1::2] = 255
    assert subsample(mask, 2).all() and subsample(mask, 2).shape == (4, 4)
    a, b = np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8)
    a[0, 0], b[3, 3] = 255, 7
    assert np.count_nonzero(union([a, b], (4, 4))) == 2 and not union([], (4, 4)).any()


def test_zone_window_covers_the_zones_skin_with_its_margin():
    ctx = make_context(synthetic_skin(128))
    rows, cols = mask_window(ctx.zone_skin, 6)
    win = ctx.zone_skin_window(6, step=2)
    assert (win.rows, win.cols, win.step) == (rows, cols, 2)
    zones = ctx.zone_skin_on(win)
    assert set(zones) <= set(ctx.zones) and all(m.shape == win.grid_shape for m in zones.values())
    assert ctx.zone_skin_px == {z: int(np.count_nonzero(m)) for z, m in ctx.zone_skin_masks.items()}


def test_zone_members_say_which_points_each_zone_holds():
    ctx = make_context(synthetic_skin(128))
    name, mask = next(iter(ctx.zone_skin_masks.items()))
    ys, xs = np.nonzero(mask)
    inside = [xs[0] + 0.4, ys[0] + 0.4, 3.0]  # truncated to the pixel
    members = ctx.zone_members(np.array([inside, [-0.0, -0.0, 1.0]]))
    assert members[name].tolist()[0] is True
