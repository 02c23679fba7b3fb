"""signal-ingestion as deployed: the Flask app over HTTP, a Redis of the test's own as the Celery
broker, the run's PostgreSQL database, and real `celery worker` processes started per test."""

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy.engine import URL, Engine

from perf_platform.servers import serve_wsgi
from perf_platform.settings import Settings
from perf_platform_tests.servers import RedisServer
from perf_platform_tests.services.signal_ingestion.harness import (
    VISIBILITY_TIMEOUT_SECONDS,
    Api,
    CeleryWorker,
    Ingestion,
)
from services.signal_ingestion.app import create_app


@pytest.fixture(scope="module")
def module_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private Redis shared by one module's tests, for those that need no worker."""
    server = RedisServer(tmp_path_factory.mktemp("broker"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def module_api(
    module_broker: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    database = tmp_path_factory.mktemp("direct") / "unused.db"
    settings = Settings(redis_url=module_broker.url, database_url=f"sqlite:///{database}")
    with serve_wsgi(create_app(settings)) as base_url:
        yield base_url


@pytest.fixture
def api(module_api: str, module_broker: RedisServer) -> Api:
    """The app on a broker emptied for this test (it is the module's own Redis)."""
    if module_broker.process is None:
        module_broker.start()
    client = redis.Redis.from_url(module_broker.url)
    client.flushdb()
    client.close()
    return Api(module_api, module_broker)


@pytest.fixture
def ingestion_settings(private_redis: RedisServer, postgres_url: URL) -> Settings:
    return Settings(
        redis_url=private_redis.url,
        database_url=postgres_url.render_as_string(hide_password=False),
        celery_visibility_timeout_seconds=VISIBILITY_TIMEOUT_SECONDS,
        gpu_slots=1,
    )


@pytest.fixture
def ingestion(
    ingestion_settings: Settings, private_redis: RedisServer, clean_postgres: Engine
) -> Iterator[Ingestion]:
    """The Flask app served over HTTP with its broker on the test's private Redis."""
    settings = ingestion_settings
    worker_env = {
        key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"
    }
    worker_env.update(
        REDIS_URL=private_redis.url,
        PERF_PLATFORM_DATABASE_URL=settings.database_url,
        CELERY_VISIBILITY_TIMEOUT_SECONDS=str(settings.celery_visibility_timeout_seconds),
        GPU_SLOTS=str(settings.gpu_slots),
        LOG_LEVEL="INFO",
    )
    with serve_wsgi(create_app(settings)) as base_url:
        yield Ingestion(
            base_url=base_url,
            redis=private_redis,
            settings=settings,
            engine=clean_postgres,
            worker_env=worker_env,
        )


@pytest.fixture
def start_worker(ingestion: Ingestion, tmp_path: Path) -> Iterator[Callable[..., CeleryWorker]]:
    """start_worker(pool="solo", **settings) starts a worker; every one is stopped at the end."""
    workers: list[CeleryWorker] = []

    def start(pool: str = "solo", **env: str) -> CeleryWorker:
        worker_env = {**ingestion.worker_env, **{key.upper(): value for key, value in env.items()}}
        log_path = tmp_path / f"worker-{len(workers)}.log"
        worker = CeleryWorker(worker_env, log_path, pool)
        workers.append(worker)
        return worker.start()

    yield start

    for worker in workers:
        worker.stop()
