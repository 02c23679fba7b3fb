"""What a batch of signals must look like, and the reasons it is refused when it does not."""

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    TypeAdapter,
    ValidationError,
)

SIGNAL_ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,64}$"
MAX_REPORTED_ERRORS = 20


def _iso_8601_utc(value: Any) -> datetime:
    # A number would be read as a Unix time and a naive string as local time; both are guesses.
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 string such as 2024-05-01T12:00:00Z")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value[:64]!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise ValueError("needs a UTC offset, Z or +hh:mm")
    return parsed.astimezone(UTC)


class Signal(BaseModel):
    """One measurement. Without a `signal_id` one is derived from the content, so a client that
    sends the same batch twice (a retry after a timeout) still stores each signal once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    signal_id: Annotated[str | None, Field(pattern=SIGNAL_ID_PATTERN)] = None
    source: Annotated[str, Strict(), Field(min_length=1, max_length=128)]
    name: Annotated[str, Strict(), Field(min_length=1, max_length=128)]
    value: Annotated[float, Strict(), Field(allow_inf_nan=False)]
    ts: Annotated[datetime, PlainValidator(_iso_8601_utc)]

    @property
    def stable_id(self) -> str:
        return self.signal_id or derived_signal_id(self)

    def as_message(self) -> dict[str, Any]:
        """The signal as the Celery task carries it (JSON)."""
        return {
            "signal_id": self.stable_id,
            "source": self.source,
            "name": self.name,
            "value": self.value,
            "ts": self.ts.isoformat(),
        }


def derived_signal_id(signal: Signal) -> str:
    content = "\x1f".join(
        [signal.source, signal.name, signal.ts.isoformat(), repr(float(signal.value))]
    )
    return "auto-" + hashlib.blake2b(content.encode(), digest_size=16).hexdigest()


_batch_adapter = TypeAdapter(list[Signal])


class BatchError(ValueError):
    """A batch refused as a whole: `reason` is one line, `errors` says which item and field."""

    def __init__(self, reason: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = errors or []


class BatchTooLarge(BatchError):
    """More signals than SIGNAL_BATCH_MAX_ITEMS allows (413)."""


def parse_batch(payload: Any, *, max_items: int) -> list[Signal]:
    """The signals of a decoded JSON body, or BatchError; all items are checked before any is kept.

    A batch over `max_items` raises BatchTooLarge before its items are looked at.
    """
    if not isinstance(payload, list):
        raise BatchError("the body must be a JSON array of signals")
    if not payload:
        raise BatchError("the batch is empty")
    if len(payload) > max_items:
        raise BatchTooLarge(
            f"the batch has {len(payload)} signals; the limit is {max_items} "
            "(SIGNAL_BATCH_MAX_ITEMS)"
        )

    try:
        signals = _batch_adapter.validate_python(payload)
    except ValidationError as exc:
        errors = [_item_error(error) for error in exc.errors(include_url=False)]
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise BatchError(
            f"item {first['item']}, field {first['field']!r}: {first['reason']}{more}",
            errors[:MAX_REPORTED_ERRORS],
        ) from None

    _refuse_repeated_ids(signals)
    return signals


def _item_error(error: Any) -> dict[str, Any]:
    location = list(error["loc"])
    item = location[0] if location and isinstance(location[0], int) else None
    field = ".".join(str(part) for part in location[1:]) or None
    reason = error["msg"].removeprefix("Value error, ")
    return {"item": item, "field": field, "reason": reason}


def _refuse_repeated_ids(signals: list[Signal]) -> None:
    first_seen: dict[str, int] = {}
    for index, signal in enumerate(signals):
        signal_id = signal.stable_id
        if signal_id in first_seen:
            earlier = first_seen[signal_id]
            reason = f"item {index} has the same signal_id as item {earlier}"
            raise BatchError(reason, [{"item": index, "field": "signal_id", "reason": reason}])
        first_seen[signal_id] = index
