"""The one settings object: every environment variable the platform reads is a field here."""

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
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
    dagster_home: Path | None = None
    log_level: str = "INFO"
    prometheus_multiproc_dir: Path | None = None
    benchmark_schedule_cron: str = Field(
        default="0 2 * * *", description="When the nightly benchmark runs, in UTC (cron syntax)."
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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read from the environment once."""
    return Settings()
