"""The run: plan the variants, hand photos to analysis processes (or to Ray), write each record as it
arrives, count them for the summary, stop cleanly on SIGINT/SIGTERM.

The runner never holds the results: its memory stays flat however many photos there are.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import threading
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from harerun.batch.inputs import NoPhotos, collect_inputs
from harerun.batch.records import (
    Analyzer,
    Outcome,
    Settings,
    Variant,
    analyze_in_worker,
    crashed,
    csv_columns,
    init_worker,
)
from harerun.batch.sinks import Resume, open_sink

#: A task: a photo and the variants (indexes into ``Settings.variants``) it still needs.
Task = tuple[str, tuple[int, ...]]


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def plan_variants(engine: Any, pipeline: str, all_variants: bool) -> tuple[Variant, ...]:
    """The ways every photo is analysed: the pipeline, or each variant of the experiment ``pipeline``."""
    engine.check_pipeline_name(pipeline)  # a bad pipeline is reported before any photo
    experiment = engine.experiments.experiments.get(pipeline)
    if experiment is None:
        if all_variants:
            names = ", ".join(sorted(engine.experiments.experiments)) or "none defined"
            raise NoPhotos(f"--all-variants needs an experiment as --pipeline, not '{pipeline}' (experiments: {names})")
        return (Variant(None, None, pipeline, engine.pipeline(pipeline).name),)
    if not all_variants:
        variants = ", ".join(f"{v.name}: {v.pipeline}" for v in experiment.variants)
        raise NoPhotos(
            f"'{pipeline}' is an experiment ({variants}): add --all-variants to analyse every photo with every "
            f"variant (a paired comparison), or give one of its pipelines as --pipeline"
        )
    return tuple(Variant(pipeline, v.name, v.pipeline, engine.pipeline(v.pipeline).name) for v in experiment.variants)


def step_ids(engine: Any, variants: tuple[Variant, ...]) -> list[str]:
    """The step ids of the variants' pipelines, in order, once each."""
    return list(dict.fromkeys(s.id for v in variants for s in engine.pipeline(v.pipeline).steps))


@dataclass
class Summary:
    """Counts and score distributions of one run; scores kept as compact float arrays."""

    started: float = field(default_factory=time.perf_counter)
    photos: int = 0
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
                label = f"{o.variant}:{step}" if o.variant else step
                self.scores.setdefault(label, array("d")).append(score)

    def render(self, out: Path, stopped: str | None) -> str:
        wall = time.perf_counter() - self.started
        records = sum(self.statuses.values())
        per = f" ({records} records)" if records != self.photos else ""
        lines = [
            f"harerun batch: {self.photos} photo(s){per} analysed in {wall:.1f} s "
            f"({self.photos / wall if wall else 0:.2f} photos/s)"
            + (f", {self.skipped} already in {out}" if self.skipped else "")
            + (f"; stopped by {stopped}" if stopped else ""),
            "  " + ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items())) if records else "  nothing to do",
        ]
        lines += [f"  error {code}: {n}" for code, n in self.codes.most_common()]
        if self.scores:
            lines.append(f"  {'detector':<20}{'n':>6}{'p10':>8}{'median':>8}{'p90':>8}")
        for label, values in self.scores.items():
            s = sorted(values)
            p10, p50, p90 = (_quantile(s, q) for q in (0.1, 0.5, 0.9))
            lines.append(f"  {label:<20}{len(s):>6}{p10:>8.1f}{p50:>8.1f}{p90:>8.1f}")
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        lines.append(f"  records written to {out}; runner peak RSS {peak_mb:.0f} MB")
        return "\n".join(lines)


def _quantile(s: list[float], q: float) -> float:
    """Linear-interpolated quantile of sorted ``s``."""
    x = q * (len(s) - 1)
    i = int(x)
    return s[i] if i + 1 >= len(s) else s[i] + (s[i + 1] - s[i]) * (x - i)


class Stop:
    """SIGINT/SIGTERM: stop handing out photos; a second signal ends the runner at once."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Stop:
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


def local_results(tasks: list[Task], settings: Settings, jobs: int, stop: Stop, engine: Any) -> Iterator[list[Outcome]]:
    """Each photo's outcomes as it finishes; at most ``2 * jobs`` photos handed out at a time.
    With one job the photos are analysed here, by ``engine``."""
    if jobs <= 1:
        analyzer = Analyzer(settings, engine)
        for path, variants in tasks:
            if stop.signal:
                return
            yield analyzer.analyze(path, variants)
        return
    todo = iter(tasks)
    worker_settings = replace(settings, watch_parent=True)

    def new_pool(method: str) -> ProcessPoolExecutor:
        ctx = get_context(method)
        return ProcessPoolExecutor(jobs, mp_context=ctx, initializer=init_worker, initargs=(worker_settings,))

    # Forked from this process, which has imported the plugins already, the analysis processes start
    # in milliseconds; spawned, each imports everything again (1-2 s, most of a small run's start-up).
    # Forking is only safe while this process runs no other thread: the pool forks all its processes
    # before it starts its own thread. A pool replacing a broken one is spawned.
    pool = new_pool("fork" if sys.platform == "linux" and threading.active_count() == 1 else "spawn")
    running: dict[Future, Task] = {}
    try:
        while True:
            while not stop.signal and len(running) < 2 * jobs and (task := next(todo, None)) is not None:
                running[pool.submit(analyze_in_worker, *task)] = task
            if not running:
                return
            finished, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
            broken = False
            for fut in finished:
                task = running.pop(fut)
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    broken = True
                    yield crashed(task[0], settings, task[1])
            if broken:  # an analysis process died (out of memory?): its photos are recorded, a new pool goes on
                pool.shutdown(wait=False, cancel_futures=True)
                for path, variants in running.values():
                    yield crashed(path, settings, variants)
                running.clear()
                pool = new_pool("spawn")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_batch(
    inputs: list[str],
    out: str | Path,
    *,
    pipeline: str = "default",
    pipelines_dir: str | None = None,
    jobs: int | None = None,
    threads: int | None = None,
    all_variants: bool = False,
    resume: bool = False,
    quiet: bool = False,
    row_group_size: int | None = None,
    ray: str | None = None,
    host: Any = None,
) -> int:
    """Analyse every photo the inputs name into ``out``; the exit code (see ``harerun batch --help``).

    ``ray``: run on Ray Data instead of local processes: ``"local"`` starts a Ray instance here (or
    joins ``RAY_ADDRESS``), else a cluster address (``auto``, ``HOST:PORT``, ``ray://HOST:10001``).
    """
    from harerun.engine import Engine

    out = Path(out)
    sink = open_sink(out, ())  # checks the extension (and that pyarrow is there) before anything else
    if not resume:
        sink.check_new()

    def warn(message: str) -> None:
        print(f"harerun: {message}", file=sys.stderr)

    if pipeline.endswith((".yaml", ".yml")) or os.sep in pipeline:
        pipeline = os.path.abspath(pipeline)
    if pipelines_dir:
        pipelines_dir = os.path.abspath(pipelines_dir)
    engine = Engine(host=host, pipelines_dir=pipelines_dir)
    variants = plan_variants(engine, pipeline, all_variants)
    photos = collect_inputs(inputs, warn=warn)
    fmt = out.suffix.lower()
    columns = csv_columns(step_ids(engine, variants)) if fmt in (".csv", ".parquet") else ()
    settings = Settings(variants, pipelines_dir=pipelines_dir, format=fmt, columns=columns, threads=threads)
    sink = open_sink(out, columns, row_group_size)

    summary = Summary()
    state = Resume(photos, variants)
    if resume:
        sink.prepare(state)
    everything = tuple(range(len(variants)))
    tasks: list[Task] = []
    for path in photos:
        done = state.done.get(path, set())
        todo = tuple(i for i in everything if variants[i].name not in done)
        if todo:
            tasks.append((path, todo))
    summary.skipped = len(photos) - len(tasks)
    worst = 0
    owned = False
    if ray is not None and tasks:
        from harerun.batch import ray_runner

        settings = replace(settings, threads=threads or 1)  # an actor uses the one CPU Ray gives it
        owned = ray_runner.connect(ray)  # before our signal handlers: ray.init installs its own
    sink.open()
    with Stop() as stop:
        bar = _progress(len(tasks), quiet)
        try:
            if ray is not None and tasks:
                jobs = jobs or ray_runner.default_jobs(settings.threads or 1)
                results = ray_runner.ray_results(tasks, settings, jobs, stop)
            else:
                jobs = jobs or usable_cpus()
                if jobs > 1 and not threads:  # OpenCV's threads share the cores, not multiply them
                    settings = replace(settings, threads=max(1, usable_cpus() // jobs))
                results = local_results(tasks, settings, jobs, stop, engine)
            for outcomes in results:
                summary.photos += 1
                for outcome in outcomes:
                    sink.write(outcome)
                    summary.add(outcome)
                    if outcome.status != "ok":
                        worst = max(worst, outcome.exit_code, key=_SEVERITY.__getitem__)
                if not quiet:  # a photo every variant fails on (unreadable, say) is said once
                    for message in dict.fromkeys(o.message for o in outcomes if o.status != "ok"):
                        bar.write(f"harerun: {message}", file=sys.stderr)
                bar.update(1)
        finally:
            bar.close()
            sink.close()
            if owned:
                ray_runner.disconnect()
        stopped = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}.get(stop.signal)
    print(summary.render(out, stopped), file=sys.stderr)
    if stop.signal:
        return 128 + stop.signal
    return worst


#: Exit codes from least to most serious, as ``harerun analyze`` ranks them.
_SEVERITY = {0: 0, 3: 1, 2: 2, 1: 3}


def _progress(total: int, quiet: bool) -> Any:
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: analysis processes are forked (see local_results)
    return tqdm(
        total=total,
        unit="photo",
        file=sys.stderr,
        disable=quiet or not sys.stderr.isatty(),
        dynamic_ncols=True,
        smoothing=0.1,
    )
