"""Our copy of Grafana's PostgreSQL interpolation gives what Grafana's own tests expect of it."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from perf_platform_tests.grafana.macros import (
    ALL_VALUE,
    BackendQuery,
    Dashboard,
    MacroError,
    TimeRange,
    Variable,
    expand_macros,
    format_interval,
    go_float,
    interpolate,
    interpolate_global,
    parse_interval,
    replace_variables,
)

START = datetime(2018, 4, 12, 18, 0, tzinfo=UTC)
FIVE_MINUTES = BackendQuery(TimeRange(START, START + timedelta(minutes=5)), timedelta(minutes=1))
TIMESCALE = BackendQuery(FIVE_MINUTES.time_range, FIVE_MINUTES.interval, timescaledb=True)


def backend(start: datetime, end: datetime, interval: timedelta = timedelta(minutes=1)):
    return BackendQuery(TimeRange(start, end), interval)


# -- the macro engine -------------------------------------------------------------------------


def test_time_filter_is_a_between_of_rfc3339_utc_times():
    sql = expand_macros("WHERE $__timeFilter(created_at)", FIVE_MINUTES)

    assert sql == "WHERE created_at BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:00Z'"


def test_time_from_and_to_are_quoted_times():
    assert expand_macros("select $__timeFrom(), $__timeTo()", FIVE_MINUTES) == (
        "select '2018-04-12T18:00:00Z', '2018-04-12T18:05:00Z'"
    )


def test_times_keep_fractions_without_trailing_zeros_and_predate_1970():
    query = backend(
        datetime(1960, 2, 1, 7, 0, 0, 500000, tzinfo=UTC),
        datetime(1980, 2, 3, 8, 0, 0, 500000, tzinfo=UTC),
    )

    assert expand_macros("$__timeFilter(t)", query) == (
        "t BETWEEN '1960-02-01T07:00:00.5Z' AND '1980-02-03T08:00:00.5Z'"
    )
    assert expand_macros("$__unixEpochFilter(t)", query) == "t >= -312915600 AND t <= 318412800"


def test_times_in_another_zone_are_written_in_utc():
    berlin = datetime(2018, 4, 12, 20, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Berlin"))
    query = backend(berlin, berlin + timedelta(hours=1))

    assert expand_macros("$__timeFrom()", query) == "'2018-04-12T20:00:00Z'"


def test_time_group_buckets_epoch_seconds():
    assert expand_macros("SELECT $__timeGroup(created_at,'5m')", FIVE_MINUTES) == (
        "SELECT floor(extract(epoch from created_at)/300)*300"
    )


def test_time_group_alias_names_the_column_time():
    plain = expand_macros("$__timeGroup(created_at , '5m')", FIVE_MINUTES)
    aliased = expand_macros("$__timeGroupAlias(created_at , '5m')", FIVE_MINUTES)

    assert aliased == plain + ' AS "time"'


def test_time_group_followed_by_a_comma_is_aliased_as_before_grafana_5_3():
    with_comma = expand_macros("SELECT $__timeGroup(t,'5m'), value", FIVE_MINUTES)
    own_alias = expand_macros("SELECT $__timeGroup(t,'5m') as time, value", FIVE_MINUTES)

    assert with_comma == 'SELECT floor(extract(epoch from t)/300)*300 AS "time", value'
    assert own_alias == "SELECT floor(extract(epoch from t)/300)*300 as time, value"


def test_time_group_prints_interval_seconds_as_go_prints_a_float():
    assert expand_macros("$__timeGroup(t, '12d')", FIVE_MINUTES) == (
        "floor(extract(epoch from t)/1.0368e+06)*1.0368e+06"
    )
    assert expand_macros("$__timeGroup(t, 20ms)", FIVE_MINUTES) == (
        "floor(extract(epoch from t)/0.02)*0.02"
    )


def test_time_group_uses_time_bucket_on_timescaledb():
    assert expand_macros("GROUP BY $__timeGroup(t , '5m')", TIMESCALE) == (
        "GROUP BY time_bucket('300.000s',t)"
    )
    assert expand_macros("$__timeGroup(t,'12d')", TIMESCALE) == "time_bucket('1036800.000s',t)"
    assert expand_macros("$__timeGroup(t,'20ms')", TIMESCALE) == "time_bucket('0.020s',t)"


def test_time_group_accepts_a_fill_argument_without_changing_the_sql():
    assert expand_macros("$__timeGroup(t, '1h', NULL)", FIVE_MINUTES) == (
        "floor(extract(epoch from t)/3600)*3600"
    )


def test_unix_epoch_macros_give_seconds_and_nanoseconds():
    sql = expand_macros(
        "$__unixEpochFilter(ts) | $__unixEpochNanoFilter(ns) | $__unixEpochNanoFrom()"
        " | $__unixEpochGroupAlias(ts+offset,'5m')",
        FIVE_MINUTES,
    )

    assert sql == (
        "ts >= 1523556000 AND ts <= 1523556300"
        " | ns >= 1523556000000000000 AND ns <= 1523556300000000000"
        " | 1523556000000000000"
        ' | floor((ts+offset)/300)*300 AS "time"'
    )


def test_time_and_time_epoch_name_the_column_time():
    assert expand_macros("select min($__time(t))", FIVE_MINUTES) == 'select min(t AS "time")'
    assert expand_macros("$__timeEpoch(t)", FIVE_MINUTES) == 'extract(epoch from t) as "time"'


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("$__nosuch(t)", "unknown macro"),
        ("$__timeGroup(t)", "needs time column and interval"),
        ("$__timeGroup(t, 'fortnight')", "error parsing interval"),
    ],
)
def test_a_bad_macro_is_an_error_not_sql(sql, message):
    with pytest.raises(MacroError, match=message):
        expand_macros(sql, FIVE_MINUTES)


# -- the global substitutions -----------------------------------------------------------------


def test_interval_and_interval_ms_are_replaced_before_macros():
    query = backend(START, START + timedelta(days=7), interval=timedelta(minutes=10))

    sql = interpolate_global("$__interval_ms | $__interval | $__unixEpochFrom()", query)

    assert sql == "600000 | 10m | 1523556000"


def test_interval_inside_a_macro_becomes_its_bucket():
    query = backend(START, START + timedelta(days=7), interval=timedelta(hours=2))

    sql = interpolate("$__timeGroupAlias(created_at, $__interval)", Dashboard(), query)

    assert sql == 'floor(extract(epoch from created_at)/7200)*7200 AS "time"'


@pytest.mark.parametrize(
    ("interval", "text"),
    [
        (timedelta(milliseconds=250), "250ms"),
        (timedelta(seconds=90), "1m"),
        (timedelta(hours=36), "1d"),
        (timedelta(days=400), "1y"),
        (timedelta(microseconds=10), "1ms"),
    ],
)
def test_intervals_are_written_in_their_largest_whole_unit(interval, text):
    assert format_interval(interval) == text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5m", 300), ("1h30m", 5400), ("1.5h", 5400), ("500ms", 0.5), ("2d", 172800), ("1w", 604800)],
)
def test_intervals_parse_like_grafana(text, seconds):
    assert parse_interval(text).total_seconds() == seconds


def test_a_month_is_the_calendar_month_from_now():
    assert parse_interval("1M", now=datetime(2021, 2, 10, tzinfo=UTC)) == timedelta(days=28)


@pytest.mark.parametrize(
    ("value", "text"),
    [(300.0, "300"), (0.02, "0.02"), (1036800.0, "1.0368e+06"), (0.00005, "5e-05"), (3.5, "3.5")],
)
def test_floats_print_as_go_prints_them(value, text):
    assert go_float(value) == text


# -- template variables -----------------------------------------------------------------------

HOSTS = Variable("host", current=[ALL_VALUE], options=["a", "b'c"], multi=True, include_all=True)


def dashboard(*variables: Variable, **scoped: str) -> Dashboard:
    return Dashboard(variables={v.name: v for v in variables}, scoped=scoped)


def test_a_single_value_is_inserted_with_its_quotes_doubled():
    benchmark = Variable("benchmark", current="o'neil")

    assert replace_variables("b = '$benchmark'", dashboard(benchmark)) == "b = 'o''neil'"


def test_a_multi_value_selection_becomes_quoted_literals():
    hosts = Variable("host", current=["a", "b'c"], options=["a", "b'c", "d"], multi=True)

    assert replace_variables("host IN ($host)", dashboard(hosts)) == "host IN ('a','b''c')"


def test_all_means_every_option():
    assert replace_variables("host IN (${host})", dashboard(HOSTS)) == "host IN ('a','b''c')"


def test_a_custom_all_value_is_inserted_unformatted():
    hosts = Variable(
        "host", current=ALL_VALUE, options=["a"], include_all=True, all_value="host IS NOT NULL OR"
    )

    assert replace_variables("$host", dashboard(hosts)) == "host IS NOT NULL OR"


def test_a_repeated_panel_sees_its_own_value():
    sql = replace_variables("h IN (${host:sqlstring}) AND h IN ($host)", dashboard(HOSTS, host="a"))

    assert sql == "h IN ('a') AND h IN ('a')"


@pytest.mark.parametrize(
    ("reference", "text"),
    [
        ("${host:csv}", "a,b'c"),
        ("${host:sqlstring}", "'a','b''c'"),
        ("${host:singlequote}", "'a','b\\'c'"),
        ("[[host:pipe]]", "a|b'c"),
        ("[[host]]", "'a','b''c'"),
    ],
)
def test_an_explicit_format_replaces_the_sql_quoting(reference, text):
    assert replace_variables(reference, dashboard(HOSTS)) == text


def test_unknown_variables_and_macros_are_left_for_later():
    sql = "$__timeFilter(t) AND $nosuch AND $__interval"

    assert replace_variables(sql, dashboard(HOSTS)) == sql
