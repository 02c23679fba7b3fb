"""The analytics API on known signals: exact numbers, filters, buckets and pages."""

import httpx
import pytest

pytestmark = pytest.mark.usefixtures("known_signals")

ALL_SIGNALS = {"count": 7, "sum": 341.5, "avg": 341.5 / 7, "min": 0.25, "max": 200.0}


def group(key, count, total, low, high):  # type: ignore[no-untyped-def]
    return {"key": key, "count": count, "sum": total, "avg": total / count, "min": low, "max": high}


def test_healthz_says_ok(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_summary_covers_every_signal(client):
    response = client.get("/summary")

    assert response.status_code == 200
    assert response.json() == ALL_SIGNALS


def test_summary_range_includes_start_and_excludes_end(client):
    body = client.get(
        "/summary", params={"start": "2024-03-01T01:10:00Z", "end": "2024-03-02T00:00:00Z"}
    ).json()

    assert body == {"count": 3, "sum": 100.75, "avg": 100.75 / 3, "min": 0.25, "max": 100.0}


def test_times_with_an_offset_are_compared_in_utc(client):
    in_utc = client.get("/summary", params={"start": "2024-03-01T01:00:00Z"}).json()
    in_cest = client.get("/summary", params={"start": "2024-03-01T03:00:00+02:00"}).json()

    assert in_cest == in_utc
    assert in_utc["count"] == 5


def test_summary_filters_on_source_and_name_together(client):
    body = client.get("/summary", params={"source": "db-1", "name": "latency_ms"}).json()

    assert body == {"count": 2, "sum": 300.0, "avg": 150.0, "min": 100.0, "max": 200.0}


def test_an_empty_selection_sums_to_zero_with_no_average(client):
    body = client.get("/summary", params={"source": "nobody"}).json()

    assert body == {"count": 0, "sum": 0.0, "avg": None, "min": None, "max": None}


def test_aggregate_by_source(client):
    body = client.get("/aggregate", params={"group_by": "source"}).json()

    assert body == {
        "group_by": "source",
        "rows": [
            group("api-1", 1, 0.75, 0.75, 0.75),
            group("db-1", 3, 300.25, 0.25, 200.0),
            group("web-1", 3, 40.5, 0.5, 30.0),
        ],
        "limit": 100,
        "offset": 0,
        "next_offset": None,
    }


def test_aggregate_by_name(client):
    body = client.get("/aggregate", params={"group_by": "name"}).json()

    assert body["rows"] == [
        group("cpu", 3, 1.5, 0.25, 0.75),
        group("latency_ms", 4, 340.0, 10.0, 200.0),
    ]


def test_aggregate_by_hour_in_utc_buckets(client):
    body = client.get("/aggregate", params={"group_by": "hour"}).json()

    assert body["rows"] == [
        group("2024-03-01T00:00:00+00:00", 2, 40.0, 10.0, 30.0),
        group("2024-03-01T01:00:00+00:00", 2, 100.5, 0.5, 100.0),
        group("2024-03-01T23:00:00+00:00", 1, 0.25, 0.25, 0.25),
        group("2024-03-02T00:00:00+00:00", 1, 200.0, 200.0, 200.0),
        group("2024-03-02T12:00:00+00:00", 1, 0.75, 0.75, 0.75),
    ]


def test_aggregate_by_day_puts_midnight_in_the_new_day(client):
    body = client.get("/aggregate", params={"group_by": "day"}).json()

    assert body["rows"] == [
        group("2024-03-01T00:00:00+00:00", 5, 140.75, 0.25, 100.0),
        group("2024-03-02T00:00:00+00:00", 2, 200.75, 0.75, 200.0),
    ]


def test_aggregate_applies_filters_before_grouping(client):
    body = client.get(
        "/aggregate",
        params={"group_by": "hour", "source": "web-1", "end": "2024-03-01T01:00:00Z"},
    ).json()

    assert body["rows"] == [group("2024-03-01T00:00:00+00:00", 2, 40.0, 10.0, 30.0)]


def test_pages_follow_next_offset_to_the_end(client):
    keys, offsets, offset = [], [], 0
    while offset is not None:
        page = client.get(
            "/aggregate", params={"group_by": "hour", "limit": 2, "offset": offset}
        ).json()
        assert page["limit"] == 2
        assert page["offset"] == offset
        keys += [row["key"][:13] for row in page["rows"]]
        offsets.append(page["next_offset"])
        offset = page["next_offset"]

    assert offsets == [2, 4, None]
    assert keys == [
        "2024-03-01T00",
        "2024-03-01T01",
        "2024-03-01T23",
        "2024-03-02T00",
        "2024-03-02T12",
    ]


def test_a_page_past_the_end_is_empty(client):
    body = client.get("/aggregate", params={"group_by": "source", "offset": 3}).json()

    assert body["rows"] == []
    assert body["next_offset"] is None


def test_a_full_last_page_has_no_next_offset(client):
    body = client.get("/aggregate", params={"group_by": "source", "limit": 3}).json()

    assert len(body["rows"]) == 3
    assert body["next_offset"] is None


def test_sqlite_gives_the_same_answers_as_postgres(client, sqlite_analytics_url):
    requests = [
        ("/summary", {}),
        ("/summary", {"start": "2024-03-01T01:10:00Z", "end": "2024-03-02T00:00:00Z"}),
        ("/aggregate", {"group_by": "source"}),
        ("/aggregate", {"group_by": "name", "source": "db-1"}),
        ("/aggregate", {"group_by": "hour", "limit": 2, "offset": 2}),
        ("/aggregate", {"group_by": "day", "start": "2024-03-01T12:00:00+02:00"}),
    ]
    with httpx.Client(base_url=sqlite_analytics_url, timeout=30) as sqlite_client:
        for path, params in requests:
            on_sqlite = sqlite_client.get(path, params=params)
            on_postgres = client.get(path, params=params)

            assert on_sqlite.status_code == on_postgres.status_code == 200
            assert on_sqlite.json() == on_postgres.json(), (path, params)
