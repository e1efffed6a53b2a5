"""Finding the photos (files, folders, globs, ``@lists``, ``s3://bucket/prefix/``) and reading one.

A photo is named by a string: a resolved local path, or an ``s3://bucket/key`` URL. That string is
the record's ``path`` and, with the bytes' SHA-256, its key in the output.
"""

from __future__ import annotations

import glob
import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harerun.batch import s3input
from harerun.errors import HareRunError, ImageError

#: Photos taken from folders, globs and S3 prefixes (a file named on the command line or in a list is always taken).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})


class NoPhotos(HareRunError):
    """The inputs matched no photo, or the output or an option cannot be used."""

    code = "NO_PHOTOS"
    http_status = 400
    exit_code = 2


def is_image(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_SUFFIXES


def _is_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _expand(item: str) -> Iterator[str]:
    """The photos one input names: the file itself, a folder's image files (recursive), a glob's, an S3 prefix's."""
    if s3input.is_s3(item):
        yield from s3input.list_photos(item, is_image)
    elif os.path.isdir(item):
        for root, dirs, files in os.walk(item):
            dirs.sort()
            yield from (str(Path(root, f).resolve()) for f in files if is_image(f))
    elif glob.has_magic(item):
        yield from (str(Path(p).resolve()) for p in glob.iglob(item, recursive=True) if is_image(p) and _is_file(p))
    elif os.path.lexists(item):
        yield str(Path(item).resolve())


def _list_file(item: str) -> list[str]:
    name = item[1:]
    try:
        with open(name, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except (OSError, UnicodeDecodeError) as exc:
        raise NoPhotos(f"{item}: cannot read the list of photos ({exc}); give one path per line") from None
    return [line for line in lines if line and not line.startswith("#")]


def collect_inputs(inputs: Iterable[str], *, warn: Callable[[str], None] = lambda _m: None) -> list[str]:
    """Every photo the inputs name, sorted and de-duplicated: resolved local paths and ``s3://`` URLs.

    An input is a file, a folder (its :data:`IMAGE_SUFFIXES` files, recursively), a glob (``**``
    recurses), ``s3://bucket/prefix/`` (its image keys, recursively) or ``s3://bucket/key.jpg``, or
    ``@list.txt`` (one such input per line, relative to the working folder; blank lines and ``#``
    comments skipped). ``warn`` is told about each input that matches nothing; :class:`NoPhotos` is
    raised when none matches anything.
    """
    inputs = list(inputs)
    found: set[str] = set()
    for arg in inputs:
        items = _list_file(arg) if arg.startswith("@") else [arg]
        for item in items:
            before = len(found)
            found.update(_expand(item))
            if len(found) == before:
                exists = s3input.is_s3(item) or os.path.lexists(item) or glob.has_magic(item)
                warn(f"{item}: matched no photo" + ("" if exists else " (no such file)"))
    if not found:
        raise NoPhotos(
            f"no photo found in {' '.join(inputs)}; give photos, folders (searched for "
            f"{', '.join(sorted(IMAGE_SUFFIXES))}), quoted globs such as 'photos/**/*.jpg', "
            f"s3://bucket/prefix/, or @list.txt"
        )
    return sorted(found)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Photo:
    """One photo's bytes (None when over ``max_bytes``: only hashed), SHA-256 and size."""

    data: bytes | None
    sha256: str
    size: int


def read_photo(path: str, max_bytes: int) -> Photo:
    """Read (and hash) the photo ``path`` names; a photo over ``max_bytes`` is hashed but not kept.
    Raises :class:`ImageError` for a file that cannot be read, and S3 errors as :mod:`.s3input` says."""
    if s3input.is_s3(path):
        data, sha, size = s3input.read(path, max_bytes)
        return Photo(data, sha, size)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"{path}: not a regular file")
        if st.st_size > max_bytes:
            return Photo(None, sha256_file(path), st.st_size)
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ImageError(f"{path}: {exc.strerror or exc}") from None
    return Photo(data, hashlib.sha256(data).hexdigest(), len(data))


def current_sha256(path: str) -> str | None:
    """The photo's SHA-256 now (``--resume`` compares it with the record's), or None when it cannot be read."""
    try:
        return read_photo(path, max_bytes=0).sha256  # hashed as it streams, never kept
    except (OSError, HareRunError):
        return None
