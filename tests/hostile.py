"""Hostile inputs for the HTTP API, and a helper that runs the real server.

``corpus(photo_bgr)`` builds every case from the astronaut photo (or any face photo):
each says how it is sent and which status and error code the API must answer.
``LiveServer`` starts ``harerun serve`` on a free 127.0.0.1 port in a subprocess.
"""

from __future__ import annotations

import base64
import io
import os
import socket
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ANALYZE = "/api/v6/skin/analyze-hare-run"
DETECT = "/api/v4/face/detect"


@dataclass
class Case:
    """One request: ``kind`` is multipart (field ``image``), json (base64) or raw (the body as is)."""

    name: str
    body: bytes | str
    kind: str = "multipart"
    content_type: str = "image/jpeg"
    filename: str = "photo.jpg"
    status: int = 200
    code: str | None = None
    json_body: dict | None = field(default=None, repr=False)

    def httpx_kwargs(self) -> dict:
        if self.kind == "multipart":
            return {"files": {"image": (self.filename, self.body, self.content_type)}}
        if self.kind == "json":
            return {"json": self.json_body if self.json_body is not None else {"image": self.body}}
        return {"content": self.body, "headers": {"content-type": self.content_type}}


def _pil(bgr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1]))


def jpeg(bgr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    _pil(bgr).save(buf, "JPEG", quality=92, **kw)
    return buf.getvalue()


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` black pixels: ~100 kB on disk, 900 Mpx decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    row = b"\x00" * (1 + (width + 7) // 8)
    comp = zlib.compressobj(9)
    parts = [comp.compress(row * 1000) for _ in range(height // 1000)]
    parts.append(comp.compress(row * (height % 1000)))
    parts.append(comp.flush())
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def exif_rotated_jpeg(bgr: np.ndarray) -> tuple[bytes, tuple[int, int]]:
    """The photo stored turned 90 degrees with EXIF orientation 6 (upright once applied).

    Returns the JPEG and the (width, height) a reader that applies EXIF must report.
    """
    h, w = bgr.shape[:2]
    stored = cv2.rotate(bgr, cv2.ROTATE_90_COUNTERCLOCKWISE)  # orientation 6 = rotate 90 CW to display
    img = _pil(stored)
    exif = img.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92, exif=exif.tobytes())
    return buf.getvalue(), (w, h)


def animated_gif(bgr: np.ndarray) -> bytes:
    frames = [_pil(bgr).convert("P"), _pil(255 - bgr).convert("P")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def corpus(photo_bgr: np.ndarray, *, max_upload_bytes: int = 10 * 1024 * 1024) -> list[Case]:
    """Every hostile case with the status and code the API must answer."""
    # A non-square crop, so a wrongly applied EXIF rotation shows in the reported size.
    photo = np.ascontiguousarray(photo_bgr[:, 40:-40]) if photo_bgr.shape[1] > 300 else photo_bgr
    good = jpeg(photo)
    rgb = photo[:, :, ::-1]

    cmyk = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).convert("CMYK").save(cmyk, "JPEG", quality=92)
    ok16, png16 = cv2.imencode(".png", photo.astype(np.uint16) * 257)
    assert ok16
    rgba = io.BytesIO()
    alpha = np.full(photo.shape[:2] + (1,), 255, np.uint8)
    Image.fromarray(np.concatenate([rgb, alpha], axis=2), "RGBA").save(rgba, "PNG")
    rotated, _ = exif_rotated_jpeg(photo)
    huge_b64 = "A" * (max_upload_bytes * 4 // 3 + 256 * 1024)

    return [
        Case("zero_bytes", b"", status=422, code="UNREADABLE_IMAGE"),
        Case("truncated_jpeg", good[: len(good) // 2], status=422, code="UNREADABLE_IMAGE"),
        Case("text_named_jpg", b"This is not a photo, just text.\n" * 20, status=415, code="UNSUPPORTED_FORMAT"),
        Case(
            "png_bomb_30000x30000",
            png_bomb(),
            content_type="image/png",
            filename="bomb.png",
            status=413,
            code="IMAGE_TOO_LARGE",
        ),
        Case(
            "animated_gif",
            animated_gif(photo),
            content_type="image/gif",
            filename="a.gif",
            status=415,
            code="UNSUPPORTED_FORMAT",
        ),
        Case("huge_base64", huge_b64, kind="json", status=413, code="IMAGE_TOO_LARGE"),
        Case("bad_base64", "not base64 at all!", kind="json", status=400, code="BAD_REQUEST"),
        Case("json_without_image", "", kind="json", json_body={"pipeline": "default"}, status=400, code="BAD_REQUEST"),
        Case(
            "wrong_content_type", good, kind="raw", content_type="text/plain", status=415, code="UNSUPPORTED_MEDIA_TYPE"
        ),
        Case("cmyk_jpeg", cmyk.getvalue()),
        Case("png_16bit", png16.tobytes(), content_type="image/png", filename="16bit.png"),
        Case("rgba_png", rgba.getvalue(), content_type="image/png", filename="rgba.png"),
        Case("exif_rotated", rotated),
        Case("base64_data_url", "data:image/jpeg;base64," + base64.b64encode(good).decode(), kind="json"),
        Case("raw_jpeg_body", good, kind="raw"),
    ]


# -- a real server ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_pids(pid: int) -> list[int]:
    """Child processes of ``pid`` (started by any of its threads), without multiprocessing's
    resource tracker."""
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    out = []
    for k in sorted(set(kids)):
        try:
            if b"resource_tracker" not in Path(f"/proc/{k}/cmdline").read_bytes():
                out.append(k)
        except OSError:
            continue
    return out


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class LiveServer:
    """``harerun serve`` in a subprocess on 127.0.0.1; ``with LiveServer(env) as url: ...``."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        workers: int = 1,
        ready_timeout_s: float = 180.0,
        log_path: str | os.PathLike | None = None,
        wait_for: str = "/ready",
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.workers = workers
        self.ready_timeout_s = ready_timeout_s
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.wait_for = wait_for  # the path that answers 200 once the server is up

    def start(self) -> str:
        import httpx

        cmd = [
            sys.executable,
            "-c",
            "import sys; from harerun.cli import main; sys.exit(main())",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--log-level",
            "warning",
        ]
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"harerun serve exited with {self.proc.returncode} (log: {self.log_path})")
            try:
                if httpx.get(self.url + self.wait_for, timeout=2.0).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"harerun serve was not ready within {self.ready_timeout_s} s (log: {self.log_path})")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
