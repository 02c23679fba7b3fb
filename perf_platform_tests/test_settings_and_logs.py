import logging

import pytest
from pydantic import ValidationError

from perf_platform.cli import main
from perf_platform.logs import configure_logging, redact_url
from perf_platform.settings import DATA_DIR, InvalidSettings, Settings, get_settings


def test_defaults_are_the_embedded_ones(monkeypatch):
    for name in ("PERF_PLATFORM_DATABASE_URL", "REDIS_URL", "DB_POOL_SIZE", "SCORE_CACHE_TTL"):
        monkeypatch.delenv(name, raising=False)

    settings = Settings()

    assert settings.database_url == f"sqlite:///{DATA_DIR / 'perf_platform.db'}"
    assert settings.redis_url is None
    assert settings.db_pool_size == 5
    assert settings.score_cache_ttl == 300
    assert settings.gpu_slots == 1


def test_environment_variables_of_the_map_are_read(monkeypatch):
    monkeypatch.setenv("PERF_PLATFORM_DATABASE_URL", "postgresql://db/x")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/1")
    monkeypatch.setenv("DB_POOL_SIZE", "12")
    monkeypatch.setenv("SCORE_CACHE_TTL", "60")
    monkeypatch.setenv("GPU_SLOTS", "4")

    settings = Settings()

    assert settings.database_url == "postgresql://db/x"
    assert settings.redis_url == "redis://cache:6379/1"
    assert (settings.db_pool_size, settings.score_cache_ttl, settings.gpu_slots) == (12, 60, 4)


def test_a_bad_pool_size_is_refused(monkeypatch):
    monkeypatch.setenv("DB_POOL_SIZE", "0")

    with pytest.raises(ValidationError, match="db_pool_size"):
        Settings()


def test_get_settings_names_the_refused_variable(monkeypatch):
    monkeypatch.setenv("DB_POOL_SIZE", "zero")
    get_settings.cache_clear()

    with pytest.raises(InvalidSettings) as refused:
        get_settings()
    get_settings.cache_clear()

    message = str(refused.value)
    assert message.startswith("invalid settings: ")
    assert "DB_POOL_SIZE='zero': Input should be a valid integer" in message


def test_the_cli_refuses_bad_settings_with_usage_and_status_2(monkeypatch, capsys):
    monkeypatch.setenv("SCORE_CACHE_TTL", "0")
    get_settings.cache_clear()

    with pytest.raises(SystemExit) as exited:
        main(["migrate"])
    get_settings.cache_clear()

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: perf-platform")
    assert "SCORE_CACHE_TTL='0': Input should be greater than or equal to 1" in err


def test_log_level_is_validated(monkeypatch):
    monkeypatch.setenv("LOG_LEVEL", "chatty")

    with pytest.raises(ValidationError, match="LOG_LEVEL"):
        Settings()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@db:5432/x", "postgresql://u:***@db:5432/x"),
        ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
        ("sqlite:////tmp/a.db", "sqlite:////tmp/a.db"),
        ("postgresql://u@db/x", "postgresql://u@db/x"),
    ],
)
def test_redact_url_hides_only_the_password(url, shown):
    assert redact_url(url) == shown


def test_configure_logging_installs_one_handler():
    configure_logging("INFO")
    configure_logging("INFO")

    ours = [h for h in logging.getLogger().handlers if getattr(h, "_perf_platform", False)]
    assert len(ours) == 1
