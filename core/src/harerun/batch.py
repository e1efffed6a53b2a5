"""``harerun batch``: analyse a collection of photos into a JSONL or CSV file, resumably.

The parent process only finds the photos, hands their paths to analysis processes (each builds one
:class:`~harerun.engine.Engine` from plain :class:`Settings`, so models load once per process and
nothing unpicklable crosses processes) and appends each record to the output as it arrives, flushed.
It never holds the results: its memory stays flat however many photos there are.

Records are keyed by ``path`` (resolved, absolute) and ``sha256`` (of the file's bytes); ``--resume``
skips photos whose key is already in the output, drops a torn last line (a run killed mid-write),
stale records (the photo changed since) and records of crashed analyses, and appends the rest.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import os
import resource
import signal
import stat
import sys
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from harerun.errors import HareRunError, ImageError

#: Photos taken from folders and globs (a file named on the command line or in a list is always taken).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
#: Error codes that ``--resume`` analyses again: the failure was the runner's, not the photo's.
RETRIED_CODES = frozenset({"INTERNAL_ERROR", "WORKER_CRASHED"})
FORMATS = (".jsonl", ".csv")
CSV_HEAD = ["path", "sha256", "status", "error_code", "error_message", "pipeline", "variant"]
CSV_FACE = ["face.x", "face.y", "face.w", "face.h", "face.confidence", "quality.score"]


class NoPhotos(HareRunError):
    """The inputs matched no photo, or the output cannot be used."""

    code = "NO_PHOTOS"
    http_status = 400
    exit_code = 2


# -- finding the photos -----------------------------------------------------------------


def _is_image(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_SUFFIXES


def _is_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _expand(item: str) -> Iterator[str]:
    """The photos one input names: the file itself, a folder's image files (recursive), or a glob's."""
    if os.path.isdir(item):
        for root, dirs, files in os.walk(item):
            dirs.sort()
            yield from (os.path.join(root, f) for f in files if _is_image(f))
    elif glob.has_magic(item):
        yield from (p for p in glob.iglob(item, recursive=True) if _is_image(p) and _is_file(p))
    elif os.path.lexists(item):
        yield item


def _list_file(item: str) -> list[str]:
    name = item[1:]
    try:
        with open(name, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except (OSError, UnicodeDecodeError) as exc:
        raise NoPhotos(f"{item}: cannot read the list of photos ({exc}); give one path per line") from None
    return [line for line in lines if line and not line.startswith("#")]


def collect_inputs(inputs: Iterable[str], *, warn: Callable[[str], None] = lambda _m: None) -> list[Path]:
    """Every photo the inputs name, sorted and de-duplicated by resolved path.

    An input is a file, a folder (its ``IMAGE_SUFFIXES`` files, recursively), a glob (``**`` recurses)
    or ``@list.txt`` (one such input per line, relative to the working folder; blank lines and ``#``
    comments skipped). ``warn`` is told about each input that matches nothing; :class:`NoPhotos` is
    raised when none matches anything.
    """
    found: set[Path] = set()
    for arg in inputs:
        items = _list_file(arg) if arg.startswith("@") else [arg]
        for item in items:
            before = len(found)
            found.update(Path(p).resolve() for p in _expand(item))
            if len(found) == before:
                warn(
                    f"{item}: matched no photo"
                    + ("" if os.path.lexists(item) or glob.has_magic(item) else " (no such file)")
                )
    if not found:
        raise NoPhotos(
            f"no photo found in {' '.join(inputs)}; give photos, folders (searched for "
            f"{', '.join(sorted(IMAGE_SUFFIXES))}), quoted globs such as 'photos/**/*.jpg', or @list.txt"
        )
    return sorted(found)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- one photo, in an analysis process ------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Everything an analysis process needs to build its engine: plain, picklable values."""

    pipeline: str = "default"
    pipelines_dir: str | None = None
    format: str = ".jsonl"
    columns: tuple[str, ...] = ()  # CSV only: see :func:`csv_columns`
    watch_parent: bool = False


@dataclass
class Outcome:
    """What the parent needs of one analysed photo: the output line and what the summary counts."""

    path: str
    status: str
    error_code: str | None
    scores: dict[str, float | None]
    line: str
    message: str | None = None
    exit_code: int = 0


_engine: Any = None
_settings: Settings | None = None


def init_worker(settings: Settings) -> None:
    """Build this process's engine (plugins and pipeline loaded once; models on first use)."""
    global _engine, _settings
    from harerun.engine import Engine

    _settings = settings
    _engine = Engine(pipelines_dir=settings.pipelines_dir)
    _engine.check_pipeline_name(settings.pipeline)
    if settings.watch_parent:
        # Ctrl-C reaches the whole process group: the runner decides, photos in progress finish.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    # A runner killed with SIGKILL cannot stop its pool; without this its processes would wait forever.
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _read(path: str, max_bytes: int) -> tuple[bytes | str, str]:
    """The photo's bytes (or its path when too large to be analysed: the engine refuses it) and sha256."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"{path}: not a regular file")
        if st.st_size > max_bytes:
            return path, sha256_file(path)
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ImageError(f"{path}: {exc.strerror or exc}") from None
    return data, hashlib.sha256(data).hexdigest()


def analyze_path(path: str) -> Outcome:
    """Analyse one photo with this process's engine; a failure is an error record, never an exception."""
    assert _engine is not None and _settings is not None, "init_worker() first"
    sha = None
    try:
        data, sha = _read(path, _engine.max_bytes)
        result = _engine.run(data, pipeline=_settings.pipeline).result
    except Exception as exc:  # every failure becomes that photo's record
        if not isinstance(exc, HareRunError):
            exc = HareRunError(f"internal error: {type(exc).__name__}: {exc}", code="INTERNAL_ERROR")
        error: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if getattr(exc, "issues", None):
            error["issues"] = exc.issues
        record = {"path": path, "sha256": sha, "status": "error", "error": error}
        message = exc.message if exc.message.startswith(path) else f"{path}: {exc.message}"
        code = exc.exit_code if exc.exit_code in (2, 3) else 1
        return Outcome(path, "error", exc.code, {}, _line(record, _settings), message, code)
    record = {"path": path, "sha256": sha, "status": "ok", **result.model_dump(mode="json")}
    scores = {step: r.score for step, r in result.results.items()}
    return Outcome(path, "ok", None, scores, _line(record, _settings))


def _line(record: dict[str, Any], settings: Settings) -> str:
    if settings.format == ".jsonl":
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_cell(v) for v in flatten(record, settings.columns)])
    return buf.getvalue()


def _cell(v: Any) -> Any:
    # One record, one physical line: resuming cuts the file at its last newline.
    return v.replace("\r", " ").replace("\n", " ") if isinstance(v, str) else ("" if v is None else v)


# -- CSV columns ---------------------------------------------------------------------------


def zone_names() -> tuple[str, ...]:
    """Every zone a detector may score: the analysis zones, then the fold zones (wrinkles)."""
    from harerun.detector import ZONE_NAMES
    from harerun.face.geometry import FOLD_ZONES

    return (*ZONE_NAMES, *FOLD_ZONES)


def csv_columns(step_ids: Iterable[str]) -> tuple[str, ...]:
    """The CSV header, fixed by the pipeline's steps and the engine's zone names (never by the first photo)."""
    cols = [*CSV_HEAD, *CSV_FACE]
    zones = zone_names()
    for step in step_ids:
        cols += [f"{step}.status", f"{step}.score", f"{step}.severity", *(f"{step}.{z}" for z in zones)]
    return tuple(cols)


def flatten(record: dict[str, Any], columns: Iterable[str]) -> list[Any]:
    """``record`` (a JSONL record) as the values of ``columns``; missing values are None."""
    err = record.get("error") or {}
    face = record.get("face") or {}
    box = face.get("box") or [None] * 4
    flat: dict[str, Any] = {
        "path": record["path"],
        "sha256": record.get("sha256"),
        "status": record["status"],
        "error_code": err.get("code"),
        "error_message": err.get("message"),
        "pipeline": record.get("pipeline"),
        "variant": record.get("variant"),
        **dict(zip(CSV_FACE[:4], box, strict=True)),
        "face.confidence": face.get("confidence"),
        "quality.score": (record.get("quality") or {}).get("score"),
    }
    for step, r in (record.get("results") or {}).items():
        flat.update({f"{step}.status": r["status"], f"{step}.score": r["score"], f"{step}.severity": r["severity"]})
        flat.update({f"{step}.{z}": s for z, s in r["zones"].items()})
    return [flat.get(c) for c in columns]


def pipeline_steps(engine: Any, name: str) -> list[str]:
    """The step ids of a pipeline, or of every variant of an experiment (in order, once each)."""
    experiment = engine.experiments.experiments.get(name)
    pipes = [v.pipeline for v in experiment.variants] if experiment else [name]
    return list(dict.fromkeys(s.id for p in pipes for s in engine.pipeline(p).steps))


# -- the output file --------------------------------------------------------------------------


def _parse(line: bytes, fmt: str) -> tuple[str, str | None, str | None] | None:
    """(path, sha256, error code) of one output line, or None when it is not a whole record."""
    try:
        text = line.decode("utf-8")
        if fmt == ".jsonl":
            rec = json.loads(text)
            return rec["path"], rec.get("sha256"), (rec.get("error") or {}).get("code")
        row = next(csv.reader([text]))
        return row[0], row[1] or None, row[3] or None
    except (ValueError, KeyError, IndexError, TypeError, StopIteration):
        return None


def prepare_resume(out: Path, fmt: str, header: str | None, photos: list[Path]) -> set[str]:
    """Make ``out`` ready to be appended to; return the paths already analysed.

    Kept: whole records of photos not in ``photos`` and of photos whose bytes still hash the same.
    Dropped: a torn last line, stale records (the photo changed), records of :data:`RETRIED_CODES`, repeats.
    """
    wanted = {str(p) for p in photos}
    done: set[str] = set()
    hashes: dict[str, str | None] = {}

    def current_sha(path: str) -> str | None:
        if path not in hashes:
            try:
                hashes[path] = sha256_file(path)
            except OSError:
                hashes[path] = None
        return hashes[path]

    keep: list[tuple[int, int]] = []  # byte ranges of the lines kept
    offset, end, dropped = 0, 0, False
    with open(out, "rb") as f:
        for n, line in enumerate(f):
            start, offset = offset, offset + len(line)
            if not line.endswith(b"\n"):
                break  # torn: the run was killed while writing it
            if n == 0 and header is not None:
                if line.decode("utf-8", "replace").rstrip("\r\n") != header:
                    raise NoPhotos(
                        f"{out}: its CSV columns are not this pipeline's; resume with the pipeline that wrote it, "
                        f"or write to a new file"
                    )
                keep.append((start, offset))
                end = offset
                continue
            key = _parse(line, fmt)
            if key is None:
                break  # not a record: nothing after it is trusted
            path, sha, code = key
            if path in wanted and (path in done or code in RETRIED_CODES or sha != current_sha(path)):
                dropped = True
                continue
            if path in wanted:
                done.add(path)
            keep.append((start, offset))
            end = offset
    if dropped:
        tmp = out.with_name(out.name + ".resume-tmp")
        with open(out, "rb") as src, open(tmp, "wb") as dst:
            for start, stop in keep:
                src.seek(start)
                dst.write(src.read(stop - start))
        os.replace(tmp, out)
    else:
        with open(out, "r+b") as f:
            f.truncate(end)
    return done


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Summary:
    """Counts and score distributions of one run; scores kept as compact float arrays."""

    started: float = field(default_factory=time.perf_counter)
    statuses: Counter = field(default_factory=Counter)
    codes: Counter = field(default_factory=Counter)
    scores: dict[str, array] = field(default_factory=dict)
    skipped: int = 0

    def add(self, o: Outcome) -> None:
        self.statuses[o.status] += 1
        if o.error_code:
            self.codes[o.error_code] += 1
        for step, score in o.scores.items():
            if score is not None:
                self.scores.setdefault(step, array("d")).append(score)

    def render(self, out: Path, stopped: str | None) -> str:
        wall = time.perf_counter() - self.started
        done = sum(self.statuses.values())
        lines = [
            f"harerun batch: {done} photo(s) analysed in {wall:.1f} s ({done / wall if wall else 0:.2f} photos/s)"
            + (f", {self.skipped} already in {out}" if self.skipped else "")
            + (f"; stopped by {stopped}" if stopped else ""),
            "  " + ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items())) if done else "  nothing to do",
        ]
        lines += [f"  error {code}: {n}" for code, n in self.codes.most_common()]
        if self.scores:
            lines.append(f"  {'detector':<16}{'n':>6}{'p10':>8}{'median':>8}{'p90':>8}")
        for step, values in self.scores.items():
            s = sorted(values)
            p10, p50, p90 = (_quantile(s, q) for q in (0.1, 0.5, 0.9))
            lines.append(f"  {step:<16}{len(s):>6}{p10:>8.1f}{p50:>8.1f}{p90:>8.1f}")
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        lines.append(f"  records written to {out}; runner peak RSS {peak_mb:.0f} MB")
        return "\n".join(lines)


def _quantile(s: list[float], q: float) -> float:
    """Linear-interpolated quantile of sorted ``s``."""
    x = q * (len(s) - 1)
    i = int(x)
    return s[i] if i + 1 >= len(s) else s[i] + (s[i + 1] - s[i]) * (x - i)


class _Stop:
    """SIGINT/SIGTERM: stop submitting photos; a second signal ends the runner at once."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signal = signum
        signal.signal(signum, signal.SIG_DFL)

    def __exit__(self, *_exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _results(photos: list[str], settings: Settings, jobs: int, stop: _Stop, engine: Any) -> Iterator[Outcome]:
    """Each photo's outcome as it finishes; at most ``2 * jobs`` photos handed out at a time.
    With one job the photos are analysed here, by ``engine``."""
    global _engine, _settings
    if jobs <= 1:
        _engine, _settings = engine, settings
        for path in photos:
            if stop.signal:
                return
            yield analyze_path(path)
        return
    todo = iter(photos)
    ctx = get_context("spawn")
    worker_settings = Settings(**{**settings.__dict__, "watch_parent": True})
    pool = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=init_worker, initargs=(worker_settings,))
    running: dict[Future, str] = {}
    try:
        while True:
            while not stop.signal and len(running) < 2 * jobs and (path := next(todo, None)) is not None:
                running[pool.submit(analyze_path, path)] = path
            if not running:
                return
            finished, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
            broken = False
            for fut in finished:
                path = running.pop(fut)
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    broken = True
                    yield _crashed(path, settings)
            if broken:  # an analysis process died (out of memory?): its photos are recorded, a new pool goes on
                pool.shutdown(wait=False, cancel_futures=True)
                for path in running.values():
                    yield _crashed(path, settings)
                running.clear()
                pool = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=init_worker, initargs=(worker_settings,))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _crashed(path: str, settings: Settings) -> Outcome:
    message = "the analysis process died (out of memory?); `--resume` analyses this photo again"
    record = {"path": path, "sha256": None, "status": "error", "error": {"code": "WORKER_CRASHED", "message": message}}
    return Outcome(path, "error", "WORKER_CRASHED", {}, _line(record, settings), f"{path}: {message}", 1)


def run_batch(
    inputs: list[str],
    out: str | Path,
    *,
    pipeline: str = "default",
    pipelines_dir: str | None = None,
    jobs: int | None = None,
    resume: bool = False,
    quiet: bool = False,
    host: Any = None,
) -> int:
    """Analyse every photo the inputs name into ``out``; the exit code (see ``harerun batch --help``)."""
    from harerun.engine import Engine

    out = Path(out)
    fmt = out.suffix.lower()
    if fmt not in FORMATS:
        raise NoPhotos(f"--out {out}: unsupported extension; use .jsonl or .csv")
    if os.path.exists(out) and os.path.getsize(out) > 0 and not resume:
        raise NoPhotos(f"--out {out} already exists: add --resume to continue it, or remove it")

    def warn(message: str) -> None:
        print(f"harerun: {message}", file=sys.stderr)

    photos = collect_inputs(inputs, warn=warn)
    if pipeline.endswith((".yaml", ".yml")) or os.sep in pipeline:
        pipeline = os.path.abspath(pipeline)
    if pipelines_dir:
        pipelines_dir = os.path.abspath(pipelines_dir)
    engine = Engine(host=host, pipelines_dir=pipelines_dir)
    engine.check_pipeline_name(pipeline)  # a bad pipeline is reported before any photo
    columns = csv_columns(pipeline_steps(engine, pipeline)) if fmt == ".csv" else ()
    settings = Settings(pipeline=pipeline, pipelines_dir=pipelines_dir, format=fmt, columns=columns)
    header = ",".join(columns) if fmt == ".csv" else None  # no column name needs quoting

    summary = Summary()
    done = prepare_resume(out, fmt, header, photos) if resume and out.exists() else set()
    todo = [str(p) for p in photos if str(p) not in done]
    summary.skipped = len(photos) - len(todo)
    out.parent.mkdir(parents=True, exist_ok=True)
    worst = 0
    with _Stop() as stop, open(out, "a", encoding="utf-8", newline="") as sink:
        if header is not None and sink.tell() == 0:
            sink.write(header + "\n")
            sink.flush()
        bar = _progress(len(todo), quiet)
        try:
            for outcome in _results(todo, settings, jobs or os.cpu_count() or 1, stop, engine):
                sink.write(outcome.line)
                sink.flush()
                summary.add(outcome)
                if outcome.status != "ok":
                    worst = max(worst, outcome.exit_code, key=_SEVERITY.__getitem__)
                    if not quiet:
                        bar.write(f"harerun: {outcome.message}", file=sys.stderr)
                bar.update(1)
        finally:
            bar.close()
        stopped = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}.get(stop.signal)
    print(summary.render(out, stopped), file=sys.stderr)
    if stop.signal:
        return 128 + stop.signal
    return worst


#: Exit codes from least to most serious, as ``harerun analyze`` ranks them.
_SEVERITY = {0: 0, 3: 1, 2: 2, 1: 3}


def _progress(total: int, quiet: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="photo",
        file=sys.stderr,
        disable=quiet or not sys.stderr.isatty(),
        dynamic_ncols=True,
        smoothing=0.1,
    )
