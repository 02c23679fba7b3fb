"""tRPC request URLs as @trpc/client builds them, and inputs the gateway tests share."""

import json
from urllib.parse import quote

SUMMARY = "analytics.summary"
AGGREGATE = "analytics.aggregate"
SCORE_INPUT = {"entity_id": "e-1", "features": {"clicks": 3.0, "dwell_seconds": 12.5}}


def query(trpc_url: str, path: str, data: object = None) -> str:
    """A query's URL: `<path>?input=<url-encoded JSON>`, no input parameter without input."""
    url = f"{trpc_url}/{path}"
    return url if data is None else f"{url}?input={quote(json.dumps(data))}"


def batch(trpc_url: str, calls: list[tuple[str, object]]) -> str:
    """A batch's URL: the paths joined by commas, inputs keyed by their place in the batch."""
    paths = ",".join(path for path, _ in calls)
    # Like httpBatchLink: a call without input has no key in the object.
    inputs = {str(index): data for index, (_, data) in enumerate(calls) if data is not None}
    return f"{trpc_url}/{paths}?batch=1&input={quote(json.dumps(inputs))}"
