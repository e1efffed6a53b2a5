"""One record per (photo, variant): what an analysis process makes of a photo, and its flat columns.

A record is what ``harerun analyze --json`` prints, preceded by ``path``, ``sha256``, ``status``
(``ok`` | ``error``, then with ``error: {code, message[, issues]}``), ``experiment`` (name or None),
``variant`` (name or None) and ``pipeline`` (the name of the pipeline that ran). The analysis
process renders it in the output's format, so the runner only writes what it receives.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from harerun.batch.inputs import read_photo
from harerun.errors import HareRunError, ImageError

CSV_HEAD = ["path", "sha256", "status", "error_code", "error_message", "experiment", "pipeline", "variant"]
CSV_FACE = ["face.x", "face.y", "face.w", "face.h", "face.confidence", "quality.score"]
#: Flat columns holding text; the others are numbers.
TEXT_COLUMNS = frozenset(CSV_HEAD)
TEXT_SUFFIXES = (".status", ".severity")


@dataclass(frozen=True)
class Variant:
    """One way every photo is analysed: a pipeline, or one variant of an experiment."""

    experiment: str | None
    name: str | None
    pipeline: str  # what Engine.run is given: a name, or a pipeline file's absolute path
    pipeline_name: str  # the pipeline's own name, as records carry it


@dataclass(frozen=True)
class Settings:
    """Everything an analysis process needs to build its engine: plain, picklable values."""

    variants: tuple[Variant, ...]
    pipelines_dir: str | None = None
    format: str = ".jsonl"
    columns: tuple[str, ...] = ()  # CSV and Parquet: see :func:`csv_columns`
    threads: int | None = None  # OpenCV threads per analysis process (None: OpenCV's default)
    watch_parent: bool = False


@dataclass
class Outcome:
    """What the runner needs of one record: the output payload and what the summary counts."""

    path: str
    variant: str | None
    status: str
    error_code: str | None
    scores: dict[str, float | None]
    payload: Any  # .jsonl/.csv: the line; .parquet: the row (flat values, then the record as JSON)
    message: str | None = None
    exit_code: int = 0


class Analyzer:
    """An engine and the settings it runs under: one per analysis process or Ray actor."""

    def __init__(self, settings: Settings, engine: Any = None) -> None:
        from harerun.engine import Engine

        if settings.threads:
            import cv2

            cv2.setNumThreads(settings.threads)
        self.settings = settings
        self.engine = engine or Engine(pipelines_dir=settings.pipelines_dir)
        for v in settings.variants:
            self.engine.pipeline(v.pipeline)  # plugins and pipelines load here; models on first use

    def analyze(self, path: str, variants: Iterable[int]) -> list[Outcome]:
        """One outcome per variant (indexes into ``settings.variants``); a failure is an error record."""
        wanted = [self.settings.variants[i] for i in variants]
        try:
            photo = read_photo(path, self.engine.max_bytes)
        except Exception as exc:
            return [self._failed(path, None, v, exc) for v in wanted]
        outcomes = []
        for v in wanted:
            try:
                if photo.data is None:
                    raise ImageError(
                        f"{path}: {photo.size} bytes is over the {self.engine.max_bytes}-byte limit",
                        code="IMAGE_TOO_LARGE",
                    )
                result = self.engine.run(photo.data, pipeline=v.pipeline).result
            except Exception as exc:
                outcomes.append(self._failed(path, photo.sha256, v, exc))
                continue
            record = {**_head(path, photo.sha256, "ok", v), **result.model_dump(mode="json")}
            record["variant"] = v.name  # the engine ran a plain pipeline; the variant is ours
            scores = {step: r.score for step, r in result.results.items()}
            outcomes.append(Outcome(path, v.name, "ok", None, scores, render(record, self.settings)))
        return outcomes

    def _failed(self, path: str, sha: str | None, v: Variant, exc: Exception) -> Outcome:
        if not isinstance(exc, HareRunError):
            exc = HareRunError(f"internal error: {type(exc).__name__}: {exc}", code="INTERNAL_ERROR")
        error: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if getattr(exc, "issues", None):
            error["issues"] = exc.issues
        record = {**_head(path, sha, "error", v), "error": error}
        message = exc.message if exc.message.startswith(path) else f"{path}: {exc.message}"
        code = exc.exit_code if exc.exit_code in (2, 3) else 1
        return Outcome(path, v.name, "error", exc.code, {}, render(record, self.settings), message, code)


def _head(path: str, sha: str | None, status: str, v: Variant) -> dict[str, Any]:
    return {
        "path": path,
        "sha256": sha,
        "status": status,
        "experiment": v.experiment,
        "variant": v.name,
        "pipeline": v.pipeline_name,
    }


def crashed(path: str, settings: Settings, variants: Iterable[int]) -> list[Outcome]:
    """The records of a photo whose analysis process died."""
    message = "the analysis process died (out of memory?); `--resume` analyses this photo again"
    out = []
    for v in (settings.variants[i] for i in variants):
        record = {**_head(path, None, "error", v), "error": {"code": "WORKER_CRASHED", "message": message}}
        out.append(
            Outcome(path, v.name, "error", "WORKER_CRASHED", {}, render(record, settings), f"{path}: {message}", 1)
        )
    return out


def render(record: dict[str, Any], settings: Settings) -> Any:
    """``record`` in the output's format: a JSONL line, a CSV line, or a Parquet row."""
    if settings.format == ".jsonl":
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
    flat = flatten(record, settings.columns)
    if settings.format == ".parquet":
        return (*flat, json.dumps(record, ensure_ascii=False, separators=(",", ":")))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_cell(v) for v in flat])
    return buf.getvalue()


def _cell(v: Any) -> Any:
    # One record, one physical line: resuming cuts the file at its last newline.
    return v.replace("\r", " ").replace("\n", " ") if isinstance(v, str) else ("" if v is None else v)


# -- flat columns (CSV and Parquet) ----------------------------------------------------------


def zone_names() -> tuple[str, ...]:
    """Every zone a detector may score: the analysis zones, then the fold zones (wrinkles)."""
    from harerun.detector import ZONE_NAMES
    from harerun.face.geometry import FOLD_ZONES

    return (*ZONE_NAMES, *FOLD_ZONES)


def csv_columns(step_ids: Iterable[str]) -> tuple[str, ...]:
    """The flat columns, fixed by the pipelines' steps and the engine's zone names (never by the first photo)."""
    cols = [*CSV_HEAD, *CSV_FACE]
    zones = zone_names()
    for step in step_ids:
        cols += [f"{step}.status", f"{step}.score", f"{step}.severity", *(f"{step}.{z}" for z in zones)]
    return tuple(cols)


def is_text_column(name: str) -> bool:
    return name in TEXT_COLUMNS or name.endswith(TEXT_SUFFIXES)


def flatten(record: dict[str, Any], columns: Iterable[str]) -> list[Any]:
    """``record`` as the values of ``columns``; missing values are None."""
    err = record.get("error") or {}
    face = record.get("face") or {}
    box = face.get("box") or [None] * 4
    flat: dict[str, Any] = {
        **{k: record.get(k) for k in ("path", "sha256", "status", "experiment", "pipeline", "variant")},
        "error_code": err.get("code"),
        "error_message": err.get("message"),
        **dict(zip(CSV_FACE[:4], box, strict=True)),
        "face.confidence": face.get("confidence"),
        "quality.score": (record.get("quality") or {}).get("score"),
    }
    for step, r in (record.get("results") or {}).items():
        flat.update({f"{step}.status": r["status"], f"{step}.score": r["score"], f"{step}.severity": r["severity"]})
        flat.update({f"{step}.{z}": s for z, s in r["zones"].items()})
    return [flat.get(c) for c in columns]


# -- analysis processes -----------------------------------------------------------------------

_analyzer: Analyzer | None = None


def init_worker(settings: Settings) -> None:
    """Build this process's analyzer (a process pool's initializer)."""
    global _analyzer
    _analyzer = Analyzer(settings)
    if settings.watch_parent:
        # Ctrl-C reaches the whole process group: the runner decides, photos in progress finish.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a forked process inherits the runner's handler
        threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def analyze_in_worker(path: str, variants: tuple[int, ...]) -> list[Outcome]:
    assert _analyzer is not None, "init_worker() first"
    return _analyzer.analyze(path, variants)


def _exit_with_parent(parent: int) -> None:
    # A runner killed with SIGKILL cannot stop its pool; without this its processes would wait forever.
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)
