"""Celery as both sides use it: the web app sends batches, the worker runs them.

Delivery is at least once and the tasks are idempotent, so nothing is lost or doubled: a task is
acknowledged only after its batch is committed (acks_late), a worker process that dies hands its
task back (reject_on_worker_lost), and a worker that dies whole leaves the task in Redis's unacked
set until the visibility timeout returns it to its queue.
"""

from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from perf_platform.settings import Settings

INGEST_TASK = "signal_ingestion.ingest_batch"
ENRICH_TASK = "signal_ingestion.enrich_batch"

# Redis has no priority queues; kombu keeps one list per step and serves step 0 first.
PRIORITY_STEPS = list(range(10))
DEFAULT_PRIORITY = 5
# Readable keys ("signals:3") rather than kombu's default control-character separator.
PRIORITY_SEPARATOR = ":"


def transport_options(settings: Settings) -> dict[str, Any]:
    """kombu's Redis transport options for this deployment."""
    visibility = settings.celery_visibility_timeout_seconds
    options: dict[str, Any] = {
        "visibility_timeout": visibility,
        # Sweep for abandoned tasks often enough that one returns soon after its timeout; the
        # sweep is one ZRANGE on the unacked index, so doing it each time is cheap.
        "unacked_restore_interval": max(1, min(10, visibility // 4)),
        "unacked_restore_throttle": 1,
        "priority_steps": PRIORITY_STEPS,
        "sep": PRIORITY_SEPARATOR,
        # A broker that vanishes without closing the connection must not hang a publish forever.
        "socket_timeout": 5,
        "socket_connect_timeout": 2,
    }
    if settings.celery_global_keyprefix:
        options["global_keyprefix"] = settings.celery_global_keyprefix
    return options


def queue_names(settings: Settings) -> list[str]:
    return [settings.signal_queue, settings.signal_gpu_queue]


def make_celery(settings: Settings) -> Celery:
    """A Celery app on REDIS_URL configured for no loss; `celery_app` in worker.py is one."""
    if not settings.redis_url:
        raise ValueError("Celery needs a broker: set REDIS_URL")

    app = Celery("signal_ingestion", set_as_current=False)
    app.conf.update(
        broker_url=settings.redis_url,
        broker_transport_options=transport_options(settings),
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # A task cut off by a lost broker connection could not be acknowledged anyway; it is
        # redelivered, so stop it rather than let it finish twice.
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_priority=DEFAULT_PRIORITY,
        task_default_queue=settings.signal_queue,
        task_queues=[
            Queue(name, Exchange(name, type="direct"), routing_key=name)
            for name in queue_names(settings)
        ],
        task_routes={
            INGEST_TASK: {"queue": settings.signal_queue},
            ENRICH_TASK: {"queue": settings.signal_gpu_queue},
        },
        # Publishing while Redis is down fails within about a second, so the client hears 503.
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.25,
            "interval_max": 0.5,
        },
    )
    return app
