"""Concurrent misses of one input compute it once per process."""

import asyncio

import httpx
import pytest

from perf_platform_tests.services.scoring.harness import counter
from services.scoring.singleflight import SingleFlight

# Slow enough that fifty requests arrive while the first is still being computed.
SLOW_ITERATIONS = 2000


async def post_concurrently(base_url: str, bodies: list[dict], **headers: str) -> list:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        return await asyncio.gather(
            *(client.post("/score", json=b, headers=headers) for b in bodies)
        )


def test_fifty_concurrent_identical_misses_compute_once(start_scoring):
    body = {"entity_id": "e-1", "features": {"orders": 5.0, "returns": 0.0}}

    with start_scoring(score_model_iterations=SLOW_ITERATIONS) as client:
        before = counter(client, "score_model_computations_total")
        responses = asyncio.run(post_concurrently(str(client.base_url), [body] * 50))
        computations = counter(client, "score_model_computations_total") - before

    assert [response.status_code for response in responses] == [200] * 50
    assert len({response.json()["score"] for response in responses}) == 1
    assert computations == 1
    # They overlapped: more than one request waited for that computation (a miss) rather than
    # arriving after it and finding the cache (a hit), so the single computation is shared.
    answers = [response.headers["x-cache"] for response in responses]
    assert set(answers) <= {"miss", "hit"}
    assert answers.count("miss") > 1


def test_concurrent_misses_of_different_inputs_each_compute(start_scoring):
    bodies = [{"entity_id": f"e-{n}", "features": {"n": float(n)}} for n in range(5)]

    with start_scoring() as client:
        before = counter(client, "score_model_computations_total")
        responses = asyncio.run(post_concurrently(str(client.base_url), bodies))
        computations = counter(client, "score_model_computations_total") - before

    assert [response.headers["x-cache"] for response in responses] == ["miss"] * 5
    assert computations == 5


def test_concurrent_no_cache_requests_each_compute_afresh(start_scoring):
    body = {"entity_id": "e-1", "features": {"orders": 5.0}}

    with start_scoring() as client:
        before = counter(client, "score_model_computations_total")
        responses = asyncio.run(
            post_concurrently(str(client.base_url), [body] * 4, **{"cache-control": "no-cache"})
        )
        computations = counter(client, "score_model_computations_total") - before

    assert [response.headers["x-cache"] for response in responses] == ["bypass"] * 4
    assert computations == 4


@pytest.mark.anyio
async def test_waiters_share_the_result_of_the_one_running_call():
    flight: SingleFlight[int] = SingleFlight()
    calls = 0
    release = asyncio.Event()

    async def work() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return 42

    waiters = [asyncio.create_task(flight.run("k", work)) for _ in range(10)]
    await asyncio.sleep(0)
    release.set()

    assert await asyncio.gather(*waiters) == [42] * 10
    assert calls == 1
    assert flight.in_flight == 0


@pytest.mark.anyio
async def test_waiters_share_the_exception_and_the_next_call_runs_again():
    flight: SingleFlight[int] = SingleFlight()
    release = asyncio.Event()

    async def failing() -> int:
        await release.wait()
        raise RuntimeError("model crashed")

    waiters = [asyncio.create_task(flight.run("k", failing)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)

    assert [str(result) for result in results] == ["model crashed"] * 3

    async def working() -> int:
        return 7

    assert await flight.run("k", working) == 7


@pytest.mark.anyio
async def test_a_cancelled_caller_hands_the_work_to_a_waiter():
    flight: SingleFlight[str] = SingleFlight()
    started: list[str] = []

    async def work(name: str) -> str:
        started.append(name)
        await asyncio.sleep(0.05)
        return name

    first = asyncio.create_task(flight.run("k", lambda: work("first")))
    await asyncio.sleep(0)
    second = asyncio.create_task(flight.run("k", lambda: work("second")))
    await asyncio.sleep(0)
    first.cancel()

    assert await second == "second"
    assert started == ["first", "second"]
    with pytest.raises(asyncio.CancelledError):
        await first


@pytest.mark.anyio
async def test_a_cancelled_waiter_does_not_cancel_the_work():
    flight: SingleFlight[str] = SingleFlight()

    async def work() -> str:
        await asyncio.sleep(0.05)
        return "done"

    owner = asyncio.create_task(flight.run("k", work))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(flight.run("k", work))
    await asyncio.sleep(0)
    waiter.cancel()

    assert await owner == "done"
    with pytest.raises(asyncio.CancelledError):
        await waiter
