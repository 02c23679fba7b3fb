"""The gateway with its real upstreams: scoring and analytics, served in-process over HTTP."""

import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

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


@dataclass(frozen=True)
class Exchange:
    """One request the gateway sent through the recording proxy, and what came back."""

    path: str
    if_none_match: str | None
    status: int
    etag: str | None


@dataclass
class RecordingProxy:
    """A pass-through HTTP proxy in front of a real service, keeping every exchange.

    `refuse_with` set to a status answers that status itself instead of forwarding, as a
    load balancer in front of a failing service would. Paths in `drop_if_none_match` reach the
    service without their If-None-Match, so it answers them in full as if their data changed.
    """

    url: str = ""
    exchanges: list[Exchange] = field(default_factory=list)
    refuse_with: int | None = None
    drop_if_none_match: set[str] = field(default_factory=set)


# What the proxy passes on each way; the gateway needs nothing else from the upstream.
_FORWARDED_REQUEST_HEADERS = ("if-none-match", "accept", "content-type", "cache-control")
_FORWARDED_RESPONSE_HEADERS = ("etag", "cache-control", "content-type", "retry-after")


@contextmanager
def serve_recording_proxy(target: str) -> Iterator[RecordingProxy]:
    proxy = RecordingProxy()

    async def forward(request: Request) -> Response:
        sent_tag = request.headers.get("if-none-match")
        if proxy.refuse_with is not None:
            proxy.exchanges.append(Exchange(request.url.path, sent_tag, proxy.refuse_with, None))
            return Response(status_code=proxy.refuse_with)

        headers = {
            name: value
            for name, value in request.headers.items()
            if name in _FORWARDED_REQUEST_HEADERS
        }
        if request.url.path in proxy.drop_if_none_match:
            headers.pop("if-none-match", None)
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.request(
                request.method,
                f"{target}{request.url.path}",
                params=request.query_params,
                headers=headers,
                content=await request.body(),
            )
        etag = answer.headers.get("etag")
        proxy.exchanges.append(Exchange(request.url.path, sent_tag, answer.status_code, etag))
        passed = {
            name: value
            for name, value in answer.headers.items()
            if name in _FORWARDED_RESPONSE_HEADERS
        }
        return Response(answer.content, status_code=answer.status_code, headers=passed)

    app = Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST"])])
    with serve_asgi(app) as url:
        proxy.url = url
        yield proxy


@pytest.fixture
def analytics_proxy(analytics_url: str) -> Iterator[RecordingProxy]:
    """The real analytics service behind a proxy that records what the gateway sends it."""
    with serve_recording_proxy(analytics_url) as proxy:
        yield proxy


@pytest.fixture
def proxied_trpc_url(start_gateway: StartGateway, analytics_proxy: RecordingProxy) -> Iterator[str]:
    """A gateway of this test's own (nothing remembered yet) calling analytics via the proxy."""
    with start_gateway(gateway_analytics_url=analytics_proxy.url) as url:
        yield url
