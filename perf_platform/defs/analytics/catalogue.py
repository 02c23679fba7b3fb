"""The analytics queries the platform watches: one representative request per way of asking.

Each entry is a request to the analytics service whose filters are taken from the data itself
(the newest signal's time, source and name), so the same catalogue means something on a demo
database and on a production one.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from perf_platform.tables import signals
from services.analytics import queries
from services.analytics.params import MAX_PAGE_SIZE, AggregateParams, FilterParams
from services.analytics.queries import GroupBy


@dataclass(frozen=True)
class DataSample:
    """What the catalogue needs to know about the data: its size and its newest signal."""

    rows: int
    newest: datetime | None = None
    source: str | None = None
    name: str | None = None


def sample_data(connection: sa.Connection) -> DataSample:
    rows = connection.execute(sa.select(sa.func.count()).select_from(signals)).scalar_one()
    newest = connection.execute(
        sa.select(signals.c.ts, signals.c.source, signals.c.name)
        .order_by(signals.c.ts.desc())
        .limit(1)
    ).first()
    if newest is None:
        return DataSample(rows=0)
    # SQLite hands timestamps back without an offset; they are stored in UTC.
    ts = newest.ts if newest.ts.tzinfo else newest.ts.replace(tzinfo=UTC)
    return DataSample(rows=rows, newest=ts, source=newest.source, name=newest.name)


@dataclass(frozen=True)
class AnalyticsQuery:
    name: str
    description: str
    group_by: GroupBy | None = None
    window: timedelta | None = None
    one_source: bool = False
    one_name: bool = False

    @property
    def path(self) -> str:
        return "/summary" if self.group_by is None else "/aggregate"

    @property
    def filtered(self) -> bool:
        """False when the query reads every signal by design, so a full scan is expected."""
        return self.window is not None or self.one_source or self.one_name

    def params(self, sample: DataSample, **extra: Any) -> dict[str, str]:
        """The HTTP query parameters of this request on the sampled data."""
        params: dict[str, str] = {}
        if self.group_by is not None:
            params["group_by"] = self.group_by
            params["limit"] = str(MAX_PAGE_SIZE)
        if self.window is not None and sample.newest is not None:
            params["start"] = (sample.newest - self.window).isoformat()
        if self.one_source and sample.source is not None:
            params["source"] = sample.source
        if self.one_name and sample.name is not None:
            params["name"] = sample.name
        params.update({key: str(value) for key, value in extra.items()})
        return params

    def statement(self, params: dict[str, str], dialect_name: str) -> sa.Select[Any]:
        """The SQL the service runs for the first page of these parameters."""
        if self.group_by is None:
            return queries.summary_statement(FilterParams.model_validate(params).filters())
        parsed = AggregateParams.model_validate(params)
        return queries.aggregate_statement(
            parsed.filters(), parsed.group_by, dialect_name, limit=parsed.limit + 1, offset=0
        )

    def suggested_index(self) -> tuple[str, ...]:
        """The columns an index for this query's filters would lead with; () when unfiltered."""
        leading = ("source",) if self.one_source else ("name",) if self.one_name else ()
        return (*leading, "ts") if self.filtered else ()


QUERIES: tuple[AnalyticsQuery, ...] = (
    AnalyticsQuery("summary_all", "/summary over every signal"),
    AnalyticsQuery("summary_last_hour", "/summary of the newest hour", window=timedelta(hours=1)),
    AnalyticsQuery(
        "summary_source_last_day",
        "/summary of one source over the newest day",
        window=timedelta(days=1),
        one_source=True,
    ),
    AnalyticsQuery("by_source", "/aggregate by source over every signal", group_by="source"),
    AnalyticsQuery(
        "by_name_last_day",
        "/aggregate by name over the newest day",
        group_by="name",
        window=timedelta(days=1),
    ),
    AnalyticsQuery(
        "hourly_source_last_day",
        "/aggregate by hour of one source over the newest day",
        group_by="hour",
        window=timedelta(days=1),
        one_source=True,
    ),
    AnalyticsQuery("daily_name", "/aggregate by day of one name", group_by="day", one_name=True),
)
