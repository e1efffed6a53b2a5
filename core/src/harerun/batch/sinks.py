"""The output file: JSONL and CSV appended line by line, Parquet in row groups; resuming each.

Records are keyed by ``(path, variant)`` and carry the photo's ``sha256``. ``--resume`` keeps the
whole records of photos still wanted whose bytes hash the same, and drops the rest: a torn last
line (a run killed mid-write), stale records (the photo changed), records of
:data:`RETRIED_CODES` (the runner failed, not the photo) and repeats.

Parquet cannot be appended to (its footer, which indexes the row groups, is written last, so a
killed writer leaves an unreadable file). So ``OUT.parquet`` is built from parts: every
:attr:`ParquetSink.rows_per_part` records (or :attr:`~ParquetSink.seconds_per_part` seconds) the
records so far go to ``OUT.parquet.parts/part-NNNNNN.parquet`` (written beside, then renamed: a part
is whole or absent), and at the end the parts become the row groups of ``OUT.parquet``. A killed
run leaves its parts (readable as a dataset); ``--resume`` moves an existing ``OUT.parquet`` into
the parts, filters them as above and carries on.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harerun.batch.inputs import NoPhotos, current_sha256
from harerun.batch.records import Outcome, Variant, is_text_column
from harerun.batch.s3input import S3_READ_FAILED

#: Error codes that ``--resume`` analyses again: the failure was the runner's, not the photo's.
RETRIED_CODES = frozenset({"INTERNAL_ERROR", "WORKER_CRASHED", S3_READ_FAILED})
FORMATS = (".jsonl", ".csv", ".parquet")
#: The fields that identify a record and its run: (path, sha256, error code, experiment, pipeline, variant).
Key = tuple[str, "str | None", "str | None", "str | None", "str | None", "str | None"]


class Resume:
    """Decides which existing records to keep, and collects ``done``: path -> variants already recorded."""

    def __init__(self, photos: list[str], variants: tuple[Variant, ...]) -> None:
        self.wanted = set(photos)
        self.runs = {(v.experiment, v.pipeline_name, v.name) for v in variants}
        self.done: dict[str, set[str | None]] = {}
        self._sha: dict[str, str | None] = {}

    def keep(self, out: Path, key: Key) -> bool:
        path, sha, code, experiment, pipeline, variant = key
        if path not in self.wanted:
            return True  # another run's photo: not ours to judge
        other_run = pipeline is not None and (experiment, pipeline, variant) not in self.runs  # None: older harerun
        if other_run:
            raise NoPhotos(
                f"{out}: {path} was analysed with "
                f"{'experiment ' + experiment + ' variant ' + str(variant) if experiment else 'pipeline ' + str(pipeline)}"
                f"; resume with the --pipeline (and --all-variants) that wrote it, or write to a new file"
            )
        if variant in self.done.get(path, ()) or code in RETRIED_CODES or sha != self.current_sha(path):
            return False
        self.done.setdefault(path, set()).add(variant)
        return True

    def current_sha(self, path: str) -> str | None:
        if path not in self._sha:
            self._sha[path] = current_sha256(path)
        return self._sha[path]


def _none(v: str) -> str | None:
    return v or None


# -- JSONL and CSV ------------------------------------------------------------------------------


class LineSink:
    """A JSONL or CSV file, one record per line, each flushed as it is written."""

    def __init__(self, out: Path, header: str | None) -> None:
        self.out, self.header = out, header
        self.fmt = out.suffix.lower()
        self._f: Any = None

    def check_new(self) -> None:
        if self.out.exists() and self.out.stat().st_size > 0:
            raise NoPhotos(f"--out {self.out} already exists: add --resume to continue it, or remove it")

    def _parse(self, line: bytes) -> Key | None:
        """The key of one output line, or None when it is not a whole record."""
        try:
            text = line.decode("utf-8")
            if self.fmt == ".jsonl":
                rec = json.loads(text)
                fields = ("experiment", "pipeline", "variant")
                return (rec["path"], rec.get("sha256"), (rec.get("error") or {}).get("code"), *map(rec.get, fields))
            row = next(csv.reader([text]))
            return row[0], _none(row[1]), _none(row[3]), _none(row[5]), _none(row[6]), _none(row[7])
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, StopIteration):
            return None

    def prepare(self, resume: Resume) -> None:
        """Make the file ready to be appended to: keep what ``resume`` keeps, cut the rest."""
        if not self.out.exists():
            return
        keep: list[tuple[int, int]] = []  # byte ranges of the lines kept
        offset, end, dropped = 0, 0, False
        with open(self.out, "rb") as f:
            for n, line in enumerate(f):
                start, offset = offset, offset + len(line)
                if not line.endswith(b"\n"):
                    break  # torn: the run was killed while writing it
                if n == 0 and self.header is not None:
                    if line.decode("utf-8", "replace").rstrip("\r\n") != self.header:
                        raise NoPhotos(
                            f"{self.out}: its CSV columns are not this pipeline's; resume with the pipeline that "
                            f"wrote it, or write to a new file"
                        )
                    keep.append((start, offset))
                    end = offset
                    continue
                key = self._parse(line)
                if key is None:
                    break  # not a record: nothing after it is trusted
                if not resume.keep(self.out, key):
                    dropped = True
                    continue
                keep.append((start, offset))
                end = offset
        if dropped:
            tmp = self.out.with_name(self.out.name + ".resume-tmp")
            with open(self.out, "rb") as src, open(tmp, "wb") as dst:
                for start, stop in keep:
                    src.seek(start)
                    dst.write(src.read(stop - start))
            os.replace(tmp, self.out)
        else:
            with open(self.out, "r+b") as f:
                f.truncate(end)

    def open(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.out, "a", encoding="utf-8", newline="")
        if self.header is not None and self._f.tell() == 0:
            self._f.write(self.header + "\n")
            self._f.flush()

    def write(self, outcome: Outcome) -> None:
        self._f.write(outcome.payload)
        self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()


# -- Parquet ----------------------------------------------------------------------------------


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise NoPhotos(
            "--out FILE.parquet needs pyarrow: pip install 'harerun[parquet]'", code="MISSING_EXTRA"
        ) from None
    return pa, pq


def parquet_schema(columns: tuple[str, ...]) -> Any:
    """The flat columns (text or float64) and ``record``, the whole record as JSON."""
    pa, _ = _pyarrow()
    fields = [pa.field(c, pa.string() if is_text_column(c) else pa.float64()) for c in columns]
    return pa.schema([*fields, pa.field("record", pa.string())])


class ParquetSink:
    """``OUT.parquet``, built from whole part files (see the module's docstring)."""

    rows_per_part = 256
    seconds_per_part = 30.0
    KEY_COLUMNS = ["path", "sha256", "error_code", "experiment", "pipeline", "variant"]

    def __init__(self, out: Path, columns: tuple[str, ...], *, rows_per_part: int | None = None) -> None:
        self.out = out
        self.rows_per_part = rows_per_part or self.rows_per_part
        self.parts = out.with_name(out.name + ".parts")
        self.pa, self.pq = _pyarrow()
        self.schema = parquet_schema(columns)
        self._rows: list[tuple] = []
        self._since = time.monotonic()
        self._next = 0

    def check_new(self) -> None:
        if self.out.exists():
            raise NoPhotos(f"--out {self.out} already exists: add --resume to continue it, or remove it")
        if self.parts.exists():
            raise NoPhotos(
                f"--out {self.out}: {self.parts}/ holds an unfinished run: add --resume to continue it, or remove it"
            )

    def _part_files(self) -> list[Path]:
        return sorted(self.parts.glob("part-*.parquet"))

    def _new_part(self) -> Path:
        parts = self._part_files()
        n = max(self._next, int(parts[-1].stem.split("-")[1]) + 1 if parts else 0)
        self._next = n + 1
        return self.parts / f"part-{n:06d}.parquet"

    def prepare(self, resume: Resume) -> None:
        """Gather the finished file and the parts of a killed run; keep what ``resume`` keeps."""
        if self.parts.exists():
            for tmp in self.parts.glob(".*.tmp"):
                tmp.unlink()
        self.out.with_name(f".{self.out.name}.tmp").unlink(missing_ok=True)
        if self.out.exists():
            self.parts.mkdir(parents=True, exist_ok=True)
            os.replace(self.out, self._new_part())
        for part in self._part_files():
            try:
                pf = self.pq.ParquetFile(part)
                if not pf.schema_arrow.equals(self.schema, check_metadata=False):
                    raise NoPhotos(
                        f"{self.out}: its columns are not this pipeline's; resume with the pipeline that wrote it, "
                        f"or write to a new file"
                    )
                keys = pf.read(columns=self.KEY_COLUMNS).to_pydict()
            except NoPhotos:
                raise
            except Exception as exc:
                raise NoPhotos(f"{part}: not a readable Parquet file ({exc}); remove it and --resume again") from None
            mask = [resume.keep(self.out, k) for k in zip(*(keys[c] for c in self.KEY_COLUMNS), strict=True)]
            if all(mask):
                continue
            tmp = part.with_name(f".{part.name}.tmp")
            with self.pq.ParquetWriter(tmp, self.schema) as writer:
                start = 0
                for batch in pf.iter_batches():
                    keep = self.pa.array(mask[start : start + batch.num_rows])
                    writer.write_batch(batch.filter(keep))
                    start += batch.num_rows
            os.replace(tmp, part)

    def open(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)

    def write(self, outcome: Outcome) -> None:
        self._rows.append(outcome.payload)
        if len(self._rows) >= self.rows_per_part or time.monotonic() - self._since >= self.seconds_per_part:
            self.flush()

    def flush(self) -> None:
        self._since = time.monotonic()
        if not self._rows:
            return
        columns = list(zip(*self._rows, strict=True))
        table = self.pa.Table.from_arrays(
            [self.pa.array(col, type=f.type) for col, f in zip(columns, self.schema, strict=True)],
            schema=self.schema,
        )
        self.parts.mkdir(parents=True, exist_ok=True)
        part = self._new_part()
        tmp = part.with_name(f".{part.name}.tmp")
        self.pq.write_table(table, tmp)
        os.replace(tmp, part)
        self._rows = []

    def close(self) -> None:
        """Write the last part, then join the parts into ``OUT.parquet`` (one row group per part)."""
        self.flush()
        tmp = self.out.with_name(f".{self.out.name}.tmp")
        with self.pq.ParquetWriter(tmp, self.schema) as writer:
            for part in self._part_files() if self.parts.exists() else []:
                pf = self.pq.ParquetFile(part)
                for i in range(pf.num_row_groups):
                    writer.write_table(pf.read_row_group(i))
        os.replace(tmp, self.out)
        if self.parts.exists():
            shutil.rmtree(self.parts)


def open_sink(out: Path, columns: tuple[str, ...], row_group_size: int | None = None) -> LineSink | ParquetSink:
    fmt = out.suffix.lower()
    if fmt not in FORMATS:
        raise NoPhotos(f"--out {out}: unsupported extension; use .jsonl, .csv or .parquet")
    if fmt == ".parquet":
        return ParquetSink(out, columns, rows_per_part=row_group_size)
    return LineSink(out, ",".join(columns) if fmt == ".csv" else None)  # no column name needs quoting


# -- reading records back ----------------------------------------------------------------------


def iter_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """The records of a ``harerun batch`` output: whole records from JSONL and Parquet (its ``record``
    column), flat rows (column -> text) from CSV. A torn last JSONL line is skipped."""
    path = Path(path)
    fmt = path.suffix.lower()
    if fmt == ".parquet":
        _, pq = _pyarrow()
        for batch in pq.ParquetFile(path).iter_batches(columns=["record"]):
            yield from map(json.loads, batch.column(0).to_pylist())
    elif fmt == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            yield from csv.DictReader(f)
    else:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.endswith("\n"):
                    yield json.loads(line)
