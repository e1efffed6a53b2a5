"""``harerun report``: compare the variants of an A/B run in a self-contained HTML report and a Markdown summary.

Input (see ``docs/report.md``): ``harerun batch`` outputs (``.jsonl``, ``.csv``, ``.parquet``), and JSON Lines of
analysis responses (the body ``POST /api/v6/skin/analyze-hare-run`` or ``harerun analyze --json`` returns, one per
line; a ``.json`` file may hold one such object or a list of them). Every record is reduced at once to what the
report needs (:class:`Record`), so large runs are read line by line.

A record's *variant* is its ``variant`` field without the ``experiment:`` prefix the engine writes
(``skin-ab:B`` -> ``B``), else its ``pipeline``: two plain runs (``--pipeline default`` and ``--pipeline fast``)
compare as variants ``default`` and ``fast``. A record naming neither (an error record of a plain run) takes the
one variant of its file. Photos are keyed by ``sha256``, else ``path``: when a photo appears in the baseline and in
another variant the design is *paired* (differences per photo); otherwise (API responses carry no key) *unpaired*
(a difference of medians). Either way the 95 % interval is scipy's percentile bootstrap, seeded, over values in
a canonical order (pairs sorted by key, unpaired samples sorted), so it does not depend on the order of the records.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harerun.errors import HareRunError
from harerun.stats import icc31

FORMATS = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")
CONFIDENCE = 0.95
PAIRED_STATISTIC = "median of the per-photo differences (variant - baseline)"
UNPAIRED_STATISTIC = "difference of the medians (variant - baseline)"


class ReportError(HareRunError):
    """Results that cannot be reported on: missing, unreadable, not records, or no record at all."""

    code = "BAD_RESULTS"
    http_status = 400
    exit_code = 2


class MissingExtra(HareRunError):
    code = "MISSING_EXTRA"


@dataclass
class Record:
    """What the report needs of one result record."""

    variant: str | None
    experiment: str | None
    key: str | None  # "sha256:<hex>", else "path:<path>", else None (no pairing)
    status: str  # "ok" or "error"
    error_code: str | None = None
    scores: dict[str, float] = field(default_factory=dict)  # detectors whose status is ok
    detector_status: dict[str, str] = field(default_factory=dict)
    total_ms: float | None = None


# -- reading ----------------------------------------------------------------------------------


def _blank(v: Any) -> Any:
    return None if v == "" else v


def _float(v: Any) -> float | None:
    v = _blank(v)
    return None if v is None else float(v)


def _variant(row: dict[str, Any]) -> tuple[str | None, str | None]:
    """(experiment, variant) of a record; the variant is the pipeline when the record names none."""
    experiment, variant = _blank(row.get("experiment")), _blank(row.get("variant"))
    if variant and ":" in variant and (experiment is None or variant.startswith(f"{experiment}:")):
        experiment, variant = variant.split(":", 1)
    return experiment, variant or _blank(row.get("pipeline"))


def to_record(row: Any, where: str) -> Record:
    """``row`` (a batch record, nested as in JSONL or flattened as in CSV, or an analysis response) reduced."""
    if not isinstance(row, dict):
        raise ReportError(f"{where}: not a JSON object; give batch records or analysis responses, one per line")
    results = row.get("results")
    if isinstance(results, str):  # nested values stored as JSON text (e.g. by a Parquet writer)
        results = json.loads(results)
    error = row.get("error")
    if isinstance(error, str):
        error = json.loads(error) if error.startswith("{") else {"code": error}
    flat = [k[: -len(".score")] for k in row if k.endswith(".score") and k != "quality.score"]
    error_code = (error or {}).get("code") if isinstance(error, dict) else None
    error_code = error_code or _blank(row.get("error_code"))
    if results is None and not flat and error_code is None:
        raise ReportError(
            f"{where}: neither a batch record nor an analysis response (no `results` and no `error`); "
            "give the output of `harerun batch` or API response bodies"
        )
    status = _blank(row.get("status")) or ("error" if error_code else "ok")
    scores: dict[str, float] = {}
    statuses: dict[str, str] = {}
    if isinstance(results, dict):
        for det, r in results.items():
            if not r:
                continue
            statuses[det] = r.get("status") or "ok"
            if statuses[det] == "ok" and r.get("score") is not None:
                scores[det] = float(r["score"])
    else:
        for det in flat:
            st, score = _blank(row.get(f"{det}.status")), _float(row.get(f"{det}.score"))
            if st is None and score is None:
                continue
            statuses[det] = st or "ok"
            if statuses[det] == "ok" and score is not None:
                scores[det] = score
    timings = row.get("timings_ms")
    if isinstance(timings, str):
        timings = json.loads(timings)
    total = (timings or {}).get("total") if isinstance(timings, dict) else row.get("timings_ms.total")
    sha, path = _blank(row.get("sha256")), _blank(row.get("path")) or _blank(row.get("input"))
    experiment, variant = _variant(row)
    return Record(
        variant=variant,
        experiment=experiment,
        key=f"sha256:{sha}" if sha else (f"path:{path}" if path else None),
        status="ok" if status == "ok" else "error",
        error_code=error_code,
        scores=scores,
        detector_status=statuses,
        total_ms=_float(total),
    )


def _rows(path: Path, notes: list[str]) -> Iterator[tuple[str, Any]]:
    """(location, row) of each record in one results file."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    if not line.endswith("\n") and f.read(1) == "":
                        notes.append(f"{path}: its last line is cut short (a run stopped while writing it): skipped")
                        return
                    raise ReportError(f"{path}:{n}: not JSON ({exc}); give one JSON record per line") from None
                yield f"{path}:{n}", row
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ReportError(f"{path}: not JSON ({exc})") from None
        for n, row in enumerate(data if isinstance(data, list) else [data], 1):
            yield f"{path}[{n}]", row
    elif suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "status" not in reader.fieldnames:
                raise ReportError(f"{path}: not a `harerun batch` CSV (no `status` column)")
            for n, row in enumerate(reader, 2):
                yield f"{path}:{n}", row
    elif suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise MissingExtra(f"{path}: reading Parquet needs pyarrow: pip install 'harerun[parquet]'") from None
        try:
            parquet = pq.ParquetFile(path)
            # `harerun batch` keeps each whole record as JSON in `record`, beside its flat columns
            whole = "record" in parquet.schema_arrow.names
            n = 0
            for batch in parquet.iter_batches(batch_size=1024, columns=["record"] if whole else None):
                for row in batch.to_pylist():
                    n += 1
                    yield f"{path} row {n}", json.loads(row["record"]) if whole else row
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise ReportError(f"{path}: not a readable Parquet file ({exc})") from None
    else:
        raise ReportError(f"{path}: unsupported format; give {', '.join(FORMATS)} files")


def read_results(paths: Iterable[str | Path]) -> tuple[list[Record], list[str]]:
    """Every record of the results files, and notes about what was skipped."""
    records: list[Record] = []
    notes: list[str] = []
    unnamed = 0
    for name in paths:
        path = Path(name)
        if path.is_dir():
            raise ReportError(f"{path}: is a directory; give the results files themselves")
        if not path.is_file():
            raise ReportError(f"{path}: no such file")
        try:
            found = [to_record(row, where) for where, row in _rows(path, notes)]
        except (OSError, UnicodeDecodeError) as exc:
            raise ReportError(f"{path}: cannot read it ({exc})") from None
        except (ValueError, TypeError, AttributeError) as exc:
            raise ReportError(f"{path}: malformed record ({type(exc).__name__}: {exc})") from None
        named = {r.variant for r in found if r.variant is not None}
        for r in found:
            if r.variant is None and len(named) == 1:
                r.variant = next(iter(named))  # e.g. an error record of a plain `harerun batch` run
                r.experiment = next(x.experiment for x in found if x.variant is not None)
        unnamed += sum(r.variant is None for r in found)
        records += [r for r in found if r.variant is not None]
    if unnamed:
        notes.append(f"{unnamed} record(s) name no variant or pipeline (API error bodies?): left out")
    if not records:
        raise ReportError(f"no records in {' '.join(map(str, paths))}; give `harerun batch` outputs or API responses")
    experiments = sorted({r.experiment for r in records if r.experiment})
    if len(experiments) > 1:
        raise ReportError(f"the results come from experiments {', '.join(experiments)}; report one at a time")
    return records, notes


# -- statistics -------------------------------------------------------------------------------


def describe(values: np.ndarray) -> dict[str, Any]:
    """n, median, p10, p90 and mean (numpy's linear percentiles); only n when empty."""
    if len(values) == 0:
        return {"n": 0}
    values = np.sort(values)  # the mean's rounding must not depend on the order of the records
    p10, median, p90 = np.percentile(values, [10, 50, 90])
    return {
        "n": len(values),
        "median": float(median),
        "p10": float(p10),
        "p90": float(p90),
        "mean": float(values.mean()),
    }


def _median_shift(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(b, axis=axis) - np.median(a, axis=axis)


def bootstrap_ci(data: tuple[np.ndarray, ...], statistic: Any, *, seed: int, n_resamples: int) -> list[float] | None:
    """scipy's percentile bootstrap interval (95 %), from a generator seeded with ``seed``; None below 2 values."""
    from scipy.stats import bootstrap

    if min(len(d) for d in data) < 2:
        return None
    res = bootstrap(
        data,
        statistic,
        n_resamples=n_resamples,
        confidence_level=CONFIDENCE,
        method="percentile",
        random_state=np.random.default_rng(seed),
        batch=max(1, 4_000_000 // sum(len(d) for d in data)),  # bounded memory for large runs
    )
    return [float(res.confidence_interval.low), float(res.confidence_interval.high)]


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    from scipy.stats import spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)


def paired_comparison(a: np.ndarray, b: np.ndarray, *, seed: int, n_resamples: int) -> dict[str, Any]:
    """``b - a`` per photo: its median with a bootstrap interval, its mean, Spearman's rho and ICC(3,1)."""
    d = b - a
    if len(d) == 0:
        return {"n": 0}
    return {
        "n": len(d),
        "difference": float(np.median(d)),
        "ci95": bootstrap_ci((d,), np.median, seed=seed, n_resamples=n_resamples),
        "mean_difference": float(d.mean()),
        "spearman": spearman(a, b),
        "icc31": icc31(np.column_stack([a, b])) if len(d) >= 3 else None,
    }


def unpaired_comparison(a: np.ndarray, b: np.ndarray, *, seed: int, n_resamples: int) -> dict[str, Any]:
    """median(b) - median(a) with a bootstrap interval (each sample resampled on its own), and the mean shift."""
    if len(a) == 0 or len(b) == 0:
        return {"n": len(b), "n_baseline": len(a)}
    a, b = np.sort(a), np.sort(b)
    return {
        "n": len(b),
        "n_baseline": len(a),
        "difference": float(_median_shift(a, b)),
        "ci95": bootstrap_ci((a, b), _median_shift, seed=seed, n_resamples=n_resamples),
        "mean_difference": float(b.mean() - a.mean()),
        "spearman": None,
        "icc31": None,
    }


@dataclass
class Report:
    summary: dict[str, Any]  # JSON-safe: every figure the report shows
    samples: dict[str, dict[str, np.ndarray]]  # detector -> variant -> its ok scores
    pairs: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]  # detector -> variant -> (baseline, variant)


def build_report(
    records: list[Record],
    *,
    sources: Iterable[str] = (),
    notes: Iterable[str] = (),
    baseline: str | None = None,
    unpaired: bool = False,
    seed: int = 0,
    n_resamples: int = 9999,
    title: str | None = None,
) -> Report:
    """Every figure of the report from ``records`` (see the module docstring for the design)."""
    notes = list(notes)
    variants = sorted({r.variant for r in records})
    if baseline is None:
        baseline = variants[0]
    elif baseline not in variants:
        raise ReportError(f"--baseline {baseline}: no such variant in the results (variants: {', '.join(variants)})")
    others = [v for v in variants if v != baseline]

    by_variant: dict[str, list[Record]] = {v: [] for v in variants}
    keyed: dict[str, dict[str, Record]] = {v: {} for v in variants}
    repeats = 0
    for r in records:
        if r.key is not None:
            if r.key in keyed[r.variant]:
                repeats += 1
                continue
            keyed[r.variant][r.key] = r
        by_variant[r.variant].append(r)
    if repeats:
        notes.append(f"{repeats} record(s) repeat a photo already in the same variant (same sha256 or path): left out")
    shared = any(keyed[baseline].keys() & keyed[v].keys() for v in others)
    paired = shared and not unpaired
    if not others:
        notes.append(f"only one variant ({baseline}) in the results: score distributions only, no comparison")
    elif not paired:
        notes.append(
            (
                "compared unpaired as asked"
                if unpaired and shared
                else "no photo is in both the baseline and another variant (API responses carry no sha256 or path)"
            )
            + f": each variant against {baseline} by the {UNPAIRED_STATISTIC}"
        )

    detectors = list(dict.fromkeys(d for r in records for d in (*r.detector_status, *r.scores)))
    status: dict[str, Any] = {}
    timing: dict[str, Any] = {}
    for v, recs in by_variant.items():
        errors = Counter(r.error_code or "UNKNOWN" for r in recs if r.status != "ok")
        not_ok = {
            d: dict(Counter(r.detector_status[d] for r in recs if r.detector_status.get(d, "ok") != "ok"))
            for d in detectors
        }
        n_ok = sum(r.status == "ok" for r in recs)
        status[v] = {
            "records": len(recs),
            "ok": n_ok,
            "error": len(recs) - n_ok,
            "error_rate": (len(recs) - n_ok) / len(recs),
            "errors": dict(errors.most_common()),
            "detectors_not_ok": {d: c for d, c in not_ok.items() if c},
        }
        times = np.array([r.total_ms for r in recs if r.total_ms is not None])
        timing[v] = describe(times) if len(times) else None

    samples: dict[str, dict[str, np.ndarray]] = {}
    pairs: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    per_detector: dict[str, Any] = {}
    unscored: dict[str, list[str]] = {}  # variant -> detectors it has no score of, so no comparison
    for d in detectors:
        samples[d] = {v: np.array([r.scores[d] for r in by_variant[v] if d in r.scores]) for v in variants}
        comparison: dict[str, Any] = {}
        pairs[d] = {}
        for v in others:
            if not len(samples[d][v]) or not len(samples[d][baseline]):
                unscored.setdefault(v if len(samples[d][baseline]) else baseline, []).append(d)
                continue
            if paired:
                common = sorted(
                    k for k, r in keyed[v].items() if d in r.scores and d in keyed[baseline].get(k, _NONE).scores
                )
                a = np.array([keyed[baseline][k].scores[d] for k in common])
                b = np.array([keyed[v][k].scores[d] for k in common])
                pairs[d][v] = (a, b)
                comparison[v] = paired_comparison(a, b, seed=seed, n_resamples=n_resamples)
            else:
                comparison[v] = unpaired_comparison(
                    samples[d][baseline], samples[d][v], seed=seed, n_resamples=n_resamples
                )
        per_detector[d] = {
            "distribution": {v: describe(samples[d][v]) for v in variants},
            "comparison": comparison,
        }

    notes += [f"{v} has no {', '.join(ds)} score: not compared" for v, ds in unscored.items()]
    experiments = {r.experiment for r in records if r.experiment}
    experiment = experiments.pop() if experiments else None
    summary = {
        "title": title or "Hare Run report: " + (experiment or " vs ".join(variants)),
        "experiment": experiment,
        "inputs": [str(s) for s in sources],
        "records": len(records),
        "photos": len(set().union(*(k.keys() for k in keyed.values()))),
        "variants": variants,
        "baseline": baseline,
        "design": "paired" if paired else ("unpaired" if others else "single"),
        "statistic": PAIRED_STATISTIC if paired else UNPAIRED_STATISTIC,
        "interval": f"{CONFIDENCE * 100:.0f} % percentile bootstrap (scipy.stats.bootstrap), {n_resamples} resamples, seed {seed}",
        "seed": seed,
        "n_resamples": n_resamples,
        "status": status,
        "timing_ms": timing,
        "detectors": per_detector,
        "notes": notes,
    }
    return Report(summary, samples, pairs)


_NONE = Record(variant=None, experiment=None, key=None, status="error")


# -- rendering --------------------------------------------------------------------------------


def _num(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _ci(ci: list[float] | None) -> str:
    return "–" if ci is None else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _tables(s: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(heading, header, rows) of every table the report shows, for Markdown and HTML alike."""
    variants = s["variants"]
    status = [
        [
            v,
            str(st["records"]),
            str(st["ok"]),
            str(st["error"]),
            f"{st['error_rate']:.1%}",
            ", ".join(f"{c} {n}" for c, n in st["errors"].items()) or "–",
            "; ".join(f"{d}: " + ", ".join(f"{k} {n}" for k, n in c.items()) for d, c in st["detectors_not_ok"].items())
            or "–",
        ]
        for v, st in s["status"].items()
    ]
    tables = [
        (
            "Status per variant",
            ["variant", "records", "ok", "error", "error rate", "error codes", "detectors not ok"],
            status,
        )
    ]
    timing = [
        [v, str(t["n"]), _num(t["median"], 1), _num(t["p10"], 1), _num(t["p90"], 1), _num(t["mean"], 1)]
        for v, t in s["timing_ms"].items()
        if t
    ]
    if timing:
        tables.append(("Time per photo (ms)", ["variant", "n", "median", "p10", "p90", "mean"], timing))
    dist = [
        [det, v, str(x["n"]), _num(x.get("median")), _num(x.get("p10")), _num(x.get("p90")), _num(x.get("mean"))]
        for det, dd in s["detectors"].items()
        for v in variants
        if (x := dd["distribution"][v])["n"]
    ]
    tables.append(
        ("Score distributions (0 = clear skin)", ["detector", "variant", "n", "median", "p10", "p90", "mean"], dist)
    )
    if s["design"] != "single":
        paired = s["design"] == "paired"
        diffs = []
        for det, dd in s["detectors"].items():
            for v, c in dd["comparison"].items():
                n = str(c["n"]) if paired else f"{c['n_baseline']} / {c['n']}"
                row = [det, f"{v} − {s['baseline']}", n, _num(c.get("difference")), _ci(c.get("ci95"))]
                row.append(_num(c.get("mean_difference")))
                if paired:
                    row += [_num(c.get("spearman"), 3), _num(c.get("icc31"), 3)]
                diffs.append(row)
        head = ["detector", "difference", "pairs" if paired else "n (baseline / variant)"]
        head += ["median diff." if paired else "diff. of medians", "95 % CI", "mean diff."]
        if paired:
            head += ["Spearman ρ", "ICC(3,1)"]
        tables.append(("Paired differences per photo" if paired else "Unpaired differences", head, diffs))
    return tables


def _preamble(s: dict[str, Any]) -> list[str]:
    variants = ", ".join(f"{v} (baseline)" if v == s["baseline"] else v for v in s["variants"])
    design = {
        "paired": f"paired: {s['photos']} photos, matched across variants by sha256 (else path)",
        "unpaired": "unpaired: variants compared as independent samples",
        "single": "one variant only",
    }[s["design"]]
    lines = [
        f"Inputs: {', '.join(s['inputs']) or '–'}; {s['records']} records. Variants: {variants}. Design: {design}."
    ]
    if s["design"] != "single":
        lines.append(f"Difference: the {s['statistic']}; interval: {s['interval']}.")
    return lines


def render_markdown(report: Report) -> str:
    s = report.summary
    out = [f"# {s['title']}", "", *_preamble(s)]
    out += ["", *(f"> Note: {n}  " for n in s["notes"])] if s["notes"] else []
    for heading, head, rows in _tables(s):
        out += ["", f"## {heading}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def _svg(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def plot_detector(report: Report, detector: str) -> str:
    """A data-URI SVG: the score histogram of every variant, and with pairs the scatter of variant vs baseline."""
    import matplotlib
    from matplotlib.figure import Figure

    s = report.summary
    pairs = report.pairs.get(detector, {})
    with matplotlib.rc_context({"svg.hashsalt": "harerun-report", "svg.fonttype": "path", "font.size": 9}):
        fig = Figure(figsize=(9 if pairs else 5, 3.2))
        axes = fig.subplots(1, 2 if pairs else 1, squeeze=False)[0]
        bins = np.linspace(0, 100, 21)
        for v in s["variants"]:
            values = report.samples[detector][v]
            if len(values):
                axes[0].hist(values, bins=bins, histtype="step", linewidth=1.6, label=f"{v} (n={len(values)})")
        axes[0].set(title=f"{detector}: scores", xlabel="score", ylabel="photos", xlim=(0, 100))
        axes[0].legend(frameon=False)
        if pairs:
            ax = axes[1]
            for v, (a, b) in pairs.items():
                ax.scatter(a, b, s=10, alpha=0.6, label=f"{v} (n={len(a)})")
            ax.plot([0, 100], [0, 100], color="grey", linewidth=0.8, linestyle="--")
            ax.set(
                title=f"{detector}: per photo",
                xlabel=f"{s['baseline']} score",
                ylabel="variant score",
                xlim=(0, 100),
                ylim=(0, 100),
                aspect="equal",
            )
            ax.legend(frameon=False)
        fig.tight_layout()
        return _svg(fig)


_CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left}th{background:#f3f3f3}
.note{background:#fff7e0;border-left:4px solid #e0a800;padding:.4em .8em;margin:.4em 0}
figure{margin:0 0 1.5em}img.plot{max-width:100%;height:auto}"""


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    esc = html.escape
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{''.join(f'<th>{esc(h)}</th>' for h in head)}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: Report) -> str:
    """One self-contained page: tables, plots as inline SVG images, and every figure as JSON (``#report-data``)."""
    s = report.summary
    esc = html.escape
    parts = [f"<h1>{esc(s['title'])}</h1>", *(f"<p>{esc(line)}</p>" for line in _preamble(s))]
    parts += [f'<p class="note">{esc(n)}</p>' for n in s["notes"]]
    for heading, head, rows in _tables(s):
        parts += [f"<h2>{esc(heading)}</h2>", _html_table(head, rows)]
    parts.append("<h2>Plots</h2>")
    for det in s["detectors"]:
        uri = plot_detector(report, det)
        parts.append(
            f'<figure id="plot-{esc(det)}"><img class="plot" alt="{esc(det)} scores per variant" src="{uri}"></figure>'
        )
    data = json.dumps(s, ensure_ascii=False).replace("</", "<\\/")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        # nothing may be fetched: the page stands alone (inline styles, data: images)
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
        f"<title>{esc(s['title'])}</title><style>{_CSS}</style></head><body>"
        + "\n".join(parts)
        + f'\n<script type="application/json" id="report-data">{data}</script></body></html>\n'
    )


# -- the command ------------------------------------------------------------------------------


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingExtra(
            "harerun report draws its plots with matplotlib, which is not installed: pip install 'harerun[report]'"
        ) from None


def run_report(
    results: list[str],
    out: str | Path,
    *,
    baseline: str | None = None,
    unpaired: bool = False,
    seed: int = 0,
    n_resamples: int = 9999,
    title: str | None = None,
) -> int:
    """Write the HTML report to ``out`` and print the Markdown summary; the exit code."""
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ReportError(f"--out {out}: the report is HTML; name it REPORT.html")
    if n_resamples < 100:
        raise ReportError(f"--resamples {n_resamples}: use at least 100 (default 9999)")
    _require_matplotlib()
    records, notes = read_results(results)
    report = build_report(
        records,
        sources=results,
        notes=notes,
        baseline=baseline,
        unpaired=unpaired,
        seed=seed,
        n_resamples=n_resamples,
        title=title,
    )
    page = render_html(report)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:
        raise ReportError(f"--out {out}: cannot write the report ({exc.strerror or exc})") from None
    print(render_markdown(report), end="")
    print(f"harerun report: written to {out}", file=sys.stderr)
    return 0
