"""Conditional GETs of the analytics endpoints (RFC 9110 section 13.1.2).

Each answer is tagged with the version of the signals it was computed from, so a client (the
gateway) that sends the tag back in If-None-Match learns "unchanged" from one index probe,
without the aggregation being run again.
"""

import xxhash
from prometheus_client import Counter
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from perf_platform.etag import if_none_match_field, is_not_modified

NOT_MODIFIED = Counter(
    "analytics_not_modified",
    "Analytics answers 304 Not Modified: If-None-Match matched the data version's tag.",
    ["endpoint"],
)

# Answers may be stored by clients and revalidated: never reused without asking.
CACHE_CONTROL = "no-cache"
# Bump when an endpoint builds a different body from the same data, so old tags stop matching.
REPRESENTATION = "1"


def entity_tag(version: str, endpoint: str, params: BaseModel) -> str:
    """A weak tag (RFC 9110 section 8.8.1): the data version plus a digest of the request.

    Weak because it names the data the body was computed from, not the body's bytes. The digest
    covers the endpoint and its normalized parameters (defaults filled in, times in UTC), so a
    tag is never taken for another query's answer.
    """
    request = f"{REPRESENTATION}\n{endpoint}\n{params.model_dump_json()}"
    return f'W/"signals-{version}-{xxhash.xxh3_64_hexdigest(request.encode())}"'


def validator_headers(etag: str | None) -> dict[str, str]:
    """The headers of a 200 (and of its 304): no ETag when the data version is not known."""
    headers = {"Cache-Control": CACHE_CONTROL}
    if etag is not None:
        headers["ETag"] = etag
    return headers


def not_modified(request: Request, endpoint: str, etag: str | None) -> Response | None:
    """The 304 for a request whose If-None-Match matches `etag`, else None."""
    if etag is None:
        return None
    if not is_not_modified(if_none_match_field(request.headers.getlist("if-none-match")), etag):
        return None

    NOT_MODIFIED.labels(endpoint=endpoint).inc()
    return Response(status_code=304, headers=validator_headers(etag))
