"""add_profiling on FastAPI/Starlette: log line, histogram, headers, exclusions, exceptions."""

import asyncio
import json
import logging
import re
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.responses import StreamingResponse
from prometheus_client import REGISTRY

from perf_platform.metrics import add_metrics_endpoint
from perf_platform.profiling import UNMATCHED_ROUTE, ProfilingMiddleware, add_profiling
from perf_platform.request_log import flush_request_logs
from perf_platform.servers import serve_asgi

SERVER_TIMING = re.compile(r"^app;dur=(\d+\.\d{3})$")


class Boom(RuntimeError):
    pass


@pytest.fixture
def service() -> str:
    # The histogram lives for the whole test process: each test counts under a name of its own.
    return f"test-asgi-{uuid.uuid4().hex[:8]}"


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks():
            for index in range(3):
                await asyncio.sleep(0.2)
                yield f"chunk {index}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/boom")
    async def boom() -> None:
        raise Boom("boom")

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(0.12)
        return {"status": "slow"}

    return app


def logged(log_dir: Path, service: str) -> list[dict]:
    flush_request_logs()
    path = log_dir / f"{service}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def histogram_count(service: str, method: str, route: str, status_class: str) -> float | None:
    flush_request_logs()  # the histogram is observed from the request log's batches
    labels = {"service": service, "method": method, "route": route, "status_class": status_class}
    return REGISTRY.get_sample_value("http_request_duration_seconds_count", labels)


def histogram_sum(service: str, method: str, route: str, status_class: str) -> float | None:
    flush_request_logs()
    labels = {"service": service, "method": method, "route": route, "status_class": status_class}
    return REGISTRY.get_sample_value("http_request_duration_seconds_sum", labels)


def test_a_request_is_logged_once_with_its_route_template(tmp_path, service):
    app = add_profiling(make_app(), service=service, request_log_dir=tmp_path)

    with serve_asgi(app) as base_url:
        answer = httpx.get(f"{base_url}/items/42", headers={"X-Request-ID": "req-42"})

    assert answer.status_code == 200
    [line] = logged(tmp_path, service)
    assert line["service"] == service
    assert (line["method"], line["route"], line["status"]) == ("GET", "/items/{item_id}", 200)
    assert line["duration_ms"] > 0
    assert line["request_id"] == "req-42"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])


def test_the_histogram_counts_the_request_under_its_route_template(tmp_path, service):
    app = add_profiling(make_app(), service=service, request_log_dir=tmp_path)

    with serve_asgi(app) as base_url:
        for item in (1, 2, 3):
            httpx.get(f"{base_url}/items/{item}")

    assert histogram_count(service, "GET", "/items/{item_id}", "2xx") == 3
    assert histogram_sum(service, "GET", "/items/{item_id}", "2xx") > 0
    assert histogram_count(service, "GET", "/items/1", "2xx") is None


def test_server_timing_and_request_id_are_answered(tmp_path, service):
    app = add_profiling(make_app(), service=service, request_log_dir=tmp_path)

    with serve_asgi(app) as base_url:
        given = httpx.get(f"{base_url}/items/1", headers={"X-Request-ID": "abc-123"})
        made = httpx.get(f"{base_url}/items/2")

    assert SERVER_TIMING.match(given.headers["server-timing"])
    assert given.headers["x-request-id"] == "abc-123"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    ids = [line["request_id"] for line in logged(tmp_path, service)]
    assert ids == ["abc-123", made.headers["x-request-id"]]


def test_unmatched_paths_are_grouped_under_one_route(tmp_path, service):
    app = add_profiling(make_app(), service=service, request_log_dir=tmp_path)

    with serve_asgi(app) as base_url:
        statuses = [httpx.get(f"{base_url}/no/such/{n}").status_code for n in range(3)]

    assert statuses == [404, 404, 404]
    assert {line["route"] for line in logged(tmp_path, service)} == {UNMATCHED_ROUTE}
    assert histogram_count(service, "GET", UNMATCHED_ROUTE, "4xx") == 3


def test_a_streamed_response_is_timed_to_its_last_chunk(tmp_path, service):
    app = add_profiling(make_app(), service=service, request_log_dir=tmp_path)

    with serve_asgi(app) as base_url:
        answer = httpx.get(f"{base_url}/stream")

    assert answer.text == "chunk 0\nchunk 1\nchunk 2\n"
    [line] = logged(tmp_path, service)
    # Three chunks, each after 0.2 s: the body took at least 0.6 s, the headers did not wait.
    assert line["duration_ms"] >= 600
    headers_ms = float(SERVER_TIMING.match(answer.headers["server-timing"]).group(1))
    assert headers_ms < line["duration_ms"]
    assert histogram_sum(service, "GET", "/stream", "2xx") >= 0.6


def test_an_exception_is_recorded_as_500_and_propagates_unchanged(tmp_path, service):
    app = add_profiling(make_app(), service=service, request_log_dir=tmp_path)
    sent = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/boom",
        "raw_path": b"/boom",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"x-request-id", b"boom-1")],
        "server": ("test", 80),
        "client": ("127.0.0.1", 1),
    }

    with pytest.raises(Boom, match=r"^boom$"):
        asyncio.run(app(scope, receive, send))

    assert sent[0]["status"] == 500  # Starlette's error middleware answered the client
    [line] = logged(tmp_path, service)
    assert (line["route"], line["status"], line["request_id"]) == ("/boom", 500, "boom-1")
    assert histogram_count(service, "GET", "/boom", "5xx") == 1


def test_an_exception_answers_500_over_http(tmp_path, service):
    app = add_profiling(make_app(), service=service, request_log_dir=tmp_path)

    with serve_asgi(app) as base_url:
        answer = httpx.get(f"{base_url}/boom")

    assert answer.status_code == 500
    [line] = logged(tmp_path, service)
    assert (line["route"], line["status"]) == ("/boom", 500)


def test_a_scrape_right_after_a_request_already_counts_it(tmp_path, service):
    app = add_profiling(make_app(), service=service, request_log_dir=tmp_path)
    add_metrics_endpoint(app)
    sample = (
        f'http_request_duration_seconds_count{{method="GET",route="/items/{{item_id}}",'
        f'service="{service}",status_class="2xx"}} 2.0'
    )

    with serve_asgi(app) as base_url, httpx.Client(base_url=base_url) as client:
        client.get("/items/1")
        client.get("/items/2")
        scrape = client.get("/metrics").text

    assert sample in scrape.splitlines()


def test_excluded_paths_leave_no_trace(tmp_path, service):
    app = add_profiling(make_app(), service=service, request_log_dir=tmp_path)
    add_metrics_endpoint(app)

    with serve_asgi(app) as base_url:
        health = httpx.get(f"{base_url}/healthz")
        metrics = httpx.get(f"{base_url}/metrics")

    assert (health.status_code, metrics.status_code) == (200, 200)
    assert "server-timing" not in health.headers
    assert "x-request-id" not in metrics.headers
    assert logged(tmp_path, service) == []
    for route in ("/healthz", "/metrics"):
        assert histogram_count(service, "GET", route, "2xx") is None


def test_excluded_paths_can_be_chosen(tmp_path, service):
    app = add_profiling(
        make_app(), service=service, request_log_dir=tmp_path, excluded_paths=["/items/7"]
    )

    with serve_asgi(app) as base_url:
        httpx.get(f"{base_url}/items/7")
        httpx.get(f"{base_url}/healthz")

    assert [line["route"] for line in logged(tmp_path, service)] == ["/healthz"]


def test_a_slow_request_gets_a_warning_line(tmp_path, service, caplog):
    app = add_profiling(make_app(), service=service, request_log_dir=tmp_path, slow_request_ms=100)

    with (
        caplog.at_level(logging.WARNING, logger="perf_platform.requests"),
        serve_asgi(app) as base_url,
    ):
        httpx.get(f"{base_url}/items/1")
        httpx.get(f"{base_url}/slow", headers={"X-Request-ID": "slow-1"})

    warnings = [r.getMessage() for r in caplog.records if r.name == "perf_platform.requests"]
    assert len(warnings) == 1
    assert "event=slow_request" in warnings[0]
    assert f"service={service} method=GET route=/slow status=200" in warnings[0]
    assert "request_id=slow-1" in warnings[0]


def test_an_included_router_is_labelled_with_its_full_template(tmp_path, service):
    app = FastAPI()
    router = APIRouter(prefix="/v1")

    @router.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    app.include_router(router, prefix="/api")
    add_profiling(app, service=service, request_log_dir=tmp_path)

    with serve_asgi(app) as base_url:
        assert httpx.get(f"{base_url}/api/v1/items/5").status_code == 200

    assert [line["route"] for line in logged(tmp_path, service)] == ["/api/v1/items/{item_id}"]


def test_a_mounted_app_is_labelled_with_the_mount_path(tmp_path, service):
    inner = FastAPI()

    @inner.get("/things/{thing_id}")
    async def read_thing(thing_id: str) -> dict[str, str]:
        return {"thing_id": thing_id}

    app = FastAPI()
    app.mount("/inner", inner)
    add_profiling(app, service=service, request_log_dir=tmp_path)

    with serve_asgi(app) as base_url:
        assert httpx.get(f"{base_url}/inner/things/a").status_code == 200

    assert [line["route"] for line in logged(tmp_path, service)] == ["/inner/things/{thing_id}"]


def test_unknown_methods_are_labelled_other(tmp_path, service):
    app = add_profiling(make_app(), service=service, request_log_dir=tmp_path)

    with serve_asgi(app) as base_url:
        # A WebDAV method: HTTP parsers accept it, the label set does not need it.
        answer = httpx.request("PROPFIND", f"{base_url}/items/1")

    assert answer.status_code == 405
    [line] = logged(tmp_path, service)
    assert (line["method"], line["route"]) == ("OTHER", "/items/{item_id}")


def test_adding_profiling_twice_times_each_request_once(tmp_path, service):
    app = make_app()
    add_profiling(app, service=service, request_log_dir=tmp_path)
    add_profiling(app, service=service, request_log_dir=tmp_path)

    assert [m.cls for m in app.user_middleware].count(ProfilingMiddleware) == 1


def test_a_service_name_that_cannot_name_a_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="service name"):
        add_profiling(make_app(), service="../etc/passwd", request_log_dir=tmp_path)


def test_something_that_is_not_an_app_is_refused():
    with pytest.raises(TypeError, match="FastAPI, Starlette or Flask"):
        add_profiling(object(), service="x")
