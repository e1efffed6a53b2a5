"""Decode a photo into a BGR uint8 array, refusing anything unsafe or unreadable.

Pillow reads the header first, so sizes are checked (decompression bombs
refused) before any pixel is decoded. EXIF orientation is applied; grayscale,
palette, RGBA, 16-bit and CMYK photos are converted to 8-bit colour.

With ``max_side`` a larger photo is decoded reduced, its long side at most that
many pixels: a JPEG by DCT scaling (libjpeg decodes 1/2, 1/4 or 1/8 of the size
directly), other formats decoded whole and shrunk right away, so no full-size
colour copy outlives the decoder. :class:`ImageInfo` keeps the photo's own size:
its ratio to the array's size maps coordinates found on the array to the photo.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from harerun.errors import ImageError
from harerun.results import ImageInfo

#: Formats Hare Run reads (Pillow's names). MPO is a phone JPEG with an embedded preview.
SUPPORTED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF"}
#: Neither Pillow nor OpenCV decode WebP reduced: a 40-megapixel WebP with alpha alone costs
#: ~310 MB to decode, so larger WebP photos are refused (peak per analysis <= 400 MB).
WEBP_MAX_PIXELS = 20_000_000
MAX_BYTES = 25 * 1024 * 1024
MAX_PIXELS = 40_000_000

#: Long side (px) the analysis decodes photos to at most (see ``harerun.engine``): the
#: face ROI is 512 px for a box padded to 1.5x its size, so a face box of about 340 px
#: fills it; at 2048 px a face a sixth of the photo's long side still does.
WORK_SIDE = 2048

_SUPPORTED_TEXT = "JPEG, PNG, WebP, BMP or TIFF"
#: Rows of the reduced photo made at a time (see :func:`_shrink`).
_BAND_ROWS = 64

#: EXIF orientation -> the transposition that shows the photo upright (as ``ImageOps.exif_transpose``).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def load_image(
    source: str | Path | bytes | bytearray | np.ndarray,
    *,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
    max_side: int | None = None,
) -> tuple[np.ndarray, ImageInfo]:
    """Return ``(bgr_uint8, ImageInfo)`` for a path, encoded bytes or an array.

    With ``max_side`` the array's long side is at most that (the photo reduced);
    ``ImageInfo`` always has the photo's own (upright) size.

    Raises :class:`ImageError` with code ``UNREADABLE_IMAGE``, ``IMAGE_TOO_LARGE``
    or ``UNSUPPORTED_FORMAT``.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels=max_pixels, max_side=max_side)
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
    return decode(data, name=name, max_pixels=max_pixels, max_side=max_side)


def decode(
    data: bytes, *, name: str = "the upload", max_pixels: int = MAX_PIXELS, max_side: int | None = None
) -> tuple[np.ndarray, ImageInfo]:
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
    if fmt == "WEBP" and w * h > WEBP_MAX_PIXELS:
        raise ImageError(
            f"{name} is a {w}x{h} WebP; WebP photos cannot be decoded reduced, so they may have at most "
            f"{WEBP_MAX_PIXELS} pixels; send a JPEG or PNG, or downscale it first",
            code="IMAGE_TOO_LARGE",
        )
    try:
        size = _reduced_size(w, h, max_side)
        if size is None:
            img.load()
            orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
        else:
            orientation = _header_orientation(img)
            img = _reduced(img, data, size)
        if orientation in _UPRIGHT:
            img = img.transpose(_UPRIGHT[orientation])
        bgr = _to_bgr(img)
    except ImageError:
        raise
    except Exception as exc:  # truncated or corrupt data
        raise ImageError(f"{name} could not be decoded ({fmt}): {exc}", code="UNREADABLE_IMAGE") from None
    if orientation in (5, 6, 7, 8):  # turned a quarter: the photo's own size turns too
        w, h = h, w
    return bgr, ImageInfo(width=w, height=h, format=fmt.replace("MPO", "JPEG"))


def _header_orientation(img: Image.Image) -> int:
    """The EXIF orientation read before the pixels: Pillow's PNG ``getexif`` decodes them
    all to look for EXIF after them (a PNG's EXIF is before them as a rule)."""
    if img.format != "PNG":
        return img.getexif().get(ExifTags.Base.Orientation, 1)
    exif = Image.Exif()
    exif.load(img.info.get("exif", b""))
    return exif.get(ExifTags.Base.Orientation, 1)


def _reduced_size(w: int, h: int, max_side: int | None) -> tuple[int, int] | None:
    """``(w, h)`` scaled to a long side of ``max_side``; None when it is no larger already."""
    if max_side is None or max(w, h) <= max_side:
        return None
    f = max_side / max(w, h)
    return max(1, round(w * f)), max(1, round(h * f))


def _reduced(img: Image.Image, data: bytes, size: tuple[int, int]) -> Image.Image:
    """``img`` (encoded in ``data``) decoded and shrunk to ``size`` by area averaging.

    A JPEG is decoded at 1/2, 1/4 or 1/8 scale when that is still at least the target
    (``draft`` returns the part of that image which is the photo: its last row and column
    of blocks may be partial). An RGB or WebP photo is decoded by OpenCV (3 bytes a pixel,
    halved while decoding; Pillow holds 4 bytes a pixel, and for WebP four copies); the
    rest by Pillow, which keeps 1 byte a pixel for grey and palette photos.
    """
    if img.format in ("JPEG", "MPO"):
        drafted = img.draft(None, size)
        img.load()
        return _shrink(img, size, drafted[1] if drafted else (0, 0, *img.size))
    if img.format == "WEBP" or img.mode == "RGB":
        small = _opencv_shrunk(data, size, alpha=img.mode == "RGBA", halve=max(img.size) >= 2 * max(size))
        if small is not None:
            return small
    img.load()
    return _shrink(img, size, (0, 0, *img.size))


def _shrink(img: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float]) -> Image.Image:
    """The ``box`` of ``img`` resized to ``size`` by area averaging, a band of rows at a time.

    Whole, Pillow's resize holds an intermediate of full height, and a copy of the photo
    for a palette, or premultiplied for alpha: for 40 megapixels 50-160 MB more than the
    photo. Each output row averages the same source rows in its band as in the whole."""
    x0, y0, x1, y1 = box
    step = (y1 - y0) / size[1]
    out = None
    for i in range(0, size[1], _BAND_ROWS):
        n = min(_BAND_ROWS, size[1] - i)
        top, bottom = y0 + i * step, y0 + (i + n) * step
        a = int(top)
        band = img.crop((0, a, img.width, min(img.height, math.ceil(bottom))))
        if band.mode in ("1", "P", "PA"):  # Pillow shrinks these by dropping pixels: expand them first
            band = band.convert("RGBA" if band.mode == "PA" or "transparency" in img.info else "RGB")
        band = band.resize((size[0], n), Image.Resampling.BOX, box=(x0, top - a, x1, bottom - a))
        if out is None:
            out = Image.new(band.mode, size)
        out.paste(band, (0, i))
    return out


def _opencv_shrunk(data: bytes, size: tuple[int, int], *, alpha: bool, halve: bool) -> Image.Image | None:
    """The photo decoded by OpenCV (halved while decoding with ``halve``) and shrunk to
    ``size``, as a Pillow RGB(A) image; None when OpenCV cannot read it. Orientation is
    left to the caller, as with Pillow."""
    if alpha:  # (shrunk before the white background goes under it: a faint edge at most)
        flags = cv2.IMREAD_UNCHANGED
    elif halve:  # (the means of 2x2 pixels)
        flags = cv2.IMREAD_REDUCED_COLOR_2 | cv2.IMREAD_IGNORE_ORIENTATION
    else:
        flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if arr is None or arr.ndim != 3 or arr.dtype != np.uint8:
        return None
    arr = cv2.resize(arr, size, interpolation=cv2.INTER_AREA)
    return Image.fromarray(cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB))


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


def _from_array(arr: np.ndarray, *, max_pixels: int, max_side: int | None = None) -> tuple[np.ndarray, ImageInfo]:
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ImageError(f"array of shape {arr.shape} is not an image", code="UNREADABLE_IMAGE")
    h, w = arr.shape[:2]
    if w * h > max_pixels:
        raise ImageError(f"array is {w}x{h}, over the {max_pixels}-pixel limit", code="IMAGE_TOO_LARGE")
    size = _reduced_size(w, h, max_side)
    if size is not None and arr.dtype in (np.uint8, np.uint16) and arr.shape[2:] in ((), (3,), (4,)):
        arr = cv2.resize(arr, size, interpolation=cv2.INTER_AREA)  # (before the 16-bit conversion's copy)
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
