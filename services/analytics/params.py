"""Query parameters of the analytics endpoints, validated before any SQL is built.

A bad value gives a 422 whose detail names the parameter and the reason; an unknown
parameter is refused too, so a typo does not silently widen a query.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from services.analytics.queries import GroupBy, SignalFilters

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
# Far beyond any real page, small enough for every database's integer OFFSET.
MAX_OFFSET = 1_000_000_000
# The width of signals.source and signals.name.
MAX_LABEL_LENGTH = 128


def parse_time(value: Any) -> datetime:
    """An ISO 8601 time as an aware UTC datetime; a time without an offset is taken as UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"not an ISO 8601 time: {value!r}") from None
    else:
        raise ValueError(f"not an ISO 8601 time: {value!r}")
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"time out of range in UTC: {value!r}") from None


def _printable(value: str) -> str:
    # PostgreSQL refuses NUL in text, and no source or name has control characters.
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise ValueError("must not contain control characters")
    return value


IsoTime = Annotated[datetime, BeforeValidator(parse_time)]
Label = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_LENGTH), AfterValidator(_printable)]


class FilterParams(BaseModel):
    """Which signals to aggregate: `start` inclusive, `end` exclusive, exact source and name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: IsoTime | None = Field(default=None, description="ISO 8601, inclusive")
    end: IsoTime | None = Field(default=None, description="ISO 8601, exclusive")
    source: Label | None = None
    name: Label | None = None

    @model_validator(mode="after")
    def _range_in_order(self) -> "FilterParams":
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(
                f"end ({self.end.isoformat()}) is before start ({self.start.isoformat()})"
            )
        return self

    def filters(self) -> SignalFilters:
        return SignalFilters(start=self.start, end=self.end, source=self.source, name=self.name)


class AggregateParams(FilterParams):
    """Filters plus the grouping and one page of groups, ordered by key."""

    group_by: GroupBy
    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
