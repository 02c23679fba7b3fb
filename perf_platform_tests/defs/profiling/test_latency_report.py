"""request_latency_report: p50/p95/p99 per endpoint from the request logs, and its WARN check."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from perf_platform.defs.profiling.assets import LATENCY_CHECK, request_latency_report
from perf_platform.defs.profiling.latency import percentile
from perf_platform.defs.resources import BenchmarkStoreResource
from perf_platform.profiling import add_profiling
from perf_platform.request_log import flush_request_logs
from perf_platform.servers import serve_asgi
from perf_platform.tables import score_benchmarks as table


def url_of(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def write_log(folder: Path, service: str, requests: list[tuple], ago: timedelta = timedelta(0)):
    """Lines as add_profiling writes them: (method, route, status, duration_ms) each."""
    moment = stamp(datetime.now(UTC) - ago)
    with (folder / f"{service}.jsonl").open("a") as log:
        for index, (method, route, status, duration_ms) in enumerate(requests):
            line = {
                "ts": moment,
                "service": service,
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
                "request_id": f"{service}-{index}",
            }
            log.write(json.dumps(line) + "\n")


def materialize(log_dir: Path, engine: sa.Engine, **config) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [request_latency_report],
        resources={"benchmark_store": BenchmarkStoreResource(database_url=url_of(engine))},
        run_config={
            "ops": {"request_latency_report": {"config": {"log_dir": str(log_dir), **config}}}
        },
        instance=dg.DagsterInstance.ephemeral(),
    )


def stored(engine: sa.Engine, run_id: str) -> dict[tuple[str, str], sa.Row]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(table).where(table.c.run_id == run_id)).all()
    return {(row.benchmark, row.phase): row for row in rows}


@pytest.fixture
def prepared_logs(tmp_path) -> Path:
    # scoring: POST /score takes 1..100 ms, two of them failed; analytics: GET /slow is slow.
    score = [("POST", "/score", 500 if ms in (7, 70) else 200, float(ms)) for ms in range(1, 101)]
    write_log(tmp_path, "scoring", score)
    write_log(tmp_path, "scoring", [("GET", "/ping", 200, 0.4)] * 10)
    slow = [("GET", "/slow", 200, 20.0)] * 30 + [("GET", "/slow", 200, 900.0)] * 10
    write_log(tmp_path, "analytics", slow)
    # Three days old and slow: outside the 24-hour window, so neither reported nor flagged.
    write_log(tmp_path, "analytics", [("GET", "/old", 200, 5000.0)] * 5, timedelta(days=3))
    with (tmp_path / "analytics.jsonl").open("a") as log:
        log.write('a line cut short by a crash {"ts\n')
    return tmp_path


def test_the_check_names_the_endpoint_whose_p95_is_over(prepared_logs, clean_postgres):
    result = materialize(prepared_logs, clean_postgres, p95_threshold_ms=200.0)

    assert result.success
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == LATENCY_CHECK
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.description.startswith("1 endpoints over p95 200 ms: analytics GET /slow")
    assert "/score" not in evaluation.description
    assert "/old" not in evaluation.description


def test_percentiles_and_counts_are_stored_per_service_and_route(prepared_logs, clean_postgres):
    result = materialize(prepared_logs, clean_postgres, p95_threshold_ms=200.0)

    rows = stored(clean_postgres, result.run_id)
    assert set(rows) == {
        ("latency:scoring", "POST /score"),
        ("latency:scoring", "GET /ping"),
        ("latency:analytics", "GET /slow"),
    }
    score = rows["latency:scoring", "POST /score"]
    assert (score.runs, score.p50_ms, score.p95_ms, score.p99_ms) == (100, 50.0, 95.0, 99.0)
    assert score.errors == 2
    assert score.details["status_counts"] == {"200": 98, "500": 2}
    slow = rows["latency:analytics", "GET /slow"]
    assert (slow.runs, slow.p50_ms, slow.p95_ms) == (40, 20.0, 900.0)


def test_the_metadata_has_a_float_per_endpoint_and_a_markdown_table(prepared_logs, clean_postgres):
    result = materialize(prepared_logs, clean_postgres, p95_threshold_ms=200.0)

    [materialization] = result.asset_materializations_for_node("request_latency_report")
    metadata = materialization.metadata
    assert metadata["analytics GET /slow p95_ms"] == dg.MetadataValue.float(900.0)
    assert metadata["scoring POST /score requests"] == dg.MetadataValue.float(100.0)
    assert metadata["requests"] == dg.MetadataValue.float(150.0)
    assert metadata["skipped_lines"] == dg.MetadataValue.float(1.0)
    table_lines = metadata["latency_table"].value.splitlines()
    assert table_lines[0].endswith("| 5xx | p95 over 200 ms |")
    assert "| analytics | `GET /slow` | 40 | 20.000 | 900.000 | 900.000 | 0 | yes |" in table_lines
    assert any(line.startswith("| scoring | `POST /score` |") for line in table_lines)
    assert all(line.endswith("| no |") for line in table_lines if "| scoring |" in line)


def test_every_endpoint_under_the_threshold_passes(prepared_logs, clean_postgres):
    result = materialize(prepared_logs, clean_postgres, p95_threshold_ms=1000.0)

    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed
    assert evaluation.description == "every endpoint's p95 is within 1000 ms"


def test_no_logs_report_nothing_and_pass(tmp_path, clean_postgres):
    result = materialize(tmp_path / "empty", clean_postgres)

    assert result.success
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed
    assert evaluation.description == "no requests logged in the window"
    assert stored(clean_postgres, result.run_id) == {}


def test_a_long_route_is_stored_within_the_phase_column(tmp_path, clean_postgres):
    route = "/" + "/".join(f"{{segment_{n}}}" for n in range(12))
    write_log(tmp_path, "gateway", [("GET", route, 200, 3.0)])

    result = materialize(tmp_path, clean_postgres)

    [row] = stored(clean_postgres, result.run_id).values()
    assert len(row.phase) <= 64
    assert row.phase.startswith("GET /{segment_0}")
    assert row.details["route"] == route


def test_it_reads_what_add_profiling_wrote(tmp_path, clean_postgres):
    app = FastAPI()

    @app.get("/things/{thing_id}")
    async def read_thing(thing_id: int) -> dict[str, int]:
        return {"thing_id": thing_id}

    add_profiling(app, service="latency-e2e", request_log_dir=tmp_path)
    with serve_asgi(app) as base_url:
        for thing in range(5):
            httpx.get(f"{base_url}/things/{thing}")
    flush_request_logs()

    result = materialize(tmp_path, clean_postgres)

    [row] = stored(clean_postgres, result.run_id).values()
    assert (row.benchmark, row.phase, row.runs) == (
        "latency:latency-e2e",
        "GET /things/{thing_id}",
        5,
    )
    assert 0 < row.p50_ms <= row.p95_ms <= row.p99_ms


@pytest.mark.parametrize(
    ("fraction", "expected"), [(0.5, 50), (0.95, 95), (0.99, 99), (0.0, 1), (1.0, 100)]
)
def test_percentiles_are_nearest_rank(fraction, expected):
    assert percentile(list(range(1, 101)), fraction) == expected


def test_a_single_request_is_every_percentile():
    assert [percentile([7.5], f) for f in (0.5, 0.95, 0.99)] == [7.5, 7.5, 7.5]
