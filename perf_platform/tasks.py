"""gpu_slot: at most GPU_SLOTS pieces of GPU-bound work at once, across processes and hosts.

With Redis (REDIS_URL, or `redis_url`), slot i is the key `<GPU_SLOT_KEY>:{gpu}:i`, holding its
holder's token and expiring after the lease. Taking a slot is one Lua script that claims the
lowest free key with SET NX PX, so two holders can never share a device. A live holder renews
its lease from a background thread; a holder that dies stops renewing and Redis drops its key
when the lease runs out. Whoever gives a slot back pushes onto `<GPU_SLOT_KEY>:{gpu}:freed`,
which wakes one waiter; waiters also look again every quarter second, since an expired lease
wakes nobody.

Without Redis the slots are an in-process semaphore: the embedded default runs everything in one
process, so nothing else could share them. That choice is logged once.
"""

import logging
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import redis
from prometheus_client import Counter, Gauge, Histogram
from redis.commands.core import Script

from perf_platform.logs import redact_url
from perf_platform.settings import get_settings

log = logging.getLogger(__name__)

GPU_SLOTS_IN_USE = Gauge(
    "gpu_slots_in_use", "GPU slots held by this service now.", multiprocess_mode="livesum"
)
GPU_SLOTS_CAPACITY = Gauge(
    "gpu_slots_capacity",
    "GPU slots the fleet may hold at once (GPU_SLOTS).",
    multiprocess_mode="livemax",
)
GPU_SLOT_ACQUIRE = Counter("gpu_slot_acquire", "GPU slots obtained.")
GPU_SLOT_TIMEOUTS = Counter("gpu_slot_timeouts", "Waits for a GPU slot that ran out of time.")
GPU_SLOT_LEASES_LOST = Counter(
    "gpu_slot_leases_lost", "GPU slots whose lease ran out while their holder still ran."
)
GPU_SLOT_WAIT = Histogram(
    "gpu_slot_wait_seconds",
    "Time from asking for a GPU slot to obtaining it.",
    buckets=(0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
GPU_SLOTS_CAPACITY.set(get_settings().gpu_slots)

# An expired lease frees a slot without waking anyone, so waiters also look again this often.
RECHECK_SECONDS = 0.25

# Claims the lowest free slot for ARGV[1] (token) with a lease of ARGV[2] ms; -1 when all are held.
_ACQUIRE = """
for index = 1, #KEYS do
  if redis.call('SET', KEYS[index], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return index - 1
  end
end
return -1
"""

# Extends the lease only while the slot is still the caller's.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# Frees the slot if still the caller's and wakes one waiter; the wake-up list never outgrows
# the capacity (ARGV[2]) nor outlives a lease (ARGV[3] ms).
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('LPUSH', KEYS[2], '1')
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"""

_SCRIPTS = (_ACQUIRE, _RENEW, _RELEASE)


class GpuSlotError(RuntimeError):
    """A GPU slot could not be obtained."""


class GpuSlotTimeout(GpuSlotError, TimeoutError):
    """Every GPU slot stayed busy for the whole timeout."""


@dataclass
class GpuSlot:
    """A GPU slot held by this process: `index` (0..GPU_SLOTS-1) is the device to use."""

    index: int
    waited_seconds: float
    _lost: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def lost(self) -> bool:
        """True once the lease ran out under us (a long Redis outage): another holder may run."""
        return self._lost.is_set()


@contextmanager
def gpu_slot(
    *, timeout: float | None = None, lease_seconds: float = 30.0, redis_url: str | None = None
) -> Iterator[GpuSlot]:
    """Hold one of GPU_SLOTS slots for the block; wait at most `timeout` seconds (None: forever).

    Raises GpuSlotTimeout when no slot frees in time and GpuSlotError when Redis is unreachable.
    The lease is renewed every third of `lease_seconds` while the block runs.
    """
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be None or at least 0 seconds, not {timeout!r}")
    if lease_seconds <= 0:
        raise ValueError(f"lease_seconds must be more than 0, not {lease_seconds!r}")

    settings = get_settings()
    capacity = settings.gpu_slots
    GPU_SLOTS_CAPACITY.set(capacity)
    url = redis_url or settings.redis_url
    slots = _RedisSlots(url, settings.gpu_slot_key, capacity) if url else _local_slots(capacity)

    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    try:
        index = slots.acquire(deadline, lease_seconds)
    except GpuSlotTimeout:
        GPU_SLOT_TIMEOUTS.inc()
        raise
    slot = GpuSlot(index=index, waited_seconds=time.monotonic() - started)
    GPU_SLOT_WAIT.observe(slot.waited_seconds)
    GPU_SLOT_ACQUIRE.inc()
    GPU_SLOTS_IN_USE.inc()

    try:
        with slots.holding(index, lease_seconds, slot._lost):
            yield slot
    finally:
        GPU_SLOTS_IN_USE.dec()


def _timed_out(deadline: float | None, capacity: int) -> GpuSlotTimeout | None:
    if deadline is None or time.monotonic() < deadline:
        return None
    return GpuSlotTimeout(f"all {capacity} GPU slots stayed busy until the timeout")


class _RedisSlots:
    def __init__(self, url: str, key: str, capacity: int) -> None:
        self.url = url
        self.capacity = capacity
        self.client, self.scripts = _connection(url)
        # The {gpu} hash tag keeps every key a script touches on one Redis Cluster node.
        self.slot_keys = [f"{key}:{{gpu}}:{index}" for index in range(capacity)]
        self.freed_key = f"{key}:{{gpu}}:freed"
        self.token = secrets.token_hex(16)

    def acquire(self, deadline: float | None, lease_seconds: float) -> int:
        lease_ms = _milliseconds(lease_seconds)
        while True:
            try:
                index = int(self.scripts[_ACQUIRE](self.slot_keys, [self.token, lease_ms]))
                if index >= 0:
                    return index

                if error := _timed_out(deadline, self.capacity):
                    raise error
                wait = RECHECK_SECONDS if deadline is None else deadline - time.monotonic()
                # BLPOP treats 0 as "forever", so never ask for less than 10 ms.
                self.client.blpop([self.freed_key], timeout=max(0.01, min(wait, RECHECK_SECONDS)))
            except redis.RedisError as exc:
                raise GpuSlotError(
                    f"cannot reach Redis at {redact_url(self.url)} for a GPU slot: {exc}"
                ) from exc

    @contextmanager
    def holding(self, index: int, lease_seconds: float, lost: threading.Event) -> Iterator[None]:
        stop = threading.Event()
        keeper = threading.Thread(
            target=self._keep_lease,
            args=(index, lease_seconds, lost, stop),
            name=f"gpu-slot-{index}-lease",
            daemon=True,
        )
        keeper.start()
        try:
            yield
        finally:
            stop.set()
            keeper.join()
            self._release(index, lease_seconds)

    def _keep_lease(
        self, index: int, lease_seconds: float, lost: threading.Event, stop: threading.Event
    ) -> None:
        lease_ms = _milliseconds(lease_seconds)
        while not stop.wait(lease_seconds / 3):
            try:
                renewed = self.scripts[_RENEW]([self.slot_keys[index]], [self.token, lease_ms])
            except redis.RedisError as exc:
                # Keep trying: if Redis comes back before the lease ends, nothing was lost.
                log.warning("event=gpu_slot_renew_failed slot=%d error=%s", index, exc)
                continue
            if not renewed:
                lost.set()
                GPU_SLOT_LEASES_LOST.inc()
                log.error("event=gpu_slot_lost slot=%d reason=lease_expired", index)
                return

    def _release(self, index: int, lease_seconds: float) -> None:
        args = [self.token, self.capacity, _milliseconds(lease_seconds)]
        try:
            self.scripts[_RELEASE]([self.slot_keys[index], self.freed_key], args)
        except redis.RedisError as exc:
            # Not raised: it would hide the block's own outcome, and the lease frees the slot.
            log.warning("event=gpu_slot_release_failed slot=%d error=%s", index, exc)


class _LocalSlots:
    """The in-process stand-in: a semaphore that also says which slot it gave."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._free = list(range(capacity))
        self._changed = threading.Condition()

    def acquire(self, deadline: float | None, _lease_seconds: float) -> int:
        with self._changed:
            while not self._free:
                if error := _timed_out(deadline, self.capacity):
                    raise error
                self._changed.wait(None if deadline is None else deadline - time.monotonic())
            self._free.sort()
            return self._free.pop(0)

    @contextmanager
    def holding(self, index: int, _lease_seconds: float, _lost: threading.Event) -> Iterator[None]:
        try:
            yield
        finally:
            with self._changed:
                self._free.append(index)
                self._changed.notify()


_Scripts = dict[str, Script]

_connections: dict[str, tuple[redis.Redis, _Scripts]] = {}
_local: dict[int, _LocalSlots] = {}
_shared_lock = threading.Lock()


def _connection(url: str) -> tuple[redis.Redis, _Scripts]:
    """One client per URL and process (redis-py reconnects by itself after a fork)."""
    with _shared_lock:
        if url not in _connections:
            # BLPOP blocks at most RECHECK_SECONDS, well inside the socket timeout.
            client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
            scripts = {source: client.register_script(source) for source in _SCRIPTS}
            _connections[url] = (client, scripts)
        return _connections[url]


def _local_slots(capacity: int) -> _LocalSlots:
    with _shared_lock:
        if capacity not in _local:
            # Only this process shares these slots; other processes have semaphores of their own.
            log.info("event=gpu_slots_in_process capacity=%d reason=redis_url_unset", capacity)
            _local[capacity] = _LocalSlots(capacity)
        return _local[capacity]


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))
