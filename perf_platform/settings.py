"""The one settings object: every environment variable the platform reads is a field here."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / "data"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    database_url: str = Field(
        default=f"sqlite:///{DATA_DIR / 'perf_platform.db'}",
        validation_alias=AliasChoices("PERF_PLATFORM_DATABASE_URL", "database_url"),
        description="SQLAlchemy URL of the database holding score_benchmarks and signals.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for the score cache, the Celery broker and GPU slots; "
        "unset means an in-process cache.",
    )
    db_pool_size: int = Field(default=5, ge=1, le=200)
    score_cache_ttl: int = Field(default=300, ge=1, description="Seconds a cached score lives.")
    gpu_slots: int = Field(default=1, ge=1)
    # Redis key naming the GPU slot semaphore; hosts sharing GPUs share it, tests use their own.
    gpu_slot_key: str = Field(default="perf-platform:gpu-slots", min_length=1)
    dagster_home: Path | None = None
    log_level: str = "INFO"
    prometheus_multiproc_dir: Path | None = None
    benchmark_schedule_cron: str = Field(
        default="0 2 * * *", description="When the nightly benchmark runs, in UTC (cron syntax)."
    )

    # The API gateway (services/gateway): where its upstreams live and how long it waits for them.
    gateway_scoring_url: str = Field(
        default="http://127.0.0.1:8001", description="Base URL of the scoring service."
    )
    gateway_analytics_url: str = Field(
        default="http://127.0.0.1:8002", description="Base URL of the analytics service."
    )
    gateway_upstream_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Longest wait for an upstream answer (read, write, pool)."
    )
    gateway_connect_timeout_seconds: float = Field(
        default=2.0, gt=0, description="Longest wait for a TCP connection to an upstream."
    )
    gateway_cache_control: str = Field(
        default="no-cache",
        description="Cache-Control of successful tRPC queries; no-cache makes clients revalidate.",
    )
    # Per process: (procedure, input) -> upstream ETags behind the gateway's own ETag of a body.
    gateway_revalidation_entries: int = Field(
        default=10_000,
        ge=0,
        le=10_000_000,
        description="Queries whose upstream ETags the gateway keeps to revalidate a client's "
        "If-None-Match at the upstream (least recently used go first); 0 keeps none.",
    )

    # Signal ingestion (services/signal_ingestion): batch limits, Celery queues and redelivery.
    signal_batch_max_items: int = Field(
        default=1000, ge=1, description="Most signals one POST /signals may carry (else 413)."
    )
    signal_batch_max_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest POST /signals body in bytes (else 413)."
    )
    signal_queue: str = Field(
        default="signals",
        min_length=1,
        description="Celery queue of batches waiting to be written.",
    )
    signal_gpu_queue: str = Field(
        default="signals-gpu", min_length=1, description="Celery queue of GPU-bound enrichments."
    )
    celery_visibility_timeout_seconds: int = Field(
        default=300,
        ge=1,
        description="Seconds before a task taken but never acknowledged (its worker died) is "
        "handed out again; keep it longer than the slowest task, retry waits included.",
    )
    celery_global_keyprefix: str = Field(
        default="", description="Prefix of every Redis key Celery uses, to share one database."
    )
    signal_worker_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port of the Celery worker's own /metrics and /healthz; unset serves none.",
    )
    # Tests only: hold each batch this long at this point, so a worker can be killed mid-batch.
    signal_batch_pause_seconds: float = Field(default=0.0, ge=0)
    signal_batch_pause_at: Literal["before_commit", "after_commit"] = "before_commit"

    # Request profiling (perf_platform.profiling): request logs, slow requests, latency report.
    request_log_dir: Path = Field(
        default=DATA_DIR / "request_logs",
        description="Folder of the request logs, one JSON-lines file per service.",
    )
    slow_request_ms: float = Field(
        default=1000.0, gt=0, description="Requests slower than this get a warning log line."
    )
    profiling_excluded_paths: tuple[str, ...] = Field(
        default=("/metrics", "/healthz"),
        description="Paths add_profiling leaves untimed and unlogged (a JSON list in the env).",
    )
    latency_p95_threshold_ms: float = Field(
        default=500.0, gt=0, description="The latency report warns about routes whose p95 is over."
    )
    profile_dir: Path = Field(
        default=DATA_DIR / "profiles", description="Where profile captures keep their .prof files."
    )

    # The scoring service (services/scoring): what an uncached score costs, and its cache.
    score_model_iterations: int = Field(
        default=200,
        ge=1,
        le=1_000_000,
        description="Steps of the scoring model per computed score (tens of us each; the "
        "default costs several ms); part of the cache key, as it changes the score.",
    )
    score_cache_enabled: bool = Field(
        default=True, description="false: every score is computed and answered X-Cache: miss."
    )
    score_cache_prefix: str = Field(
        default="perf-platform:score:", description="Prefix of the score cache's Redis keys."
    )
    score_cache_timeout_seconds: float = Field(
        default=0.25,
        gt=0,
        le=10,
        description="Longest wait for Redis before a score is computed without the cache.",
    )
    # The near tier: hits served from this process without a Redis round trip.
    score_near_cache_entries: int = Field(
        default=10_000,
        ge=0,
        le=10_000_000,
        description="Scores each process keeps in front of Redis (least recently used go "
        "first); 0 turns the near tier off. Unused without REDIS_URL.",
    )

    # Where the test suite finds its servers; each run makes its own database and key prefix.
    test_postgres_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    test_redis_url: str = "redis://127.0.0.1:6379/0"

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(
                f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {value!r}"
            )
        return level


class InvalidSettings(ValueError):
    """An environment variable holds a value its setting does not accept."""


def _variable(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return field.upper()


def describe_errors(exc: ValidationError) -> str:
    """One line per refused variable, by the name it is set under: `DB_POOL_SIZE='0': ...`."""
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        name = _variable(field) if field in Settings.model_fields else field
        lines.append(f"{name}={error['input']!r}: {error['msg']}")
    return "; ".join(lines)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read from the environment once.

    Raises InvalidSettings naming each variable that was refused, and why.
    """
    try:
        return Settings()
    except ValidationError as exc:
        raise InvalidSettings(f"invalid settings: {describe_errors(exc)}") from None
