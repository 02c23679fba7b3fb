"""add_profiling: time every request with time.perf_counter and log its duration.

TODO(profiling): route templates, histogram, Server-Timing, slow-request warnings and a cheap
log writer are issue #5; this is the founding behaviour only.
"""

import logging
import time
from typing import Any

request_log = logging.getLogger("perf_platform.requests")


def add_profiling(app: Any, *, service: str | None = None) -> Any:
    """Time each request of a FastAPI/Starlette or Flask app and log one line for it."""
    name = service or getattr(app, "title", None) or getattr(app, "name", "service")

    if hasattr(app, "wsgi_app"):
        app.wsgi_app = _WsgiTimer(app.wsgi_app, name)
    else:
        app.add_middleware(_AsgiTimer, service=name)
    return app


class _AsgiTimer:
    def __init__(self, app: Any, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        start = time.perf_counter()
        status = 500

        async def send_with_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            _log(self.service, scope["method"], scope["path"], status, start)


class _WsgiTimer:
    def __init__(self, app: Any, service: str) -> None:
        self.app = app
        self.service = service

    def __call__(self, environ: dict, start_response: Any) -> Any:
        start = time.perf_counter()
        status = 500

        def start_with_status(status_line: str, headers: list, exc_info: Any = None) -> Any:
            nonlocal status
            status = int(status_line.split(" ", 1)[0])
            return start_response(status_line, headers, exc_info)

        try:
            return self.app(environ, start_with_status)
        finally:
            _log(self.service, environ["REQUEST_METHOD"], environ["PATH_INFO"], status, start)


def _log(service: str, method: str, path: str, status: int, start: float) -> None:
    duration_ms = (time.perf_counter() - start) * 1000
    request_log.info(
        "service=%s method=%s path=%s status=%d duration_ms=%.3f",
        service,
        method,
        path,
        status,
        duration_ms,
    )
