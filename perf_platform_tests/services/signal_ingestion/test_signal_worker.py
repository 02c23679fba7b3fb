"""The Celery worker: drains the queue into `signals`, and a worker killed mid-batch neither loses
nor doubles a signal."""

import re

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from perf_platform.db import normalize_url
from perf_platform.tables import signals
from perf_platform_tests.databases import create_database, drop_database
from perf_platform_tests.servers import free_port
from perf_platform_tests.services.signal_ingestion.harness import (
    make_batch,
    queue_lengths,
    signal_count,
    wait_until,
)

pytestmark = pytest.mark.slow

EMPTY = {"signals": 0.0, "signals-gpu": 0.0}


def batch_rows(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as connection:
        return dict(connection.execute(sa.select(signals.c.signal_id, signals.c.batch_id)).all())


def test_a_started_worker_drains_the_queue_and_stores_every_signal_once(ingestion, start_worker):
    batches, size = 12, 5
    for index in range(batches):
        response = ingestion.post(make_batch(size, prefix=f"d{index}"), priority=index % 10)
        assert response.status_code == 202

    assert queue_lengths(ingestion.base_url) == {"signals": batches, "signals-gpu": 0.0}
    assert signal_count(ingestion.engine) == 0

    start_worker()
    wait_until(
        lambda: signal_count(ingestion.engine) == batches * size
        and queue_lengths(ingestion.base_url) == EMPTY,
        timeout=60,
        what="the worker to drain the queue",
    )

    rows = batch_rows(ingestion.engine)
    assert len(rows) == batches * size
    assert len(set(rows.values())) == batches


def test_a_resent_batch_stores_nothing_twice(ingestion, start_worker):
    batch = make_batch(4, prefix="again")
    first = ingestion.post(batch).json()["batch_id"]
    second = ingestion.post(batch[2:] + make_batch(6, prefix="new")[4:]).json()["batch_id"]

    worker = start_worker()
    worker.wait_for_log(f"batch_id={second} signals=4 inserted=2", timeout=30)

    rows = batch_rows(ingestion.engine)
    assert sorted(rows) == ["again-0", "again-1", "again-2", "again-3", "new-4", "new-5"]
    assert rows["again-3"] == first
    assert rows["new-5"] == second


def test_a_batch_is_enriched_inside_a_gpu_slot(ingestion, start_worker):
    batch = make_batch(3, prefix="z", value=10.0)  # values 10, 11, 12: z-scores -1.22, 0, 1.22
    batch_id = ingestion.post(batch).json()["batch_id"]

    worker = start_worker()
    worker.wait_for_log(f"event=batch_enriched batch_id={batch_id} signals=3", timeout=30)

    with ingestion.engine.connect() as connection:
        rows = dict(connection.execute(sa.select(signals.c.signal_id, signals.c.attributes)).all())
    assert {key: round(value["zscore"], 4) for key, value in rows.items()} == {
        "z-0": -1.2247,
        "z-1": 0.0,
        "z-2": 1.2247,
    }
    # GPU_SLOTS is 1 here, so the only slot there is.
    assert {value["gpu_slot"] for value in rows.values()} == {0}


def test_the_worker_serves_its_gpu_slot_and_pool_metrics(ingestion, start_worker):
    port = free_port()
    batch_id = ingestion.post(make_batch(2, prefix="m")).json()["batch_id"]

    worker = start_worker(signal_worker_metrics_port=str(port))
    worker.wait_for_log(f"event=batch_enriched batch_id={batch_id}", timeout=30)

    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert samples[("gpu_slot_acquire_total", ())] == 1.0
    assert samples[("gpu_slots_in_use", ())] == 0.0
    assert samples[("db_pool_in_use", (("service", "signal_ingestion_worker"),))] == 0.0
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json() == {"status": "ok"}


def test_a_worker_killed_before_its_commit_loses_nothing(ingestion, start_worker):
    batch_id = ingestion.post(make_batch(20, prefix="lost")).json()["batch_id"]
    doomed = start_worker(
        pool="prefork", signal_batch_pause_seconds="60", signal_batch_pause_at="before_commit"
    )
    doomed.wait_for_log(f"event=batch_paused batch_id={batch_id} at=before_commit", timeout=30)

    doomed.kill()

    # Its transaction died with it, and the task is neither queued nor done: Redis holds it as
    # taken-but-unacknowledged until the visibility timeout hands it out again.
    assert signal_count(ingestion.engine) == 0
    assert queue_lengths(ingestion.base_url) == EMPTY

    rescuer = start_worker(pool="solo")
    rescuer.wait_for_log(
        f"event=batch_written batch_id={batch_id} signals=20 inserted=20", timeout=30
    )
    assert signal_count(ingestion.engine) == 20
    assert set(batch_rows(ingestion.engine).values()) == {batch_id}


def test_a_pool_process_killed_after_its_commit_doubles_nothing(ingestion, start_worker):
    batch_id = ingestion.post(make_batch(20, prefix="twice")).json()["batch_id"]
    worker = start_worker(
        pool="prefork",
        signal_batch_pause_seconds="2",
        signal_batch_pause_at="after_commit",
        # Redelivery here comes from the parent (task_reject_on_worker_lost), not from the timeout.
        celery_visibility_timeout_seconds="600",
    )
    [paused] = worker.wait_for_log(f"batch_id={batch_id} at=after_commit", timeout=30)
    assert signal_count(ingestion.engine) == 20

    worker.kill(pid=int(re.search(r"pid=(\d+)", paused).group(1)))

    # The parent hands the task back, a new pool process runs it again, and it inserts nothing.
    worker.wait_for_log(
        f"event=batch_written batch_id={batch_id} signals=20 inserted=0", timeout=30
    )
    started = worker.wait_for_log(f"event=batch_started batch_id={batch_id}", timeout=5, count=2)
    assert len(started) == 2
    assert signal_count(ingestion.engine) == 20
    wait_until(
        lambda: queue_lengths(ingestion.base_url) == EMPTY, timeout=30, what="an empty queue"
    )


def test_a_batch_waits_out_a_database_that_is_not_there_yet(ingestion, start_worker, postgres_url):
    missing = f"{postgres_url.database}_later"
    later_url = postgres_url.set(database=missing).render_as_string(hide_password=False)
    batch_id = ingestion.post(make_batch(5, prefix="late")).json()["batch_id"]

    worker = start_worker(perf_platform_database_url=later_url)
    try:
        worker.wait_for_log(f"ingest_batch[{batch_id}] retry", timeout=30)
        create_database(missing)

        worker.wait_for_log(f"batch_id={batch_id} signals=5 inserted=5", timeout=60)
        later = sa.create_engine(normalize_url(later_url))
        assert signal_count(later) == 5
        later.dispose()
    finally:
        worker.stop()
        drop_database(missing)
