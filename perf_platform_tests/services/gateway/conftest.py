"""The gateway with its real upstreams: scoring and analytics, served in-process over HTTP."""

import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from perf_platform.servers import serve_asgi
from perf_platform.settings import Settings
from perf_platform.tables import signals
from services.analytics.app import create_app as create_analytics_app
from services.gateway.app import create_app as create_gateway_app
from services.scoring.app import create_app as create_scoring_app

START = datetime(2025, 1, 6, tzinfo=UTC)


@pytest.fixture(scope="session")
def analytics_url(postgres_url: URL) -> Iterator[str]:
    database_url = postgres_url.render_as_string(hide_password=False)
    with serve_asgi(create_analytics_app(Settings(database_url=database_url))) as url:
        yield url


@pytest.fixture(scope="session")
def scoring_url() -> Iterator[str]:
    # The in-process cache: the gateway tests are about the gateway, not about Redis.
    with serve_asgi(create_scoring_app(Settings(redis_url=None))) as url:
        yield url


StartGateway = Callable[..., AbstractContextManager[str]]


@pytest.fixture(scope="session")
def start_gateway(scoring_url: str, analytics_url: str) -> StartGateway:
    """Start a gateway in this process: `with start_gateway(**settings) as trpc_url: ...`."""

    @contextmanager
    def start(**overrides: Any) -> Iterator[str]:
        upstreams = {"gateway_scoring_url": scoring_url, "gateway_analytics_url": analytics_url}
        settings = Settings(**{**upstreams, **overrides})
        with serve_asgi(create_gateway_app(settings)) as base_url:
            yield f"{base_url}/trpc"

    return start


@pytest.fixture(scope="session")
def trpc_url(start_gateway: StartGateway) -> Iterator[str]:
    """The tRPC endpoint of a gateway shared by the session's tests."""
    with start_gateway() as url:
        yield url


def insert_signals(
    engine: Engine, rows: list[tuple[str, str, float]], start: datetime = START
) -> None:
    """Insert (source, name, value) signals one minute apart from `start`."""
    with engine.begin() as connection:
        connection.execute(
            sa.insert(signals),
            [
                {
                    "signal_id": f"gateway-test-{uuid.uuid4().hex}",
                    "batch_id": "gateway-tests",
                    "source": source,
                    "name": name,
                    "value": value,
                    "ts": start + timedelta(minutes=index),
                }
                for index, (source, name, value) in enumerate(rows)
            ],
        )


@pytest.fixture
def add_signals() -> Callable[..., None]:
    """`add_signals(engine, [(source, name, value), ...], start=...)` inserts signals."""
    return insert_signals


@pytest.fixture
def signals_db(clean_postgres: Engine) -> Engine:
    """The run's database with three known signals: sum 6.0 over two sources."""
    insert_signals(clean_postgres, [("sensor-a", "temp", 1.0), ("sensor-a", "temp", 2.0),
                                 ("sensor-b", "load", 3.0)])  # fmt: skip
    return clean_postgres


@pytest.fixture
def stalling_upstream() -> Iterator[str]:
    """The base URL of a TCP server that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_forever() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(connection)

    thread = threading.Thread(target=accept_forever, name="stalling-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in held:
            connection.close()
        listener.close()
