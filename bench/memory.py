"""Peak memory and wall time of one analysis of a large or hostile photo, each in a fresh process.

    python bench/memory.py                     # every case, Engine().run and then with the overlay
    python bench/memory.py --cases png6300 jpeg7300 --no-overlay

Each case runs in a child process of its own: imports, one warm-up analysis of skimage's
astronaut (the models load), then one analysis of the case photo, and with the overlay also
the overlay as the API's ``include_overlay`` makes it (drawn, shrunk to 1600 px, PNG).
The child prints its peak RSS after the imports, after the warm-up (baseline) and after the
run (the process's absolute peak, nothing subtracted), and the run's wall time.

The peak is ``VmHWM`` of ``/proc/self/status`` (this process's own high-water mark). Linux
carries ``ru_maxrss`` over ``exec`` from the process that started the child, so it is at
least the starter's size; it is printed too (``maxrss``), and agrees here because the case
photos are made in a child of their own and this process stays small.

Cases (made in a temporary folder):

* ``png6300``: 6300x6300 PNG of one flat colour (~130 KB);
* ``jpeg6000-header``: a JPEG whose header declares 6000x6000, with 8x8 pixels of data (~630 B);
* ``jpeg6000-header-prog``: the same as a progressive JPEG;
* ``jpeg7300``: 7300x5475 JPEG of the astronaut upscaled (real content, a face to find);
* ``png40mp``: 7300x5475 PNG drawing (flat shapes, ~140 KB);
* ``png40mp-rgba``: the same with an alpha channel (a transparent band);
* ``webp40mp``, ``webp40mp-rgba``: the drawing as lossless WebP (~10 KB): refused, WebP photos
  may have at most 20 megapixels; ``webp20mp-rgba``: the largest WebP with alpha accepted.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

OVERLAY_MAX_SIDE = 1600  # the API's default ``overlay_max_side``


def _astronaut_bgr() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def _declared_jpeg(side: int, *, progressive: bool = False) -> bytes:
    """A valid 8x8 JPEG whose frame header is patched to declare ``side`` x ``side``."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (128, 128, 128)).save(buf, "JPEG", quality=50, progressive=progressive)
    b = bytearray(buf.getvalue())
    sof = b.find(b"\xff\xc2" if progressive else b"\xff\xc0")
    b[sof + 5 : sof + 9] = side.to_bytes(2, "big") * 2
    return bytes(b)


def _drawing(w: int, h: int) -> np.ndarray:
    img = np.full((h, w, 3), (90, 140, 200), np.uint8)
    cv2.circle(img, (w // 2, h // 2), min(w, h) // 3, (40, 80, 160), -1)
    cv2.rectangle(img, (w // 14, h // 10), (w // 3, h * 4 // 5), (200, 200, 50), -1)
    return img


def make_case(name: str, folder: Path) -> Path:
    if name == "png6300":
        path = folder / "flat6300.png"
        Image.new("RGB", (6300, 6300), (200, 150, 120)).save(path, optimize=True)
    elif name == "jpeg6000-header":
        path = folder / "declared6000.jpg"
        path.write_bytes(_declared_jpeg(6000))
    elif name == "jpeg6000-header-prog":
        path = folder / "declared6000-progressive.jpg"
        path.write_bytes(_declared_jpeg(6000, progressive=True))
    elif name == "jpeg7300":
        path = folder / "astronaut7300.jpg"
        big = cv2.resize(_astronaut_bgr(), (7300, 5475), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 90])
    elif name == "png40mp":
        path = folder / "drawing40mp.png"
        cv2.imwrite(str(path), _drawing(7300, 5475), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    elif name in ("png40mp-rgba", "webp40mp-rgba"):
        path = folder / f"drawing40mp-rgba.{name.split('40mp')[0]}"
        img = _drawing(7300, 5475)
        alpha = np.full(img.shape[:2], 255, np.uint8)
        alpha[:500] = 0
        Image.fromarray(np.dstack([img[:, :, ::-1], alpha])).save(path, lossless=True)
    elif name == "webp20mp-rgba":  # the largest WebP accepted (imageio.WEBP_MAX_PIXELS)
        path = folder / "drawing20mp-rgba.webp"
        img = _drawing(5160, 3870)
        alpha = np.full(img.shape[:2], 255, np.uint8)
        alpha[:300] = 0
        Image.fromarray(np.dstack([img[:, :, ::-1], alpha])).save(path, lossless=True)
    elif name == "webp40mp":
        path = folder / "drawing40mp.webp"
        Image.fromarray(_drawing(7300, 5475)[:, :, ::-1]).save(path, lossless=True)
    else:
        raise SystemExit(f"unknown case {name!r}; cases: {', '.join(CASES)}")
    return path


CASES = (
    "png6300",
    "jpeg6000-header",
    "jpeg6000-header-prog",
    "jpeg7300",
    "png40mp",
    "png40mp-rgba",
    "webp40mp",
    "webp40mp-rgba",
    "webp20mp-rgba",
)


def peak_rss_mb() -> float:
    """This process's peak resident memory (``VmHWM``), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # (not Linux)


def child(path: str, overlay: bool) -> None:
    """One analysis in this (fresh) process; prints one line of figures."""
    from harerun.engine import Engine
    from harerun.errors import HareRunError

    imported = peak_rss_mb()
    engine = Engine()
    engine.run(_astronaut_bgr())  # warm-up: the models load
    baseline = peak_rss_mb()
    t0 = time.perf_counter()
    try:
        run = engine.run(path)
        face = run.result.face
        found = f"face {face.box}" if face else "no face"
        found += f", image {run.result.image.width}x{run.result.image.height}"
        found += f", analysed {run.image.shape[1]}x{run.image.shape[0]}"
        if overlay:
            from harerun.overlay import draw_overlay, encode_png

            image = draw_overlay(run)
            scale = OVERLAY_MAX_SIDE / max(image.shape[:2])
            if scale < 1.0:
                image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            found += f", overlay {len(encode_png(image)) // 1024} KB"
    except HareRunError as exc:
        found = f"{exc.code}"
    seconds = time.perf_counter() - t0
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"{imported:.0f}\t{baseline:.0f}\t{peak_rss_mb():.0f}\t{maxrss:.0f}\t{seconds:.2f}\t{found}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    ap.add_argument("--no-overlay", action="store_true", help="only Engine().run, not also with the overlay")
    ap.add_argument("--child", nargs=2, metavar=("PATH", "OVERLAY"), help=argparse.SUPPRESS)
    ap.add_argument("--make", nargs=2, metavar=("CASE", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1] == "1")
        return
    if args.make:
        print(make_case(args.make[0], Path(args.make[1])))
        return

    print(f"{'case':<22}{'overlay':<9}{'file':>9}{'imports':>9}{'warm':>7}{'peak':>7}{'maxrss':>8}{'time':>8}  found")
    print(f"{'':<22}{'':<9}{'KB':>9}{'MB':>9}{'MB':>7}{'MB':>7}{'MB':>8}{'s':>8}")
    modes = [False] if args.no_overlay else [False, True]
    env = {k: v for k, v in os.environ.items() if k != "HARERUN_DISABLE_PLUGIN_AUTOLOAD"}  # every plugin
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            made = subprocess.run([sys.executable, __file__, "--make", name, tmp], capture_output=True, text=True)
            if made.returncode:
                raise SystemExit(made.stderr)
            path = Path(made.stdout.strip().splitlines()[-1])
            for overlay in modes:
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", str(path), "1" if overlay else "0"],
                    capture_output=True,
                    text=True,
                    env=env,
                )
                lines = [ln for ln in proc.stdout.splitlines() if ln.count("\t") == 5]
                if proc.returncode or not lines:
                    print(f"{name:<22}{'yes' if overlay else 'no':<9} child failed: {proc.stderr.strip()[-300:]}")
                    continue
                imported, warm, peak, maxrss, secs, found = lines[-1].split("\t")
                kb = path.stat().st_size / 1024
                print(
                    f"{name:<22}{'yes' if overlay else 'no':<9}{kb:>9.1f}{imported:>9}{warm:>7}{peak:>7}{maxrss:>8}"
                    f"{secs:>8}  {found}"
                )


if __name__ == "__main__":
    main()
