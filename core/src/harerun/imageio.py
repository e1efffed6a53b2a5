"""Decode a photo into a BGR uint8 array, refusing anything unsafe or unreadable.

Pillow reads the header first, so sizes are checked (decompression bombs
refused) before any pixel is decoded. EXIF orientation is applied; grayscale,
palette, RGBA, 16-bit and CMYK photos are converted to 8-bit colour.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from harerun.errors import ImageError
from harerun.results import ImageInfo

#: Formats Hare Run reads (Pillow's names). MPO is a phone JPEG with an embedded preview.
SUPPORTED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF"}
MAX_BYTES = 25 * 1024 * 1024
MAX_PIXELS = 40_000_000

_SUPPORTED_TEXT = "JPEG, PNG, WebP, BMP or TIFF"


def load_image(
    source: str | Path | bytes | bytearray | np.ndarray,
    *,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
) -> tuple[np.ndarray, ImageInfo]:
    """Return ``(bgr_uint8, ImageInfo)`` for a path, encoded bytes or an array.

    Raises :class:`ImageError` with code ``UNREADABLE_IMAGE``, ``IMAGE_TOO_LARGE``
    or ``UNSUPPORTED_FORMAT``.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels=max_pixels)
    name = "the upload"
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise ImageError(f"{name}: no such file", code="UNREADABLE_IMAGE")
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageError(f"{name}: {size} bytes is over the {max_bytes}-byte limit", code="IMAGE_TOO_LARGE")
        data = path.read_bytes()
    else:
        data = bytes(source)
    if not data:
        raise ImageError(f"{name} is empty (0 bytes)", code="UNREADABLE_IMAGE")
    if len(data) > max_bytes:
        raise ImageError(f"{name}: {len(data)} bytes is over the {max_bytes}-byte limit", code="IMAGE_TOO_LARGE")
    return decode(data, name=name, max_pixels=max_pixels)


def decode(data: bytes, *, name: str = "the upload", max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, ImageInfo]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name}: too many pixels ({exc})", code="IMAGE_TOO_LARGE") from None
    except UnidentifiedImageError:
        raise ImageError(
            f"{name} is not an image Hare Run can read; send a {_SUPPORTED_TEXT} photo", code="UNSUPPORTED_FORMAT"
        ) from None
    except Exception as exc:  # Pillow raises many types on broken headers
        raise ImageError(f"{name} could not be read: {exc}", code="UNREADABLE_IMAGE") from None

    fmt = img.format or "unknown"
    if fmt not in SUPPORTED_FORMATS:
        raise ImageError(f"{name} is a {fmt} file; send a {_SUPPORTED_TEXT} photo", code="UNSUPPORTED_FORMAT")
    if fmt != "MPO" and getattr(img, "n_frames", 1) > 1:
        raise ImageError(f"{name} has {img.n_frames} frames; send a single still photo", code="UNSUPPORTED_FORMAT")
    w, h = img.size
    if w < 1 or h < 1:
        raise ImageError(f"{name} has no pixels ({w}x{h})", code="UNREADABLE_IMAGE")
    if w * h > max_pixels:
        raise ImageError(
            f"{name} is {w}x{h} = {w * h} pixels, over the {max_pixels}-pixel limit; downscale it first",
            code="IMAGE_TOO_LARGE",
        )
    try:
        img.load()
        ImageOps.exif_transpose(img, in_place=True)  # (not a copy of the pixels when upright)
        bgr = _to_bgr(img)
    except ImageError:
        raise
    except Exception as exc:  # truncated or corrupt data
        raise ImageError(f"{name} could not be decoded ({fmt}): {exc}", code="UNREADABLE_IMAGE") from None
    return bgr, ImageInfo(width=bgr.shape[1], height=bgr.shape[0], format=fmt.replace("MPO", "JPEG"))


def _to_bgr(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        gray = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    rgb = np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)  # one pass, contiguous result


def _from_array(arr: np.ndarray, *, max_pixels: int) -> tuple[np.ndarray, ImageInfo]:
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ImageError(f"array of shape {arr.shape} is not an image", code="UNREADABLE_IMAGE")
    h, w = arr.shape[:2]
    if w * h > max_pixels:
        raise ImageError(f"array is {w}x{h}, over the {max_pixels}-pixel limit", code="IMAGE_TOO_LARGE")
    if arr.dtype == np.uint16:
        arr = (arr / 257.0 + 0.5).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise ImageError(f"array dtype {arr.dtype} is not supported; use uint8 BGR", code="UNSUPPORTED_FORMAT")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[:, :, :3]
    elif arr.shape[2] != 3:
        raise ImageError(f"array with {arr.shape[2]} channels is not supported", code="UNSUPPORTED_FORMAT")
    return np.ascontiguousarray(arr), ImageInfo(width=w, height=h, format="array")
