"""/metrics under gunicorn with two workers: one scrape sums them, a dead worker stops counting."""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from perf_platform_tests.servers import free_port

# A tiny service with a database pool, GPU slots and a counter of its own.
APP = """
import os, time

import sqlalchemy as sa
from flask import Flask, jsonify, request
from prometheus_client import Counter

from perf_platform.db import make_engine
from perf_platform.metrics import add_metrics_endpoint
from perf_platform.tasks import gpu_slot

HITS = Counter("tiny_hits", "Requests to /hit.")


def create_app():
    engine = make_engine(service="tiny")
    app = Flask("tiny")

    @app.get("/hit")
    def hit():
        HITS.inc()
        with gpu_slot(timeout=30):
            time.sleep(float(request.args.get("sleep", 0)))
        return jsonify(pid=os.getpid())

    @app.get("/hold")
    def hold():
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            with open(request.args["pidfile"], "w") as pidfile:
                pidfile.write(str(os.getpid()))
            time.sleep(600)

    return add_metrics_endpoint(app)
"""

CONFIG = """
from perf_platform.metrics import gunicorn_child_exit as child_exit
from perf_platform.metrics import gunicorn_on_starting as on_starting
"""


class Gunicorn:
    def __init__(
        self, process: subprocess.Popen[bytes], base_url: str, metrics_dir: Path, log_path: Path
    ) -> None:
        self.process = process
        self.base_url = base_url
        self.metrics_dir = metrics_dir
        self.log_path = log_path

    def scrape(self) -> dict[tuple[str, tuple], float]:
        response = httpx.get(f"{self.base_url}/metrics", timeout=10)
        assert response.status_code == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }


@pytest.fixture
def gunicorn(tmp_path, postgres_url, redis_url, redis_prefix) -> Iterator[Gunicorn]:
    """`gunicorn -w 2` serving the tiny app, PROMETHEUS_MULTIPROC_DIR set; stopped afterwards."""
    (tmp_path / "tiny_app.py").write_text(APP)
    (tmp_path / "gunicorn_conf.py").write_text(CONFIG)
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"left by an earlier run")
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "PERF_PLATFORM_DATABASE_URL": postgres_url.render_as_string(hide_password=False),
        "REDIS_URL": redis_url,
        "GPU_SLOT_KEY": f"{redis_prefix}gunicorn-gpu:{uuid.uuid4().hex[:8]}",
        "GPU_SLOTS": "2",
        "DB_POOL_SIZE": "3",
    }
    gunicorn_bin = Path(sys.executable).with_name("gunicorn")
    command = [
        str(gunicorn_bin),
        "--workers", "2",
        "--bind", f"127.0.0.1:{port}",
        "--config", str(tmp_path / "gunicorn_conf.py"),
        "--chdir", str(tmp_path),
        "tiny_app:create_app()",
    ]  # fmt: skip
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Gunicorn(process, f"http://127.0.0.1:{port}", metrics_dir, log_path)
    try:
        wait_for(lambda: _answers(server), what="gunicorn to answer")
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _answers(server: Gunicorn) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"gunicorn exited: {server.log_path.read_text()}")
    try:
        return httpx.get(f"{server.base_url}/metrics", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def wait_for(condition, *, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def hit_both_workers(server: Gunicorn) -> tuple[int, set[int]]:
    """Requests /hit in concurrent pairs: a sync worker busy with one leaves the other to the
    second worker. Returns how many requests were made and the worker pids that answered."""
    pids: set[int] = set()
    made = 0
    lock = threading.Lock()

    def hit() -> None:
        response = httpx.get(f"{server.base_url}/hit", params={"sleep": 0.3}, timeout=30)
        assert response.status_code == 200
        with lock:
            pids.add(response.json()["pid"])

    for _ in range(3):
        pair = [threading.Thread(target=hit) for _ in range(2)]
        for thread in pair:
            thread.start()
        for thread in pair:
            thread.join(timeout=60)
        made += 2
    return made, pids


def test_one_scrape_sums_both_workers(gunicorn):
    made, pids = hit_both_workers(gunicorn)

    assert len(pids) == 2
    for _ in range(4):  # whichever worker answers the scrape, it reports both
        metrics = gunicorn.scrape()
        assert metrics[("tiny_hits_total", ())] == made
        assert metrics[("gpu_slot_acquire_total", ())] == made
        assert metrics[("gpu_slot_wait_seconds_count", ())] == made
        assert metrics[("gpu_slots_in_use", ())] == 0
        assert metrics[("gpu_slots_capacity", ())] == 2
        assert metrics[("db_pool_size", (("service", "tiny"),))] == 2 * 3
        assert metrics[("db_pool_in_use", (("service", "tiny"),))] == 0
    # The file planted before startup was removed by the on_starting hook, not merged.
    assert not (gunicorn.metrics_dir / "counter_1.db").exists()


def test_a_killed_workers_live_gauges_leave_the_scrape(gunicorn, tmp_path):
    pidfile = tmp_path / "holder.pid"
    holder = threading.Thread(target=_hold_a_connection, args=(gunicorn, pidfile), daemon=True)
    holder.start()
    wait_for(lambda: pidfile.exists() and pidfile.read_text(), what="a worker to hold")
    assert gunicorn.scrape()[("db_pool_in_use", (("service", "tiny"),))] == 1

    os.kill(int(pidfile.read_text()), signal.SIGKILL)

    # gunicorn's child_exit hook drops the dead worker's live gauges (without it the scrape
    # would keep its 1 connection in use and its 3 of pool size); the replacement worker brings
    # a pool of its own.
    def two_idle_pools() -> bool:
        metrics = gunicorn.scrape()
        return (
            metrics.get(("db_pool_size", (("service", "tiny"),))) == 6
            and metrics.get(("db_pool_in_use", (("service", "tiny"),))) == 0
        )

    wait_for(two_idle_pools, what="the dead worker to leave the scrape")


def _hold_a_connection(server: Gunicorn, pidfile: Path) -> None:
    # The worker answering this is killed on purpose, so the request fails.
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(f"{server.base_url}/hold", params={"pidfile": str(pidfile)}, timeout=120)
