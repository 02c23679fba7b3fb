"""Grafana's query interpolation for the PostgreSQL data source, so tests can run panel SQL as-is.

Grafana turns a panel's `rawSql` into the statement PostgreSQL sees in two places, and so do we:

1. The dashboard (browser) replaces template variables: `TemplateSrv.replace` with the SQL data
   source's `interpolateVariable` as the formatter (grafana-sql `SqlDatasource.ts`). A multi-value
   or All selection becomes quoted literals joined by commas; a single value is inserted with its
   quotes doubled; a custom "all value" is inserted raw, without formatting.
2. The data source backend (`pkg/tsdb/grafana-postgresql-datasource`) first applies the global
   substitutions of `sqleng.Interpolate` (`$__interval_ms`, `$__interval`, `$__unixEpochFrom()`,
   `$__unixEpochTo()`), then the PostgreSQL macro engine expands `$__name(args)`: `$__timeFilter`,
   `$__timeFrom`, `$__timeTo`, `$__timeGroup`, `$__timeGroupAlias`, `$__time`, `$__timeEpoch` and
   the `$__unixEpoch*` family, formatting times as RFC 3339 in UTC and interval seconds the way Go
   prints a float64.

Read from grafana/grafana (the macro engine, its tests, SqlDatasource.ts, TemplateSrv) and
grafana-plugin-sdk-go (`gtime`); written anew here. Grafana's newest engine also strips SQL
comments before expanding macros; our dashboards carry no comments in their SQL (a test checks
it), so that step is left out here.
"""

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

ALL_VALUE = "$__all"


class MacroError(ValueError):
    """A macro Grafana would refuse: unknown name, missing argument or a bad interval."""


# -- time ranges and intervals ----------------------------------------------------------------


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("TimeRange needs timezone-aware datetimes")


def rfc3339_nano(moment: datetime) -> str:
    """Go's `time.RFC3339Nano` of the moment in UTC: no trailing zeros in the fraction, `Z`."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


_GO_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DATE_UNIT = re.compile(r"^(\d+)([dwMy])$")


def parse_go_duration(text: str) -> timedelta:
    """Go's `time.ParseDuration`: a sequence like `1h30m`, `500ms`, `1.5h`; `0` alone is zero."""
    body = text
    sign = 1
    if body[:1] in "+-" and body:
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if body == "0":
        return timedelta(0)
    if not body:
        raise MacroError(f"invalid duration {text!r}")

    seconds = 0.0
    position = 0
    for match in _GO_DURATION_PART.finditer(body):
        if match.start() != position:
            raise MacroError(f"invalid duration {text!r}")
        seconds += float(match.group(1)) * _GO_DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(body):
        raise MacroError(f"invalid duration {text!r}")
    return timedelta(seconds=sign * seconds)


def parse_interval(text: str, *, now: datetime | None = None) -> timedelta:
    """grafana-plugin-sdk-go `gtime.ParseInterval`: `d`, `w`, `M`, `y` are calendar steps from now
    (in UTC), anything else is a Go duration."""
    match = _DATE_UNIT.match(text)
    if not match:
        return parse_go_duration(text)

    count, unit = int(match.group(1)), match.group(2)
    if unit == "d":
        return timedelta(days=count)
    if unit == "w":
        return timedelta(days=7 * count)

    now = (now or datetime.now(UTC)).astimezone(UTC)
    months = count if unit == "M" else 12 * count
    return _add_months(now, months) - now


def _add_months(moment: datetime, months: int) -> datetime:
    # Go's AddDate normalises an overflowing day (Jan 31 + 1 month = Mar 3), unlike a clamp.
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    first = moment.replace(year=year, month=month, day=1)
    return first + timedelta(days=moment.day - 1)


def format_interval(interval: timedelta) -> str:
    """gtime.FormatInterval: the largest whole unit, `1y`, `3d`, `2h`, `5m`, `10s`, `200ms`."""
    milliseconds = int(interval / timedelta(milliseconds=1))
    for unit, size in (
        ("y", 365 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ):
        if milliseconds >= size:
            return f"{milliseconds // size}{unit}"
    return "1ms"


def go_float(value: float) -> str:
    """How Go's `%v` prints a float64: shortest digits, exponent form below 1e-4 or from 1e6 on."""
    if value == 0:
        return "0"
    if math.isinf(value) or math.isnan(value):
        return {math.inf: "+Inf", -math.inf: "-Inf"}.get(value, "NaN")

    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text_digits = "".join(map(str, digits))
    decimal_exponent = len(text_digits) + int(exponent) - 1
    prefix = "-" if sign else ""

    if decimal_exponent < -4 or decimal_exponent >= 6:
        mantissa = text_digits[0] + ("." + text_digits[1:] if len(text_digits) > 1 else "")
        exp_sign = "-" if decimal_exponent < 0 else "+"
        return f"{prefix}{mantissa}e{exp_sign}{abs(decimal_exponent):02d}"
    return prefix + format(Decimal(repr(abs(value))).normalize(), "f")


# -- step 2: the data source backend ----------------------------------------------------------

_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")


@dataclass(frozen=True)
class BackendQuery:
    """What the backend gets with a panel query: the time range and the panel's interval.

    Grafana derives the interval from the range over the panel's data points, rounded to a nice
    step and never below the data source's `timeInterval`; tests choose it directly.
    """

    time_range: TimeRange
    interval: timedelta
    timescaledb: bool = False


def interpolate_global(sql: str, query: BackendQuery) -> str:
    """sqleng.Interpolate: plain text replacements, `$__interval_ms` before `$__interval`."""
    interval_ms = int(query.interval / timedelta(milliseconds=1))
    sql = sql.replace("$__interval_ms", str(interval_ms))
    sql = sql.replace("$__interval", format_interval(query.interval))
    sql = sql.replace("$__unixEpochFrom()", str(_unix(query.time_range.start)))
    return sql.replace("$__unixEpochTo()", str(_unix(query.time_range.end)))


def expand_macros(sql: str, query: BackendQuery) -> str:
    """The PostgreSQL macro engine: every `$__name(args)` replaced, or MacroError for the first
    macro that fails."""
    original = sql
    errors: list[MacroError] = []

    def replace(match: re.Match[str]) -> str:
        name, raw_args = match.group(1), match.group(2)
        # Before Grafana 5.3, `$__timeGroup(...)` followed by a comma also named the column.
        if name == "__timeGroup":
            after = original.find(match.group(0))
            if after >= 0:
                after += len(match.group(0))
                if after < len(original) and original[after] == ",":
                    name = "__timeGroupAlias"

        args = [arg.strip(" ") for arg in raw_args.split(",")]
        try:
            return _evaluate(name, args, query)
        except MacroError as exc:
            errors.append(exc)
            return "macro_error()"

    expanded = _MACRO.sub(replace, sql)
    if errors:
        raise errors[0]
    return expanded


def _evaluate(name: str, args: list[str], query: BackendQuery) -> str:
    start, end = query.time_range.start, query.time_range.end
    column = args[0] if args else ""

    match name:
        case "__time":
            return f'{column} AS "time"'
        case "__timeEpoch":
            return f'extract(epoch from {column}) as "time"'
        case "__timeFilter":
            return f"{column} BETWEEN '{rfc3339_nano(start)}' AND '{rfc3339_nano(end)}'"
        case "__timeFrom":
            return f"'{rfc3339_nano(start)}'"
        case "__timeTo":
            return f"'{rfc3339_nano(end)}'"
        case "__timeGroup":
            seconds = _group_seconds(name, args)
            if query.timescaledb:
                return f"time_bucket('{seconds:.3f}s',{column})"
            return f"floor(extract(epoch from {column})/{go_float(seconds)})*{go_float(seconds)}"
        case "__timeGroupAlias":
            return _evaluate("__timeGroup", args, query) + ' AS "time"'
        case "__unixEpochFilter":
            return f"{column} >= {_unix(start)} AND {column} <= {_unix(end)}"
        case "__unixEpochNanoFilter":
            return f"{column} >= {_unix_nano(start)} AND {column} <= {_unix_nano(end)}"
        case "__unixEpochNanoFrom":
            return str(_unix_nano(start))
        case "__unixEpochNanoTo":
            return str(_unix_nano(end))
        case "__unixEpochGroup":
            seconds = _group_seconds(name, args)
            return f"floor(({column})/{go_float(seconds)})*{go_float(seconds)}"
        case "__unixEpochGroupAlias":
            return _evaluate("__unixEpochGroup", args, query) + ' AS "time"'
    raise MacroError(f"unknown macro {name!r}")


def _group_seconds(name: str, args: list[str]) -> float:
    if len(args) < 2:
        raise MacroError(f"macro {name} needs time column and interval and optional fill value")
    try:
        interval = parse_interval(args[1].strip("'"))
    except MacroError as exc:
        raise MacroError(f"error parsing interval {args[1]}") from exc
    # A third argument sets the fill mode of the returned frame; it does not change the SQL.
    return interval.total_seconds()


def _unix(moment: datetime) -> int:
    return math.floor(moment.timestamp())


def _unix_nano(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


# -- step 1: template variables in the dashboard ----------------------------------------------

# TemplateSrv's pattern: $var, [[var]] / [[var:fmt]], ${var} / ${var.path} / ${var:fmt}.
_VARIABLE = re.compile(
    r"\$(\w+)|\[\[([\s\S]+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}"
)


@dataclass(frozen=True)
class Variable:
    """A dashboard variable as the query sees it: its selection and its options."""

    name: str
    current: str | list[str]
    options: Sequence[str] = ()
    multi: bool = False
    include_all: bool = False
    all_value: str | None = None

    def is_all(self) -> bool:
        value = self.current
        return value == ALL_VALUE or (isinstance(value, list) and value[:1] == [ALL_VALUE])


@dataclass
class Dashboard:
    """The variables in scope for a query; `scoped` overrides them (a repeated panel's value)."""

    variables: Mapping[str, Variable] = field(default_factory=dict)
    scoped: Mapping[str, str] = field(default_factory=dict)


def quote_literal(value: str) -> str:
    """The PostgreSQL query model's quoteLiteral: single quotes, inner quotes doubled."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_interpolate_variable(value: str | list[str], variable: Variable) -> str:
    """grafana-sql SqlDatasource.interpolateVariable, the formatter every SQL panel uses."""
    if isinstance(value, list):
        return ",".join(quote_literal(item) for item in value)
    if variable.multi or variable.include_all:
        # Grafana stores a multi-value selection as a list, so this branch is rare in practice;
        # the versions of SqlDatasource.ts disagree on it (quoted here, as in most of them).
        return quote_literal(value)
    return value.replace("'", "''")


def _named_format(value: str | list[str], fmt: str) -> str:
    values = value if isinstance(value, list) else [value]
    match fmt:
        case "raw" | "csv":
            return ",".join(values)
        case "pipe":
            return "|".join(values)
        case "singlequote":
            return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
        case "doublequote":
            return ",".join('"' + v.replace('"', '\\"') + '"' for v in values)
        case "sqlstring":
            return ",".join(quote_literal(v) for v in values)
    raise MacroError(f"variable format {fmt!r} is not supported by these tests")


def replace_variables(sql: str, dashboard: Dashboard) -> str:
    """TemplateSrv.replace with the SQL data source's formatter, as a panel query gets it."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6)

        if name in dashboard.scoped:
            value: str | list[str] = dashboard.scoped[name]
            variable = dashboard.variables.get(name, Variable(name=name, current=value))
            return _format(value, fmt, variable)

        variable = dashboard.variables.get(name)
        if variable is None:
            return match.group(0)

        value = variable.current
        if variable.is_all():
            if variable.all_value is not None:
                # A custom all value is not formatted, only its own variables replaced.
                return replace_variables(variable.all_value, dashboard)
            value = list(variable.options)
        return _format(value, fmt, variable)

    return _VARIABLE.sub(replace, sql)


def _format(value: str | list[str], fmt: str | None, variable: Variable) -> str:
    if fmt:
        return _named_format(value, fmt)
    return sql_interpolate_variable(value, variable)


# -- both steps -------------------------------------------------------------------------------


def interpolate(sql: str, dashboard: Dashboard, query: BackendQuery) -> str:
    """The statement Grafana sends to PostgreSQL for a panel's rawSql."""
    with_variables = replace_variables(sql, dashboard)
    return expand_macros(interpolate_global(with_variables, query), query)
