"""The real @trpc/client (httpLink and httpBatchLink, Node) against a live gateway."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

HARNESS = Path(__file__).parent / "trpc_client"


@pytest.mark.slow
def test_the_trpc_client_gets_data_errors_and_304s_from_the_gateway(
    trpc_url: str, signals_db: Engine
) -> None:
    node = shutil.which("node")
    if node is None or not (HARNESS / "node_modules" / "@trpc" / "client").is_dir():
        pytest.fail("Node.js or the harness's packages are missing: run `make node-deps`")

    finished = subprocess.run(
        [node, "check_gateway.mjs", trpc_url],
        cwd=HARNESS,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(finished.stdout)

    assert report["failures"] == [], report["failures"]
    assert finished.returncode == 0, finished.stderr

    link = report["httpLink"]
    assert link["summary"]["data"]["count"] == 3
    assert link["summary"]["data"]["sum"] == 6.0
    assert [row["key"] for row in link["aggregate"]["data"]["rows"]] == ["sensor-a", "sensor-b"]
    assert link["compute"]["data"]["score"] == link["score"]["data"]["score"]
    assert link["badInput"]["error"] == {
        "kind": "TRPCClientError",
        "message": "invalid input: group_by: Input should be 'source', 'name', 'hour' or 'day'",
        "jsonRpcCode": -32600,
        "code": "BAD_REQUEST",
        "httpStatus": 400,
        "path": "analytics.aggregate",
    }
    assert link["unknown"]["error"]["code"] == "NOT_FOUND"
    assert link["unknown"]["error"]["jsonRpcCode"] == -32004
    assert [
        (call["method"], call["status"], call["etag"] is not None) for call in link["wire"]
    ] == [
        ("GET", 200, True),
        ("GET", 200, True),
        ("GET", 200, True),
        ("POST", 200, False),
        ("GET", 400, False),
        ("GET", 404, False),
    ]

    batch = report["httpBatchLink"]
    assert [call["status"] for call in batch["wire"]] == [200, 207]
    assert "batch=1" in batch["wire"][0]["url"]
    assert batch["aggregate"]["data"]["rows"][0] == {
        "key": "load",
        "count": 1,
        "sum": 3.0,
        "avg": 3.0,
        "min": 3.0,
        "max": 3.0,
    }
    assert batch["mixed"]["bad"]["error"]["path"] == "analytics.aggregate"

    revalidation = report["revalidation"]
    assert [call["status"] for call in revalidation["wire"]] == [200, 304]
    assert revalidation["second"]["data"] == revalidation["first"]["data"]
