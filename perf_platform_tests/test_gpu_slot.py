"""gpu_slot: a counting semaphore with leases in the real Redis, across real processes."""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from perf_platform.settings import get_settings
from perf_platform.tasks import GpuSlotError, GpuSlotTimeout, gpu_slot

# A child process: wait for the start signal, then take a slot `rounds` times, recording in
# Redis how many holders there are at once and whether two ever shared a device.
CONTENDER = """
import os, sys, time
import redis
from perf_platform.settings import get_settings
from perf_platform.tasks import gpu_slot

ns, rounds, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
r = redis.Redis.from_url(get_settings().redis_url)
r.incr(ns + "ready")
r.blpop([ns + "go"], timeout=60)
for _ in range(rounds):
    with gpu_slot(timeout=60, lease_seconds=5) as slot:
        if not r.set(ns + "device:" + str(slot.index), os.getpid(), nx=True):
            r.incr(ns + "shared")
        r.rpush(ns + "concurrent", r.incr(ns + "holders"))
        r.rpush(ns + "devices", slot.index)
        time.sleep(hold)
        r.decr(ns + "holders")
        r.delete(ns + "device:" + str(slot.index))
"""

# A child process that takes a slot with a short lease, says so, and holds it until killed.
HOLDER = """
import sys, time
import redis
from perf_platform.settings import get_settings
from perf_platform.tasks import gpu_slot

ns, lease = sys.argv[1], float(sys.argv[2])
r = redis.Redis.from_url(get_settings().redis_url)
with gpu_slot(timeout=30, lease_seconds=lease) as slot:
    r.rpush(ns + "held", slot.index)
    time.sleep(600)
"""


@pytest.fixture
def slots(monkeypatch, redis_url, redis_prefix) -> Iterator:  # type: ignore[type-arg]
    """Configure GPU slots for this test: `slots(capacity, url=...)` returns the slot key."""

    def configure(capacity: int, url: str | None = redis_url) -> str:
        key = f"{redis_prefix}gpu:{uuid.uuid4().hex[:8]}"
        monkeypatch.setenv("GPU_SLOTS", str(capacity))
        monkeypatch.setenv("GPU_SLOT_KEY", key)
        if url is None:
            monkeypatch.delenv("REDIS_URL", raising=False)
        else:
            monkeypatch.setenv("REDIS_URL", url)
        get_settings.cache_clear()
        return key

    yield configure
    get_settings.cache_clear()


@pytest.fixture
def store(redis_url) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def scraped_from(directory: str) -> dict[str, float]:
    """The merged samples of every process that wrote into a multiprocess directory."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return {s.name: s.value for metric in registry.collect() for s in metric.samples}


def start_python(code: str, *args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stderr=subprocess.PIPE)


def wait_until(condition, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached within the timeout")
        time.sleep(0.05)


def test_each_holder_gets_its_own_device_up_to_the_capacity(slots):
    slots(3)

    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(gpu_slot(timeout=5)) for _ in range(3)]

        assert sorted(slot.index for slot in held) == [0, 1, 2]
        with pytest.raises(GpuSlotTimeout), gpu_slot(timeout=0):
            pass


def test_a_wait_past_the_timeout_raises(slots):
    slots(1)
    timeouts_before = sample("gpu_slot_timeouts_total")

    busy = pytest.raises(GpuSlotTimeout, match="all 1 GPU slots stayed busy")
    with gpu_slot(timeout=5), busy, gpu_slot(timeout=0.3):
        pass

    assert sample("gpu_slot_timeouts_total") == timeouts_before + 1
    assert issubclass(GpuSlotTimeout, TimeoutError)


def test_a_released_slot_goes_to_a_waiter_and_is_counted(slots):
    slots(1)
    acquired_before = sample("gpu_slot_acquire_total")
    waits_before = sample("gpu_slot_wait_seconds_count")
    taken = threading.Event()

    def hold_briefly() -> None:
        with gpu_slot(timeout=5):
            taken.set()
            time.sleep(0.3)

    holder = threading.Thread(target=hold_briefly)
    holder.start()
    taken.wait(timeout=10)
    with gpu_slot(timeout=10) as slot:
        assert slot.index == 0
        assert sample("gpu_slots_in_use") == 1
    holder.join(timeout=10)

    assert sample("gpu_slot_acquire_total") == acquired_before + 2
    assert sample("gpu_slot_wait_seconds_count") == waits_before + 2
    assert sample("gpu_slots_in_use") == 0
    assert sample("gpu_slots_capacity") == 1


def test_a_live_holder_keeps_its_slot_past_its_lease(slots, store):
    key = slots(1)

    with gpu_slot(timeout=5, lease_seconds=0.3) as slot:
        time.sleep(1.2)  # four leases: only renewal keeps the key alive

        assert store.pttl(f"{key}:{{gpu}}:0") > 0
        with pytest.raises(GpuSlotTimeout), gpu_slot(timeout=0):
            pass
        assert not slot.lost

    assert store.exists(f"{key}:{{gpu}}:0") == 0


def test_processes_contending_never_exceed_the_capacity(slots, store, redis_prefix, tmp_path):
    slots(2)
    ns = f"{redis_prefix}contend:{uuid.uuid4().hex[:8]}:"
    children, rounds = 5, 2
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    processes = [start_python(CONTENDER, ns, str(rounds), "0.15", env=env) for _ in range(children)]
    wait_until(lambda: int(store.get(ns + "ready") or 0) == children)
    store.rpush(ns + "go", *["go"] * children)
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr.decode()

    concurrent = [int(n) for n in store.lrange(ns + "concurrent", 0, -1)]
    assert len(concurrent) == children * rounds
    assert max(concurrent) == 2
    assert int(store.get(ns + "shared") or 0) == 0
    assert set(store.lrange(ns + "devices", 0, -1)) <= {"0", "1"}

    merged = scraped_from(str(tmp_path))
    assert merged["gpu_slot_acquire_total"] == children * rounds
    assert merged["gpu_slot_wait_seconds_count"] == children * rounds
    assert merged["gpu_slots_in_use"] == 0
    assert merged["gpu_slots_capacity"] == 2


def test_a_killed_holders_slot_is_reclaimed_after_its_lease(slots, store, redis_prefix, tmp_path):
    key = slots(1)
    ns = f"{redis_prefix}killed:{uuid.uuid4().hex[:8]}:"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    holder = start_python(HOLDER, ns, "1.5", env=env)
    assert store.blpop([ns + "held"], timeout=60) == (ns + "held", "0")

    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=10)

    # The dead holder's lease still runs: the slot is not free yet...
    assert store.pttl(f"{key}:{{gpu}}:0") > 0
    # ...and its gauge file still says 1 until the process is marked dead, as gunicorn's
    # child_exit hook does in production.
    assert scraped_from(str(tmp_path))["gpu_slots_in_use"] == 1
    mark_process_dead(holder.pid, str(tmp_path))
    assert scraped_from(str(tmp_path)).get("gpu_slots_in_use", 0) == 0

    with gpu_slot(timeout=15) as slot:
        assert slot.index == 0


def test_unreachable_redis_is_a_clear_error(slots, private_redis):
    slots(1, url=private_redis.url)
    private_redis.stop()

    unreachable = pytest.raises(
        GpuSlotError, match=r"cannot reach Redis at redis://127\.0\.0\.1:\d+"
    )
    with unreachable, gpu_slot(timeout=1):
        pass


def test_a_lease_that_ran_out_during_a_redis_restart_is_reported_lost(slots, private_redis):
    slots(1, url=private_redis.url)
    lost_before = sample("gpu_slot_leases_lost_total")

    with gpu_slot(timeout=5, lease_seconds=0.3) as slot:
        private_redis.stop()  # nothing is kept on disk: the slot keys are gone
        private_redis.start()
        wait_until(lambda: slot.lost, timeout=10)

        # The slot is free again in Redis, so another holder may take it.
        with gpu_slot(timeout=5) as other:
            assert other.index == 0

    assert sample("gpu_slot_leases_lost_total") == lost_before + 1


def test_without_redis_the_slots_are_shared_by_this_process_only(slots):
    slots(2, url=None)
    inside, most, shared, lock = [], [0], [0], threading.Lock()

    def work() -> None:
        with gpu_slot(timeout=30) as slot:
            with lock:
                shared[0] += slot.index in inside
                inside.append(slot.index)
                most[0] = max(most[0], len(inside))
            time.sleep(0.05)
            with lock:
                inside.remove(slot.index)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert most[0] == 2
    assert shared[0] == 0
    assert inside == []
    with (
        gpu_slot(timeout=1),
        gpu_slot(timeout=1),
        pytest.raises(GpuSlotTimeout),
        gpu_slot(timeout=0.1),
    ):
        pass


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [({"timeout": -1}, "timeout must be"), ({"lease_seconds": 0}, "lease_seconds must")],
)
def test_bad_arguments_are_refused(slots, arguments, reason):
    slots(1)

    with pytest.raises(ValueError, match=reason), gpu_slot(**arguments):
        pass
