"""db_pool_size and db_pool_in_use: exact under concurrency, never negative, on real PostgreSQL."""

import gc
import threading
import uuid
import warnings

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from perf_platform.db import make_engine
from perf_platform.metrics import forget_pool, instrument_pool, metrics_payload
from perf_platform.settings import get_settings


def scraped(name: str, service: str) -> float | None:
    """The value /metrics would show now for `name{service=...}`, read through the parser."""
    body, _ = metrics_payload()
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("service") == service:
                return sample.value
    return None


def collect_garbage() -> None:
    # Engines other code dropped without dispose() may be collected here too; their pooled
    # connections warn as they go, which is not what these tests are about.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture
def service() -> str:
    """A service label of the test's own, so engines of other tests don't add to its gauges."""
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def pool_settings():  # type: ignore[no-untyped-def]
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_gauges_follow_connections_held_by_threads(postgres_url, service):
    engine = make_engine(postgres_url, pool_size=6, service=service)
    held, release = threading.Barrier(5), threading.Event()

    def hold_one() -> None:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            held.wait(timeout=30)
            release.wait(timeout=30)

    threads = [threading.Thread(target=hold_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    held.wait(timeout=30)

    assert scraped("db_pool_in_use", service) == 4
    assert scraped("db_pool_size", service) == 6

    release.set()
    for thread in threads:
        thread.join(timeout=30)

    assert scraped("db_pool_in_use", service) == 0
    engine.dispose()


def test_db_pool_size_setting_is_the_exported_size(
    monkeypatch, postgres_url, service, pool_settings
):
    monkeypatch.setenv("DB_POOL_SIZE", "7")
    get_settings.cache_clear()

    engine = make_engine(postgres_url, service=service)

    assert scraped("db_pool_size", service) == 7
    assert scraped("db_pool_in_use", service) == 0
    engine.dispose()


def test_many_threads_churning_never_show_a_negative_or_overfull_pool(postgres_url, service):
    engine = make_engine(postgres_url, pool_size=3, service=service)
    seen: list[float] = []
    done = threading.Event()

    def churn() -> None:
        for _ in range(40):
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))

    def watch() -> None:
        while not done.is_set():
            seen.append(scraped("db_pool_in_use", service))

    workers = [threading.Thread(target=churn) for _ in range(8)]
    watcher = threading.Thread(target=watch)
    watcher.start()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    done.set()
    watcher.join(timeout=30)

    assert seen and min(seen) >= 0 and max(seen) <= 3
    assert scraped("db_pool_in_use", service) == 0
    engine.dispose()


def test_an_invalidated_connection_stops_counting(postgres_url, service):
    engine = make_engine(postgres_url, service=service)
    connection = engine.connect()
    connection.execute(sa.text("SELECT 1"))
    assert scraped("db_pool_in_use", service) == 1

    connection.invalidate()

    assert scraped("db_pool_in_use", service) == 0
    connection.close()
    assert scraped("db_pool_in_use", service) == 0
    engine.dispose()


def test_a_connection_the_server_drops_stops_counting(postgres_url, service):
    engine = make_engine(postgres_url, service=service)
    victim = engine.connect()
    backend_pid = victim.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    with engine.connect() as admin:
        admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": backend_pid})
    assert scraped("db_pool_in_use", service) == 1

    with pytest.raises(sa.exc.OperationalError):
        victim.execute(sa.text("SELECT 1"))
    victim.close()

    assert scraped("db_pool_in_use", service) == 0
    with engine.connect() as connection:  # the pool hands out a working connection again
        assert connection.execute(sa.text("SELECT 1")).scalar_one() == 1
    assert scraped("db_pool_in_use", service) == 0
    engine.dispose()


def test_a_connection_lost_without_close_stops_counting(postgres_url, service):
    engine = make_engine(postgres_url, service=service)
    connection = engine.connect()
    connection.execute(sa.text("SELECT 1"))
    assert scraped("db_pool_in_use", service) == 1

    del connection
    collect_garbage()

    assert scraped("db_pool_in_use", service) == 0
    engine.dispose()


def test_a_detached_connection_stops_counting(postgres_url, service):
    engine = make_engine(postgres_url, service=service)
    connection = engine.connect()

    connection.detach()

    assert scraped("db_pool_in_use", service) == 0
    connection.close()
    assert scraped("db_pool_in_use", service) == 0
    engine.dispose()


def test_connections_of_a_disposed_pool_still_count_until_returned(postgres_url, service):
    engine = make_engine(postgres_url, pool_size=2, service=service)
    old = engine.connect()

    engine.dispose()
    new = engine.connect()

    assert scraped("db_pool_in_use", service) == 2
    old.close()
    new.close()
    assert scraped("db_pool_in_use", service) == 0
    assert scraped("db_pool_size", service) == 2
    engine.dispose()


def test_engines_of_one_service_add_up_until_collected(postgres_url, service):
    first = make_engine(postgres_url, pool_size=2, service=service)
    second = sa.create_engine(first.url, pool_size=3, max_overflow=0)
    instrument_pool(second, service)
    assert scraped("db_pool_size", service) == 5

    second.dispose()
    del second
    collect_garbage()

    assert scraped("db_pool_size", service) == 2
    first.dispose()


def test_one_engine_cannot_report_as_two_services(postgres_url, service):
    engine = make_engine(postgres_url, service=service)

    instrument_pool(engine, service)  # the same label again changes nothing
    with pytest.raises(ValueError, match="already reports as service"):
        instrument_pool(engine, "another")

    assert scraped("db_pool_size", "another") is None
    engine.dispose()


def test_an_engine_without_a_service_exports_no_pool_gauges(postgres_url):
    before, _ = metrics_payload()

    engine = make_engine(postgres_url)
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))

    after, _ = metrics_payload()
    pool_lines = [line for line in after.decode().splitlines() if line.startswith("db_pool_")]
    assert pool_lines == [
        line for line in before.decode().splitlines() if line.startswith("db_pool_")
    ]
    engine.dispose()


def test_a_forgotten_pool_stops_counting(postgres_url, service):
    engine = make_engine(postgres_url, pool_size=3, service=service)
    held = engine.connect()
    before = (scraped("db_pool_size", service), scraped("db_pool_in_use", service))

    forget_pool(engine)
    after = (scraped("db_pool_size", service), scraped("db_pool_in_use", service))

    held.close()
    engine.dispose()
    assert before == (3, 1)
    assert after == (0, 0)
