"""`harerun report`: its figures against a direct computation, every accepted input, bad input, and the page
in headless Chromium (plots visible, nothing fetched).

Synthetic runs are real `harerun batch` records (one photo with a face, one without) copied with known scores,
so every field has the shape the runner writes. The paired `skin-ab` run over the val split needs ../shared.
Chromium tests need Debian's ``chromium`` and the ``playwright`` package (never ``playwright install``).
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.stats import bootstrap, spearmanr

from harerun.report import build_report, read_results
from harerun.results import DetectorResult, severity_for
from harerun.testing import FAST_PIPELINE, chromium, run_cli

REPO = Path(__file__).resolve().parents[1]
SEED, RESAMPLES = 7, 2000


# -- direct computations -----------------------------------------------------------------------


def icc31_two_raters(a: np.ndarray, b: np.ndarray) -> float:
    """ICC(3,1) for two raters by its closed form 2 s_ab / (s_a^2 + s_b^2): with k = 2,
    BMS = var((a+b)/2) * 2 = (s_a^2 + s_b^2 + 2 s_ab) / 2 and EMS = var(a-b) / 2 = (s_a^2 + s_b^2 - 2 s_ab) / 2."""
    cov = np.cov(a, b, ddof=1)
    return 2 * cov[0, 1] / (cov[0, 0] + cov[1, 1])


def paired_expected(recs_a: list[dict], recs_b: list[dict], detector: str) -> dict:
    """The paired figures computed here: photos matched by sha256, in sha256 order; B - A."""
    a_by = {r["sha256"]: r for r in recs_a if r["status"] == "ok"}
    b_by = {r["sha256"]: r for r in recs_b if r["status"] == "ok"}
    keys = sorted(k for k in a_by.keys() & b_by.keys() if _ok(a_by[k], detector) and _ok(b_by[k], detector))
    a = np.array([a_by[k]["results"][detector]["score"] for k in keys])
    b = np.array([b_by[k]["results"][detector]["score"] for k in keys])
    d = b - a
    ci = bootstrap(
        (d,), np.median, n_resamples=RESAMPLES, method="percentile", random_state=np.random.default_rng(SEED)
    ).confidence_interval
    return {
        "n": len(d),
        "difference": np.median(d),
        "ci95": [ci.low, ci.high],
        "mean_difference": d.mean(),
        "spearman": spearmanr(a, b).statistic,
        "icc31": icc31_two_raters(a, b),
    }


def _ok(record: dict, detector: str) -> bool:
    r = record["results"].get(detector)
    return r is not None and r["status"] == "ok" and r["score"] is not None


def assert_figures(got: dict, want: dict) -> None:
    assert got["n"] == want["n"]
    for key in ("difference", "mean_difference", "spearman", "icc31"):
        assert got[key] == pytest.approx(want[key], abs=1e-9), key
    assert got["ci95"] == pytest.approx(want["ci95"], abs=1e-9)


def page_data(html: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)[1])


def markdown_row(markdown: str, *cells: str) -> list[str]:
    """The cells of the one Markdown table row starting with ``cells``."""
    rows = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in markdown.splitlines()
        if line.startswith("| " + " | ".join(cells) + " |")
    ]
    assert len(rows) == 1, (cells, markdown)
    return rows[0]


# -- synthetic runs from real records ------------------------------------------------------------


@pytest.fixture(scope="module")
def real_records(tmp_path_factory, astronaut_bgr):
    """One ok and one NO_FACE record from a real `harerun batch` run (two detectors, Haar face)."""
    d = tmp_path_factory.mktemp("report-run")
    cv2.imwrite(str(d / "face.jpg"), astronaut_bgr)
    cv2.imwrite(str(d / "grey.png"), np.full((300, 300, 3), 120, np.uint8))
    (d / "fast.yaml").write_text(FAST_PIPELINE)
    out = run_cli("batch", d / "face.jpg", d / "grey.png", "--out", d / "run.jsonl", "--pipeline", d / "fast.yaml")
    assert out.returncode == 3, out.stderr
    recs = {r["status"]: r for r in map(json.loads, (d / "run.jsonl").read_text().splitlines())}
    assert recs["ok"]["results"]["acne"]["status"] == "ok" and recs["error"]["error"]["code"] == "NO_FACE"
    return recs


def synthetic(template: dict, *, i: int, variant: str, scores: dict[str, float | None], total_ms: float) -> dict:
    """The real ok record as photo ``i`` of ``variant`` with these detector scores (None: the detector failed)."""
    r = copy.deepcopy(template)
    r["path"] = f"/photos/p{i:03d}.jpg"
    r["sha256"] = hashlib.sha256(r["path"].encode()).hexdigest()
    r.update(experiment="skin-ab", variant=variant, pipeline={"A": "default", "B": "fast"}[variant])
    for det, score in scores.items():
        if score is None:
            r["results"][det] = DetectorResult(status="error", message="synthetic failure").model_dump(mode="json")
        else:
            r["results"][det].update(score=round(score, 2), severity=severity_for(score))
    r["timings_ms"]["total"] = total_ms
    return r


def failed(template: dict, *, i: int, variant: str) -> dict:
    r = copy.deepcopy(template)
    r["path"] = f"/photos/p{i:03d}.jpg"
    r["sha256"] = hashlib.sha256(r["path"].encode()).hexdigest()
    r.update(experiment="skin-ab", variant=variant, pipeline={"A": "default", "B": "fast"}[variant])
    return r


@pytest.fixture(scope="module")
def ab_run(real_records):
    """40 photos in A and B: B's acne is A's + 3 +- noise, redness unrelated; photo 5 has no face in B and
    photo 9's redness failed in A. B's records come in another order."""
    rng = np.random.default_rng(3)
    acne = rng.uniform(0, 80, 40)
    a_recs, b_recs = [], []
    for i in range(40):
        red_a = None if i == 9 else float(rng.uniform(0, 60))
        a_recs.append(
            synthetic(
                real_records["ok"], i=i, variant="A", scores={"acne": acne[i], "redness": red_a}, total_ms=100 + i
            )
        )
        if i == 5:
            b_recs.append(failed(real_records["error"], i=i, variant="B"))
            continue
        b = {"acne": float(np.clip(acne[i] + 3 + rng.normal(0, 4), 0, 100)), "redness": float(rng.uniform(0, 60))}
        b_recs.append(synthetic(real_records["ok"], i=i, variant="B", scores=b, total_ms=50 + i / 2))
    return a_recs, b_recs[::-1]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


# -- figures ---------------------------------------------------------------------------------------


def test_paired_figures_match_a_direct_computation(ab_run, tmp_path):
    a_recs, b_recs = ab_run
    files = [write_jsonl(tmp_path / "a.jsonl", a_recs), write_jsonl(tmp_path / "b.jsonl", b_recs)]
    out = run_cli("report", *files, "--out", tmp_path / "r.html", "--seed", SEED, "--resamples", RESAMPLES)
    assert out.returncode == 0, out.stderr
    data = page_data((tmp_path / "r.html").read_text())
    assert data["design"] == "paired" and data["variants"] == ["A", "B"] and data["baseline"] == "A"
    assert data["experiment"] == "skin-ab" and data["photos"] == 40

    for det in ("acne", "redness"):
        want = paired_expected(a_recs, b_recs, det)
        got = data["detectors"][det]["comparison"]["B"]
        assert_figures(got, want)
        row = markdown_row(out.stdout, det, "B − A")
        assert row[2:5] == [
            str(want["n"]),
            f"{want['difference']:.2f}",
            f"[{want['ci95'][0]:.2f}, {want['ci95'][1]:.2f}]",
        ]
        assert row[6:8] == [f"{want['spearman']:.3f}", f"{want['icc31']:.3f}"]
    assert data["detectors"]["acne"]["comparison"]["B"]["n"] == 39  # photo 5 failed in B
    assert data["detectors"]["redness"]["comparison"]["B"]["n"] == 38  # and photo 9's redness in A
    acne = data["detectors"]["acne"]["comparison"]["B"]
    assert 1 < acne["difference"] < 5 and acne["ci95"][0] < 3 < acne["ci95"][1] and acne["icc31"] > 0.9
    assert abs(data["detectors"]["redness"]["comparison"]["B"]["spearman"]) < 0.5

    scores_a = np.array([r["results"]["acne"]["score"] for r in a_recs])
    dist = data["detectors"]["acne"]["distribution"]["A"]
    assert dist["n"] == 40 and dist["median"] == pytest.approx(np.median(scores_a))
    assert [dist["p10"], dist["p90"]] == pytest.approx(np.percentile(scores_a, [10, 90]))
    assert markdown_row(out.stdout, "acne", "A")[2:6] == [
        "40",
        *(f"{v:.2f}" for v in (np.median(scores_a), *np.percentile(scores_a, [10, 90]))),
    ]
    assert data["status"]["B"] == {
        "records": 40,
        "ok": 39,
        "error": 1,
        "error_rate": 1 / 40,
        "errors": {"NO_FACE": 1},
        "detectors_not_ok": {},
    }
    assert data["status"]["A"]["detectors_not_ok"] == {"redness": {"error": 1}}
    assert markdown_row(out.stdout, "B", "40")[1:6] == ["40", "39", "1", "2.5%", "NO_FACE 1"]
    times_b = [50 + i / 2 for i in range(40) if i != 5]
    assert data["timing_ms"]["B"]["median"] == pytest.approx(np.median(times_b))
    assert markdown_row(out.stdout, "B", "39")[2] == f"{np.median(times_b):.1f}"


def test_pairs_by_path_without_sha256_and_ignores_record_order(ab_run):
    a_recs, b_recs = ab_run
    strip = [{**r, "sha256": None} for r in a_recs + b_recs]
    records, _ = read_results_from(strip)
    shuffled, _ = read_results_from(strip[::-1])
    one = build_report(records, seed=SEED, n_resamples=RESAMPLES).summary
    two = build_report(shuffled, seed=SEED, n_resamples=RESAMPLES).summary
    assert one["design"] == "paired" and one["detectors"] == two["detectors"]
    with_sha = build_report(read_results_from(a_recs + b_recs)[0], seed=SEED, n_resamples=RESAMPLES).summary
    for det in ("acne", "redness"):  # the same pairs, whichever key matched them (the interval follows key order)
        by_path, by_sha = one["detectors"][det], with_sha["detectors"][det]
        assert by_path["distribution"] == by_sha["distribution"]
        assert {k: v for k, v in by_path["comparison"]["B"].items() if k != "ci95"} == pytest.approx(
            {k: v for k, v in by_sha["comparison"]["B"].items() if k != "ci95"}, abs=1e-12
        )


def read_results_from(records: list[dict]):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return read_results([write_jsonl(Path(d) / "r.jsonl", records)])


def test_csv_and_parquet_outputs_give_the_same_figures(ab_run, tmp_path):
    from harerun.batch import csv_columns, flatten

    a_recs, b_recs = ab_run
    cols = csv_columns(["acne", "redness"])
    with open(tmp_path / "ab.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        w.writerows([["" if v is None else v for v in flatten(r, cols)] for r in a_recs + b_recs])
    pa = pytest.importorskip("pyarrow", reason="pip install 'harerun[parquet]'")
    import pyarrow.parquet as pq

    rows = [dict(zip(cols, flatten(r, cols), strict=True)) | {"record": json.dumps(r)} for r in a_recs + b_recs]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "ab.parquet")
    flat_only = [dict(zip(cols, flatten(r, cols), strict=True)) for r in a_recs + b_recs]
    pq.write_table(pa.Table.from_pylist(flat_only), tmp_path / "flat.parquet")

    def figures(path):
        records, _ = read_results([path])
        return build_report(records, seed=SEED, n_resamples=RESAMPLES).summary

    jsonl = figures(write_jsonl(tmp_path / "ab.jsonl", a_recs + b_recs))
    for path in (tmp_path / "ab.csv", tmp_path / "ab.parquet", tmp_path / "flat.parquet"):
        got = figures(path)
        assert got["detectors"] == jsonl["detectors"] and got["status"] == jsonl["status"], path
    assert figures(tmp_path / "ab.parquet")["timing_ms"] == jsonl["timing_ms"]
    assert figures(tmp_path / "ab.csv")["timing_ms"] == {"A": None, "B": None}  # CSV has no timings


def test_unpaired_api_responses(ab_run, tmp_path):
    """API response bodies carry no photo key: the variants are compared as independent samples."""
    from harerun.api.schemas import AnalyzeResponse

    a_recs, b_recs = ab_run
    lines = []
    for r in a_recs + b_recs:
        if r["status"] == "error":  # the API's error body
            lines.append({"error": {k: r["error"][k] for k in ("code", "message")}})
            continue
        body = {k: v for k, v in r.items() if k not in ("path", "sha256", "status", "experiment")}
        body["variant"] = f"skin-ab:{r['variant']}"  # as the engine names an assigned variant
        body["assigned_by"] = "photo"  # no subject id sent: the API assigns by the photo's hash
        lines.append(AnalyzeResponse.model_validate(body).model_dump(mode="json"))
    path = write_jsonl(tmp_path / "api.jsonl", lines)
    out = run_cli("report", path, "--out", tmp_path / "r.html", "--seed", SEED, "--resamples", RESAMPLES)
    assert out.returncode == 0, out.stderr
    data = page_data((tmp_path / "r.html").read_text())
    assert data["design"] == "unpaired" and data["variants"] == ["A", "B"] and data["experiment"] == "skin-ab"
    assert any("API error bodies" in n for n in data["notes"]) and data["records"] == 79

    a = np.sort([r["results"]["acne"]["score"] for r in a_recs])
    b = np.sort([r["results"]["acne"]["score"] for r in b_recs if r["status"] == "ok"])

    def shift(x, y, axis=-1):
        return np.median(y, axis=axis) - np.median(x, axis=axis)

    ci = bootstrap(
        (a, b), shift, n_resamples=RESAMPLES, method="percentile", random_state=np.random.default_rng(SEED)
    ).confidence_interval
    got = data["detectors"]["acne"]["comparison"]["B"]
    assert got["n"] == 39 and got["n_baseline"] == 40 and got["spearman"] is None and got["icc31"] is None
    assert got["difference"] == pytest.approx(np.median(b) - np.median(a), abs=1e-9)
    assert got["ci95"] == pytest.approx([ci.low, ci.high], abs=1e-9)
    assert got["mean_difference"] == pytest.approx(b.mean() - a.mean(), abs=1e-9)
    row = markdown_row(out.stdout, "acne", "B − A")
    assert row[2:5] == ["40 / 39", f"{np.median(b) - np.median(a):.2f}", f"[{ci.low:.2f}, {ci.high:.2f}]"]


def test_plain_runs_compare_as_pipelines_and_their_error_records_count(real_records, tmp_path):
    """Two `harerun batch` runs without an experiment: each file's pipeline is its variant, errors included."""

    def plain(r, pipeline):
        return {**r, "experiment": None, "variant": None, "pipeline": pipeline if r["status"] == "ok" else None}

    fast = write_jsonl(tmp_path / "fast.jsonl", [plain(real_records["ok"], "fast"), plain(real_records["error"], "x")])
    full = write_jsonl(tmp_path / "full.jsonl", [plain(real_records["ok"], "full")])
    records, _ = read_results([fast, full])
    summary = build_report(records, baseline="full", n_resamples=200).summary
    assert summary["variants"] == ["fast", "full"] and summary["design"] == "paired"
    assert summary["status"]["fast"]["errors"] == {"NO_FACE": 1}
    assert summary["detectors"]["acne"]["comparison"]["fast"]["difference"] == 0.0


def test_one_variant_is_still_a_report_with_a_note(ab_run, tmp_path):
    a_recs, _ = ab_run
    out = run_cli("report", write_jsonl(tmp_path / "a.jsonl", a_recs), "--out", tmp_path / "r.html")
    assert out.returncode == 0, out.stderr
    assert "only one variant (A)" in out.stdout and "Score distributions" in out.stdout
    assert "differences" not in out.stdout.lower()
    data = page_data((tmp_path / "r.html").read_text())
    assert data["design"] == "single" and data["detectors"]["acne"]["comparison"] == {}


# -- bad input ----------------------------------------------------------------------------------------


def test_bad_input_exits_2_with_the_reason(ab_run, tmp_path):
    a_recs, b_recs = ab_run
    good = write_jsonl(tmp_path / "good.jsonl", a_recs + b_recs)
    html = tmp_path / "r.html"
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "bad.jsonl").write_text(json.dumps(a_recs[0]) + "\n{oops\n" + json.dumps(a_recs[1]) + "\n")
    (tmp_path / "other.jsonl").write_text('{"hello": 1}\n')
    (tmp_path / "results.txt").write_text("x")
    (tmp_path / "not-batch.csv").write_text("a,b\n1,2\n")
    two_experiments = [{**a_recs[0], "experiment": "other-ab"}, a_recs[1]]
    cases = [
        ((tmp_path / "missing.jsonl", "--out", html), "no such file"),
        ((tmp_path, "--out", html), "is a directory"),
        ((tmp_path / "empty.jsonl", "--out", html), "no records"),
        ((tmp_path / "bad.jsonl", "--out", html), "bad.jsonl:2: not JSON"),
        ((tmp_path / "other.jsonl", "--out", html), "neither a batch record nor an analysis response"),
        ((tmp_path / "results.txt", "--out", html), "unsupported format"),
        ((tmp_path / "not-batch.csv", "--out", html), "no `status` column"),
        ((write_jsonl(tmp_path / "two.jsonl", two_experiments), "--out", html), "report one at a time"),
        ((good, "--out", html, "--baseline", "C"), "no such variant"),
        ((good, "--out", tmp_path / "r.txt"), "REPORT.html"),
        ((good, "--out", tmp_path / "r.html", "--resamples", "5"), "at least 100"),
    ]
    for args, reason in cases:
        out = run_cli("report", *args)
        assert out.returncode == 2 and reason in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr and not html.exists()
    (tmp_path / "file").write_text("")
    out = run_cli("report", good, "--out", tmp_path / "file" / "r.html")
    assert out.returncode == 2 and "cannot write the report" in out.stderr


def test_a_torn_last_line_is_skipped_with_a_note(ab_run, tmp_path):
    a_recs, b_recs = ab_run
    path = tmp_path / "torn.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in a_recs + b_recs) + json.dumps(a_recs[0])[:50])
    out = run_cli("report", path, "--out", tmp_path / "r.html")
    assert out.returncode == 0, out.stderr
    assert "cut short" in out.stdout and page_data((tmp_path / "r.html").read_text())["records"] == 80


def test_without_matplotlib_the_error_names_the_extra(ab_run, tmp_path):
    import subprocess
    import sys

    path = write_jsonl(tmp_path / "a.jsonl", ab_run[0])
    code = (
        "import sys; sys.modules['matplotlib'] = None; from harerun.cli import main; "
        f"sys.exit(main(['report', {str(path)!r}, '--out', {str(tmp_path / 'r.html')!r}]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "pip install 'harerun[report]'" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "r.html").exists()


# -- the page in headless Chromium ----------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def open_report(browser, path: Path, screenshot: Path):
    """The report at file://``path`` with every request but file: and data: blocked; (page, blocked URLs).
    Asserts every plot is loaded, visible and not blank, and saves a full-page screenshot."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    blocked: list[str] = []
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        url = r.request.url
        if url.startswith(("file:", "data:")):
            r.continue_()
        else:
            blocked.append(url)
            r.abort()

    page.route("**/*", route)
    page.on("request", lambda req: None if req.url.startswith(("file:", "data:")) else blocked.append(req.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    plots = page.query_selector_all("img.plot")
    assert plots
    for img in plots:
        assert img.evaluate("i => i.complete && i.naturalWidth > 300 && i.naturalHeight > 150"), img
        img.scroll_into_view_if_needed()
        assert img.is_visible() and img.bounding_box()["width"] > 300
        shot = cv2.imdecode(np.frombuffer(img.screenshot(), np.uint8), cv2.IMREAD_GRAYSCALE)
        assert (shot < 200).mean() > 0.01, "a plot is blank"  # axes, bars and labels are drawn
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot), full_page=True)
    assert not errors, errors
    return page, blocked


def test_report_opens_in_chromium_with_its_plots(browser, ab_run, tmp_path):
    a_recs, b_recs = ab_run
    files = [write_jsonl(tmp_path / "a.jsonl", a_recs), write_jsonl(tmp_path / "b.jsonl", b_recs)]
    out = run_cli("report", *files, "--out", tmp_path / "r.html", "--seed", SEED, "--resamples", RESAMPLES)
    assert out.returncode == 0, out.stderr
    page, blocked = open_report(browser, tmp_path / "r.html", tmp_path / "report.png")
    assert not blocked, blocked
    assert len(page.query_selector_all("img.plot")) == 2  # acne and redness
    want = paired_expected(a_recs, b_recs, "acne")
    cells = page.eval_on_selector_all("table tr", "trs => trs.map(tr => [...tr.cells].map(c => c.textContent))")
    row = next(c for c in cells if c[:2] == ["acne", "B − A"])
    assert row[3:5] == [f"{want['difference']:.2f}", f"[{want['ci95'][0]:.2f}, {want['ci95'][1]:.2f}]"]
    page.close()


@pytest.mark.shared
@pytest.mark.slow
def test_paired_skin_ab_run_over_the_val_split(shared, browser, tmp_path):
    """The issue's target: `harerun batch --pipeline skin-ab --all-variants` over the val close-ups, then
    `harerun report`; the page opens with its plots and its figures match a direct computation.
    The screenshot is saved to build/report.png."""
    with open(shared / "data/acne/labels.csv", newline="") as f:
        val = [shared / "data/acne/images" / r["image"] for r in csv.DictReader(f) if r["split"] == "val"]
    listing = tmp_path / "val.txt"
    listing.write_text("".join(f"{p}\n" for p in val))
    run = tmp_path / "ab.jsonl"
    out = run_cli(
        "batch",
        f"@{listing}",
        "--pipeline",
        "skin-ab",
        "--all-variants",
        "--out",
        run,
        "--quiet",
        cwd=REPO,
        timeout=1800,
    )
    assert out.returncode in (0, 3), out.stderr  # 3: some photo has no face for a variant
    records = [json.loads(line) for line in run.read_text().splitlines()]
    assert len(records) == 2 * len(val)

    report = tmp_path / "report.html"
    out = run_cli("report", run, "--out", report, "--seed", SEED, "--resamples", RESAMPLES)
    assert out.returncode == 0, out.stderr
    data = page_data(report.read_text())
    assert data["design"] == "paired" and data["photos"] == len(val) and data["experiment"] == "skin-ab"
    a_recs = [r for r in records if r["variant"] == "A"]
    b_recs = [r for r in records if r["variant"] == "B"]
    for v, recs in (("A", a_recs), ("B", b_recs)):
        ok = sum(r["status"] == "ok" for r in recs)
        assert data["status"][v]["ok"] == ok and data["status"][v]["error_rate"] == pytest.approx(1 - ok / len(val))
    compared = data["detectors"]["acne"]["comparison"]
    assert set(compared) == {"B"}
    for det, dd in data["detectors"].items():
        if "B" in dd["comparison"]:
            assert_figures(dd["comparison"]["B"], paired_expected(a_recs, b_recs, det))

    page, blocked = open_report(browser, report, REPO / "build" / "report.png")
    assert not blocked, blocked
    assert len(page.query_selector_all("img.plot")) == len(data["detectors"])
    page.close()


def test_the_docs_recipe_reproduces_the_paired_acne_row(ab_run, tmp_path, monkeypatch, capsys):
    """docs/report.md's "Reproducing a figure" snippet, run as written on a paired run."""
    a_recs, b_recs = ab_run
    path = write_jsonl(tmp_path / "ab.jsonl", a_recs + b_recs)
    snippet = re.search(r"```python\n(.*?)```", (REPO / "docs" / "report.md").read_text(), re.S)[1]
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "docs/report.md", "exec"), {})
    printed = [float(x) for x in capsys.readouterr().out.split()]
    got = build_report(read_results([path])[0]).summary["detectors"]["acne"]["comparison"]["B"]
    assert printed == pytest.approx([got["difference"], *got["ci95"]], abs=1e-9)
