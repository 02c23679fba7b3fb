"""The analytics service: aggregates of the signals table, computed by the database.

Run it with `uvicorn --factory services.analytics.app:create_app`. Endpoints are plain `def`
functions, so FastAPI runs each blocking database call in its thread pool, off the event loop.
Answers carry an ETag naming the data version; a matching If-None-Match gets 304 Not Modified
before any aggregation runs (services.analytics.conditional).
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from perf_platform.db import display_url, make_engine
from perf_platform.metrics import add_metrics_endpoint, forget_pool
from perf_platform.profiling import add_profiling
from perf_platform.settings import Settings, get_settings
from services.analytics import conditional, queries
from services.analytics.params import AggregateParams, FilterParams
from services.analytics.queries import GroupBy

log = logging.getLogger(__name__)


class Summary(BaseModel):
    count: int
    sum: float
    avg: float | None
    min: float | None
    max: float | None


class Group(BaseModel):
    key: str
    count: int
    sum: float
    avg: float | None
    min: float | None
    max: float | None


class AggregatePage(BaseModel):
    group_by: GroupBy
    rows: list[Group]
    limit: int
    offset: int
    next_offset: int | None


def create_app(settings: Settings | None = None) -> FastAPI:
    """The analytics app on the settings' database (PERF_PLATFORM_DATABASE_URL by default)."""
    settings = settings or get_settings()
    engine = make_engine(
        settings.database_url, pool_size=settings.db_pool_size, service="analytics"
    )
    log.info("event=analytics_ready database=%s", display_url(engine.url))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()
        forget_pool(engine)

    app = FastAPI(title="analytics", lifespan=lifespan)
    app.state.engine = engine
    add_profiling(app, service="analytics")
    add_metrics_endpoint(app)
    app.add_exception_handler(sa.exc.OperationalError, _database_unavailable)
    app.add_exception_handler(sa.exc.InterfaceError, _database_unavailable)
    app.add_exception_handler(sa.exc.TimeoutError, _database_busy)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/summary", response_model=Summary)
    def summary(
        params: Annotated[FilterParams, Query()], request: Request, response: Response
    ) -> Any:
        """count, sum, avg, min and max of every filtered signal's value."""
        statement = queries.summary_statement(params.filters())
        with engine.connect() as connection:
            etag = _current_etag(connection, "summary", params)
            if (unchanged := conditional.not_modified(request, "summary", etag)) is not None:
                return unchanged
            row = connection.execute(statement).mappings().one()

        response.headers.update(conditional.validator_headers(etag))
        return Summary(**queries.summary_from_row(row))

    @app.get("/aggregate", response_model=AggregatePage)
    def aggregate(
        params: Annotated[AggregateParams, Query()], request: Request, response: Response
    ) -> Any:
        """One page of groups, ordered by key; `next_offset` is null on the last page."""
        # One row more than the page tells whether another page follows.
        statement = queries.aggregate_statement(
            params.filters(),
            params.group_by,
            engine.dialect.name,
            limit=params.limit + 1,
            offset=params.offset,
        )
        with engine.connect() as connection:
            etag = _current_etag(connection, "aggregate", params)
            if (unchanged := conditional.not_modified(request, "aggregate", etag)) is not None:
                return unchanged
            rows = connection.execute(statement).mappings().all()

        response.headers.update(conditional.validator_headers(etag))
        has_more = len(rows) > params.limit
        page = [queries.group_from_row(row, params.group_by) for row in rows[: params.limit]]
        return AggregatePage(
            group_by=params.group_by,
            rows=[Group(**group) for group in page],
            limit=params.limit,
            offset=params.offset,
            next_offset=params.offset + params.limit if has_more else None,
        )

    return app


def _current_etag(connection: sa.Connection, endpoint: str, params: FilterParams) -> str | None:
    version = queries.signals_version(connection)
    return None if version is None else conditional.entity_tag(version, endpoint, params)


def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
    log.error("event=database_unavailable reason=%r", reason)
    return JSONResponse({"detail": f"database unavailable: {reason}"}, status_code=503)


def _database_busy(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("event=database_pool_exhausted reason=%r", str(exc).splitlines()[0])
    return JSONResponse(
        {"detail": "database busy: no free connection in the pool"},
        status_code=503,
        headers={"Retry-After": "1"},
    )
