"""Skin-colour classifier (UCI skin / non-skin) and the face's skin mask."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from harerun.face.config import FaceConfig, QualityConfig
from harerun.face.skin import classify_skin_pixels, skin_mask
from harerun.face.stage import run_face_stage
from harerun.host import PluginHost
from harerun.testing import SKIN_BGR, mesh_feature_masks, synthetic_skin


@pytest.mark.shared
def test_classifier_accuracy_on_uci_skin_segmentation(shared):
    data = np.loadtxt(shared / "data/skin_nonskin/Skin_NonSkin.txt", dtype=np.int32)
    assert data.shape[1] == 4 and len(data) > 200_000
    pred = classify_skin_pixels(data[:, :3].astype(np.uint8)) > 0
    truth = data[:, 3] == 1
    accuracy = np.mean(pred == truth)
    assert accuracy >= 0.97, accuracy  # measured 98.8 %
    assert pred[truth].mean() >= 0.97 and (~pred[~truth]).mean() >= 0.95


def test_classifier_on_known_colours():
    colours = np.array(
        [
            SKIN_BGR,
            (60, 90, 140),
            (120, 150, 200),
            (40, 60, 100),  # light, brown, tan, dark skin
            (200, 120, 40),
            (40, 160, 40),
            (128, 128, 128),
            (250, 250, 250),
            (0, 0, 0),
        ],  # blue, green, grey, white, black
        np.uint8,
    )
    assert (classify_skin_pixels(colours) > 0).tolist() == [True] * 4 + [False] * 5
    img = np.tile(colours[None, :2], (3, 1, 1))
    assert classify_skin_pixels(img).shape == (3, 2)


def scene():
    """Skin on the left 2/3 with a red lesion and a dark hair lock; blue background on the right."""
    img = synthetic_skin(256, seed=3)
    img[:, 176:] = (190, 120, 60)  # background
    img[10:60, 20:120] = (30, 40, 55)  # dark hair
    cv2.circle(img, (90, 160), 6, (90, 90, 200), -1)  # inflamed lesion: redder than the skin
    return img


def test_skin_mask_keeps_skin_and_lesions_and_drops_background():
    img = scene()
    mask = skin_mask(img)
    assert mask.dtype == np.uint8 and mask.shape == (256, 256)
    assert mask[100:250, 10:160].mean() / 255 > 0.97  # skin
    assert mask[:, 185:].max() == 0  # background
    assert mask[20:50, 30:110].max() == 0  # hair
    assert mask[160, 90] == 255  # the lesion stays in the mask


def test_skin_mask_honours_exclusions_and_valid_area():
    img = scene()
    exclude = np.zeros((256, 256), np.uint8)
    cv2.circle(exclude, (80, 120), 15, 255, -1)
    valid = np.full((256, 256), 255, np.uint8)
    valid[230:] = 0
    mask = skin_mask(img, exclude=exclude, valid=valid)
    assert mask[120, 80] == 0 and mask[235:].max() == 0
    assert mask[160, 90] == 255


def test_skin_mask_learns_the_face_colour_from_the_reference():
    # Left: a blond-hair colour that the static box still calls skin; right: this face's skin.
    img = synthetic_skin(200, seed=1)
    img[:, :100] = synthetic_skin(200, bgr=(95, 150, 190), seed=2)[:, :100]
    assert classify_skin_pixels(img)[:, :90].mean() / 255 > 0.95
    ref = np.zeros((200, 200), np.uint8)
    ref[50:150, 120:180] = 255
    mask = skin_mask(img, reference=ref, centre=(150, 100))
    assert mask[:, 110:].mean() / 255 > 0.95
    assert mask[:, :90].mean() / 255 < 0.05


def test_no_skin_gives_an_empty_mask():
    assert skin_mask(np.full((64, 64, 3), (200, 120, 40), np.uint8)).max() == 0


def test_astronaut_skin_mask(astronaut_bgr):
    st = run_face_stage(
        astronaut_bgr, face_cfg=FaceConfig(backend="haar"), quality_cfg=QualityConfig(), host=PluginHost(autoload=False)
    )
    ctx = st.ctx
    feats = mesh_feature_masks(st)  # the mesh's own eyes and brows
    skin = ctx.skin_mask > 0
    assert not skin[feats["eyes"] > 0].any() and not skin[feats["brows"] > 0].any()
    for cheek in ("left_cheek", "right_cheek"):
        assert skin[ctx.zones[cheek] > 0].mean() > 0.8, cheek
    # The grey studio background beside the head and the hair above it are not skin.
    assert skin[200:300, :25].mean() < 0.05
    assert skin[:40, 150:360].mean() < 0.2
