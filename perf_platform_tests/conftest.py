"""Fixtures every test may use: the real PostgreSQL and Redis, each run isolated from others."""

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from perf_platform.db import make_engine, normalize_url
from perf_platform.request_log import flush_request_logs
from perf_platform.settings import get_settings
from perf_platform_tests.databases import scratch_database
from perf_platform_tests.servers import RedisServer

RUN_ID = uuid.uuid4().hex[:10]
SCRATCH = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    # What the services write while the tests run (request logs, profiles, the embedded SQLite
    # database) goes to a folder of this run's own, never into data/, which `make run` reads.
    scratch = Path(tempfile.mkdtemp(prefix=f"perf-platform-tests-{RUN_ID}-"))
    config.stash[SCRATCH] = scratch
    os.environ.setdefault("REQUEST_LOG_DIR", str(scratch / "request_logs"))
    os.environ.setdefault("PROFILE_DIR", str(scratch / "profiles"))
    os.environ.setdefault("PERF_PLATFORM_DATABASE_URL", f"sqlite:///{scratch / 'perf_platform.db'}")
    get_settings.cache_clear()

    # Fail the whole run at once, with the reason, when a required server is not there.
    settings = get_settings()
    engine = sa.create_engine(normalize_url(settings.test_postgres_url))
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        pytest.exit(f"PostgreSQL at {settings.test_postgres_url} does not answer: {exc.orig}", 3)
    finally:
        engine.dispose()
    client = redis.Redis.from_url(settings.test_redis_url, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.exit(f"Redis at {settings.test_redis_url} does not answer: {exc}", 3)
    finally:
        client.close()


def pytest_unconfigure(config: pytest.Config) -> None:
    scratch = config.stash.get(SCRATCH, None)
    if scratch is not None:
        # The request-log writer would otherwise flush its last lines into a removed folder.
        flush_request_logs()
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[URL]:
    """A PostgreSQL database of this test run's own, dropped at the end."""
    with scratch_database(f"perf_platform_test_{RUN_ID}") as url:
        yield url


@pytest.fixture(scope="session")
def postgres_engine(postgres_url: URL) -> Iterator[Engine]:
    """An engine on the run's PostgreSQL database, migrated."""
    engine = make_engine(postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture
def clean_postgres(postgres_engine: Engine) -> Engine:
    """The run's PostgreSQL database with score_benchmarks and signals emptied for this test."""
    with postgres_engine.begin() as connection:
        connection.execute(sa.text("TRUNCATE score_benchmarks, signals RESTART IDENTITY"))
    return postgres_engine


@pytest.fixture
def sqlite_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    return f"sqlite:///{tmp_path / 'perf_platform.db'}"


@pytest.fixture(scope="session")
def redis_url() -> str:
    return get_settings().test_redis_url


@pytest.fixture(scope="session")
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test run's own; its keys are deleted at the end."""
    prefix = f"perf-platform-test:{RUN_ID}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{prefix}*", count=500):
        client.delete(key)
    client.close()


@pytest.fixture
def private_redis(tmp_path) -> Iterator[RedisServer]:  # type: ignore[no-untyped-def]
    """A redis-server of the test's own on a free port, for tests that stop or kill it."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
