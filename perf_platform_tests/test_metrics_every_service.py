"""Every service serves /metrics that prometheus_client's parser reads, with the names we chart."""

import importlib
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from perf_platform.metrics import metrics_payload
from perf_platform.servers import serve_asgi, serve_wsgi
from perf_platform.settings import get_settings


@dataclass(frozen=True)
class Service:
    name: str  # the `service` label of its samples
    factory: str
    has_database: bool
    # A request that makes the service time a request and, if it has one, use its database.
    method: str = "GET"
    path: str = "/healthz"
    body: Any = None


SERVICES = [
    Service("scoring", "services.scoring.app:create_app", has_database=False),
    Service("analytics", "services.analytics.app:create_app", has_database=True, path="/summary"),
    Service("gateway", "services.gateway.app:create_app", has_database=False),
    # Without REDIS_URL (the embedded default) signal-ingestion writes each batch itself.
    Service(
        "signal_ingestion",
        "services.signal_ingestion.app:create_app",
        has_database=True,
        method="POST",
        path="/signals",
        body=[{"source": "metrics-test", "name": "probe", "value": 1.0, "ts": "2024-05-01T12:00Z"}],
    ),
]


@pytest.fixture
def embedded_settings(monkeypatch, postgres_engine):  # type: ignore[no-untyped-def]
    """Services on the run's PostgreSQL database with DB_POOL_SIZE=4 and no Redis; /healthz is
    timed like any other path, so every service has a request in its histogram."""
    monkeypatch.setenv(
        "PERF_PLATFORM_DATABASE_URL", postgres_engine.url.render_as_string(hide_password=False)
    )
    monkeypatch.setenv("DB_POOL_SIZE", "4")
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("PROFILING_EXCLUDED_PATHS", '["/metrics"]')
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def build(factory: str) -> Any:
    module_name, _, function = factory.partition(":")
    return getattr(importlib.import_module(module_name), function)()


def pool_gauges(text: str, service: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("db_pool") and sample.labels.get("service") == service
    }


@pytest.mark.parametrize("service", SERVICES, ids=[service.name for service in SERVICES])
def test_metrics_of_each_service_parse_and_name_what_we_chart(service, embedded_settings):
    # Apps other tests built and left unstarted may still hold pools under the same label in
    # this process; what this app adds is what it must show.
    before = pool_gauges(metrics_payload()[0].decode(), service.name)
    app = build(service.factory)
    serve = serve_wsgi if hasattr(app, "wsgi_app") else serve_asgi

    with serve(app) as base_url:
        answer = httpx.request(service.method, f"{base_url}{service.path}", json=service.body)
        assert answer.status_code < 300, answer.text
        scrape = httpx.get(f"{base_url}/metrics")

    assert scrape.status_code == 200
    samples = [
        sample
        for family in text_string_to_metric_families(scrape.text)
        for sample in family.samples
        if sample.labels.get("service") == service.name
    ]
    timed = [sample for sample in samples if sample.name == "http_request_duration_seconds_count"]
    assert sum(sample.value for sample in timed) >= 1
    if service.has_database:
        pool = pool_gauges(scrape.text, service.name)
        assert pool["db_pool_size"] - before.get("db_pool_size", 0) == 4
        assert pool["db_pool_in_use"] == 0
