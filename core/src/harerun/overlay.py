"""Draw what the analysis found on the original photo."""

from __future__ import annotations

import cv2
import numpy as np

from harerun.engine import Run

# BGR colours, one per detector in pipeline order.
PALETTE = [
    (60, 60, 255),
    (0, 200, 255),
    (255, 120, 0),
    (0, 220, 0),
    (255, 0, 200),
    (200, 200, 0),
    (120, 0, 255),
    (0, 128, 255),
]
ZONE_COLOUR = (255, 255, 255)


def draw_overlay(run: Run) -> np.ndarray:
    """A copy of the photo as decoded with the face box, zones, evidence masks and markers."""
    out = run.image.copy()
    h, w = out.shape[:2]
    s = w / run.result.image.width  # the result's coordinates are in the photo's own pixels
    thick = max(1, round(max(h, w) / 600))
    ctx = run.ctx
    face = run.result.face
    if ctx is not None:
        to_image = ctx.roi_to_image.astype(np.float64) * s
        for i, res in enumerate(run.result.results.values()):
            mask = res.evidence.mask
            if mask is None:
                continue
            warped = cv2.warpAffine(np.asarray(mask, np.uint8), to_image, (w, h), flags=cv2.INTER_LINEAR)
            colour = np.array(PALETTE[i % len(PALETTE)], np.float32)
            alpha = (warped.astype(np.float32) / 255.0 * 0.45)[..., None]
            out = (out * (1 - alpha) + colour * alpha).astype(np.uint8)
        for name, zone in ctx.zones.items():
            contours, _ = cv2.findContours(zone, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            for c in contours:
                pts = (ctx.to_image_points(c.reshape(-1, 2)) * s).round().astype(np.int32)
                cv2.polylines(out, [pts], True, ZONE_COLOUR, thick, cv2.LINE_AA)
                if face is None or face.box[2] < 250:
                    continue  # labels would hide a small face
                x, y = pts.min(axis=0)
                cv2.putText(
                    out,
                    name,
                    (int(x) + 2, int(y) + 12 * thick),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    0.35 * thick,
                    ZONE_COLOUR,
                    1,
                    cv2.LINE_AA,
                )
    if face is not None:
        x, y, bw, bh = (round(v * s) for v in face.box)
        cv2.rectangle(out, (x, y), (x + bw, y + bh), (0, 255, 0), thick + 1)
    legend_y = 18 * thick
    for i, (step_id, res) in enumerate(run.result.results.items()):
        colour = PALETTE[i % len(PALETTE)]
        for mx, my, r in res.evidence.markers:
            cv2.circle(out, (round(mx * s), round(my * s)), max(2, round(r * s)), colour, thick, cv2.LINE_AA)
        score = "-" if res.score is None else f"{res.score:.0f}"
        label = f"{step_id}: {score} ({res.severity or res.status})"
        cv2.putText(out, label, (8, legend_y), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * thick, (0, 0, 0), 3 * thick, cv2.LINE_AA)
        cv2.putText(out, label, (8, legend_y), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * thick, colour, thick, cv2.LINE_AA)
        legend_y += 18 * thick
    return out


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
