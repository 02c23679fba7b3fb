"""The Celery worker that writes batches and enriches them.

Run as `celery -A services.signal_ingestion.worker:celery_app worker`. Without -Q a worker
consumes both queues, SIGNAL_QUEUE and SIGNAL_GPU_QUEUE; `-Q signals-gpu` makes one for GPU
nodes only. Settings come from the environment; REDIS_URL is required.
"""

import logging
import os
import threading
import time
from functools import lru_cache
from typing import Any

import kombu.exceptions
import sqlalchemy as sa
from celery import Task
from celery.signals import setup_logging, worker_init, worker_process_shutdown
from flask import Flask, Response, jsonify
from prometheus_client import multiprocess
from sqlalchemy.engine import Engine
from werkzeug.serving import make_server

from perf_platform.db import DatabaseError, make_engine
from perf_platform.logs import configure_logging
from perf_platform.metrics import add_metrics_endpoint, instrument_pool, multiprocess_dir
from perf_platform.settings import get_settings
from perf_platform.tasks import GpuSlotError
from services.signal_ingestion import enrichment, store
from services.signal_ingestion.queueing import ENRICH_TASK, INGEST_TASK, make_celery

log = logging.getLogger(__name__)

celery_app = make_celery(get_settings())

# Worth waiting out: the database or the broker is away, not the batch at fault. Running a
# batch again is safe, it inserts nothing twice.
TRANSIENT_ERRORS = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    DatabaseError,
    kombu.exceptions.OperationalError,
)
GPU_SLOT_TIMEOUT_SECONDS = 30.0


@setup_logging.connect
def _platform_logging(**_kwargs: Any) -> None:
    # Connecting this signal keeps Celery from installing its own handlers: one log format.
    configure_logging()


@worker_init.connect
def _serve_metrics(**_kwargs: Any) -> None:
    port = get_settings().signal_worker_metrics_port
    if port is not None:
        serve_worker_metrics(port)


@worker_process_shutdown.connect
def _forget_process_metrics(pid: int | None = None, **_kwargs: Any) -> None:
    # A pool process that exits stops counting in the live gauges (gunicorn's child_exit, for
    # Celery). One killed outright keeps its samples until the worker restarts.
    directory = multiprocess_dir()
    if directory is not None:
        multiprocess.mark_process_dead(pid or os.getpid(), str(directory))


def serve_worker_metrics(port: int, host: str = "0.0.0.0") -> None:
    """GET /metrics (GPU slots, DB pool) and /healthz of this worker, from a thread.

    Pool processes count in their own memory: run a prefork worker with PROMETHEUS_MULTIPROC_DIR
    set so that this scrape, answered by the main process, merges theirs.
    """
    app = Flask("signal_ingestion_worker")

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    add_metrics_endpoint(app)
    server = make_server(host, port, app, threaded=True)
    threading.Thread(target=server.serve_forever, name="worker-metrics", daemon=True).start()
    log.info("event=worker_metrics_serving host=%s port=%d", host, port)


@lru_cache(maxsize=1)
def database() -> Engine:
    # Made on first use, so each prefork child opens its own connections after the fork.
    return instrument_pool(make_engine(), service="signal_ingestion_worker")


@celery_app.task(
    name=INGEST_TASK,
    bind=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=None,
)
def ingest_batch(self: Task, batch_id: str, items: list[dict[str, Any]]) -> int:
    """Write one batch in one transaction; a second delivery of it inserts nothing."""
    log.info("event=batch_started batch_id=%s signals=%d pid=%d", batch_id, len(items), os.getpid())
    with database().begin() as connection:
        inserted = store.insert_signals(connection, batch_id, items)
        _pause_for_tests("before_commit", batch_id)
    _pause_for_tests("after_commit", batch_id)
    log.info(
        "event=batch_written batch_id=%s signals=%d inserted=%d", batch_id, len(items), inserted
    )

    signal_ids = [item["signal_id"] for item in items]
    self.app.send_task(
        ENRICH_TASK,
        args=[batch_id, signal_ids],
        priority=self.request.delivery_info.get("priority"),
    )
    return inserted


@celery_app.task(
    name=ENRICH_TASK,
    bind=True,
    autoretry_for=(*TRANSIENT_ERRORS, GpuSlotError),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=20,
)
def enrich_batch(self: Task, batch_id: str, signal_ids: list[str]) -> int:
    """Score a stored batch on a GPU slot; waits for a free slot, retries when none frees."""
    return enrichment.enrich_batch(
        database(), batch_id, signal_ids, slot_timeout=GPU_SLOT_TIMEOUT_SECONDS
    )


def _pause_for_tests(point: str, batch_id: str) -> None:
    settings = get_settings()
    if settings.signal_batch_pause_seconds and settings.signal_batch_pause_at == point:
        log.info(
            "event=batch_paused batch_id=%s at=%s seconds=%s pid=%d",
            batch_id,
            point,
            settings.signal_batch_pause_seconds,
            os.getpid(),
        )
        time.sleep(settings.signal_batch_pause_seconds)
