"""The acne-grade network (Keras 3; import this module only when TensorFlow is wanted).

A small separable-convolution CNN trained from scratch on a 128-px RGB copy of the
face plus four lesion-contrast maps computed at 512 px (see ``algorithm.lesion_feature_maps``),
with two heads:

* ``density``: a lesion density map at 1/8 of the input (sum = lesion count),
  supervised by the expert lesion circles (joint grading and counting, after
  Wu et al., "Joint Acne Image Grading and Counting via Label Distribution
  Learning", ICCV 2019);
* ``grade``: softmax over grades 0-3 from pooled image features plus the
  predicted lesion count (ACNE04 grades are defined by lesion counts, but the
  dermatologist's grade also depends on the look of the lesions).

Only stock Keras layers are used, so a saved ``.keras`` or ``.h5`` file loads
without custom objects.
"""

from __future__ import annotations

import keras
from keras import layers

from harerun_ml_classifier.algorithm import CHANNELS, DENSITY_STRIDE, INPUT_SIZE, N_GRADES


def _sep_block(x, filters: int, *, stride: int = 1, name: str, bn_momentum: float = 0.99):
    x = layers.SeparableConv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_sep")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def build_model(
    *,
    input_size: int = INPUT_SIZE,
    channels: int = len(CHANNELS),
    width: int = 16,
    dropout: float = 0.3,
    bn_momentum: float = 0.99,
) -> keras.Model:
    """Build the two-headed network.

    Input: (input_size, input_size, channels) float32 from :func:`algorithm.prepare_input`
    (RGB 0..1 and lesion maps). Outputs: ``grade`` (4 softmax probabilities) and
    ``density`` (input/8 square map of lesions per cell, >= 0).
    """
    assert input_size % 32 == 0, "input_size must be a multiple of 32"
    inp = keras.Input((input_size, input_size, channels), name="image")
    x = layers.Conv2D(width, 3, padding="same", use_bias=False, name="stem_conv")(inp)
    x = layers.BatchNormalization(momentum=bn_momentum, name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = _sep_block(x, width, stride=2, name="b1a", bn_momentum=bn_momentum)  # /2
    x = _sep_block(x, 2 * width, stride=2, name="b2a", bn_momentum=bn_momentum)  # /4
    x = _sep_block(x, 2 * width, name="b2b", bn_momentum=bn_momentum)
    x = _sep_block(x, 4 * width, stride=2, name="b3a", bn_momentum=bn_momentum)  # /8
    x = _sep_block(x, 4 * width, name="b3b", bn_momentum=bn_momentum)
    s8 = _sep_block(x, 4 * width, name="b3c", bn_momentum=bn_momentum)

    # bias -4: softplus(-4) ~ 0.018 lesions per cell at the start, not ~0.7
    density = layers.Conv2D(
        1, 1, activation="softplus", bias_initializer=keras.initializers.Constant(-4.0), name="density"
    )(s8)
    count = layers.GlobalAveragePooling2D(name="count_mean")(density)
    count = layers.Rescaling(float((input_size // DENSITY_STRIDE) ** 2) / 50.0, name="count_scaled")(count)

    x = _sep_block(s8, 6 * width, stride=2, name="b4a", bn_momentum=bn_momentum)  # /16
    x = _sep_block(x, 6 * width, name="b4b", bn_momentum=bn_momentum)
    x = _sep_block(x, 8 * width, stride=2, name="b5a", bn_momentum=bn_momentum)  # /32
    feat = layers.GlobalAveragePooling2D(name="gap")(x)
    feat = layers.Dropout(dropout, name="dropout")(feat)
    feat = layers.Concatenate(name="features")([feat, count])
    grade = layers.Dense(N_GRADES, activation="softmax", name="grade")(feat)
    return keras.Model(inp, {"grade": grade, "density": density}, name="acne_grade")
