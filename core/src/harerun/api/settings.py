"""Server settings, read from the environment (prefix ``HARERUN_``) by pydantic-settings.

Every field is an environment variable: ``max_upload_bytes`` is ``HARERUN_MAX_UPLOAD_BYTES``.
The model-store fields are the same variables the CLI and the model store read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MB = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HARERUN_", extra="ignore")

    # -- pipelines -----------------------------------------------------------------
    pipelines_dir: Path | None = Field(
        None, description="folder of pipeline files (default: ./pipelines or the repository's)"
    )
    default_pipeline: str = Field("default", description="pipeline or experiment used when a request names none")
    experiments_file: Path | None = Field(
        None, description="A/B experiments file (default: <pipelines_dir>/experiments.yaml)"
    )

    # -- model store (same variables as `harerun models`) ---------------------------
    model_dir: Path | None = Field(None, description="local models folder (HARERUN_MODEL_DIR)")
    cache_dir: Path | None = Field(None, description="model cache folder (HARERUN_CACHE_DIR)")
    s3_bucket: str | None = Field(None, description="S3 bucket holding models (HARERUN_S3_BUCKET)")
    s3_prefix: str = Field("models", description="key prefix of models in the bucket")
    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO, moto)")

    # -- limits -------------------------------------------------------------------------
    max_upload_bytes: int = Field(
        10 * MB, ge=1, description="largest photo accepted, in bytes (a base64 body may be 4/3 of it)"
    )
    max_pixels: int = Field(40_000_000, ge=1, description="largest photo accepted, in pixels (width x height)")
    request_timeout_s: float = Field(
        30.0, gt=0, description="reading the body plus analysing it must finish within this"
    )
    analysis_threads: int = Field(2, ge=1, le=64, description="photos analysed at once per server process")
    analysis_processes: int = Field(
        0,
        ge=0,
        le=64,
        description="analyse in this many worker processes fed from one queue instead of in threads "
        "(0: threads); processes avoid the GIL and balance the load across connections",
    )
    opencv_threads: int = Field(
        1,
        ge=0,
        le=64,
        description="OpenCV's own threads per process (cv2.setNumThreads); 1 suits a server whose analysis "
        "threads and processes already fill the cores; 0 keeps OpenCV's default (one per core)",
    )
    queue_size: int = Field(4, ge=0, le=1000, description="photos waiting for a thread; beyond that requests get 503")
    max_requests: int = Field(
        64, ge=1, description="requests in progress per process (reading, queued or running); beyond that 503"
    )
    retry_after_s: int = Field(1, ge=1, description="Retry-After sent with 503 answers")
    overlay_max_side: int = Field(1600, ge=64, le=10000, description="overlay PNGs are downscaled to this long side")

    max_connections: int = Field(
        256, ge=1, description="open connections per server process; beyond that new requests get 503"
    )

    # -- access -----------------------------------------------------------------------------
    api_keys: str = Field(
        "",
        description="accepted API keys as NAME:SHA256[:operator], comma-separated (`harerun keys new NAME` "
        "prints one); empty: the API is open",
    )
    rate_limit_per_minute: int = Field(
        600, ge=0, description="requests a minute per API key (a burst of that many); 0: no limit"
    )
    metrics_open: bool = Field(False, description="serve /metrics without an operator key when keys are set")
    subject_hash_secret: str = Field(
        "",
        description="key of the subject-id hash the analysis echoes (`subject_hash`); set it so that a guessed "
        "id cannot be checked against a hash",
    )

    @field_validator("api_keys")
    @classmethod
    def _check_keys(cls, v: str) -> str:
        from harerun.api.auth import parse_keys

        parse_keys(v)  # a ValueError names the bad entry
        return v

    # -- start-up and HTTP --------------------------------------------------------------
    log_format: Literal["text", "json"] = Field(
        "text", description="server log lines: text (for a terminal) or json (one object per line)"
    )
    warm_up: bool = Field(True, description="run each pipeline once on a sample photo at start-up")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="origins allowed by CORS, comma-separated (default: none)"
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [o.strip() for o in v.split(",") if o.strip()]
        return v

    @property
    def max_body_bytes(self) -> int:
        """Largest request body read: base64 text of the largest photo plus room for the other fields."""
        return -(-self.max_upload_bytes * 4 // 3) + 64 * 1024


def load_settings() -> Settings:
    """The settings from the environment; every problem at once as ``HARERUN_<NAME>: ...``
    (a :class:`harerun.errors.ConfigError`, the same problem list as pipelines)."""
    from harerun.errors import ConfigError
    from harerun.problems import problems_from

    try:
        return Settings()
    except ValidationError as exc:
        problems = problems_from(
            exc, "environment", Settings, name=lambda loc: f"HARERUN_{str(loc[0]).upper()}" if loc else "(settings)"
        )
        raise ConfigError(f"{len(problems)} problem(s) in the HARERUN_* settings", problems=problems) from None
