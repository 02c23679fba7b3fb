"""Helpers the scoring tests share: a /score call and a counter read from /metrics."""

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

# Cheap scores: these tests are about the service, not the model's cost.
TEST_ITERATIONS = 5


def post_score(
    client: httpx.Client, features: dict[str, Any], *, entity_id: str = "e-1", **headers: str
) -> httpx.Response:
    """POST /score; keyword headers are written with underscores (cache_control=...)."""
    headers = {name.replace("_", "-"): value for name, value in headers.items()}
    body = {"entity_id": entity_id, "features": features}
    return client.post("/score", json=body, headers=headers)


def counter(client: httpx.Client, name: str, **labels: str) -> float:
    """The value of a counter sample on the service's /metrics (0 when absent)."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0
