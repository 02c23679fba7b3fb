"""Run a service in this process on a free loopback port, for benchmarks, Dagster and tests."""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from werkzeug.serving import make_server


@contextmanager
def serve_asgi(app: Any, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve an ASGI app under uvicorn in a thread; yields its base URL, stops it on exit."""
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{host}", daemon=True)
    thread.start()

    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the in-process server for {app!r} did not start")
        time.sleep(0.01)
    bound_port = server.servers[0].sockets[0].getsockname()[1]

    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@contextmanager
def serve_wsgi(app: Callable[..., Any], *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve a WSGI app with Werkzeug's threaded server; yields its base URL."""
    server = make_server(host, port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name=f"wsgi-{host}", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.port}"
    finally:
        server.shutdown()
        thread.join(timeout=20)
