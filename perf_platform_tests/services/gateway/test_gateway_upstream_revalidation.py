"""The gateway revalidates at its upstream: a client's If-None-Match becomes the upstream's.

A recording proxy sits between the gateway and the real analytics service, so each test sees
which tag the gateway sent and what analytics answered.
"""

import re

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from perf_platform.etag import make_etag
from perf_platform.tables import signals
from perf_platform_tests.services.gateway.trpc_urls import (
    AGGREGATE,
    SCORE_INPUT,
    SUMMARY,
    batch,
    query,
)


def revalidate(url: str, etag: str) -> httpx.Response:
    return httpx.get(url, headers={"If-None-Match": etag})


def test_a_matching_tag_is_revalidated_with_the_upstreams_own_tag(
    proxied_trpc_url: str, analytics_proxy, signals_db: Engine
) -> None:
    url = query(proxied_trpc_url, SUMMARY)
    first = httpx.get(url)

    again = revalidate(url, first.headers["etag"])

    assert again.status_code == 304
    assert again.content == b""
    for name in ("etag", "cache-control", "vary"):
        assert again.headers[name] == first.headers[name]
    fetched, revalidated = analytics_proxy.exchanges
    assert (fetched.path, fetched.if_none_match, fetched.status) == ("/summary", None, 200)
    assert fetched.etag.startswith('W/"signals-')
    assert (revalidated.if_none_match, revalidated.status) == (fetched.etag, 304)


def test_a_signal_inserted_in_between_gets_200_with_a_new_etag(
    proxied_trpc_url: str, analytics_proxy, signals_db: Engine, add_signals
) -> None:
    url = query(proxied_trpc_url, SUMMARY)
    first = httpx.get(url)
    add_signals(signals_db, [("sensor-c", "temp", 10.0)])

    after = revalidate(url, first.headers["etag"])

    assert after.status_code == 200
    assert after.json()["result"]["data"]["count"] == 4
    assert after.headers["etag"] != first.headers["etag"]
    assert after.headers["etag"] == make_etag(after.content)
    fetched, revalidated = analytics_proxy.exchanges
    assert (revalidated.if_none_match, revalidated.status) == (fetched.etag, 200)
    assert revalidated.etag != fetched.etag

    # The new answer's upstream tag is the one remembered now.
    assert revalidate(url, after.headers["etag"]).status_code == 304
    assert analytics_proxy.exchanges[-1].if_none_match == revalidated.etag


def test_the_etag_is_the_same_whether_or_not_the_gateway_remembered(
    proxied_trpc_url: str, start_gateway, signals_db: Engine, add_signals
) -> None:
    url = query(proxied_trpc_url, AGGREGATE, {"group_by": "name"})
    first = httpx.get(url)
    add_signals(signals_db, [("sensor-c", "temp", 10.0)])
    rebuilt = revalidate(url, first.headers["etag"])

    with start_gateway(gateway_revalidation_entries=0) as forgetful_url:
        plain = httpx.get(query(forgetful_url, AGGREGATE, {"group_by": "name"}))

    assert rebuilt.status_code == plain.status_code == 200
    assert rebuilt.content == plain.content
    assert rebuilt.headers["etag"] == plain.headers["etag"] == make_etag(plain.content)


def test_a_gateway_that_keeps_nothing_compares_bodies_without_asking_conditionally(
    start_gateway, analytics_proxy, signals_db: Engine
) -> None:
    with start_gateway(
        gateway_analytics_url=analytics_proxy.url, gateway_revalidation_entries=0
    ) as trpc_url:
        url = query(trpc_url, SUMMARY)
        first = httpx.get(url)
        again = revalidate(url, first.headers["etag"])

    assert again.status_code == 304
    assert [exchange.if_none_match for exchange in analytics_proxy.exchanges] == [None, None]


def test_a_tag_from_another_gateway_is_checked_by_its_body_then_remembered(
    proxied_trpc_url: str, trpc_url: str, analytics_proxy, signals_db: Engine
) -> None:
    etag = httpx.get(query(trpc_url, SUMMARY)).headers["etag"]

    compared = revalidate(query(proxied_trpc_url, SUMMARY), etag)
    revalidated = revalidate(query(proxied_trpc_url, SUMMARY), etag)

    assert compared.status_code == revalidated.status_code == 304
    fetched, conditional = analytics_proxy.exchanges
    assert (fetched.if_none_match, fetched.status) == (None, 200)
    assert (conditional.if_none_match, conditional.status) == (fetched.etag, 304)


def test_an_unchanged_batch_gets_304_after_every_call_revalidated(
    proxied_trpc_url: str, analytics_proxy, signals_db: Engine
) -> None:
    url = batch(proxied_trpc_url, [(SUMMARY, None), (AGGREGATE, {"group_by": "source"})])
    first = httpx.get(url)

    again = revalidate(url, first.headers["etag"])

    assert again.status_code == 304
    assert again.headers["etag"] == first.headers["etag"]
    fetched = {exchange.path: exchange for exchange in analytics_proxy.exchanges[:2]}
    revalidated = {exchange.path: exchange for exchange in analytics_proxy.exchanges[2:]}
    assert set(revalidated) == {"/summary", "/aggregate"}
    for path, exchange in revalidated.items():
        assert (exchange.if_none_match, exchange.status) == (fetched[path].etag, 304)


def test_a_changed_batch_gets_200_with_every_call_fresh(
    proxied_trpc_url: str, analytics_proxy, signals_db: Engine, add_signals
) -> None:
    url = batch(proxied_trpc_url, [(SUMMARY, None), (AGGREGATE, {"group_by": "source"})])
    first = httpx.get(url)
    add_signals(signals_db, [("sensor-c", "temp", 10.0)])

    after = revalidate(url, first.headers["etag"])

    assert after.status_code == 200
    summary, groups = after.json()
    assert summary["result"]["data"]["count"] == 4
    assert [row["key"] for row in groups["result"]["data"]["rows"]] == [
        "sensor-a",
        "sensor-b",
        "sensor-c",
    ]
    assert after.headers["etag"] == make_etag(after.content)
    assert [exchange.status for exchange in analytics_proxy.exchanges[2:]] == [200, 200]


def test_a_batch_with_one_changed_call_fetches_the_unchanged_ones_again(
    proxied_trpc_url: str, analytics_proxy, signals_db: Engine
) -> None:
    url = batch(proxied_trpc_url, [(SUMMARY, None), (AGGREGATE, {"group_by": "source"})])
    first = httpx.get(url)
    # /aggregate answers in full as if its data had changed; /summary answers 304.
    analytics_proxy.drop_if_none_match.add("/aggregate")

    again = revalidate(url, first.headers["etag"])

    # Rebuilt from fresh answers, the body is the same, so the client still gets 304.
    assert again.status_code == 304
    assert again.headers["etag"] == first.headers["etag"]
    later = [(e.path, e.if_none_match is not None, e.status) for e in analytics_proxy.exchanges[2:]]
    assert sorted(later[:2]) == [("/aggregate", True, 200), ("/summary", True, 304)]
    assert later[2:] == [("/summary", False, 200)]


def test_a_batch_with_a_call_whose_upstream_has_no_etag_is_compared_by_body(
    proxied_trpc_url: str, analytics_proxy, signals_db: Engine
) -> None:
    url = batch(proxied_trpc_url, [(SUMMARY, None), ("score.get", SCORE_INPUT)])
    first = httpx.get(url)

    again = revalidate(url, first.headers["etag"])

    assert again.status_code == 304
    assert [exchange.if_none_match for exchange in analytics_proxy.exchanges] == [None, None]


def test_head_is_revalidated_at_the_upstream_too(
    proxied_trpc_url: str, analytics_proxy, signals_db: Engine
) -> None:
    url = query(proxied_trpc_url, SUMMARY)
    etag = httpx.get(url).headers["etag"]

    head = httpx.head(url, headers={"If-None-Match": etag})

    assert head.status_code == 304
    assert head.headers["etag"] == etag
    assert analytics_proxy.exchanges[-1].status == 304


def test_an_upstream_error_while_revalidating_is_answered_as_before(
    proxied_trpc_url: str, analytics_proxy, signals_db: Engine
) -> None:
    url = query(proxied_trpc_url, SUMMARY)
    etag = httpx.get(url).headers["etag"]

    analytics_proxy.refuse_with = 503
    failed = revalidate(url, etag)
    analytics_proxy.refuse_with = None
    recovered = revalidate(url, etag)

    assert failed.status_code == 503
    assert failed.json()["error"]["data"]["code"] == "SERVICE_UNAVAILABLE"
    assert "etag" not in failed.headers
    assert failed.headers["cache-control"] == "no-store"
    assert recovered.status_code == 304
    assert analytics_proxy.exchanges[-1].status == 304


def test_an_answer_without_an_upstream_tag_is_forgotten(
    proxied_trpc_url: str, analytics_proxy, signals_db: Engine
) -> None:
    url = query(proxied_trpc_url, SUMMARY)
    etag = httpx.get(url).headers["etag"]

    # A writer in flight: analytics knows no exact data version and sends no tag.
    in_flight = {"signal_id": "in-flight", "batch_id": "t", "source": "s", "name": "n"}
    with signals_db.connect() as writer:
        writer.execute(sa.insert(signals).values(**in_flight, value=1.0, ts=sa.func.now()))
        during = revalidate(url, etag)
        writer.rollback()
    after = revalidate(url, etag)

    # The uncommitted row is invisible, so the body and its ETag are unchanged both times.
    assert during.status_code == after.status_code == 304
    sent = [
        (e.if_none_match is not None, e.status, e.etag is not None)
        for e in analytics_proxy.exchanges
    ]
    assert sent == [(False, 200, True), (True, 200, False), (False, 200, True)]


def test_upstream_revalidations_are_counted_on_metrics(
    proxied_trpc_url: str, signals_db: Engine, add_signals
) -> None:
    base_url = proxied_trpc_url.removesuffix("/trpc")
    url = query(proxied_trpc_url, SUMMARY)
    before = {result: _revalidations(base_url, result) for result in ("not_modified", "modified")}
    etag = httpx.get(url).headers["etag"]

    revalidate(url, etag)
    revalidate(url, etag)
    add_signals(signals_db, [("sensor-c", "temp", 10.0)])
    revalidate(url, etag)

    assert _revalidations(base_url, "not_modified") == before["not_modified"] + 2
    assert _revalidations(base_url, "modified") == before["modified"] + 1


def test_the_least_recently_used_query_is_forgotten_first(
    start_gateway, analytics_proxy, signals_db: Engine
) -> None:
    with start_gateway(
        gateway_analytics_url=analytics_proxy.url, gateway_revalidation_entries=1
    ) as trpc_url:
        first_url = query(trpc_url, SUMMARY)
        first_etag = httpx.get(first_url).headers["etag"]
        httpx.get(query(trpc_url, SUMMARY, {"source": "sensor-a"}))

        evicted = revalidate(first_url, first_etag)

    assert evicted.status_code == 304
    assert analytics_proxy.exchanges[-1].if_none_match is None


def _revalidations(base_url: str, result: str) -> float:
    text = httpx.get(f"{base_url}/metrics").text
    pattern = (
        r'^gateway_upstream_revalidations_total\{procedure="analytics\.summary",'
        rf'result="{result}"\}} (\S+)$'
    )
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0
