"""Bad input to the analytics API: a 422 naming the parameter and the reason, data untouched."""

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.usefixtures("known_signals")


def reasons(response) -> list[tuple[tuple, str]]:  # type: ignore[no-untyped-def]
    assert response.status_code == 422, response.text
    return [(tuple(error["loc"]), error["msg"]) for error in response.json()["detail"]]


def test_an_unknown_group_by_is_refused_with_the_choices(client):
    [(where, why)] = reasons(client.get("/aggregate", params={"group_by": "week"}))

    assert where == ("query", "group_by")
    assert "'source', 'name', 'hour' or 'day'" in why


def test_group_by_is_required(client):
    [(where, why)] = reasons(client.get("/aggregate"))

    assert where == ("query", "group_by")
    assert why == "Field required"


def test_an_unparseable_time_is_refused(client):
    [(where, why)] = reasons(client.get("/summary", params={"start": "yesterday"}))

    assert where == ("query", "start")
    assert why == "Value error, not an ISO 8601 time: 'yesterday'"


def test_a_time_that_leaves_the_calendar_in_utc_is_refused(client):
    [(where, why)] = reasons(client.get("/summary", params={"end": "0001-01-01T00:00:00+05:00"}))

    assert where == ("query", "end")
    assert why == "Value error, time out of range in UTC: '0001-01-01T00:00:00+05:00'"


def test_an_end_before_the_start_is_refused(client):
    response = client.get(
        "/aggregate",
        params={"group_by": "day", "start": "2024-03-02T00:00:00Z", "end": "2024-03-01T00:00:00Z"},
    )

    [(where, why)] = reasons(response)
    assert where == ("query",)
    assert why == (
        "Value error, end (2024-03-01T00:00:00+00:00) is before start (2024-03-02T00:00:00+00:00)"
    )


@pytest.mark.parametrize(
    ("params", "where", "why"),
    [
        ({"limit": "0"}, "limit", "Input should be greater than or equal to 1"),
        ({"limit": "1001"}, "limit", "Input should be less than or equal to 1000"),
        ({"offset": "-1"}, "offset", "Input should be greater than or equal to 0"),
        ({"offset": "1e400"}, "offset", "Input should be a valid integer"),
    ],
)
def test_paging_outside_its_bounds_is_refused(client, params, where, why):
    [(location, message)] = reasons(
        client.get("/aggregate", params={"group_by": "source", **params})
    )

    assert location == ("query", where)
    assert message.startswith(why)


def test_an_unknown_parameter_is_refused_rather_than_ignored(client):
    [(where, why)] = reasons(client.get("/summary", params={"sorce": "web-1"}))

    assert where == ("query", "sorce")
    assert why == "Extra inputs are not permitted"


def test_a_source_longer_than_the_column_is_refused(client):
    [(where, why)] = reasons(client.get("/summary", params={"source": "x" * 129}))

    assert where == ("query", "source")
    assert "at most 128 characters" in why


def test_control_characters_in_a_name_are_refused(client):
    [(where, why)] = reasons(client.get("/summary", params={"name": "cpu\x00"}))

    assert where == ("query", "name")
    assert why == "Value error, must not contain control characters"


INJECTIONS = [
    "' OR '1'='1",
    "web-1'; DROP TABLE signals; --",
    'web-1"; DELETE FROM signals; --',
    "x' UNION SELECT count(*), 1, 1, 1, 1 FROM score_benchmarks --",
    "source, (SELECT pg_sleep(5))",
    "day'); TRUNCATE signals; --",
]


@pytest.mark.parametrize("attack", INJECTIONS)
@pytest.mark.parametrize("parameter", ["source", "name"])
def test_injection_in_a_label_matches_nothing_and_changes_nothing(
    client, signal_count, parameter, attack
):
    summary = client.get("/summary", params={parameter: attack})
    groups = client.get("/aggregate", params={"group_by": "source", parameter: attack})

    assert summary.status_code == 200
    assert summary.json()["count"] == 0
    assert groups.status_code == 200
    assert groups.json()["rows"] == []
    assert signal_count() == 7


@pytest.mark.parametrize("attack", INJECTIONS)
@pytest.mark.parametrize("parameter", ["start", "end", "group_by", "limit", "offset"])
def test_injection_in_a_typed_parameter_is_refused_and_changes_nothing(
    client, signal_count, parameter, attack
):
    params = {"group_by": "source", parameter: attack}

    [(where, _why)] = reasons(client.get("/aggregate", params=params))

    assert where == ("query", parameter)
    assert signal_count() == 7


def test_the_table_survives_every_attempt(client, known_signals):
    for attack in INJECTIONS:
        for parameter in ("source", "name", "start", "end", "group_by"):
            client.get("/aggregate", params={"group_by": "day", parameter: attack})

    with known_signals.connect() as connection:
        assert sa.inspect(connection).has_table("signals")
    assert client.get("/summary").json()["count"] == 7
