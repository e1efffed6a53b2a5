"""The container (#15 item 2), checked without a container engine.

The Dockerfile is hadolint-clean and compose.yaml follows the Compose Specification; every
``HARERUN_*`` they set is a real setting. The environment the Dockerfile describes is built
here from its own lines — the build context filtered by ``.dockerignore``, each stage's
``ARG``/``WORKDIR``/``COPY``/``ENV``, the build stage's ``RUN`` lines run by ``/bin/sh`` —
with every absolute path moved under a temporary root; then its ``ENTRYPOINT`` serves the
``HEALTHCHECK`` path and an analysis, as ``docker run`` would. The final stage's ``RUN`` (user
creation) needs root and is not run. compose.yaml's model jobs run against moto standing in
for MinIO. The pip cache is used, as the Dockerfile's cache mount does.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "compose.yaml"
#: The base image's PATH (python:*-slim); ``python`` on it is this interpreter's base.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (it is in requirements-dev.txt; `make test` installs it)")
    return path


def test_dockerfile_is_hadolint_clean():
    done = subprocess.run([_tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_file_follows_the_compose_specification():
    cmd = [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_harerun_variable_they_set_is_one_the_code_reads():
    from harerun.api.settings import Settings

    known = {f"HARERUN_{name.upper()}" for name in Settings.model_fields}
    for src in [REPO / "core" / "src", *REPO.glob("plugins/*/src")]:
        for py in src.rglob("*.py"):
            known |= set(re.findall(r"HARERUN_[A-Z0-9_]+", py.read_text()))
    used = set(re.findall(r"HARERUN_[A-Z0-9_]+", DOCKERFILE.read_text() + COMPOSE.read_text()))
    assert {"HARERUN_ANALYSIS_PROCESSES", "HARERUN_S3_BUCKET", "HARERUN_MODEL_DIR"} <= used
    assert used - known == set()


# -- the Dockerfile, read and followed --------------------------------------------------------


def _dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]


def _pattern(pat: str) -> re.Pattern:
    """Docker's .dockerignore match: ``*`` and ``?`` within one path segment, ``**/`` any folders."""
    rx = ""
    for seg in pat.strip("/").split("/"):
        rx += "(?:[^/]+/)*" if seg == "**" else re.escape(seg).replace(r"\*", "[^/]*").replace(r"\?", "[^/]") + "/"
    return re.compile(rx.removesuffix("/"))


def _ignored(rel: str, patterns: list[tuple[bool, re.Pattern]]) -> bool:
    """A path is ignored when the last pattern matching it or one of its parents says so."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for negated, rx in patterns:
        if any(rx.fullmatch(p) for p in prefixes):
            ignored = not negated
    return ignored


def _context(dst: Path) -> Path:
    """The build context: the repository less what .dockerignore leaves out (a top-level entry
    left out is not searched for paths a later ``!pattern`` takes back)."""
    patterns = [(p.startswith("!"), _pattern(p.lstrip("!"))) for p in _dockerignore()]
    for top in REPO.iterdir():
        if _ignored(top.name, patterns):
            continue
        files = [top] if top.is_file() else [f for f in top.rglob("*") if f.is_file()]
        for f in files:
            rel = f.relative_to(REPO).as_posix()
            if not _ignored(rel, patterns):
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, dst / rel)
    return dst


def _expand(text: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), text)


class Image:
    """The Dockerfile followed under ``root``: ``root/opt/...`` is the image's ``/opt/...``."""

    def __init__(self, root: Path) -> None:
        from dockerfile_parse import DockerfileParser

        self.root = root
        self.context = _context(root / "context")
        instructions = DockerfileParser(str(DOCKERFILE), env_replace=False).structure
        stage_starts = [i for i, ins in enumerate(instructions) if ins["instruction"] == "FROM"]
        self.final = stage_starts[-1]
        self.env: dict[str, str] = {}
        for i, ins in enumerate(instructions[stage_starts[0] :], start=stage_starts[0]):
            self._follow(ins["instruction"], ins["value"], build_stage=i < self.final)

    def rebase(self, path: str, cwd: Path | None = None) -> Path:
        """The image's ``path`` under the root (a path already there, e.g. from a rebased ARG, stays)."""
        if Path(path).is_relative_to(self.root):
            return Path(path)
        return self.root / path.lstrip("/") if path.startswith("/") else (cwd or self.root) / path

    def _follow(self, what: str, value: str, *, build_stage: bool) -> None:
        if what == "FROM":
            self.vars = {"PATH": f"{self.root / 'base-bin'}:{BASE_PATH}", "HOME": str(self.root / "root")}
            self.cwd = self.root
            self.env = {}
        elif what == "ARG":
            name, _, default = value.partition("=")
            self.vars[name] = str(self.rebase(default)) if default.startswith("/") else default
        elif what == "WORKDIR":
            self.cwd = self.rebase(_expand(value, self.vars), self.cwd)
            self.cwd.mkdir(parents=True, exist_ok=True)
        elif what == "COPY":
            words = shlex.split(_expand(value, self.vars))
            stage = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
            *sources, dest = [w for w in words if not w.startswith("--")]
            for s in sources:
                src = self.rebase(s) if stage else self.context / s
                dst = self.rebase(dest, self.cwd)
                if src != dst:
                    dst = dst / src.name if dest.endswith("/") or (dst.is_dir() and src.is_file()) else dst
                    (shutil.copytree(src, dst, symlinks=True) if src.is_dir() else shutil.copy2(src, dst))
        elif what == "ENV":
            for word in shlex.split(value):
                name, _, val = word.partition("=")
                val = _expand(val, {**self.vars, **self.env})
                self.env[name] = self.vars[name] = val
        elif what == "RUN" and build_stage:
            command = re.sub(r"^(--\S+\s+)+", "", value)  # --mount=type=cache,...: pip's own cache here
            done = subprocess.run(
                ["/bin/sh", "-c", command], cwd=self.cwd, env=self.vars, text=True, capture_output=True
            )
            assert done.returncode == 0, f"RUN {command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        elif what == "HEALTHCHECK":
            self.health_cmd = json.loads(value.split("CMD", 1)[1])
            self.health_path = re.search(r"http://[^/'\"]+(/[^'\"\s]*)", value).group(1)
        elif what in ("ENTRYPOINT", "CMD"):
            setattr(self, what.lower(), json.loads(value))

    def run_env(self, **extra: str) -> dict[str, str]:
        """The container's environment: the base image's, then the Dockerfile's ENV, then ``-e``."""
        return {"PATH": BASE_PATH, "HOME": str(self.root / "home" / "harerun"), "LANG": "C.UTF-8", **self.env, **extra}


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Image:
    pytest.importorskip("dockerfile_parse", reason="dockerfile-parse is in requirements-dev.txt")
    root = tmp_path_factory.mktemp("image")
    base_bin = root / "base-bin"
    base_bin.mkdir()
    (base_bin / "python").symlink_to(getattr(sys, "_base_executable", sys.executable))
    (root / "home" / "harerun").mkdir(parents=True)
    return Image(root)


def _run(image: Image, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(argv), cwd=image.cwd, env=env or image.run_env(), capture_output=True, text=True, timeout=300
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_image_has_no_tensorflow_and_says_what_training_and_keras_models_need(image, tmp_path, astronaut_bgr):
    found = _run(
        image, "python", "-c", "import importlib.util as u; print(u.find_spec('tensorflow'), u.find_spec('keras'))"
    )
    assert found.stdout.split() == ["None", "None"], found.stderr
    assert Path(shutil.which("harerun", path=image.run_env()["PATH"])).is_relative_to(image.root)

    train = _run(image, "harerun", "train", "acne-grade", "--data", str(tmp_path), "--out", str(tmp_path / "m.keras"))
    assert train.returncode == 2
    assert "pip install 'harerun-ml-classifier[train]'" in train.stderr and "Traceback" not in train.stderr

    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_bgr)
    (tmp_path / "keras.yaml").write_text(
        "schema_version: 1\nname: keras\nface: {backend: haar}\n"
        "detectors:\n  - {id: ml, plugin: ml_classifier, params: {model: acne-grade-keras@3}}\n"
    )
    env = image.run_env(HARERUN_MODEL_DIR=str(REPO / "models"))  # the .keras files are not in the image
    done = _run(image, "harerun", "analyze", str(photo), "--pipeline", str(tmp_path / "keras.yaml"), "--json", env=env)
    assert done.returncode == 0, done.stderr
    ml = json.loads(done.stdout)["results"]["ml"]
    assert ml["status"] == "unavailable"
    assert "Keras model" in ml["message"] and "pip install 'harerun-ml-classifier[train]'" in ml["message"]
    assert done.stderr == ""  # and no runtime noise


def _get(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_the_image_serves_ready_and_an_analysis(image, astronaut_bgr, tmp_path):
    assert image.entrypoint[:2] == ["harerun", "serve"]
    assert image.health_path == "/ready"
    port = _free_port()
    args = [a for a in image.cmd]  # `docker run harerun --host ... --port ...`: the same CMD on a free port
    args[args.index("--port") + 1] = str(port)
    args[args.index("--host") + 1] = "127.0.0.1"
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [*image.entrypoint, *args], cwd=image.cwd, env=image.run_env(), stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # start-up: two analysis processes load and warm up
        status = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                status, body = _get(base + image.health_path)
            except OSError:
                status = None
            if status == 200:
                break
            time.sleep(1)
        assert status == 200, f"{image.health_path} never answered 200 (last: {status}): {log.read_text()[-3000:]}"
        health = [a.replace(":8000/", f":{port}/") for a in image.health_cmd]  # HEALTHCHECK, on this port
        assert _run(image, *health).returncode == 0
        ok, photo = cv2.imencode(".jpg", astronaut_bgr)
        status, body = _get(
            base + "/api/v6/skin/analyze-hare-run", data=photo.tobytes(), headers={"Content-Type": "image/jpeg"}
        )
        assert status == 200, body[:500]
        result = json.loads(body)
        assert result["face"]["backend_used"] == "blazeface"
        results = result["results"]
        assert results["acne"]["status"] == results["ml_classifier"]["status"] == "ok"  # models baked in
        # the astronaut's 106-px face is too small for pores and texture (max_magnification); the rest answer
        assert all(r["status"] == "ok" or "too small" in r["message"] for r in results.values()), results
        status, body = _get(base + "/api/v5/skin/model-status")
        assert status == 200
    finally:
        server.send_signal(signal.SIGTERM)  # as `docker stop`
        server.wait(timeout=60)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def _compose_env(service: dict, s3_url: str, image: Image) -> dict[str, str]:
    """A service's environment as compose passes it: ``${NAME:-default}`` unset here, so the
    default; MinIO's address is moto's; container paths under the image's root."""
    env = {}
    for name, value in service["environment"].items():
        value = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value)).replace("http://minio:9000", s3_url)
        env[name] = str(image.rebase(value)) if value.startswith("/") else value
    return env


def test_compose_models_job_fills_the_bucket_the_api_takes_its_models_from(image):
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is in requirements-dev.txt")
    boto3 = pytest.importorskip("boto3")
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert services["api"]["image"] == services["models"]["image"] and services["models"]["build"] == "."
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3_url = f"http://127.0.0.1:{port}"
        job_env = _compose_env(services["models"], s3_url, image)
        creds = {k: job_env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
        bucket = job_env["HARERUN_S3_BUCKET"]
        boto3.client(
            "s3",
            endpoint_url=s3_url,
            aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
            region_name=creds["AWS_DEFAULT_REGION"],
        ).create_bucket(Bucket=bucket)  # the `bucket` job (MinIO's mc)
        job = services["models"]
        done = _run(image, *job["entrypoint"], *job["command"], env=image.run_env(**job_env))
        assert done.returncode == 0, done.stdout + done.stderr

        api_env = image.run_env(**_compose_env(services["api"], s3_url, image))
        doctor = _run(image, "harerun", "doctor", "--json", env=api_env)
        report = json.loads(doctor.stdout)
        assert doctor.returncode == 0, report["problems"]
        assert report["s3"]["reachable"] is True
        models = {f"{m['name']}@{m['version']}": m["source"] for m in report["models"]}
        assert models == {"acne-grade@3": "s3", "acne-lesions@1": "s3"}  # not from the image's models/
    finally:
        server.stop()
