"""Known signals and a running analytics service, for the endpoint tests."""

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from perf_platform.servers import serve_asgi
from perf_platform.settings import Settings
from perf_platform.tables import signals
from services.analytics.app import create_app


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# Seven signals whose values are exact in binary floating point, so sums and averages are exact
# whatever order the database adds them in. Row 6 sits exactly on a day boundary.
KNOWN_SIGNALS = [
    ("web-1", "latency_ms", 10.0, at("2024-03-01T00:15:00")),
    ("web-1", "latency_ms", 30.0, at("2024-03-01T00:45:00")),
    ("web-1", "cpu", 0.5, at("2024-03-01T01:10:00")),
    ("db-1", "latency_ms", 100.0, at("2024-03-01T01:20:00")),
    ("db-1", "cpu", 0.25, at("2024-03-01T23:59:59")),
    ("db-1", "latency_ms", 200.0, at("2024-03-02T00:00:00")),
    ("api-1", "cpu", 0.75, at("2024-03-02T12:30:00")),
]


def insert_known_signals(engine: Engine) -> None:
    rows = [
        {
            "signal_id": f"known-{index}",
            "batch_id": "known",
            "source": source,
            "name": name,
            "value": value,
            "ts": ts,
            "attributes": {"index": index},
        }
        for index, (source, name, value, ts) in enumerate(KNOWN_SIGNALS)
    ]
    with engine.begin() as connection:
        connection.execute(signals.insert(), rows)


def url_text(url: URL | str) -> str:
    return url.render_as_string(hide_password=False) if isinstance(url, URL) else url


@pytest.fixture(scope="module")
def analytics_url(postgres_url: URL) -> Iterator[str]:
    """The analytics service on the run's PostgreSQL database, served over real HTTP."""
    app = create_app(Settings(database_url=url_text(postgres_url)))
    with serve_asgi(app) as base_url:
        yield base_url


@pytest.fixture
def known_signals(clean_postgres: Engine) -> Engine:
    insert_known_signals(clean_postgres)
    return clean_postgres


@pytest.fixture
def client(analytics_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=analytics_url, timeout=30) as http:
        yield http


@pytest.fixture
def sqlite_analytics_url(sqlite_url: str) -> Iterator[str]:
    """The analytics service on a SQLite file holding the same known signals."""
    app = create_app(Settings(database_url=sqlite_url))
    insert_known_signals(app.state.engine)
    with serve_asgi(app) as base_url:
        yield base_url


@pytest.fixture
def signal_count(postgres_engine: Engine):  # type: ignore[no-untyped-def]
    """How many signals the run's PostgreSQL database holds right now."""

    def count() -> int:
        with postgres_engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(signals)).scalar_one()

    return count
