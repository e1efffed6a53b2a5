"""Draw what the analysis found.

:func:`draw_overlay` draws every detector's findings on the photo itself (same size, no text: the
API's ``overlay_png``). :func:`draw_panels` is what ``harerun analyze --overlay`` writes: one
panel per detector, each the face with only that detector's findings and thin zone outlines, and
beside it (never on the face) a legend: the detector's score and severity, what its marks mean,
and its score per zone as bars.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from harerun.engine import Run
from harerun.results import DetectorResult, severity_for

#: BGR colours, one per detector in pipeline order; saturated hues that stand out on skin.
PALETTE = [
    (255, 200, 0),
    (200, 0, 255),
    (0, 220, 0),
    (0, 230, 255),
    (255, 90, 40),
    (0, 120, 255),
    (255, 60, 160),
    (40, 40, 255),
]
ZONE_COLOUR = (255, 255, 255)
FACE_COLOUR = (0, 255, 0)
#: Severity bands (results.py) as RGB bar colours.
SEVERITY_RGB = {"none": (76, 175, 80), "mild": (242, 201, 76), "moderate": (242, 153, 74), "severe": (235, 87, 87)}
MASK_ALPHA = 0.45

#: Panel geometry, in sheet pixels: the face's long side, the legend's width, the gap between panels.
PANEL_SIDE = 440
LEGEND_W = 300
GAP = 24
HEADER_H = 44
BACKGROUND = (255, 255, 255)
INK = (34, 34, 34)
MUTED = (110, 110, 110)


def draw_overlay(run: Run) -> np.ndarray:
    """A copy of the photo as decoded with the face box, thin zone outlines, and every detector's
    evidence map and markers in its :data:`PALETTE` colour. No text: the scores are in the result."""
    out = run.image.copy()
    h, w = out.shape[:2]
    s = w / run.result.image.width  # the result's coordinates are in the photo's own pixels
    to_out = np.array([[s, 0.0, 0.0], [0.0, s, 0.0]])
    thick = max(1, round(max(h, w) / 600))
    for i, res in enumerate(run.result.results.values()):
        out = _tint(out, run, res, to_out, PALETTE[i % len(PALETTE)])
    _zones(out, run, to_out)
    face = run.result.face
    if face is not None:
        x, y, bw, bh = (round(v * s) for v in face.box)
        cv2.rectangle(out, (x, y), (x + bw, y + bh), FACE_COLOUR, thick + 1)
    for i, res in enumerate(run.result.results.values()):
        _markers(out, res, to_out, PALETTE[i % len(PALETTE)], thick)
    return out


@dataclass(frozen=True)
class View:
    """The part of the decoded photo a panel shows, ``image[y0:y1, x0:x1]``, scaled by ``k``."""

    x0: int
    y0: int
    x1: int
    y1: int
    k: float

    def photo(self, image: np.ndarray) -> np.ndarray:
        """The plain photo as a panel shows it, before anything is drawn."""
        crop = image[self.y0 : self.y1, self.x0 : self.x1]
        size = (round((self.x1 - self.x0) * self.k), round((self.y1 - self.y0) * self.k))
        return cv2.resize(crop, size, interpolation=cv2.INTER_AREA if self.k < 1 else cv2.INTER_CUBIC)


def face_view(run: Run, side: int = PANEL_SIDE, margin: float = 0.4) -> View:
    """The face box with ``margin`` of its size around it (the whole photo without a face), scaled
    so that its long side is ``side`` pixels."""
    h, w = run.image.shape[:2]
    x0, y0, x1, y1 = 0, 0, w, h
    face = run.result.face
    if face is not None:
        s = w / run.result.image.width
        fx, fy, fw, fh = (v * s for v in face.box)
        m = margin * max(fw, fh)
        x0, y0 = max(0, math.floor(fx - m)), max(0, math.floor(fy - m))
        x1, y1 = min(w, math.ceil(fx + fw + m)), min(h, math.ceil(fy + fh + m))
    return View(x0, y0, x1, y1, side / max(x1 - x0, y1 - y0))


def draw_panel(
    run: Run, step_id: str, view: View | None = None, colour: tuple[int, int, int] | None = None
) -> np.ndarray:
    """One detector's panel: the photo as ``view`` shows it (left, at the top) with that detector's
    evidence and the zone outlines, and its legend on the right (:data:`LEGEND_W` wide)."""
    view = view or face_view(run)
    res = run.result.results[step_id]
    if colour is None:
        colour = PALETTE[list(run.result.results).index(step_id) % len(PALETTE)]
    photo = view.photo(run.image)
    s = run.image.shape[1] / run.result.image.width
    to_panel = np.array([[s * view.k, 0.0, -view.x0 * view.k], [0.0, s * view.k, -view.y0 * view.k]])
    photo = _tint(photo, run, res, to_panel, colour)
    _zones(photo, run, to_panel, res.zones)
    _markers(photo, res, to_panel, colour, 2)
    legend = _legend(step_id, res, colour, photo.shape[0], has_mask=_has_mask(res))
    height = max(photo.shape[0], legend.shape[0])
    out = np.full((height, photo.shape[1] + legend.shape[1], 3), BACKGROUND, np.uint8)
    out[: photo.shape[0], : photo.shape[1]] = photo
    out[: legend.shape[0], photo.shape[1] :] = legend
    return out


def draw_panels(run: Run, detectors: list[str] | None = None) -> np.ndarray:
    """A sheet of :func:`draw_panel`, one per detector (all, in pipeline order, or ``detectors``),
    under a line naming the pipeline, the photo and its quality; laid out near 16:9."""
    steps = list(run.result.results) if detectors is None else detectors
    view = face_view(run)
    panels = [draw_panel(run, step, view) for step in steps]
    ph = max(p.shape[0] for p in panels)
    pw = max(p.shape[1] for p in panels)
    n = len(panels)
    cols = min(range(1, n + 1), key=lambda c: abs(math.log(c * pw / (math.ceil(n / c) * ph) / (16 / 9))))
    rows = math.ceil(n / cols)
    width = GAP + cols * (pw + GAP)
    sheet = np.full((HEADER_H + rows * (ph + GAP), width, 3), BACKGROUND, np.uint8)
    for i, panel in enumerate(panels):
        x = GAP + (i % cols) * (pw + GAP)
        y = HEADER_H + (i // cols) * (ph + GAP)
        sheet[y : y + panel.shape[0], x : x + panel.shape[1]] = panel
    r = run.result
    title = f"Hare Run · pipeline {r.pipeline}" + (f" (variant {r.variant})" if r.variant else "")
    title += f" · photo {r.image.width} x {r.image.height} px · quality {r.quality.score:.0f}/100"
    if r.quality.issues:
        title += f" ({', '.join(r.quality.issues)})"
    header = Image.new("RGB", (width - 2 * GAP, HEADER_H - 8), BACKGROUND)
    ImageDraw.Draw(header).text((0, 12), title, font=_font(20), fill=INK)
    sheet[8:HEADER_H, GAP : width - GAP] = np.asarray(header)[:, :, ::-1]
    return sheet


# -- drawing helpers ---------------------------------------------------------------------------


def _has_mask(res: DetectorResult) -> bool:
    return res.evidence.mask is not None and bool(np.any(res.evidence.mask))


def _tint(out: np.ndarray, run: Run, res: DetectorResult, to_out: np.ndarray, colour) -> np.ndarray:
    """``res``'s evidence map (on the aligned ROI) blended onto ``out``; ``to_out`` maps photo
    pixels (the result's coordinates) to ``out``'s."""
    if run.ctx is None or not _has_mask(res):
        return out
    roi_to_photo = np.vstack([run.ctx.roi_to_image.astype(np.float64), [0.0, 0.0, 1.0]])
    m = to_out @ roi_to_photo
    h, w = out.shape[:2]
    warped = cv2.warpAffine(np.asarray(res.evidence.mask, np.uint8), m, (w, h), flags=cv2.INTER_LINEAR)
    alpha = (warped.astype(np.float32) / 255.0 * MASK_ALPHA)[..., None]
    return (out * (1 - alpha) + np.array(colour, np.float32) * alpha).astype(np.uint8)


def _apply(to_out: np.ndarray, pts) -> np.ndarray:
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    return pts @ to_out[:, :2].T + to_out[:, 2]


def _zones(out: np.ndarray, run: Run, to_out: np.ndarray, names=None) -> None:
    """Thin outlines of the visible zones (``names`` only, when given)."""
    face = run.result.face
    if face is None:
        return
    for name, zone in face.zones.items():
        if zone.visible and len(zone.polygon) >= 3 and (names is None or name in names):
            pts = _apply(to_out, zone.polygon).round().astype(np.int32)
            cv2.polylines(out, [pts], True, ZONE_COLOUR, 1, cv2.LINE_AA)


def _markers(out: np.ndarray, res: DetectorResult, to_out: np.ndarray, colour, thick: int) -> None:
    """Circles in ``colour`` with a dark rim, so they show on light and dark skin alike."""
    k = float(np.hypot(*to_out[:, 0]))
    for mx, my, r in res.evidence.markers:
        (cx, cy) = _apply(to_out, [mx, my])[0]
        centre, radius = (round(cx), round(cy)), max(3, round(r * k))
        cv2.circle(out, centre, radius, (20, 20, 20), thick + 2, cv2.LINE_AA)
        cv2.circle(out, centre, radius, colour, thick, cv2.LINE_AA)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the bitmap font, one size
        return ImageFont.load_default()


def _legend(step_id: str, res: DetectorResult, colour_bgr, height: int, *, has_mask: bool) -> np.ndarray:
    """The legend beside a panel's photo, as a BGR image :data:`LEGEND_W` wide."""
    colour = tuple(int(c) for c in colour_bgr[::-1])
    img = Image.new("RGB", (LEGEND_W, max(height, 120)), BACKGROUND)
    d = ImageDraw.Draw(img)
    x, y = 18, 4
    d.text((x, y), step_id.replace("_", " "), font=_font(26), fill=INK)
    y += 36
    if res.status != "ok" or res.score is None:
        d.text((x, y), res.status, font=_font(18), fill=MUTED)
        y += 26
        for line in textwrap.wrap(res.message or "", 34)[:6]:
            d.text((x, y), line, font=_font(14), fill=MUTED)
            y += 18
    else:
        sev = res.severity or "none"
        d.rounded_rectangle((x, y + 2, x + 14, y + 16), 3, fill=SEVERITY_RGB.get(sev, MUTED))
        d.text((x + 22, y), f"score {res.score:.0f} / 100 · {sev}", font=_font(18), fill=INK)
        y += 32
    # what the marks on the photo mean
    small = _font(14)
    if res.evidence.markers:
        d.ellipse((x + 1, y + 1, x + 15, y + 15), outline=(20, 20, 20), width=4)
        d.ellipse((x + 2, y + 2, x + 14, y + 14), outline=colour, width=2)
        n = len(res.evidence.markers)
        d.text((x + 22, y), f"{n} finding{'s' if n != 1 else ''} (circle: its size)", font=small, fill=INK)
        y += 22
    if has_mask:
        tint = tuple(round(255 * (1 - MASK_ALPHA) * 0.8 + c * MASK_ALPHA) for c in colour)
        d.rectangle((x, y + 1, x + 16, y + 15), fill=tint, outline=colour)
        d.text((x + 22, y), "tinted: where it responds", font=small, fill=INK)
        y += 22
    if res.zones:
        d.rectangle((x, y + 1, x + 16, y + 15), fill=(150, 150, 150))
        d.line((x + 2, y + 8, x + 14, y + 8), fill=(255, 255, 255), width=1)
        d.text((x + 22, y), "zone it measures", font=small, fill=INK)
        y += 28
        # score per zone, as bars
        d.text((x, y), "per zone (0 = clear skin)", font=small, fill=MUTED)
        y += 20
        bar_x, bar_w = x + 118, LEGEND_W - x - 118 - 40
        for zone, score in res.zones.items():
            if y + 16 > img.height:
                break
            d.text((x, y), zone.replace("_", " ")[:16], font=small, fill=INK)
            d.rectangle((bar_x, y + 3, bar_x + bar_w, y + 13), fill=(235, 235, 235))
            filled = round(bar_w * max(0.0, min(100.0, score)) / 100.0)
            if filled:
                d.rectangle((bar_x, y + 3, bar_x + filled, y + 13), fill=SEVERITY_RGB[severity_for(score)])
            d.text((bar_x + bar_w + 6, y), f"{score:.0f}", font=small, fill=INK)
            y += 19
    return np.asarray(img)[:, :, ::-1].copy()


#: File suffixes an overlay can be written as: PNG or JPEG.
SUFFIXES = (".png", ".jpg", ".jpeg")


def encode_image(image_bgr: np.ndarray, suffix: str = ".png") -> bytes:
    """PNG or JPEG bytes, chosen by ``suffix`` (one of SUFFIXES)."""
    if suffix not in SUFFIXES:
        raise ValueError(f"cannot encode an overlay as {suffix!r}; use one of {', '.join(SUFFIXES)}")
    ok, buf = cv2.imencode(suffix, image_bgr)
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 BGR
        raise RuntimeError(f"{suffix} encoding failed")
    return buf.tobytes()


def encode_png(image_bgr: np.ndarray) -> bytes:
    return encode_image(image_bgr, ".png")
