"""Single flight: concurrent calls for one key share one execution of the work."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Runs `work` once per key at a time in this event loop; callers that arrive while it runs
    wait for the same result (or the same exception) instead of starting their own."""

    def __init__(self) -> None:
        self._in_flight: dict[str, asyncio.Future[T]] = {}

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> T:
        while (pending := self._in_flight.get(key)) is not None:
            try:
                # shield: a waiter that gives up must not cancel the others' result.
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise
                # The caller doing the work was cancelled; the next waiter takes over.

        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            result = await work()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._in_flight[key]
