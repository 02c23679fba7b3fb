"""POST /signals: a valid batch becomes one queued task; a bad one is refused whole, with the
reason, and leaves nothing in the queue."""

import json

import httpx
import pytest
import sqlalchemy as sa

from perf_platform.servers import serve_wsgi
from perf_platform.settings import Settings
from perf_platform.tables import signals
from perf_platform_tests.services.signal_ingestion.harness import (
    make_batch,
    queue_lengths,
)
from services.signal_ingestion.app import create_app


def test_a_valid_batch_is_answered_202_and_queued_as_one_task(api):
    batch = make_batch(3, prefix="valid")

    response = api.post(batch)

    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 3
    [task] = api.queued_tasks()
    assert task["id"] == body["batch_id"]
    batch_id, items = task["args"]
    assert batch_id == body["batch_id"]
    assert [item["signal_id"] for item in items] == ["valid-0", "valid-1", "valid-2"]
    assert items[0]["ts"] == "2025-03-01T12:00:00+00:00"
    assert queue_lengths(api.base_url) == {"signals": 1.0, "signals-gpu": 0.0}


def test_timestamps_with_an_offset_are_stored_in_utc(api):
    signal = {"source": "s", "name": "n", "value": 2, "ts": "2025-03-01T14:30:00+02:00"}

    assert api.post([signal]).status_code == 202

    [task] = api.queued_tasks()
    assert task["args"][1][0]["ts"] == "2025-03-01T12:30:00+00:00"
    assert task["args"][1][0]["value"] == 2.0


def test_a_signal_without_an_id_gets_the_same_id_each_time_it_is_sent(api):
    signal = {"source": "s", "name": "n", "value": 1.5, "ts": "2025-03-01T12:00:00Z"}
    other = {**signal, "value": 1.25}

    api.post([signal])
    api.post([signal, other])

    first, second = (task["args"][1] for task in api.queued_tasks())
    assert first[0]["signal_id"].startswith("auto-")
    assert first[0]["signal_id"] == second[0]["signal_id"]
    assert second[1]["signal_id"] != second[0]["signal_id"]


GOOD = {"signal_id": "ok-1", "source": "s", "name": "n", "value": 1.0, "ts": "2025-03-01T12:00:00Z"}


@pytest.mark.parametrize(
    ("bad_item", "field", "reason"),
    [
        ({**GOOD, "value": "12.5"}, "value", "valid number"),
        ({**GOOD, "value": True}, "value", "valid number"),
        ({**GOOD, "ts": "2025-03-01T12:00:00"}, "ts", "UTC offset"),
        ({**GOOD, "ts": "yesterday"}, "ts", "not an ISO 8601 timestamp"),
        ({**GOOD, "ts": 1740830400}, "ts", "ISO 8601 string"),
        ({key: value for key, value in GOOD.items() if key != "source"}, "source", "required"),
        ({**GOOD, "name": ""}, "name", "at least 1 character"),
        ({**GOOD, "signal_id": "has space"}, "signal_id", "pattern"),
        ({**GOOD, "colour": "red"}, "colour", "Extra inputs"),
    ],
)
def test_a_batch_with_one_bad_item_is_refused_whole_naming_item_and_field(
    api, bad_item, field, reason
):
    batch = [*make_batch(2, prefix="fine"), bad_item]

    response = api.post(batch)

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid batch"
    assert body["errors"][0]["item"] == 2
    assert body["errors"][0]["field"] == field
    assert reason in body["errors"][0]["reason"]
    assert f"item 2, field '{field}'" in body["reason"]
    assert api.queued_tasks() == []
    assert queue_lengths(api.base_url) == {"signals": 0.0, "signals-gpu": 0.0}


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_value_that_is_not_finite_is_refused(api, value):
    body = f'[{{"source": "s", "name": "n", "value": {value}, "ts": "2025-03-01T12:00:00Z"}}]'

    response = httpx.post(f"{api.base_url}/signals", content=body, timeout=10)

    assert response.status_code == 400
    assert response.json()["errors"][0]["reason"] == "Input should be a finite number"
    assert api.queued_tasks() == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "the body is not JSON"),
        (b'{"signals": []}', "the body must be a JSON array of signals"),
        (b"[]", "the batch is empty"),
        (b"[1, 2]", "item 0, field None: Input should be a valid dictionary"),
    ],
)
def test_a_body_that_is_not_a_list_of_signals_gets_400(api, body, reason):
    response = httpx.post(f"{api.base_url}/signals", content=body, timeout=10)

    assert response.status_code == 400
    assert response.json()["reason"].startswith(reason)
    assert api.queued_tasks() == []


def test_two_items_with_one_signal_id_are_refused(api):
    batch = [*make_batch(3, prefix="twice"), make_batch(1, prefix="twice")[0]]

    response = api.post(batch)

    assert response.status_code == 400
    assert response.json()["reason"] == "item 3 has the same signal_id as item 0"
    assert api.queued_tasks() == []


@pytest.mark.parametrize("priority", ["10", "-1", "high", "1.5"])
def test_a_priority_outside_0_to_9_is_refused(api, priority):
    response = api.post(make_batch(1, prefix="p"), priority=priority)

    assert response.status_code == 400
    assert "priority must be an integer from 0" in response.json()["reason"]
    assert api.queued_tasks() == []


def test_more_signals_than_the_limit_get_413_and_nothing_queued(api):
    settings = Settings(redis_url=api.redis.url, signal_batch_max_items=5)
    with serve_wsgi(create_app(settings)) as base_url:
        at_limit = httpx.post(f"{base_url}/signals", json=make_batch(5, prefix="a"), timeout=10)
        over = httpx.post(f"{base_url}/signals", json=make_batch(6, prefix="b"), timeout=10)

        assert at_limit.status_code == 202
        assert over.status_code == 413
        assert over.json()["reason"] == (
            "the batch has 6 signals; the limit is 5 (SIGNAL_BATCH_MAX_ITEMS)"
        )
        assert queue_lengths(base_url)["signals"] == 1.0


def test_a_body_over_the_byte_limit_gets_413_and_nothing_queued(api):
    settings = Settings(redis_url=api.redis.url, signal_batch_max_bytes=2048)
    with serve_wsgi(create_app(settings)) as base_url:
        small = make_batch(5, prefix="s")
        large = make_batch(40, prefix="l")
        assert len(json.dumps(small)) < 2048 < len(json.dumps(large))

        assert httpx.post(f"{base_url}/signals", json=small, timeout=10).status_code == 202
        response = httpx.post(f"{base_url}/signals", json=large, timeout=10)

        assert response.status_code == 413
        assert "over 2048 bytes (SIGNAL_BATCH_MAX_BYTES)" in response.json()["reason"]
        assert queue_lengths(base_url)["signals"] == 1.0


def test_with_redis_down_a_batch_gets_503_and_is_accepted_again_once_it_is_back(api):
    api.redis.stop()

    refused = api.post(make_batch(2, prefix="down"))

    assert refused.status_code == 503
    assert refused.json()["error"] == "queue unavailable"
    assert refused.headers["Retry-After"] == "5"
    # The scrape still answers; it has no queue length rather than a false 0.
    assert queue_lengths(api.base_url) == {}

    api.redis.start()
    accepted = api.post(make_batch(2, prefix="back"))

    assert accepted.status_code == 202
    [task] = api.queued_tasks()
    assert task["id"] == accepted.json()["batch_id"]


def test_healthz_answers_ok(api):
    response = httpx.get(f"{api.base_url}/healthz", timeout=10)

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_without_redis_a_batch_is_written_during_the_request(sqlite_url):
    settings = Settings(redis_url=None, database_url=sqlite_url)
    with serve_wsgi(create_app(settings)) as base_url:
        response = httpx.post(f"{base_url}/signals", json=make_batch(4, prefix="d"), timeout=10)
        again = httpx.post(f"{base_url}/signals", json=make_batch(4, prefix="d"), timeout=10)
        metrics = httpx.get(f"{base_url}/metrics", timeout=10)

    assert response.status_code == again.status_code == 202
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as connection:
        rows = connection.execute(sa.select(signals.c.signal_id, signals.c.batch_id)).all()
    engine.dispose()
    assert sorted(row.signal_id for row in rows) == ["d-0", "d-1", "d-2", "d-3"]
    assert {row.batch_id for row in rows} == {response.json()["batch_id"]}
    assert "celery_queue_length" not in metrics.text
