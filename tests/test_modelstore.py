"""Model store without S3: manifest, local directory, cache, explicit paths, checksums, status, CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from harerun import store_cli
from harerun.modelstore import (
    InvalidModelSpec,
    ModelStore,
    ModelUnavailable,
    ResolvedModel,
    parse_spec,
    record_load,
    sha256_file,
)

REPO = Path(__file__).resolve().parents[1]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest(folder: Path, entries: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / "models.yaml"
    p.write_text(yaml.safe_dump({"models": entries}))
    return p


@pytest.fixture
def layout(tmp_path: Path):
    """A models dir with two versions of 'toy', a cache dir, and the store over them."""
    models, cache = tmp_path / "models", tmp_path / "cache"
    v1, v2 = b"toy model v1", b"toy model v2 bytes"
    _manifest(
        models,
        [
            {"name": "toy", "version": "1", "file": "toy-1.bin", "sha256": _sha(v1)},
            {"name": "toy", "version": "2", "file": "toy-2.bin", "sha256": _sha(v2)},
        ],
    )
    (models / "toy-1.bin").write_bytes(v1)
    (models / "toy-2.bin").write_bytes(v2)
    store = ModelStore(models, cache, manifests=[models / "models.yaml"])
    return store, models, cache, v1, v2


def test_parse_spec():
    assert parse_spec("acne-grade@1") == ("acne-grade", "1")
    assert parse_spec("yunet") == ("yunet", None)
    for bad in ("", "Acne", "acne@", "@1", "a b", "acne@1@2", "../x"):
        with pytest.raises(InvalidModelSpec) as e:
            parse_spec(bad)
        assert e.value.exit_code == 2 and "name@version" in e.value.reason


def test_resolve_local_with_and_without_version(layout):
    store, models, _, v1, v2 = layout
    m = store.resolve("toy@1")
    assert (m.name, m.version, m.source, m.path) == ("toy", "1", "local", models / "toy-1.bin")
    assert m.sha256 == _sha(v1) and m.size_bytes == len(v1)
    latest = store.resolve("toy")  # no version: the last entry listed
    assert latest.version == "2" and latest.sha256 == _sha(v2)


def test_local_checksum_mismatch_is_not_used(layout):
    store, models, _, _, _ = layout
    (models / "toy-1.bin").write_bytes(b"tampered")
    with pytest.raises(ModelUnavailable) as e:
        store.resolve("toy@1")
    assert "checksum mismatch" in e.value.reason and "toy-1.bin" in e.value.reason
    assert e.value.code == "MODEL_UNAVAILABLE" and e.value.exit_code == 4


def test_cache_is_used_when_local_is_missing_or_bad(layout):
    store, models, cache, v1, _ = layout
    cached = cache / "toy" / "1" / "toy-1.bin"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(v1)
    (models / "toy-1.bin").write_bytes(b"tampered")
    m = store.resolve("toy@1")
    assert m.source == "cache" and m.path == cached
    cached.write_bytes(b"also tampered")
    with pytest.raises(ModelUnavailable) as e:
        store.resolve("toy@1")
    assert e.value.reason.count("checksum mismatch") == 2


def test_unlisted_model_in_cache_needs_a_sidecar(tmp_path):
    cache = tmp_path / "cache"
    f = cache / "extra" / "7" / "extra.onnx"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"abc")
    store = ModelStore(None, cache, manifests=[])
    with pytest.raises(ModelUnavailable) as e:
        store.resolve("extra@7")
    assert "no checksum" in e.value.reason
    (f.parent / "extra.onnx.sha256").write_text(f"{_sha(b'abc')}  extra.onnx\n")
    assert store.resolve("extra@7").source == "cache"
    assert store.resolve("extra").version == "7"  # highest cached version
    (f.parent / "extra.onnx.sha256").write_text(f"{_sha(b'xyz')}  extra.onnx\n")
    with pytest.raises(ModelUnavailable, match="checksum mismatch"):
        store.resolve("extra@7")


def test_explicit_path_wins_and_missing_path_is_reported(layout, tmp_path):
    store, *_ = layout
    own = tmp_path / "mine.keras"
    own.write_bytes(b"my own model")
    m = store.resolve("toy@1", path=own)
    assert (m.source, m.path, m.sha256) == ("local", own, _sha(b"my own model"))
    with pytest.raises(ModelUnavailable, match="does not exist"):
        store.resolve("toy@1", path=tmp_path / "nope.keras")


def test_nothing_anywhere_says_what_was_tried(layout):
    store, *_ = layout
    with pytest.raises(ModelUnavailable) as e:
        store.resolve("ghost@3")
    r = e.value.reason
    assert "not listed in any manifest" in r and "cache:" in r and "HARERUN_S3_BUCKET" in r
    with pytest.raises(ModelUnavailable, match="HARERUN_S3_BUCKET"):
        store.fetch("toy@1")  # fetch goes to the cache / S3 only


def test_status_is_json_native_and_shows_load_time(layout):
    store, models, *_ = layout
    (models / "toy-2.bin").unlink()
    m = store.resolve("toy@1")
    record_load(m, 12.345)
    rows = {r["name"] + "@" + str(r["version"]): r for r in store.status(["toy@1", "toy@2", "Bad@"])}
    json.dumps(list(rows.values()))
    assert rows["toy@1"]["available"] and rows["toy@1"]["source"] == "local" and rows["toy@1"]["load_ms"] == 12.35
    assert not rows["toy@2"]["available"] and "not found" in rows["toy@2"]["reason"]
    assert not rows["Bad@@None"]["available"] and "not a model spec" in rows["Bad@@None"]["reason"]
    assert [r["version"] for r in store.status()] == ["1", "2"]  # default: every manifest entry


def test_status_and_resolve_give_the_same_reasons(layout):
    """One look-up behind resolve and status: the same places tried, in the same words."""
    store, *_ = layout
    with pytest.raises(ModelUnavailable) as e:
        store.resolve("ghost@3")
    assert store.status(["ghost@3"])[0]["reason"] == e.value.reason
    with_bucket = ModelStore(store.model_dir, store.cache_dir, s3_bucket="b", manifests=store.manifest_paths)
    row = with_bucket.status(["ghost@3"], remote=False)[0]  # S3 not asked
    assert not row["available"] and row["reason"].endswith("; s3: not downloaded from s3://b")


def test_from_env(monkeypatch, tmp_path, layout):
    _, models, cache, _, _ = layout
    monkeypatch.setenv("HARERUN_MODEL_DIR", str(models))
    monkeypatch.setenv("HARERUN_CACHE_DIR", str(cache))
    monkeypatch.setenv("HARERUN_S3_BUCKET", "bucket-x")
    monkeypatch.setenv("HARERUN_S3_PREFIX", "/team/models/")
    monkeypatch.setenv("HARERUN_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    s = ModelStore.from_env()
    assert (s.model_dir, s.cache_dir, s.s3_bucket, s.s3_endpoint_url) == (
        models,
        cache,
        "bucket-x",
        "http://127.0.0.1:9",
    )
    assert s.s3_key("toy", "1", "toy-1.bin") == "team/models/toy/1/toy-1.bin"
    assert s.resolve("toy@1").source == "local"
    # the repository manifest is always consulted, so yunet's checksum is known wherever its file lives
    assert s.entry("yunet", "2023mar").sha256.startswith("8f2383e4")


def test_default_model_dir_is_the_repo_models_folder(monkeypatch, tmp_path):
    for var in ("HARERUN_MODEL_DIR", "HARERUN_CACHE_DIR", "HARERUN_S3_BUCKET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no ./models here
    s = ModelStore.from_env()
    assert s.model_dir == REPO / "models" and s.s3_bucket is None


def test_shipped_models_stay_found_when_model_dir_points_elsewhere(monkeypatch, tmp_path):
    monkeypatch.setenv("HARERUN_MODEL_DIR", str(tmp_path / "only-yunet"))
    monkeypatch.setenv("HARERUN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HARERUN_S3_BUCKET", raising=False)
    (tmp_path / "only-yunet").mkdir()
    m = ModelStore.from_env().resolve("acne-grade@1")
    assert m.source == "local" and m.path == REPO / "models" / "acne-grade-1.tflite"


def test_repo_manifest_lists_the_committed_models():
    s = ModelStore(REPO / "models", manifests=[REPO / "models" / "models.yaml"])
    names = {(e.name, e.version) for e in s.entries}
    assert ("yunet", "2023mar") in names
    for e in s.entries:
        assert e.sha256 and len(e.sha256) == 64
        f = REPO / "models" / e.file
        if e.extra.get("committed", True):
            assert f.is_file(), f"{f} is listed as committed but missing"
            assert sha256_file(f) == e.sha256
            assert f.stat().st_size <= 10 * 1024 * 1024


@pytest.mark.shared
def test_yunet_resolves_from_the_shared_models_folder(shared, tmp_path):
    s = ModelStore(shared / "models", tmp_path, manifests=[REPO / "models" / "models.yaml"])
    m = s.resolve("yunet@2023mar")
    assert isinstance(m, ResolvedModel) and m.source == "local" and m.size_bytes == 232589
    assert m.path.name == "face_detection_yunet_2023mar.onnx"


def test_cli_status_list_and_exit_codes(layout, monkeypatch, capsys):
    _, models, cache, _, _ = layout
    monkeypatch.setenv("HARERUN_MODEL_DIR", str(models))
    monkeypatch.setenv("HARERUN_CACHE_DIR", str(cache))
    monkeypatch.delenv("HARERUN_S3_BUCKET", raising=False)
    assert store_cli.main(["models", "status", "toy@1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["available"] and rows[0]["source"] == "local"
    assert store_cli.main(["models", "status", "ghost@1"]) == 4
    assert "UNAVAILABLE" in capsys.readouterr().out
    assert store_cli.main(["models", "status", "Bad@"]) == 2
    capsys.readouterr()
    assert store_cli.main(["models", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"toy", "yunet"} <= {m["name"] for m in listed["models"]}
    assert store_cli.main(["models", "fetch", "toy@1"]) == 4
    assert "HARERUN_S3_BUCKET" in capsys.readouterr().err
    assert store_cli.main(["models", "publish", str(models / "nope.bin"), "--name", "toy", "--version", "3"]) == 2


def test_loaded_models_load_once_and_remember_failures_for_a_while(monkeypatch):
    from harerun.modelstore import LoadedModels, ModelUnavailable, loaded

    calls = []
    cache = LoadedModels(retry_after_s=30.0)
    assert cache.get("a", lambda: calls.append("a") or "model-a") == "model-a"
    assert cache.get("a", lambda: calls.append("again") or "other") == "model-a" and calls == ["a"]

    def fail():
        calls.append("fail")
        raise ModelUnavailable("not there", name="x", version="1")

    now = [1000.0]
    monkeypatch.setattr(loaded.time, "monotonic", lambda: now[0])
    for _ in range(2):
        with pytest.raises(ModelUnavailable):
            cache.get("b", fail)
    assert calls.count("fail") == 1  # remembered: no second attempt within the window
    now[0] += 31.0
    assert cache.get("b", lambda: "model-b") == "model-b"  # tried again after it
    cache.clear()
    assert cache.get("a", lambda: "reloaded") == "reloaded"
