"""The API gateway: tRPC procedures over the scoring and analytics services, with ETags.

Run it with `uvicorn --factory services.gateway.app:create_app`. Successful queries (GET and
HEAD) carry a strong ETag over the exact body; a request whose If-None-Match matches it is
answered 304 Not Modified with no body. Errors and mutations carry no ETag and are not stored.

When the upstreams of a query tag their answers (analytics does), the gateway remembers those
tags next to its own (services.gateway.revalidation) and answers a matching If-None-Match by
revalidating at the upstreams rather than fetching and hashing the data again.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI, Request
from prometheus_client import Counter
from pydantic import BaseModel
from starlette.responses import Response

from perf_platform.etag import (
    if_none_match_field,
    is_not_modified,
    make_etag,
    not_modified_headers,
    takes_etag,
)
from perf_platform.metrics import add_metrics_endpoint
from perf_platform.profiling import add_profiling
from perf_platform.settings import Settings, get_settings
from services.gateway.procedures import Procedure, build_procedures
from services.gateway.revalidation import RequestKey, StoredValidators, ValidatorStore
from services.gateway.trpc import (
    TRPCError,
    decode_inputs,
    encode,
    error_envelope,
    response_status,
    result_envelope,
    split_paths,
)
from services.gateway.upstream import Upstream, UpstreamAnswer

log = logging.getLogger(__name__)

NOT_MODIFIED = Counter(
    "gateway_not_modified",
    "tRPC query responses answered 304 Not Modified (If-None-Match matched the ETag).",
    ["procedure"],
)
UPSTREAM_REVALIDATIONS = Counter(
    "gateway_upstream_revalidations",
    "Calls whose stored upstream ETag was sent back to the upstream, by what it answered: "
    "not_modified (the client's copy holds), modified (fetched and built again) or failed.",
    ["procedure", "result"],
)

MAX_BODY_BYTES = 1_048_576
# Each call may be an upstream request; a bigger batch would only wait for the pool.
MAX_BATCH_CALLS = 100
ALLOWED_METHODS = "GET, HEAD, POST"
# The response would change with trpc-accept (a streaming request is refused), as in tRPC.
VARY = "trpc-accept"


@dataclass(frozen=True)
class _Call:
    """A call ready to run: its procedure and its validated input."""

    procedure: Procedure
    request: BaseModel


# What one call ended with; a TRPCError is returned, not raised, so a batch goes on.
Outcome = UpstreamAnswer | TRPCError


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
    app.state.validators = ValidatorStore(settings.gateway_revalidation_entries)
    add_profiling(app, service="gateway")
    add_metrics_endpoint(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    async def trpc_endpoint(request: Request) -> Response:
        state = request.app.state
        return await _handle(
            request, state.procedures, state.validators, settings.gateway_cache_control
        )

    app.add_api_route(
        "/trpc/{path:path}",
        trpc_endpoint,
        methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    return app


async def _handle(
    request: Request,
    procedures: dict[str, Procedure],
    validators: ValidatorStore,
    cache_control: str,
) -> Response:
    is_batch = request.query_params.get("batch") == "1"
    paths = split_paths(request.path_params["path"], is_batch=is_batch)

    try:
        _check_request(request, paths, procedures)
        raw = await _raw_input(request)
        inputs = decode_inputs(raw, is_batch=is_batch, count=len(paths))
    except TRPCError as error:
        prepared: list[_Call | TRPCError] = [error] * len(paths)
    else:
        calls = zip(paths, inputs, strict=True)
        prepared = [
            _prepare(procedures, path, request.method, raw_input) for path, raw_input in calls
        ]

    if_none_match = if_none_match_field(request.headers.getlist("if-none-match"))
    # A label only once a 304 is sent: only known procedures get that far.
    counted_as = "batch" if is_batch else paths[0]
    key = _validators_key(request.method, is_batch, prepared)
    stored = validators.get(key) if key is not None else None
    headers = {"Vary": VARY, "Cache-Control": cache_control}
    if stored is not None and is_not_modified(if_none_match, stored.etag):
        # The client holds the body these upstream tags were answered with: ask the upstreams.
        ready = [call for call in prepared if isinstance(call, _Call)]
        outcomes = await _revalidate(ready, stored.upstream_etags)
        if all(_unchanged(outcome) for outcome in outcomes):
            NOT_MODIFIED.labels(procedure=counted_as).inc()
            return Response(status_code=304, headers={**headers, "ETag": stored.etag})
        outcomes = await _fetch_unchanged_again(ready, outcomes)
    else:
        outcomes = await asyncio.gather(*(_execute(call) for call in prepared))

    body, status = _body_and_status(paths, outcomes, is_batch=is_batch)
    if not takes_etag(request.method, status):
        headers["Cache-Control"] = "no-store"
        if status == 405:
            headers["Allow"] = ALLOWED_METHODS
        return Response(body, status_code=status, headers=headers, media_type="application/json")

    # The tag comes from the body alone, whichever path built it.
    headers["ETag"] = make_etag(body)
    if key is not None:
        _remember(validators, key, outcomes, headers["ETag"])
    if is_not_modified(if_none_match, headers["ETag"]):
        NOT_MODIFIED.labels(procedure=counted_as).inc()
        return Response(status_code=304, headers=not_modified_headers(headers))
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def _body_and_status(
    paths: list[str], outcomes: list[Outcome], *, is_batch: bool
) -> tuple[bytes, int]:
    envelopes = [
        error_envelope(outcome, path)
        if isinstance(outcome, TRPCError)
        else result_envelope(outcome.data)
        for path, outcome in zip(paths, outcomes, strict=True)
    ]
    errors = [outcome if isinstance(outcome, TRPCError) else None for outcome in outcomes]
    return encode(envelopes if is_batch else envelopes[0]), response_status(errors)


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


def _prepare(
    procedures: dict[str, Procedure], path: str, method: str, raw_input: Any
) -> _Call | TRPCError:
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
        return _Call(procedure, procedure.validate(raw_input))
    except TRPCError as error:
        return error


async def _execute(call: _Call | TRPCError, if_none_match: str | None = None) -> Outcome:
    if isinstance(call, TRPCError):
        return call
    try:
        return await call.procedure(call.request, if_none_match=if_none_match)
    except TRPCError as error:
        return error
    except Exception:
        log.exception("procedure=%s outcome=internal_error", call.procedure.path)
        return TRPCError("INTERNAL_SERVER_ERROR", "internal error in the gateway")


def _validators_key(
    method: str, is_batch: bool, prepared: list[_Call | TRPCError]
) -> RequestKey | None:
    """The request's key in the validator store, or None when it cannot be revalidated."""
    if method not in ("GET", "HEAD"):
        return None
    calls = []
    for call in prepared:
        if isinstance(call, TRPCError) or not call.procedure.revalidates:
            return None
        calls.append(call.procedure.cache_key(call.request))
    return (is_batch, tuple(calls))


async def _revalidate(calls: list[_Call], upstream_etags: tuple[str, ...]) -> list[Outcome]:
    outcomes = await asyncio.gather(
        *(_execute(call, tag) for call, tag in zip(calls, upstream_etags, strict=True))
    )
    for call, outcome in zip(calls, outcomes, strict=True):
        if isinstance(outcome, TRPCError):
            result = "failed"
        else:
            result = "not_modified" if outcome.not_modified else "modified"
        UPSTREAM_REVALIDATIONS.labels(procedure=call.procedure.path, result=result).inc()
    return outcomes


async def _fetch_unchanged_again(calls: list[_Call], outcomes: list[Outcome]) -> list[Outcome]:
    """The outcomes with each "not modified" replaced by a full answer: no body is kept here."""
    again = [index for index, outcome in enumerate(outcomes) if _unchanged(outcome)]
    answers = await asyncio.gather(*(_execute(calls[index]) for index in again))
    fetched = dict(zip(again, answers, strict=True))
    return [fetched.get(index, outcome) for index, outcome in enumerate(outcomes)]


def _unchanged(outcome: Outcome) -> bool:
    return isinstance(outcome, UpstreamAnswer) and outcome.not_modified


def _remember(
    validators: ValidatorStore, key: RequestKey, outcomes: list[Outcome], etag: str
) -> None:
    """Keep the upstream tags behind a 200's body, or forget the request if one is missing."""
    upstream_etags: list[str] = []
    for outcome in outcomes:
        if not isinstance(outcome, UpstreamAnswer) or outcome.etag is None:
            validators.discard(key)
            return
        upstream_etags.append(outcome.etag)
    validators.put(key, StoredValidators(tuple(upstream_etags), etag))
