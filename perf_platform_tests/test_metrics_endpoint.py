"""GET /metrics on Starlette and Flask apps, in one process."""

import logging

import httpx
import pytest
from flask import Flask
from prometheus_client import CONTENT_TYPE_LATEST, Counter
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from perf_platform import metrics
from perf_platform.db import make_engine
from perf_platform.metrics import add_metrics_endpoint, metrics_payload
from perf_platform.servers import serve_asgi, serve_wsgi
from perf_platform.settings import get_settings

ENDPOINT_PROBES = Counter("metrics_endpoint_probes", "Probes counted by the endpoint tests.")


def families(body: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(body)}


@pytest.mark.parametrize("kind", ["starlette", "flask"])
def test_metrics_endpoint_serves_prometheus_text_that_parses(kind, sqlite_url):
    engine = make_engine(sqlite_url, service=f"endpoint-{kind}")
    ENDPOINT_PROBES.inc(3)
    app = add_metrics_endpoint(Starlette() if kind == "starlette" else Flask(__name__))
    serve = serve_asgi if kind == "starlette" else serve_wsgi

    with serve(app) as base_url:
        response = httpx.get(f"{base_url}/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    found = families(response.text)
    assert found["metrics_endpoint_probes"].samples[0].value >= 3
    pool = {
        (sample.name, sample.labels["service"]): sample.value
        for sample in found["db_pool_size"].samples + found["db_pool_in_use"].samples
    }
    assert pool[("db_pool_size", f"endpoint-{kind}")] == get_settings().db_pool_size
    assert pool[("db_pool_in_use", f"endpoint-{kind}")] == 0
    engine.dispose()


def test_a_multiprocess_dir_set_after_import_is_ignored_with_a_warning(
    monkeypatch, tmp_path, caplog
):
    # prometheus_client chose its in-memory store when this test process imported it.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(metrics, "_warned_mismatch", False)
    get_settings.cache_clear()
    ENDPOINT_PROBES.inc()

    try:
        with caplog.at_level(logging.WARNING, logger="perf_platform.metrics"):
            body, _ = metrics_payload()
    finally:
        get_settings.cache_clear()

    assert "metrics_endpoint_probes_total" in body.decode()
    assert "event=metrics_multiprocess_ignored" in caplog.text
