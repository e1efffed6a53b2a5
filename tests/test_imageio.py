"""Image decoding: every listed format reads, every refusal has its reason code."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from harerun.errors import ImageError
from harerun.imageio import load_image


def _photo(w: int = 64, h: int = 48) -> np.ndarray:
    """An RGB image with a known gradient so colour order can be checked."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = 200  # R
    img[..., 1] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]  # G ramps left to right
    img[..., 2] = 30  # B
    return img


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF"])
def test_every_listed_format_decodes_to_bgr(fmt):
    rgb = _photo()
    bgr, info = load_image(_encode(Image.fromarray(rgb), fmt))
    assert bgr.shape == (48, 64, 3) and bgr.dtype == np.uint8
    assert info.format == fmt and (info.width, info.height) == (64, 48)
    tol = 12 if fmt in ("JPEG", "WEBP") else 0
    assert abs(int(bgr[10, 10, 2]) - 200) <= tol  # red lands in the last (R) channel
    assert abs(int(bgr[10, 10, 0]) - 30) <= tol


def test_grayscale_palette_rgba_16bit_and_cmyk_are_converted():
    rgb = _photo()
    gray, _ = load_image(_encode(Image.fromarray(rgb).convert("L"), "PNG"))
    assert gray.shape == (48, 64, 3) and np.array_equal(gray[..., 0], gray[..., 2])

    pal, _ = load_image(_encode(Image.fromarray(rgb).convert("P"), "PNG"))
    assert pal.shape == (48, 64, 3)

    rgba = np.dstack([rgb, np.zeros((48, 64), np.uint8)])  # fully transparent -> white background
    out, _ = load_image(_encode(Image.fromarray(rgba), "PNG"))
    assert out.min() == 255

    sixteen = np.linspace(0, 65535, 64, dtype=np.uint16)[None, :].repeat(48, 0)
    out, _ = load_image(_encode(Image.fromarray(sixteen), "PNG"))
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255 and out[0, 32, 0] in range(125, 135)

    out, _ = load_image(_encode(Image.fromarray(rgb).convert("CMYK"), "JPEG"))
    assert abs(int(out[10, 10, 2]) - 200) <= 15 and abs(int(out[10, 10, 0]) - 30) <= 15


def test_exif_orientation_is_applied():
    rgb = _photo(64, 48)
    img = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    bgr, info = load_image(_encode(img, "JPEG", exif=exif.tobytes()))
    assert (info.width, info.height) == (48, 64)
    # After rotation the green ramp runs top to bottom.
    assert bgr[5, 24, 1] < 60 and bgr[-5, 24, 1] > 190


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "UNREADABLE_IMAGE"),
        (b"this is a text file, not a photo\n" * 10, "UNSUPPORTED_FORMAT"),
        (b"GIF89a" + b"\x00" * 50, "UNSUPPORTED_FORMAT"),
    ],
)
def test_refusals_have_reason_codes(data, code):
    with pytest.raises(ImageError) as info:
        load_image(data)
    assert info.value.code == code


def test_truncated_jpeg_is_unreadable():
    data = _encode(Image.fromarray(_photo(256, 256)), "JPEG")
    with pytest.raises(ImageError) as info:
        load_image(data[: len(data) // 2])
    assert info.value.code == "UNREADABLE_IMAGE" and info.value.http_status == 422


def test_gif_and_animation_are_unsupported():
    frames = [Image.fromarray(_photo()), Image.fromarray(255 - _photo())]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError) as info:
        load_image(buf.getvalue())
    assert info.value.code == "UNSUPPORTED_FORMAT" and info.value.http_status == 415


def test_decompression_bomb_refused_before_decoding():
    # A 30000x30000 PNG compresses to a few hundred KB; it must be refused from its header.
    img = Image.new("L", (30000, 30000))
    data = _encode(img, "PNG", optimize=False)
    with pytest.raises(ImageError) as info:
        load_image(data)
    assert info.value.code == "IMAGE_TOO_LARGE" and info.value.http_status == 413


def test_byte_and_pixel_limits():
    data = _encode(Image.fromarray(_photo(200, 200)), "PNG")
    with pytest.raises(ImageError) as info:
        load_image(data, max_bytes=100)
    assert info.value.code == "IMAGE_TOO_LARGE"
    with pytest.raises(ImageError) as info:
        load_image(data, max_pixels=100 * 100)
    assert info.value.code == "IMAGE_TOO_LARGE"


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ImageError) as info:
        load_image(tmp_path / "nope.jpg")
    assert "nope.jpg" in info.value.message and info.value.code == "UNREADABLE_IMAGE"
