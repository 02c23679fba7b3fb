"""Conditional GETs: an ETag naming the data version, and 304 without running the aggregate."""

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from perf_platform.servers import serve_asgi
from perf_platform.settings import Settings
from perf_platform.tables import signals
from perf_platform_tests.services.analytics.conftest import insert_known_signals, url_text
from services.analytics.app import create_app

pytestmark = pytest.mark.usefixtures("known_signals")


class Service:
    """The analytics service on the run's database, with every SQL statement it ran."""

    def __init__(self, base_url: str, statements: list[str]) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=30)
        self.statements = statements

    def get(self, path: str, etag: str | None = None, **params: object) -> httpx.Response:
        headers = {"If-None-Match": etag} if etag is not None else {}
        self.statements.clear()
        return self.client.get(path, params=params, headers=headers)

    def aggregated(self) -> bool:
        return any(re.search(r"\bsum\(", statement) for statement in self.statements)


@pytest.fixture(scope="module")
def service(postgres_url: URL) -> Iterator[Service]:
    app = create_app(Settings(database_url=url_text(postgres_url)))
    statements: list[str] = []

    @sa.event.listens_for(app.state.engine, "before_cursor_execute")
    def record(_conn, _cursor, statement, _params, _context, _many) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    with serve_asgi(app) as base_url:
        service = Service(base_url, statements)
        yield service
        service.client.close()


def new_signal(engine: Engine, signal_id: str, value: float = 5.0) -> None:
    with engine.begin() as connection:
        connection.execute(sa.insert(signals).values(**signal_row(signal_id, value)))


def signal_row(signal_id: str, value: float = 5.0) -> dict[str, object]:
    return {
        "signal_id": signal_id,
        "batch_id": "conditional-get",
        "source": "web-1",
        "name": "cpu",
        "value": value,
        "ts": datetime(2024, 3, 3, tzinfo=UTC),
    }


def test_an_answer_carries_a_weak_etag_of_the_data_version_and_no_cache(service) -> None:
    response = service.get("/summary")

    assert response.status_code == 200
    assert re.fullmatch(r'W/"signals-\d+\.7-[0-9a-f]{16}"', response.headers["etag"])
    assert response.headers["cache-control"] == "no-cache"


def test_a_matching_tag_gets_304_without_running_the_aggregate(service) -> None:
    etag = service.get("/aggregate", group_by="hour").headers["etag"]
    assert service.aggregated()

    again = service.get("/aggregate", etag, group_by="hour")

    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == "no-cache"
    assert not service.aggregated()
    assert service.statements, "the data version is read from the database"


@pytest.mark.parametrize("form", ["list", "weak", "star"])
def test_if_none_match_is_compared_as_rfc_9110_says(service, form: str) -> None:
    etag = service.get("/summary").headers["etag"]
    field_value = {"list": f'"old", {etag}', "weak": etag.removeprefix("W/"), "star": "*"}[form]

    assert service.get("/summary", field_value).status_code == 304


def test_a_new_signal_moves_the_version_and_gets_200(service, known_signals: Engine) -> None:
    before = service.get("/summary")
    new_signal(known_signals, "conditional-new")

    after = service.get("/summary", before.headers["etag"])

    assert after.status_code == 200
    assert after.json()["count"] == 8
    assert after.headers["etag"] != before.headers["etag"]
    assert service.aggregated()


def test_each_query_has_its_own_tag_and_equal_queries_share_one(service) -> None:
    by_source = service.get("/aggregate", group_by="source").headers["etag"]
    by_source_spelled_out = service.get(
        "/aggregate", group_by="source", limit=100, offset=0
    ).headers["etag"]
    by_name = service.get("/aggregate", group_by="name")

    assert by_source_spelled_out == by_source
    assert by_name.headers["etag"] != by_source
    assert service.get("/aggregate", by_source, group_by="name").status_code == 200


def test_a_refused_request_has_no_etag(service) -> None:
    response = service.get("/aggregate", "*", group_by="week")

    assert response.status_code == 422
    assert "etag" not in response.headers


def test_while_a_writer_is_in_flight_there_is_no_etag(service, known_signals: Engine) -> None:
    etag = service.get("/summary").headers["etag"]

    with known_signals.connect() as writer:
        writer.execute(sa.insert(signals).values(**signal_row("conditional-in-flight")))
        during = service.get("/summary", etag)
        writer.rollback()

    assert during.status_code == 200
    assert "etag" not in during.headers
    assert service.get("/summary", etag).status_code == 304


def test_a_commit_out_of_id_order_still_changes_the_tag(service, known_signals: Engine) -> None:
    with known_signals.connect() as slow, known_signals.connect() as fast:
        # `slow` takes the lower id; `fast` takes the next one and commits first.
        slow.execute(sa.insert(signals).values(**signal_row("conditional-slow", 1.0)))
        fast.execute(sa.insert(signals).values(**signal_row("conditional-fast", 2.0)))
        fast.commit()
        while_open = service.get("/summary")
        max_id_before = _max_id(known_signals)
        slow.commit()

    committed = service.get("/summary")

    # max(id) alone would not have moved, and a stale 304 would have followed.
    assert _max_id(known_signals) == max_id_before
    assert "etag" not in while_open.headers
    assert while_open.json()["count"] == 8
    assert committed.json()["count"] == 9
    assert service.get("/summary", committed.headers["etag"]).status_code == 304


def test_emptying_the_table_and_refilling_it_changes_the_tag(
    service, known_signals: Engine
) -> None:
    before = service.get("/summary")
    with known_signals.begin() as connection:
        connection.execute(sa.text("TRUNCATE signals RESTART IDENTITY"))
        connection.execute(sa.insert(signals), [signal_row(f"refill-{i}", 1.0) for i in range(7)])

    after = service.get("/summary", before.headers["etag"])

    assert after.status_code == 200
    assert after.json()["sum"] == 7.0
    assert after.headers["etag"] != before.headers["etag"]


def test_304s_are_counted_on_metrics(service) -> None:
    etag = service.get("/summary").headers["etag"]
    counted = _not_modified_count(service.client, "summary")

    service.get("/summary", etag)
    service.get("/summary", '"stale"')

    assert _not_modified_count(service.client, "summary") == counted + 1


def test_sqlite_answers_conditional_gets_too(sqlite_url: str) -> None:
    app = create_app(Settings(database_url=sqlite_url))
    insert_known_signals(app.state.engine)

    with serve_asgi(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        first = client.get("/summary")
        unchanged = client.get("/summary", headers={"If-None-Match": first.headers["etag"]})
        new_signal(app.state.engine, "sqlite-new")
        changed = client.get("/summary", headers={"If-None-Match": first.headers["etag"]})

    assert first.headers["etag"].startswith('W/"signals-7-')
    assert unchanged.status_code == 304
    assert changed.status_code == 200
    assert changed.json()["count"] == 8
    assert changed.headers["etag"].startswith('W/"signals-8-')


def _max_id(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.max(signals.c.id))).scalar_one()


def _not_modified_count(client: httpx.Client, endpoint: str) -> float:
    text = client.get("/metrics").text
    pattern = rf'^analytics_not_modified_total\{{endpoint="{endpoint}"\}} (\S+)$'
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0
