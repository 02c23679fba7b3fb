"""Fill the signals table with realistic synthetic signals, fast.

    python -m scripts.fill_signals --rows 1000000 [--database-url URL] [--days 30] [--seed 7]

PostgreSQL gets one COPY in one transaction (an interrupted fill loads nothing); SQLite gets
batched inserts in one transaction. Both end with ANALYZE, so the planner sees the new rows.
Progress shows on stderr when it is a terminal; the result line goes to stdout. Every filled
row's signal_id and batch_id start with "fill-", so demo data is easy to find.
"""

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from perf_platform.db import DatabaseError, display_url, make_engine
from perf_platform.tables import signals

# Typical level and spread of each measurement; values are drawn around them, never below 0.
MEASUREMENTS: dict[str, tuple[float, float]] = {
    "latency_ms": (120.0, 40.0),
    "cpu_percent": (45.0, 15.0),
    "memory_mb": (512.0, 96.0),
    "requests_per_s": (250.0, 80.0),
    "error_rate": (0.5, 0.3),
    "queue_depth": (12.0, 6.0),
    "temperature_c": (55.0, 8.0),
    "disk_io_mb_s": (35.0, 12.0),
}
SERVICES = ("web", "api", "worker", "db", "cache")
REGIONS = ("eu-west-1", "us-east-1", "ap-south-1")
SOURCES = tuple(f"{service}-{number:02d}" for service in SERVICES for number in range(1, 9))
# Each source lives in one region; its attributes are fixed JSON text.
ATTRIBUTES = tuple(
    json.dumps({"region": REGIONS[index % len(REGIONS)], "rack": f"r{index % 7}"})
    for index in range(len(SOURCES))
)
COPY_COLUMNS = ("signal_id", "batch_id", "source", "name", "value", "ts", "attributes")

Progress = Callable[[int], None]


@dataclass(frozen=True)
class FillResult:
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True)
class _Chunk:
    first: int
    batch_id: str
    sources: list[str]
    names: list[str]
    values: list[float]
    times: np.ndarray

    def __len__(self) -> int:
        return len(self.values)


def _chunks(
    rows: int, *, seed: int | None, end: datetime, days: float, chunk_size: int, token: str
) -> Iterator[_Chunk]:
    """Signals in arrival order, spread evenly over `days` before `end` with some jitter."""
    generator = np.random.default_rng(seed)
    names = list(MEASUREMENTS)
    levels = np.array([MEASUREMENTS[name][0] for name in names])
    spreads = np.array([MEASUREMENTS[name][1] for name in names])
    span_us = int(days * 86_400_000_000)
    start_us = np.datetime64(end.astimezone(UTC).replace(tzinfo=None), "us") - span_us
    step_us = span_us / rows

    for first in range(0, rows, chunk_size):
        size = min(chunk_size, rows - first)
        source_index = generator.integers(0, len(SOURCES), size)
        name_index = generator.integers(0, len(names), size)
        values = generator.normal(levels[name_index], spreads[name_index]).clip(min=0).round(3)
        offsets = (np.arange(first, first + size) * step_us).astype(np.int64)
        jitter = generator.integers(0, max(int(step_us), 1), size)
        yield _Chunk(
            first=first,
            batch_id=f"fill-{token}-{first // chunk_size:06d}",
            sources=[SOURCES[index] for index in source_index.tolist()],
            names=[names[index] for index in name_index.tolist()],
            values=values.tolist(),
            times=start_us + (offsets + jitter).astype("timedelta64[us]"),
        )


def _copy_text(chunk: _Chunk, token: str, source_attributes: dict[str, str]) -> str:
    # COPY's text format; nothing generated here holds a tab, newline or backslash.
    times = np.datetime_as_string(chunk.times, unit="us").tolist()
    return "".join(
        f"fill-{token}-{chunk.first + offset:09d}\t{chunk.batch_id}\t{source}\t{name}\t{value!r}"
        f"\t{moment}+00\t{source_attributes[source]}\n"
        for offset, (source, name, value, moment) in enumerate(
            zip(chunk.sources, chunk.names, chunk.values, times, strict=True)
        )
    )


def _insert_rows(chunk: _Chunk, token: str, source_attributes: dict[str, str]) -> list[dict]:
    times = chunk.times.astype(datetime).tolist()
    return [
        {
            "signal_id": f"fill-{token}-{chunk.first + offset:09d}",
            "batch_id": chunk.batch_id,
            "source": source,
            "name": name,
            "value": value,
            "ts": moment.replace(tzinfo=UTC),
            "attributes": json.loads(source_attributes[source]),
        }
        for offset, (source, name, value, moment) in enumerate(
            zip(chunk.sources, chunk.names, chunk.values, times, strict=True)
        )
    ]


def fill_signals(
    engine: Engine,
    rows: int,
    *,
    seed: int | None = None,
    end: datetime | None = None,
    days: float = 30.0,
    batch_size: int = 50_000,
    progress: Progress | None = None,
) -> FillResult:
    """Append `rows` synthetic signals to the engine's signals table and refresh its statistics.

    `seed` makes the values, sources and names repeatable; signal ids are always new, so
    filling twice appends twice. `progress` is called with the number of rows written so far.
    """
    if rows < 1:
        raise ValueError(f"rows must be at least 1, not {rows}")
    if days <= 0:
        raise ValueError(f"days must be positive, not {days}")

    token = uuid.uuid4().hex[:12]
    end = end or datetime.now(UTC).replace(second=0, microsecond=0)
    source_attributes = dict(zip(SOURCES, ATTRIBUTES, strict=True))
    chunks = _chunks(rows, seed=seed, end=end, days=days, chunk_size=batch_size, token=token)
    started = time.perf_counter()

    if engine.dialect.name == "postgresql":
        _copy_into_postgres(engine, chunks, token, source_attributes, progress)
    else:
        with engine.begin() as connection:
            for chunk in chunks:
                connection.execute(signals.insert(), _insert_rows(chunk, token, source_attributes))
                if progress:
                    progress(chunk.first + len(chunk))
            connection.execute(sa.text("ANALYZE signals"))

    return FillResult(rows=rows, seconds=time.perf_counter() - started)


def _copy_into_postgres(
    engine: Engine,
    chunks: Iterator[_Chunk],
    token: str,
    source_attributes: dict[str, str],
    progress: Progress | None,
) -> None:
    statement = f"COPY signals ({', '.join(COPY_COLUMNS)}) FROM STDIN"
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            with cursor.copy(statement) as copy:
                for chunk in chunks:
                    copy.write(_copy_text(chunk, token, source_attributes))
                    if progress:
                        progress(chunk.first + len(chunk))
            # Fresh statistics, so the planner's next choice reflects the new rows.
            cursor.execute("ANALYZE signals")
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()


class TerminalProgress:
    """A progress line rewritten in place on a terminal, at most a few times a second."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.started = time.perf_counter()
        self.shown_at = 0.0

    def __call__(self, done: int) -> None:
        now = time.perf_counter()
        if done < self.total and now - self.shown_at < 0.2:
            return
        self.shown_at = now
        rate = done / max(now - self.started, 1e-9)
        percent = 100 * done / self.total
        self.stream.write(
            f"\rfilling signals: {done:,}/{self.total:,} rows ({percent:5.1f}%, {rate:,.0f} rows/s)"
        )
        if done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _utc_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise argparse.ArgumentTypeError(f"out of range in UTC: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.fill_signals",
        description="Append synthetic signals to the signals table (COPY on PostgreSQL).",
    )
    parser.add_argument("--rows", type=_positive_int, required=True, help="how many signals")
    parser.add_argument("--database-url", help="SQLAlchemy URL (PERF_PLATFORM_DATABASE_URL)")
    parser.add_argument("--days", type=_positive_float, default=30.0, help="time span, days")
    parser.add_argument("--end", type=_utc_time, help="newest time, ISO 8601 (default: now)")
    parser.add_argument("--seed", type=int, help="repeatable values, sources and names")
    parser.add_argument("--batch-size", type=_positive_int, default=50_000, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        engine = make_engine(args.database_url)
    except DatabaseError as exc:
        print(f"fill_signals: {exc}", file=sys.stderr)
        return 1

    progress = TerminalProgress(args.rows, sys.stderr) if sys.stderr.isatty() else None
    try:
        result = fill_signals(
            engine,
            args.rows,
            seed=args.seed,
            end=args.end,
            days=args.days,
            batch_size=args.batch_size,
            progress=progress,
        )
    except KeyboardInterrupt:
        print("\nfill_signals: interrupted; nothing was added", file=sys.stderr)
        return 130
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        print(f"fill_signals: the database refused the rows: {reason}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()

    print(
        f"filled {result.rows:,} signals into {display_url(engine.url)} in "
        f"{result.seconds:.1f}s ({result.rows_per_second:,.0f} rows/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
