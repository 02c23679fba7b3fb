"""celery_queue_length{queue_name}: what waits in Redis, over every priority list, per scrape."""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import kombu
import pytest
import redis

from perf_platform.servers import serve_wsgi
from perf_platform.settings import PROJECT_ROOT, Settings
from perf_platform_tests.servers import free_port
from perf_platform_tests.services.signal_ingestion.harness import (
    make_batch,
    queue_lengths,
    wait_until,
)
from services.signal_ingestion.app import create_app
from services.signal_ingestion.queue_metrics import CeleryQueueLengthCollector
from services.signal_ingestion.queueing import transport_options


def test_batches_sent_at_every_priority_are_all_counted(api):
    priorities = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 3]
    for index, priority in enumerate(priorities):
        assert api.post(make_batch(2, prefix=f"p{index}"), priority=priority).status_code == 202

    lengths = queue_lengths(api.base_url)

    assert lengths == {"signals": len(priorities), "signals-gpu": 0.0}
    # The bare queue name holds priority 0 only; a gauge reading just that list would say 1.
    client = redis.Redis.from_url(api.redis.url)
    assert client.llen("signals") == 1
    assert client.llen("signals:9") == 2
    client.close()


def test_the_gauge_agrees_with_kombus_own_count(api):
    for index, priority in enumerate([0, 4, 4, 8]):
        api.post(make_batch(1, prefix=f"k{index}"), priority=priority)

    settings = Settings(redis_url=api.redis.url)
    with kombu.Connection(api.redis.url, transport_options=transport_options(settings)) as conn:
        declared = conn.default_channel.queue_declare("signals", passive=True)

    assert declared.message_count == 4
    assert queue_lengths(api.base_url)["signals"] == 4


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({}, id="kombu-defaults"),
        pytest.param({"priority_steps": [0, 5], "sep": "|"}, id="two-steps"),
        pytest.param(
            {"priority_steps": list(range(10)), "sep": ":", "global_keyprefix": "tenant-a:"},
            id="global-keyprefix",
        ),
    ],
)
def test_the_collector_reads_the_lists_kombu_writes(api, options):
    queue = kombu.Queue("jobs", kombu.Exchange("jobs", type="direct"), routing_key="jobs")
    collector = CeleryQueueLengthCollector(api.redis.url, ["jobs", "idle"], options)
    with kombu.Connection(api.redis.url, transport_options=options) as connection:
        producer = connection.Producer()
        for priority in range(10):
            producer.publish(
                {"n": priority},
                exchange=queue.exchange,
                routing_key="jobs",
                declare=[queue],
                priority=priority,
            )

        before = collector.lengths()
        # kombu's own reading of the queue: take messages until there are none.
        drained = 0
        while (message := queue(connection.default_channel).get(no_ack=True)) is not None:
            drained += 1
            assert message.payload["n"] in range(10)
        after = collector.lengths()

    assert before == {"jobs": 10, "idle": 0}
    assert drained == 10
    assert after == {"jobs": 0, "idle": 0}


def test_the_app_counts_queues_behind_a_global_key_prefix(api):
    settings = Settings(redis_url=api.redis.url, celery_global_keyprefix="perf-test:")
    with serve_wsgi(create_app(settings)) as base_url:
        for index, priority in enumerate([0, 5, 9]):
            batch = make_batch(1, prefix=f"g{index}")
            response = httpx.post(f"{base_url}/signals", json=batch, params={"priority": priority})
            assert response.status_code == 202

        lengths = queue_lengths(base_url)

    client = redis.Redis.from_url(api.redis.url)
    assert sorted(client.keys("*signals*")) == [
        b"perf-test:_kombu.binding.signals",
        b"perf-test:_kombu.binding_permanent.signals",
        b"perf-test:signals",
        b"perf-test:signals:5",
        b"perf-test:signals:9",
    ]
    client.close()
    assert lengths == {"signals": 3, "signals-gpu": 0}


@pytest.mark.slow
def test_under_gunicorn_with_several_workers_every_scrape_shows_the_queue(api, tmp_path: Path):
    port = free_port()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = {
        **os.environ,
        "REDIS_URL": api.redis.url,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "PERF_PLATFORM_DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}",
    }
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "services.signal_ingestion.app:create_app()",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
    ]
    server = subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{base_url}/healthz"), timeout=30, what="gunicorn")
        for index in range(7):
            response = httpx.post(f"{base_url}/signals", json=make_batch(1, prefix=f"u{index}"))
            assert response.status_code == 202

        scrapes = [queue_lengths(base_url) for _ in range(6)]
    finally:
        server.terminate()
        server.wait(timeout=20)

    assert all(scrape == {"signals": 7, "signals-gpu": 0} for scrape in scrapes)
    assert any(metrics_dir.iterdir()), "the workers ran in multiprocess mode"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
