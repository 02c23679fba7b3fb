"""add_profiling: time every request of a service with time.perf_counter, at little cost.

For each request the middleware finds the route template, status and duration (to the end of the
response body, streamed bodies included), queues one entry for the service's request log, answers
with `Server-Timing` and `X-Request-ID` headers, and logs a warning on the
`perf_platform.requests` logger when the request took longer than SLOW_REQUEST_MS. The request
log's writer thread (perf_platform.request_log) observes the entries in the
`http_request_duration_seconds` histogram and writes their lines, within half a second and
before every /metrics scrape: the request itself only appends a tuple to a list.
"""

import itertools
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from pathlib import Path
from time import perf_counter
from typing import Any

from prometheus_client import Histogram

from perf_platform.request_log import REQUEST_LOGGER, Entry, RequestLog, open_request_log
from perf_platform.settings import get_settings

REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from a request's arrival to the end of its response body, by route template.",
    ["service", "method", "route", "status_class"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

UNMATCHED_ROUTE = "<unmatched>"
MAX_REQUEST_ID_LENGTH = 128

# Methods outside this set are labelled OTHER, so clients cannot grow the label sets.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def add_profiling(
    app: Any,
    *,
    service: str | None = None,
    excluded_paths: Iterable[str] | None = None,
    slow_request_ms: float | None = None,
    request_log_dir: Path | None = None,
) -> Any:
    """Time each request of a FastAPI/Starlette or Flask app; returns the app.

    `service` names the histogram label and the request log file (REQUEST_LOG_DIR/<service>.jsonl);
    the other arguments default to the settings PROFILING_EXCLUDED_PATHS and SLOW_REQUEST_MS.
    Calling it twice on one app changes nothing.
    """
    is_flask = hasattr(app, "wsgi_app")
    if not is_flask and not hasattr(app, "add_middleware"):
        raise TypeError(f"add_profiling needs a FastAPI, Starlette or Flask app, not {app!r}")
    if _already_profiled(app):
        return app

    settings = get_settings()
    name = service or getattr(app, "title", None) or getattr(app, "name", None) or "service"
    recorder = RequestRecorder(
        service=name,
        request_log=open_request_log(name, request_log_dir),
        slow_request_ms=slow_request_ms or settings.slow_request_ms,
    )
    excluded = frozenset(
        settings.profiling_excluded_paths if excluded_paths is None else excluded_paths
    )

    if is_flask:
        app.wsgi_app = WsgiProfilingMiddleware(app.wsgi_app, recorder, excluded, app.url_map)
    else:
        app.add_middleware(
            ProfilingMiddleware, recorder=recorder, excluded_paths=excluded, routes_of=app
        )
    return app


def _already_profiled(app: Any) -> bool:
    if hasattr(app, "wsgi_app"):
        return isinstance(app.wsgi_app, WsgiProfilingMiddleware)
    return any(middleware.cls is ProfilingMiddleware for middleware in app.user_middleware)


class RequestRecorder:
    """What both middlewares do when a request is over: queue its entry for the request log, and
    warn at once when it was slow. The histogram is observed from the request log's batches
    (within half a second, and before every /metrics scrape), off the request path."""

    def __init__(self, *, service: str, request_log: RequestLog, slow_request_ms: float) -> None:
        self.service = service
        self.slow_request_seconds = slow_request_ms / 1000
        self._append = request_log.append
        self._histograms: dict[tuple[str, str, int], Any] = {}
        if request_log.observer is None:
            request_log.observer = self.observe

    def record(self, method: str, route: str, status: int, seconds: float, request_id: str) -> None:
        if method not in KNOWN_METHODS:
            method = "OTHER"

        self._append((time.time(), method, route, status, seconds * 1000, request_id))

        if seconds > self.slow_request_seconds:
            REQUEST_LOGGER.warning(
                "event=slow_request service=%s method=%s route=%s status=%d duration_ms=%.3f "
                "threshold_ms=%g request_id=%s",
                self.service,
                method,
                route,
                status,
                seconds * 1000,
                self.slow_request_seconds * 1000,
                request_id,
            )

    def observe(self, batch: list[Entry]) -> None:
        """Observe a batch of request log entries in `http_request_duration_seconds`."""
        histograms = self._histograms
        for _ts, method, route, status, duration_ms, _request_id in batch:
            histogram = histograms.get((method, route, status))
            if histogram is None:
                status_class = f"{status // 100}xx" if 100 <= status < 600 else "other"
                histogram = REQUEST_DURATION.labels(self.service, method, route, status_class)
                histograms[method, route, status] = histogram
            histogram.observe(duration_ms / 1000)


# Ids unique across processes: a random prefix per process, then a counter.
_request_id_prefix = os.urandom(8).hex()
_request_id_counter = itertools.count(1)


def new_request_id() -> str:
    """A fresh request id: 32 hex digits, unique across processes and restarts."""
    return f"{_request_id_prefix}{next(_request_id_counter):016x}"


def _new_request_ids_after_fork() -> None:
    global _request_id_prefix, _request_id_counter
    _request_id_prefix = os.urandom(8).hex()
    _request_id_counter = itertools.count(1)


# A forked worker must not hand out its parent's ids.
os.register_at_fork(after_in_child=_new_request_ids_after_fork)


class ProfilingMiddleware:
    """Pure ASGI middleware: times each HTTP request until the app has sent its last byte."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        recorder: RequestRecorder,
        excluded_paths: frozenset[str],
        routes_of: Any = None,
    ) -> None:
        self.app = app
        self.recorder = recorder
        self.excluded_paths = excluded_paths
        # Built with the middleware stack, on the first request, so every route is declared.
        from starlette.routing import Mount

        self.mounts = [
            (route.path_regex, route.path)
            for route in getattr(routes_of, "routes", ())
            if isinstance(route, Mount)
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.excluded_paths:
            await self.app(scope, receive, send)
            return

        start = perf_counter()
        request_id, request_id_header = _asgi_request_id(scope["headers"])
        root_path = scope.get("root_path", "")
        status = 500

        async def send_timed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # Server-Timing durations are milliseconds (W3C Server Timing, section 3).
                server_timing = b"app;dur=%.3f" % ((perf_counter() - start) * 1000)
                headers = [*message.get("headers", ())]
                headers.append((b"server-timing", server_timing))
                headers.append((b"x-request-id", request_id_header))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        except Exception:
            status = 500
            raise
        finally:
            self.recorder.record(
                scope["method"],
                self._route_template(scope, root_path),
                status,
                perf_counter() - start,
                request_id,
            )

    def _route_template(self, scope: Scope, root_path: str) -> str:
        route = scope.get("route")
        if route is None:
            return UNMATCHED_ROUTE

        # FastAPI resolves included routers lazily: scope["route"] is then the route as its
        # router declared it, without the include prefix; the full template is kept here.
        fastapi_scope = scope.get("fastapi")
        context = fastapi_scope.get("effective_route_context") if fastapi_scope else None
        template = getattr(context, "path_format", None) or getattr(route, "path_format", None)
        if template is None:
            return UNMATCHED_ROUTE

        # Inside a mounted sub-application routes are relative; the mount grew root_path.
        mount_path = scope.get("root_path", "")[len(root_path) :]
        if mount_path:
            return self._mount_template(mount_path) + template
        return template

    def _mount_template(self, mount_path: str) -> str:
        for path_regex, template in self.mounts:
            if path_regex.match(mount_path + "/"):
                return template
        return mount_path


def _asgi_request_id(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, bytes]:
    # ASGI servers lowercase header names (ASGI HTTP spec, "Request - receive event").
    for name, value in headers:
        if name == b"x-request-id":
            if 0 < len(value) <= MAX_REQUEST_ID_LENGTH:
                return value.decode("latin-1"), value
            break
    request_id = new_request_id()
    return request_id, request_id.encode()


class WsgiProfilingMiddleware:
    """WSGI middleware (Flask's wsgi_app): times each request until the server closes the body."""

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        recorder: RequestRecorder,
        excluded_paths: frozenset[str],
        url_map: Any,
    ) -> None:
        self.app = app
        self.recorder = recorder
        self.excluded_paths = excluded_paths
        self.url_map = url_map

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO", "") in self.excluded_paths:
            return self.app(environ, start_response)

        exchange = _WsgiExchange(self.recorder, environ, start_response)
        try:
            exchange.body = self.app(environ, exchange.start_response)
        except Exception:
            exchange.status = 500
            exchange.route = self._match_route(environ)
            exchange.finish()
            raise
        return exchange

    def _match_route(self, environ: dict[str, Any]) -> str:
        # Only when the app raised before answering (PROPAGATE_EXCEPTIONS): match the rule anew.
        from werkzeug.exceptions import HTTPException
        from werkzeug.routing import RequestRedirect

        try:
            rule, _ = self.url_map.bind_to_environ(environ).match(return_rule=True)
        except (HTTPException, RequestRedirect):
            return UNMATCHED_ROUTE
        return str(rule.rule)


class _WsgiExchange:
    """One request through the WSGI middleware: its start_response, and the response iterable
    handed to the server; the request ends when the server calls close() (PEP 3333)."""

    __slots__ = (
        "body",
        "environ",
        "finished",
        "recorder",
        "request_id",
        "route",
        "server_start_response",
        "start",
        "status",
    )

    def __init__(
        self,
        recorder: RequestRecorder,
        environ: dict[str, Any],
        server_start_response: Callable[..., Any],
    ) -> None:
        self.start = perf_counter()
        self.recorder = recorder
        self.environ = environ
        self.server_start_response = server_start_response
        self.route = UNMATCHED_ROUTE
        self.status = 500
        self.body: Iterable[bytes] = ()
        self.finished = False

        request_id = environ.get("HTTP_X_REQUEST_ID", "")
        if not (0 < len(request_id) <= MAX_REQUEST_ID_LENGTH and request_id.isprintable()):
            request_id = new_request_id()
        self.request_id = request_id

    def start_response(self, status_line: str, headers: list, exc_info: Any = None) -> Any:
        self.status = int(status_line[:3])
        # Flask calls this while its request context is still pushed: the rule is known.
        rule = getattr(self.environ.get("werkzeug.request"), "url_rule", None)
        if rule is not None:
            self.route = rule.rule

        headers = [
            *headers,
            ("Server-Timing", f"app;dur={(perf_counter() - self.start) * 1000:.3f}"),
            ("X-Request-ID", self.request_id),
        ]
        return self.server_start_response(status_line, headers, exc_info)

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.body
        except Exception:
            self.status = 500
            raise

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.finish()

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        self.recorder.record(
            self.environ["REQUEST_METHOD"],
            self.route,
            self.status,
            perf_counter() - self.start,
            self.request_id,
        )
