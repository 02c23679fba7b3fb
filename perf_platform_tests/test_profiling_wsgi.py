"""add_profiling on Flask: log line, histogram, headers, streamed bodies, exclusions, errors."""

import json
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest
from flask import Flask, Response
from prometheus_client import REGISTRY
from werkzeug.test import EnvironBuilder

from perf_platform.metrics import add_metrics_endpoint
from perf_platform.profiling import UNMATCHED_ROUTE, WsgiProfilingMiddleware, add_profiling
from perf_platform.request_log import flush_request_logs
from perf_platform.servers import serve_wsgi

SERVER_TIMING = re.compile(r"^app;dur=(\d+\.\d{3})$")


class Boom(RuntimeError):
    pass


@pytest.fixture
def service() -> str:
    # The histogram lives for the whole test process: each test counts under a name of its own.
    return f"test-wsgi-{uuid.uuid4().hex[:8]}"


def make_app() -> Flask:
    app = Flask("profiled")

    @app.get("/items/<int:item_id>")
    def read_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/stream")
    def stream() -> Response:
        def chunks():
            for index in range(3):
                time.sleep(0.2)
                yield f"chunk {index}\n"

        return Response(chunks(), mimetype="text/plain")

    @app.get("/broken-stream")
    def broken_stream() -> Response:
        def chunks():
            yield "first\n"
            raise Boom("the stream broke")

        return Response(chunks(), mimetype="text/plain")

    @app.get("/boom")
    def boom() -> None:
        raise Boom("boom")

    return app


def logged(log_dir: Path, service: str) -> list[dict]:
    flush_request_logs()
    path = log_dir / f"{service}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def histogram(service: str, route: str, status_class: str, suffix: str = "count") -> float | None:
    flush_request_logs()  # the histogram is observed from the request log's batches
    labels = {"service": service, "method": "GET", "route": route, "status_class": status_class}
    return REGISTRY.get_sample_value(f"http_request_duration_seconds_{suffix}", labels)


def call_wsgi(app: Flask, path: str) -> tuple[str, list, bytes]:
    """Call the WSGI app directly, reading and closing the body as a server would."""
    answer: dict = {}

    def start_response(status: str, headers: list, exc_info=None):
        answer.update(status=status, headers=headers)
        return lambda data: None

    environ = EnvironBuilder(path=path).get_environ()
    body = app(environ, start_response)
    try:
        data = b"".join(body)
    finally:
        body.close()
    return answer["status"], answer["headers"], data


def test_a_request_is_logged_once_with_its_url_rule(tmp_path, service):
    app = add_profiling(make_app(), service=service, request_log_dir=tmp_path)

    with serve_wsgi(app) as base_url:
        answer = httpx.get(f"{base_url}/items/42", headers={"X-Request-ID": "req-42"})

    assert answer.status_code == 200
    [line] = logged(tmp_path, service)
    assert line["service"] == service
    assert (line["method"], line["route"], line["status"]) == ("GET", "/items/<int:item_id>", 200)
    assert line["duration_ms"] > 0
    assert line["request_id"] == "req-42"


def test_the_histogram_counts_the_request_under_its_url_rule(tmp_path, service):
    app = add_profiling(make_app(), service=service, request_log_dir=tmp_path)

    with serve_wsgi(app) as base_url:
        for item in (1, 2):
            httpx.get(f"{base_url}/items/{item}")

    assert histogram(service, "/items/<int:item_id>", "2xx") == 2
    assert histogram(service, "/items/<int:item_id>", "2xx", "sum") > 0


def test_server_timing_and_request_id_are_answered(tmp_path, service):
    app = add_profiling(make_app(), service=service, request_log_dir=tmp_path)

    with serve_wsgi(app) as base_url:
        given = httpx.get(f"{base_url}/items/1", headers={"X-Request-ID": "abc-123"})
        made = httpx.get(f"{base_url}/items/2")

    assert SERVER_TIMING.match(given.headers["server-timing"])
    assert given.headers["x-request-id"] == "abc-123"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    assert [line["request_id"] for line in logged(tmp_path, service)] == [
        "abc-123",
        made.headers["x-request-id"],
    ]


def test_a_streamed_body_is_timed_until_the_server_closes_it(tmp_path, service):
    app = add_profiling(make_app(), service=service, request_log_dir=tmp_path)

    with serve_wsgi(app) as base_url:
        answer = httpx.get(f"{base_url}/stream")

    assert answer.text == "chunk 0\nchunk 1\nchunk 2\n"
    [line] = logged(tmp_path, service)
    # Three chunks, each after 0.2 s: the body took at least 0.6 s, the headers did not wait.
    assert line["duration_ms"] >= 600
    headers_ms = float(SERVER_TIMING.match(answer.headers["server-timing"]).group(1))
    assert headers_ms < line["duration_ms"]
    assert histogram(service, "/stream", "2xx", "sum") >= 0.6


def test_unmatched_paths_are_grouped_under_one_route(tmp_path, service):
    app = add_profiling(make_app(), service=service, request_log_dir=tmp_path)

    with serve_wsgi(app) as base_url:
        statuses = [httpx.get(f"{base_url}/no/such/{n}").status_code for n in range(3)]

    assert statuses == [404, 404, 404]
    assert {line["route"] for line in logged(tmp_path, service)} == {UNMATCHED_ROUTE}
    assert histogram(service, UNMATCHED_ROUTE, "4xx") == 3


def test_an_exception_flask_handles_is_logged_as_500(tmp_path, service):
    app = add_profiling(make_app(), service=service, request_log_dir=tmp_path)

    with serve_wsgi(app) as base_url:
        answer = httpx.get(f"{base_url}/boom")

    assert answer.status_code == 500
    [line] = logged(tmp_path, service)
    assert (line["route"], line["status"]) == ("/boom", 500)


def test_a_propagated_exception_is_recorded_as_500_and_reraised_unchanged(tmp_path, service):
    app = make_app()
    app.config["PROPAGATE_EXCEPTIONS"] = True
    add_profiling(app, service=service, request_log_dir=tmp_path)

    with pytest.raises(Boom, match=r"^boom$"):
        call_wsgi(app, "/boom")

    [line] = logged(tmp_path, service)
    assert (line["route"], line["status"]) == ("/boom", 500)
    assert histogram(service, "/boom", "5xx") == 1


def test_a_body_that_fails_while_streaming_is_recorded_as_500(tmp_path, service):
    app = add_profiling(make_app(), service=service, request_log_dir=tmp_path)

    with pytest.raises(Boom, match="the stream broke"):
        call_wsgi(app, "/broken-stream")

    [line] = logged(tmp_path, service)
    assert (line["route"], line["status"]) == ("/broken-stream", 500)


def test_excluded_paths_leave_no_trace(tmp_path, service):
    app = add_profiling(make_app(), service=service, request_log_dir=tmp_path)
    add_metrics_endpoint(app)

    with serve_wsgi(app) as base_url:
        health = httpx.get(f"{base_url}/healthz")
        metrics = httpx.get(f"{base_url}/metrics")

    assert (health.status_code, metrics.status_code) == (200, 200)
    assert "server-timing" not in health.headers
    assert "x-request-id" not in metrics.headers
    assert logged(tmp_path, service) == []
    assert histogram(service, "/healthz", "2xx") is None
    assert histogram(service, "/metrics", "2xx") is None


def test_adding_profiling_twice_wraps_the_app_once(tmp_path, service):
    app = make_app()
    add_profiling(app, service=service, request_log_dir=tmp_path)
    add_profiling(app, service=service, request_log_dir=tmp_path)

    assert isinstance(app.wsgi_app, WsgiProfilingMiddleware)
    assert not isinstance(app.wsgi_app.app, WsgiProfilingMiddleware)
