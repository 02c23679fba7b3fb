"""python -m services.scoring: the service as its own process, with the platform's log."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from perf_platform_tests.servers import free_port

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_run_as_a_module_it_serves_and_logs_its_cache_at_startup():
    port = free_port()
    env = {name: value for name, value in os.environ.items() if name != "REDIS_URL"}
    process = subprocess.Popen(
        [sys.executable, "-m", "services.scoring", "--port", str(port)],
        cwd=ROOT,
        env={**env, "SCORE_MODEL_ITERATIONS": "5", "LOG_LEVEL": "INFO"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base_url, process)
        body = {"entity_id": "e-1", "features": {"x": 1.0}}
        answers = [httpx.post(f"{base_url}/score", json=body) for _ in range(2)]
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)

    assert [answer.headers["x-cache"] for answer in answers] == ["miss", "hit"]
    assert "event=score_cache_started backend=memory" in stderr
    assert "event=scoring_started model_version=" in stderr


def wait_until_healthy(base_url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the service exited early"
        try:
            if httpx.get(f"{base_url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("the service did not answer /healthz within 60 s")
