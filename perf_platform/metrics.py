"""Prometheus metrics: GET /metrics on every service, and the database pool gauges.

A service in one process scrapes prometheus_client's default registry. A service run as several
worker processes (gunicorn -w N, uvicorn --workers N) needs PROMETHEUS_MULTIPROC_DIR: an empty
directory, set in the environment before the server starts, where every worker writes its
samples; a scrape, whichever worker answers it, merges all of them. Counters and histograms add
up across workers; each gauge says how it merges (`multiprocess_mode`), and ours use the `live*`
modes, so a worker that has died stops counting once its files are dropped. gunicorn does that
with two hooks in its config file:

    from perf_platform.metrics import gunicorn_child_exit as child_exit
    from perf_platform.metrics import gunicorn_on_starting as on_starting
"""

import logging
import re
import threading
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

from perf_platform.request_log import flush_request_logs
from perf_platform.settings import get_settings

log = logging.getLogger(__name__)

# Summed over the live workers: the connections a service may open and has open, per host.
DB_POOL_SIZE = Gauge(
    "db_pool_size",
    "Connections the service's database pools may hold (DB_POOL_SIZE per pool).",
    ["service"],
    multiprocess_mode="livesum",
)
DB_POOL_IN_USE = Gauge(
    "db_pool_in_use",
    "Database connections checked out of the service's pools now.",
    ["service"],
    multiprocess_mode="livesum",
)

# The files prometheus_client writes in the multiprocess directory, and nothing else.
_SAMPLE_FILE = re.compile(r"^(counter|histogram|summary|gauge_[a-z]+)_\d+\.db$")

_warned_mismatch = False


def multiprocess_dir() -> Path | None:
    """The directory the workers share their samples through, or None in one-process mode."""
    global _warned_mismatch
    directory = get_settings().prometheus_multiproc_dir
    if directory is None:
        return None

    # prometheus_client picks its value store when it is first imported; if the variable came
    # later, this process keeps its samples in memory and the directory holds none of them.
    if not getattr(values.ValueClass, "_multiprocess", False):
        if not _warned_mismatch:
            log.warning(
                "event=metrics_multiprocess_ignored dir=%s reason=%s",
                directory,
                "PROMETHEUS_MULTIPROC_DIR was set after prometheus_client was imported",
            )
            _warned_mismatch = True
        return None
    return directory


def metrics_payload(extra: CollectorRegistry | None = None) -> tuple[bytes, str]:
    """The current scrape: body and content type, merged over the workers when there are several.

    `extra` holds collectors of one app's own that are read at scrape time (values that are the
    same whichever worker answers); they are appended as they are.
    """
    # Requests of this process not yet in http_request_duration_seconds are observed now.
    flush_request_logs()
    directory = multiprocess_dir()
    if directory is None:
        body = generate_latest(REGISTRY)
    else:
        # A fresh registry per scrape: the collector reads the files as they are now.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(directory))
        body = generate_latest(registry)

    if extra is not None:
        body += generate_latest(extra)
    return body, CONTENT_TYPE_LATEST


def add_metrics_endpoint(app: Any, *, collectors: Iterable[Collector] = ()) -> Any:
    """Serve GET /metrics on a FastAPI/Starlette or Flask app.

    `collectors` are evaluated at every scrape, alongside the process's (or workers') metrics.
    """
    extra = None
    if collectors:
        extra = CollectorRegistry(auto_describe=True)
        for collector in collectors:
            extra.register(collector)

    if hasattr(app, "wsgi_app"):
        from flask import Response as FlaskResponse

        def flask_metrics() -> FlaskResponse:
            body, content_type = metrics_payload(extra)
            return FlaskResponse(body, content_type=content_type)

        app.add_url_rule("/metrics", "metrics", flask_metrics, methods=["GET"])
    else:
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import Response

        async def starlette_metrics(_request: Any) -> Response:
            # Merging the workers' files is file I/O: keep it off the event loop.
            body, content_type = await run_in_threadpool(metrics_payload, extra)
            return Response(body, media_type=content_type)

        app.add_route("/metrics", starlette_metrics, methods=["GET"], include_in_schema=False)
    return app


def gunicorn_on_starting(_server: Any) -> None:
    """gunicorn hook: empty the multiprocess directory before the first worker starts.

    Samples left by an earlier run would otherwise be added to this one's.
    """
    directory = get_settings().prometheus_multiproc_dir
    if directory is None:
        return

    directory.mkdir(parents=True, exist_ok=True)
    stale = [path for path in directory.iterdir() if _SAMPLE_FILE.match(path.name)]
    for path in stale:
        path.unlink(missing_ok=True)
    log.info("event=metrics_dir_emptied dir=%s files=%d", directory, len(stale))


def gunicorn_child_exit(_server: Any, worker: Any) -> None:
    """gunicorn hook: a worker has exited (or was killed); its live gauges stop counting."""
    directory = get_settings().prometheus_multiproc_dir
    if directory is not None:
        multiprocess.mark_process_dead(worker.pid, str(directory))


class _ServicePools:
    """The instrumented pools of one service in this process, and the two gauges they feed."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.watches: set[_PoolWatch] = set()
        self.in_use = 0
        # Held while a count changes and its gauge is set, so the gauges move in event order.
        self.lock = threading.Lock()
        self.size_gauge = DB_POOL_SIZE.labels(service=service)
        self.in_use_gauge = DB_POOL_IN_USE.labels(service=service)

    def publish_size(self) -> None:
        self.size_gauge.set(sum(watch.size for watch in self.watches))


class _PoolWatch:
    """The connections one engine's pool has handed out, counted from the pool's own events.

    A set of connection records rather than a counter: a record leaves it however it goes back
    (checked in, invalidated, closed, detached), and leaving twice changes nothing, so the count
    is exact and never negative. SQLAlchemy's own `overflow()` starts at minus the pool size.
    """

    def __init__(self, pools: _ServicePools, size: int) -> None:
        self.pools = pools
        self.size = size
        self.checked_out: set[Any] = set()

    def listen(self, engine: Engine) -> None:
        # Listeners on the engine go to its pool, and to the pools engine.dispose() makes later.
        sa.event.listen(engine, "checkout", self._on_checkout)
        for gone in ("checkin", "invalidate", "close", "detach"):
            sa.event.listen(engine, gone, self._on_gone)

    def _on_checkout(self, _dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        pools = self.pools
        with pools.lock:
            if record not in self.checked_out:
                self.checked_out.add(record)
                pools.in_use += 1
                pools.in_use_gauge.set(pools.in_use)

    def _on_gone(self, _dbapi_connection: Any, record: Any, *_exception: Any) -> None:
        pools = self.pools
        with pools.lock:
            if record in self.checked_out:
                self.checked_out.discard(record)
                pools.in_use -= 1
                pools.in_use_gauge.set(pools.in_use)

    def forget(self) -> None:
        pools = self.pools
        with pools.lock:
            pools.watches.discard(self)
            pools.in_use -= len(self.checked_out)
            self.checked_out.clear()
            pools.in_use_gauge.set(pools.in_use)
            pools.publish_size()


_services: dict[str, _ServicePools] = {}
_services_lock = threading.Lock()
_watched_engines: "weakref.WeakKeyDictionary[Engine, _PoolWatch]" = weakref.WeakKeyDictionary()


def instrument_pool(engine: Engine, service: str) -> Engine:
    """Export `db_pool_size` and `db_pool_in_use` for the engine's pool, labelled `service`.

    Several engines of one service in a process add up; an engine stops counting when it is
    garbage collected. Instrumenting the same engine twice is a no-op.
    """
    with _services_lock:
        existing = _watched_engines.get(engine)
        if existing is not None:
            if existing.pools.service != service:
                raise ValueError(
                    f"engine already reports as service {existing.pools.service!r}, not {service!r}"
                )
            return engine
        if service not in _services:
            _services[service] = _ServicePools(service)
        pools = _services[service]
        watch = _PoolWatch(pools, pool_capacity(engine.pool))
        _watched_engines[engine] = watch

    watch.listen(engine)
    with pools.lock:
        pools.watches.add(watch)
        pools.publish_size()
        pools.in_use_gauge.set(pools.in_use)
    weakref.finalize(engine, watch.forget)
    return engine


def forget_pool(engine: Engine) -> None:
    """Stop counting the engine's pool: for a service shutting down its engine for good."""
    with _services_lock:
        watch = _watched_engines.pop(engine, None)
    if watch is not None:
        watch.forget()


def pool_capacity(pool: Pool) -> int:
    """How many connections the pool holds at most when none overflow (0 when it has no limit)."""
    size = getattr(pool, "size", 0)
    return int(size() if callable(size) else size)
