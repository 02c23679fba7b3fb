"""signal-ingestion: POST /signals validates a batch and queues it for the Celery workers.

Run it with `gunicorn 'services.signal_ingestion.app:create_app()'`; the workers with
`celery -A services.signal_ingestion.worker:celery_app worker`. Without REDIS_URL (the embedded
default) there is no queue and each batch is written to the database during its request.
"""

import json
import logging
import threading
import uuid
from typing import Any, Protocol

import kombu.exceptions
import redis
from flask import Flask, Response, jsonify, request
from sqlalchemy.engine import Engine
from werkzeug.exceptions import RequestEntityTooLarge

from perf_platform.db import DatabaseError, make_engine
from perf_platform.logs import configure_logging, redact_url
from perf_platform.metrics import add_metrics_endpoint, instrument_pool
from perf_platform.profiling import add_profiling
from perf_platform.settings import Settings, get_settings
from services.signal_ingestion import store
from services.signal_ingestion.queue_metrics import CeleryQueueLengthCollector
from services.signal_ingestion.queueing import (
    DEFAULT_PRIORITY,
    INGEST_TASK,
    make_celery,
    queue_names,
    transport_options,
)
from services.signal_ingestion.schemas import BatchError, BatchTooLarge, parse_batch

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


class BatchSink(Protocol):
    def put(self, batch_id: str, items: list[dict[str, Any]], priority: int) -> None: ...


class CeleryQueue:
    """Sends each batch as one ingest task; the task id is the batch id."""

    def __init__(self, settings: Settings) -> None:
        self.celery = make_celery(settings)

    def put(self, batch_id: str, items: list[dict[str, Any]], priority: int) -> None:
        self.celery.send_task(
            INGEST_TASK, args=[batch_id, items], task_id=batch_id, priority=priority
        )


class DirectWriter:
    """No broker: the batch is written during the request, in one transaction as a worker would."""

    def __init__(self, settings: Settings) -> None:
        self.database_url = settings.database_url
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def put(self, batch_id: str, items: list[dict[str, Any]], priority: int) -> None:
        with self._lock:
            if self._engine is None:
                engine = make_engine(self.database_url)
                self._engine = instrument_pool(engine, service="signal_ingestion")
        with self._engine.begin() as connection:
            store.insert_signals(connection, batch_id, items)


# What a sink raises when the batch cannot be handed on; the client may send it again.
UNAVAILABLE = (kombu.exceptions.OperationalError, redis.RedisError, OSError, DatabaseError)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    app = Flask("signal_ingestion")
    # Werkzeug refuses a longer body with 413 before it is read into memory.
    app.config["MAX_CONTENT_LENGTH"] = settings.signal_batch_max_bytes

    sink: BatchSink
    if settings.redis_url:
        sink = CeleryQueue(settings)
        log.info("event=ingestion_ready mode=celery broker=%s", redact_url(settings.redis_url))
    else:
        sink = DirectWriter(settings)
        log.warning("event=ingestion_ready mode=direct reason=%s", "REDIS_URL unset: no queue")

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.post("/signals")
    def post_signals() -> tuple[Response, int] | tuple[Response, int, dict[str, str]]:
        try:
            priority = _priority(request.args.get("priority"))
            payload = _json_body(request.get_data())
            signals = parse_batch(payload, max_items=settings.signal_batch_max_items)
        except BatchTooLarge as exc:
            return _refusal(413, "batch too large", exc.reason)
        except BatchError as exc:
            return _refusal(400, "invalid batch", exc.reason, exc.errors)

        batch_id = uuid.uuid4().hex
        try:
            sink.put(batch_id, [signal.as_message() for signal in signals], priority)
        except UNAVAILABLE as exc:
            log.error("event=batch_not_queued batch_id=%s error=%s", batch_id, _one_line(exc))
            response, status = _refusal(503, "queue unavailable", _one_line(exc))
            return response, status, {"Retry-After": str(RETRY_AFTER_SECONDS)}

        log.info(
            "event=batch_queued batch_id=%s signals=%d priority=%d",
            batch_id,
            len(signals),
            priority,
        )
        return jsonify(batch_id=batch_id, accepted=len(signals)), 202

    @app.errorhandler(RequestEntityTooLarge)
    def body_too_large(_exc: RequestEntityTooLarge) -> tuple[Response, int]:
        return _refusal(
            413,
            "batch too large",
            f"the body is over {settings.signal_batch_max_bytes} bytes (SIGNAL_BATCH_MAX_BYTES)",
        )

    add_profiling(app, service="signal_ingestion")
    # The queue lengths are read from Redis at each scrape, the same whichever worker answers.
    queue_lengths = []
    if settings.redis_url:
        queue_lengths.append(
            CeleryQueueLengthCollector(
                settings.redis_url, queue_names(settings), transport_options(settings)
            )
        )
    add_metrics_endpoint(app, collectors=queue_lengths)
    return app


def _priority(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PRIORITY
    if not raw.isdigit() or int(raw) > 9:
        raise BatchError(f"priority must be an integer from 0 (served first) to 9, not {raw!r}")
    return int(raw)


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BatchError(f"the body is not JSON: {exc}") from None


def _refusal(
    status: int, error: str, reason: str, errors: list[dict[str, Any]] | None = None
) -> tuple[Response, int]:
    log.info("event=batch_refused status=%d reason=%s", status, json.dumps(reason))
    body: dict[str, Any] = {"error": error, "reason": reason}
    if errors:
        body["errors"] = errors
    return jsonify(body), status


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
