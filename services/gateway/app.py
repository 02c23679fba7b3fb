"""The API gateway: tRPC procedures over the scoring and analytics services, with ETags.

Run it with `uvicorn --factory services.gateway.app:create_app`. Successful queries (GET and
HEAD) carry a strong ETag over the exact body; a request whose If-None-Match matches it is
answered 304 Not Modified with no body. Errors and mutations carry no ETag and are not stored.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from prometheus_client import Counter
from starlette.responses import Response

from perf_platform.metrics import add_metrics_endpoint
from perf_platform.profiling import add_profiling
from perf_platform.settings import Settings, get_settings
from services.gateway.etag import is_not_modified, make_etag, not_modified_headers, takes_etag
from services.gateway.procedures import Procedure, build_procedures
from services.gateway.trpc import (
    TRPCError,
    decode_inputs,
    encode,
    error_envelope,
    response_status,
    result_envelope,
    split_paths,
)
from services.gateway.upstream import Upstream

log = logging.getLogger(__name__)

NOT_MODIFIED = Counter(
    "gateway_not_modified",
    "tRPC query responses answered 304 Not Modified (If-None-Match matched the ETag).",
    ["procedure"],
)

MAX_BODY_BYTES = 1_048_576
# Each call may be an upstream request; a bigger batch would only wait for the pool.
MAX_BATCH_CALLS = 100
ALLOWED_METHODS = "GET, HEAD, POST"
# The response would change with trpc-accept (a streaming request is refused), as in tRPC.
VARY = "trpc-accept"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = httpx.Timeout(
            settings.gateway_upstream_timeout_seconds,
            connect=settings.gateway_connect_timeout_seconds,
        )
        async with httpx.AsyncClient(timeout=timeout) as client:
            deadline = settings.gateway_upstream_timeout_seconds
            scoring = Upstream("scoring", settings.gateway_scoring_url, client, deadline)
            analytics = Upstream("analytics", settings.gateway_analytics_url, client, deadline)
            app.state.procedures = build_procedures(scoring, analytics)
            yield

    app = FastAPI(title="gateway", lifespan=lifespan)
    add_profiling(app, service="gateway")
    add_metrics_endpoint(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    async def trpc_endpoint(request: Request) -> Response:
        return await _handle(request, request.app.state.procedures, settings.gateway_cache_control)

    app.add_api_route(
        "/trpc/{path:path}",
        trpc_endpoint,
        methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    return app


async def _handle(
    request: Request, procedures: dict[str, Procedure], cache_control: str
) -> Response:
    is_batch = request.query_params.get("batch") == "1"
    paths = split_paths(request.path_params["path"], is_batch=is_batch)

    try:
        _check_request(request, paths, procedures)
        raw = await _raw_input(request)
        inputs = decode_inputs(raw, is_batch=is_batch, count=len(paths))
    except TRPCError as error:
        outcomes: list[Any] = [error] * len(paths)
    else:
        calls = zip(paths, inputs, strict=True)
        outcomes = await asyncio.gather(
            *(_run(procedures, path, request.method, raw_input) for path, raw_input in calls)
        )

    errors = [outcome if isinstance(outcome, TRPCError) else None for outcome in outcomes]
    envelopes = [
        error_envelope(outcome, path)
        if isinstance(outcome, TRPCError)
        else result_envelope(outcome)
        for path, outcome in zip(paths, outcomes, strict=True)
    ]
    body = encode(envelopes if is_batch else envelopes[0])
    status = response_status(errors)

    headers = {"Vary": VARY, "Cache-Control": "no-store"}
    if status == 405:
        headers["Allow"] = ALLOWED_METHODS
    if takes_etag(request.method, status):
        headers["ETag"] = make_etag(body)
        headers["Cache-Control"] = cache_control
        if is_not_modified(_if_none_match(request), headers["ETag"]):
            NOT_MODIFIED.labels(procedure="batch" if is_batch else paths[0]).inc()
            return Response(status_code=304, headers=not_modified_headers(headers))
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def _check_request(request: Request, paths: list[str], procedures: dict[str, Procedure]) -> None:
    """Raise TRPCError when the request as a whole is wrong, before any procedure runs."""
    if len(paths) > MAX_BATCH_CALLS:
        raise TRPCError(
            "BAD_REQUEST", f"a batch holds at most {MAX_BATCH_CALLS} calls, this one {len(paths)}"
        )
    if request.method not in ("GET", "HEAD", "POST"):
        raise TRPCError(
            "METHOD_NOT_SUPPORTED", f"{request.method} is not supported; use GET, HEAD or POST"
        )
    if request.headers.get("trpc-accept") == "application/jsonl":
        raise TRPCError(
            "BAD_REQUEST", "streaming responses are not supported here; use httpBatchLink"
        )
    if request.method == "POST":
        content_type = request.headers.get("content-type")
        if content_type is None:
            raise TRPCError("UNSUPPORTED_MEDIA_TYPE", "Missing content-type header")
        if not content_type.startswith("application/json"):
            raise TRPCError("UNSUPPORTED_MEDIA_TYPE", f'Unsupported content-type "{content_type}"')

    kinds = {procedures[path].kind for path in paths if path in procedures}
    if len(kinds) > 1:
        raise TRPCError("BAD_REQUEST", "Cannot mix procedure types in call: query, mutation")


async def _raw_input(request: Request) -> str | bytes | None:
    if request.method != "POST":
        return request.query_params.get("input")

    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise TRPCError("PAYLOAD_TOO_LARGE", f"the body is larger than {MAX_BODY_BYTES} bytes")
    return bytes(body)


async def _run(procedures: dict[str, Procedure], path: str, method: str, raw_input: Any) -> Any:
    """One call's data, or the TRPCError it failed with (returned, so a batch goes on)."""
    procedure = procedures.get(path)
    if procedure is None:
        return TRPCError("NOT_FOUND", f'No procedure found on path "{path}"')
    allowed = ("POST",) if procedure.kind == "mutation" else ("GET", "HEAD")
    if method not in allowed:
        return TRPCError(
            "METHOD_NOT_SUPPORTED",
            f'Unsupported {method}-request to {procedure.kind} procedure at path "{path}"',
        )

    try:
        return await procedure(raw_input)
    except TRPCError as error:
        return error
    except Exception:
        log.exception("procedure=%s outcome=internal_error", path)
        return TRPCError("INTERNAL_SERVER_ERROR", "internal error in the gateway")


def _if_none_match(request: Request) -> str | None:
    # Several field lines make one list (RFC 9110 section 5.3).
    values = request.headers.getlist("if-none-match")
    return ", ".join(values) if values else None
