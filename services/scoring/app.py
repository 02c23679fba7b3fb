"""The scoring service: POST /score, from the score cache when it has the answer.

Run it with `uvicorn --factory services.scoring.app:create_app` or `python -m services.scoring`
(which also sets up the log). REDIS_URL selects the shared cache, with a near tier of
SCORE_NEAR_CACHE_ENTRIES recent scores in each process in front of it ("redis+near"); without
REDIS_URL, scores are cached in the process, and the log says so at startup.
"""

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.responses import Response

from perf_platform.metrics import add_metrics_endpoint
from perf_platform.profiling import add_profiling
from perf_platform.settings import Settings, get_settings
from services.scoring import model
from services.scoring.cache import MemoryScoreCache, RedisScoreCache, ScoreCache
from services.scoring.limits import BodySizeLimitMiddleware
from services.scoring.schemas import ScoreRequest, ScoreResponse, validation_detail
from services.scoring.scorer import Scorer

log = logging.getLogger("services.scoring")

MAX_BODY_BYTES = 1024 * 1024

_SCORE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": ScoreResponse,
        "description": "The score, and where it came from",
        "headers": {
            "X-Cache": {"description": "hit, miss or bypass", "schema": {"type": "string"}}
        },
    },
    413: {"description": "The body is larger than 1 MiB"},
    415: {"description": "The body is not JSON"},
    422: {"description": "A field is missing, of the wrong type, or not a finite number"},
}


def make_cache(settings: Settings) -> ScoreCache | None:
    """Redis when REDIS_URL is set, this process's memory otherwise; None when switched off."""
    if not settings.score_cache_enabled:
        return None
    if settings.redis_url:
        return RedisScoreCache(
            settings.redis_url, timeout_seconds=settings.score_cache_timeout_seconds
        )
    return MemoryScoreCache()


def make_near_cache(settings: Settings) -> MemoryScoreCache | None:
    """The near tier in front of Redis, or None: without Redis the cache is near already."""
    entries = settings.score_near_cache_entries
    if not (settings.score_cache_enabled and settings.redis_url and entries > 0):
        return None
    return MemoryScoreCache(max_entries=entries)


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new scoring service with its own cache client; nothing is shared between apps."""
    settings = settings or get_settings()
    scorer = Scorer(
        make_cache(settings),
        model_version=model.MODEL_VERSION,
        iterations=settings.score_model_iterations,
        ttl_seconds=settings.score_cache_ttl,
        key_prefix=settings.score_cache_prefix,
        near=make_near_cache(settings),
    )
    info = _describe(scorer)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if scorer.cache is None:
            log.warning("event=score_cache_disabled reason=SCORE_CACHE_ENABLED_false")
        else:
            await scorer.cache.open()
        log.info(
            "event=scoring_started model_version=%s model_iterations=%d cache_backend=%s "
            "near_cache_entries=%d cache_ttl_seconds=%d cache_prefix=%s",
            scorer.model_version,
            scorer.iterations,
            info["cache_backend"],
            info["near_cache_entries"],
            scorer.ttl_seconds,
            scorer.key_prefix,
        )
        try:
            yield
        finally:
            if scorer.cache is not None:
                await scorer.cache.close()

    app = FastAPI(
        title="scoring",
        summary="Scores entities from their features; repeated inputs come from the cache.",
        lifespan=lifespan,
    )
    app.state.scorer = scorer
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=MAX_BODY_BYTES)
    add_profiling(app, service="scoring")
    add_metrics_endpoint(app)
    model_version = scorer.model_version

    @app.post(
        "/score",
        response_model=None,
        responses=_SCORE_RESPONSES,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ScoreRequest.model_json_schema()}},
            }
        },
    )
    async def score(request: Request) -> Response:
        """The entity's score; `Cache-Control: no-cache` computes it afresh."""
        # The body is read and validated by hand: a cache hit should cost little beyond Redis.
        if not _is_json(request.headers.get("content-type")):
            return JSONResponse({"detail": "the body must be application/json"}, status_code=415)
        try:
            body = ScoreRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"detail": validation_detail(exc)}, status_code=422)

        fresh = _asks_for_fresh(request.headers.get("cache-control"))
        scored = await scorer.score(body.features, fresh=fresh)

        content = json.dumps(
            {"entity_id": body.entity_id, "score": scored.score, "model_version": model_version}
        )
        return Response(
            content.encode(), media_type="application/json", headers={"X-Cache": scored.x_cache}
        )

    @app.get("/ping")
    async def ping() -> Response:
        """A trivial answer: the floor a benchmark compares /score with."""
        return Response(b'{"pong":true}', media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info")
    async def describe() -> dict[str, Any]:
        """The model and cache this instance runs with (what a benchmark records)."""
        return info

    return app


def _describe(scorer: Scorer) -> dict[str, Any]:
    backend = scorer.cache.backend if scorer.cache is not None else "none"
    return {
        "service": "scoring",
        "model_version": scorer.model_version,
        "model_iterations": scorer.iterations,
        # "redis+near": Redis with this process's near tier in front of it.
        "cache_backend": f"{backend}+near" if scorer.near is not None else backend,
        "near_cache_entries": scorer.near.max_entries if scorer.near is not None else 0,
        "cache_ttl_seconds": scorer.ttl_seconds,
        "cache_prefix": scorer.key_prefix,
    }


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return True
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _asks_for_fresh(cache_control: str | None) -> bool:
    """Whether the request's Cache-Control has no-cache (directives are case-insensitive,
    RFC 9111, section 5.2)."""
    if not cache_control:
        return False
    return any(
        directive.split("=", 1)[0].strip().lower() == "no-cache"
        for directive in cache_control.split(",")
    )
