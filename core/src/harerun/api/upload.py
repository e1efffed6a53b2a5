"""Reading a photo out of a request: multipart upload, JSON with base64, or a raw image body.

The body is read as a stream and counted as it arrives: a request stops being read as
soon as it passes the limit, whatever its Content-Length says. The photo's own checks
(format, pixel limit) are the engine's.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from harerun.api.errors import BadRequest, BodyTooLarge, FieldError, UnsupportedMediaType, field_errors

MAX_NAME = 128
MAX_SUBJECT = 256
#: Bytes past the limit that are still read (and thrown away) so the client sees the 413.
DRAIN_FACTOR = 4

_DATA_URL = re.compile(r"^data:[\w.+/-]*(;[\w.+-]+=[\w.+-]+)*;base64,", re.IGNORECASE)


_IMAGE_DESCRIPTION = "the photo: base64 of a JPEG/PNG/WebP/BMP/TIFF file, or a data: URL"


class DetectRequest(BaseModel):
    """JSON body of POST /api/v4/face/detect: the photo as base64 (or a data URL)."""

    model_config = ConfigDict(
        extra="forbid",
        title="DetectRequest",
        json_schema_extra={
            "examples": [{"image": "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ...", "pipeline": "default"}]
        },
    )

    image: str = Field(description=_IMAGE_DESCRIPTION)
    pipeline: str | None = Field(None, max_length=MAX_NAME, description="pipeline or experiment name")


class AnalyzeRequest(DetectRequest):
    """JSON body of POST /api/v6/skin/analyze-hare-run: the photo as base64 (or a data URL) and options."""

    model_config = ConfigDict(
        title="AnalyzeRequest",
        json_schema_extra={
            "examples": [
                {
                    "image": "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ...",
                    "pipeline": "skin-ab",
                    "subject_id": "user-42",
                    "include_overlay": False,
                }
            ]
        },
    )

    subject_id: str | None = Field(None, max_length=MAX_SUBJECT, description="sticky key for A/B experiments")
    include_overlay: bool | None = Field(None, description="also return the overlay as base64 PNG")


class DetectUpload(BaseModel):
    """Multipart body of POST /api/v4/face/detect: the photo as the file field `image`."""

    model_config = ConfigDict(title="DetectUpload")

    image: bytes = Field(description="the photo file (JPEG, PNG, WebP, BMP or TIFF)")
    pipeline: str | None = Field(None, max_length=MAX_NAME, description="pipeline or experiment name")


class AnalyzeUpload(DetectUpload):
    """Multipart body of POST /api/v6/skin/analyze-hare-run: the photo as the file field `image`, and options."""

    model_config = ConfigDict(title="AnalyzeUpload")

    subject_id: str | None = Field(None, max_length=MAX_SUBJECT, description="sticky key for A/B experiments")
    include_overlay: bool | None = Field(None, description="also return the overlay as base64 PNG")


#: The request body models, published as OpenAPI components under their titles.
BODY_MODELS: tuple[type[BaseModel], ...] = (AnalyzeRequest, AnalyzeUpload, DetectRequest, DetectUpload)


def image_media_types() -> list[str]:
    """The image/* types of the formats the decoder reads (:data:`harerun.imageio.SUPPORTED_FORMATS`)."""
    from PIL import Image

    from harerun.imageio import SUPPORTED_FORMATS

    Image.init()
    return sorted({Image.MIME[f] for f in SUPPORTED_FORMATS if f in Image.MIME})


@dataclass
class ImageRequest:
    data: bytes
    pipeline: str | None = None
    subject_id: str | None = None
    include_overlay: bool | None = None


def request_body_openapi(json_model: type[BaseModel], upload_model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` describing the three accepted bodies (FastAPI cannot infer them); the
    models are added to the components by :mod:`harerun.api.openapi`."""
    types = ", ".join(f"`{t}`" for t in image_media_types())
    ref = "#/components/schemas/{}".format
    return {
        "requestBody": {
            "required": True,
            "description": "The photo as a multipart upload (file field `image`), as JSON with base64, or as the raw "
            f"body with an image/* Content-Type: {types} (or `application/octet-stream`; the format is read "
            "from the bytes).",
            "content": {
                "multipart/form-data": {"schema": {"$ref": ref(upload_model.model_config["title"])}},
                "application/json": {"schema": {"$ref": ref(json_model.model_config["title"])}},
                "image/*": {
                    "schema": {"type": "string", "format": "binary", "description": f"the photo file: {types}"}
                },
            },
        }
    }


class _PhotoFormParser(MultiPartParser):
    """Starlette's multipart parser, reading the `image` part as a file also when it has no
    filename (generated clients send a file without one unless told): otherwise it would be a
    text field, capped at 64 KB and decoded as text."""

    def on_headers_finished(self) -> None:
        part = self._current_part
        _, options = parse_options_header(part.content_disposition)
        if options.get(b"name") == b"image" and b"filename" not in options:
            part.content_disposition = (part.content_disposition or b"") + b'; filename="image"'
        super().on_headers_finished()


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(
        f"the request is larger than {limit} bytes; send a smaller photo "
        f"(downscale it or raise HARERUN_MAX_UPLOAD_BYTES)"
    )


async def _chunks(request: Request) -> AsyncIterator[bytes]:
    """The body as it arrives (``request.stream()`` cannot be resumed after a partial read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


async def _drain(chunks: AsyncIterator[bytes], budget: int) -> None:
    """Read and drop up to ``budget`` more bytes so a client still sending gets the answer."""
    try:
        async for chunk in chunks:
            budget -= len(chunk)
            if budget < 0:
                return
    except ClientDisconnect:
        return


async def _counted(request: Request, limit: int) -> AsyncIterator[bytes]:
    chunks = _chunks(request)
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise BadRequest(f"Content-Length {declared[:40]!r} is not a number") from None
        if n > limit:
            if n <= DRAIN_FACTOR * limit:
                await _drain(chunks, n)
            raise _too_large(limit)
    total = 0
    try:
        async for chunk in chunks:
            total += len(chunk)
            if total > limit:
                await _drain(chunks, DRAIN_FACTOR * limit)
                raise _too_large(limit)
            yield chunk
    except ClientDisconnect:
        raise BadRequest("the client closed the connection before the body was sent") from None


async def read_body(request: Request, limit: int) -> bytes:
    parts = [chunk async for chunk in _counted(request, limit)]
    return b"".join(parts)


def decode_base64(text: str) -> bytes:
    """Bytes of a base64 string or data URL (standard or URL-safe alphabet, padding optional)."""
    s = text.strip()
    m = _DATA_URL.match(s)
    if m:
        s = s[m.end() :]
    elif s.startswith("data:"):
        raise BadRequest("`image` is a data URL without ';base64,'; send base64 data")
    s = re.sub(r"\s+", "", s)
    if not s:
        return b""
    s += "=" * (-len(s) % 4)
    try:
        alphabet = b"-_" if ("-" in s or "_" in s) else None
        return base64.b64decode(s, altchars=alphabet, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("`image` is not valid base64; send the file's bytes base64-encoded or as a data URL") from None


def parse_bool(value: str, field: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    message = f"`{field}` must be true or false (got {value[:40]!r})"
    raise BadRequest(message, details=[FieldError(loc=f"body.{field}", message=message)])


def _text_field(form: Any, name: str, max_len: int) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        message = f"`{name}` must be a text field, not a file"
    elif len(value) > max_len:
        message = f"`{name}` is longer than {max_len} characters"
    else:
        return value
    raise BadRequest(message, details=[FieldError(loc=f"body.{name}", message=message)])


async def read_image_request(
    request: Request, *, max_upload_bytes: int, max_body_bytes: int, json_model: type[DetectRequest] = AnalyzeRequest
) -> ImageRequest:
    """The photo and fields of a request (a JSON body as ``json_model``); raises 400/413/415 errors
    from :mod:`harerun.api.errors`."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()

    if media == "multipart/form-data":
        limit = max_upload_bytes + 64 * 1024
        parser = _PhotoFormParser(
            request.headers, _counted(request, limit), max_files=2, max_fields=16, max_part_size=64 * 1024
        )
        # Faces are biometric data: the upload stays in memory (bounded by `limit`), never in a temp file.
        parser.spool_max_size = limit + 1
        try:
            form = await parser.parse()
        except MultiPartException as exc:
            raise BadRequest(f"malformed multipart body: {exc.message}") from None
        try:
            upload = form.get("image")
            if upload is None:
                raise BadRequest("no `image` field in the form; upload the photo as the `image` file field")
            if not isinstance(upload, UploadFile):
                raise BadRequest("`image` must be a file field (multipart file upload), not text")
            data = await upload.read(max_upload_bytes + 1)
            overlay = form.get("include_overlay")
            return ImageRequest(
                data=data,
                pipeline=_text_field(form, "pipeline", MAX_NAME),
                subject_id=_text_field(form, "subject_id", MAX_SUBJECT),
                include_overlay=None if overlay is None else parse_bool(str(overlay), "include_overlay"),
            )
        finally:
            await form.close()

    if media == "application/json" or media.endswith("+json"):
        body = await read_body(request, max_body_bytes)
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise BadRequest(f"the body is not valid JSON ({exc})"[:300]) from None
        try:
            req = json_model.model_validate(payload)
        except ValidationError as exc:
            details = field_errors(exc.errors(), ("body",))
            problems = "; ".join(f"{d.loc}: {d.message}" for d in details[:5])
            raise BadRequest(
                f'malformed JSON body: {problems}; expected {{"image": "<base64>", ...}}', details=details
            ) from None
        data = decode_base64(req.image)
        return ImageRequest(data, req.pipeline, getattr(req, "subject_id", None), getattr(req, "include_overlay", None))

    if media.startswith("image/") or media == "application/octet-stream":
        return ImageRequest(await read_body(request, max_upload_bytes))

    if not media:
        raise UnsupportedMediaType(
            "no Content-Type; send multipart/form-data with an `image` file, "
            "application/json with base64 `image`, or an image/* body"
        )
    raise UnsupportedMediaType(
        f"Content-Type {media[:80]!r} is not accepted; send multipart/form-data with an "
        f"`image` file, application/json with base64 `image`, or an image/* body"
    )
