"""Helpers of the signal-ingestion tests: the worker process, scraping, polling."""

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from perf_platform.settings import PROJECT_ROOT, Settings
from perf_platform.tables import signals
from perf_platform_tests.servers import RedisServer

CELERY = str(Path(sys.executable).parent / "celery")
# Short, so a task whose worker died comes back within seconds; far longer than any test batch.
VISIBILITY_TIMEOUT_SECONDS = 3


def wait_until(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Poll `condition` until it returns something truthy; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def queue_lengths(base_url: str) -> dict[str, float]:
    """celery_queue_length by queue_name, as a Prometheus server would scrape it."""
    response = httpx.get(f"{base_url}/metrics", timeout=10)
    response.raise_for_status()
    return {
        sample.labels["queue_name"]: sample.value
        for family in text_string_to_metric_families(response.text)
        if family.name == "celery_queue_length"
        for sample in family.samples
    }


def signal_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(signals)).scalar_one()


def make_batch(size: int, *, prefix: str, value: float = 1.0) -> list[dict[str, Any]]:
    return [
        {
            "signal_id": f"{prefix}-{index}",
            "source": "sensor-a",
            "name": "temperature",
            "value": value + index,
            "ts": f"2025-03-01T12:{index % 60:02d}:00Z",
        }
        for index in range(size)
    ]


@dataclass
class Api:
    """The app served over HTTP and its broker."""

    base_url: str
    redis: RedisServer

    def post(self, batch: Any, **params: Any) -> httpx.Response:
        return httpx.post(f"{self.base_url}/signals", json=batch, params=params, timeout=10)

    def queued_tasks(self) -> list[dict[str, Any]]:
        """Every task message waiting in the broker, decoded, oldest first: key, id, args."""
        client = redis.Redis.from_url(self.redis.url)
        tasks = []
        for key in sorted(client.keys("signals*")):
            # kombu pushes on the left and workers pop on the right.
            for raw in reversed(client.lrange(key, 0, -1)):
                message = json.loads(raw)
                args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
                tasks.append({"key": key.decode(), "id": message["headers"]["id"], "args": args})
        client.close()
        return tasks


@dataclass
class Ingestion(Api):
    """The app, its broker, the database and what a worker needs to join them."""

    settings: Settings
    engine: Engine
    worker_env: dict[str, str]


class CeleryWorker:
    """A `celery worker` process of the test's own; its log goes to a file the test reads."""

    def __init__(self, env: dict[str, str], log_path: Path, pool: str) -> None:
        self.env = env
        self.log_path = log_path
        self.pool = pool
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "CeleryWorker":
        command = [
            CELERY,
            "-A",
            "services.signal_ingestion.worker:celery_app",
            "worker",
            f"--pool={self.pool}",
            "--concurrency=1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            f"--hostname=test-{uuid.uuid4().hex[:8]}@%h",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_for_log(" ready.", timeout=60)
        return self

    def log_lines(self) -> list[str]:
        if not self.log_path.exists():
            return []
        return self.log_path.read_text(errors="replace").splitlines()

    def wait_for_log(self, text: str, *, timeout: float, count: int = 1) -> list[str]:
        """The log lines holding `text`, once there are `count` of them."""

        def found() -> list[str]:
            if self.process is not None and self.process.poll() is not None:
                tail = "\n".join(self.log_lines()[-30:])
                pytest.fail(f"celery worker exited with {self.process.returncode}:\n{tail}")
            lines = [line for line in self.log_lines() if text in line]
            return lines if len(lines) >= count else []

        return wait_until(found, timeout=timeout, what=f"{text!r} in the worker log")

    def kill(self, pid: int | None = None) -> None:
        """SIGKILL to one pool process, or to the whole worker (main and pool processes, as when
        its container is killed): it dies without a word to the broker."""
        assert self.process is not None
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            return
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """End the worker and its pool at once: the test has its answer, and the broker, a
        private Redis, goes with the test."""
        if self.process is None or self.process.poll() is not None:
            return
        self.kill()
