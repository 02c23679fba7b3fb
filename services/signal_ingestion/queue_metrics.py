"""celery_queue_length{queue_name}: tasks waiting in each Celery queue, read from Redis per scrape.

kombu's Redis transport keeps a queue as one Redis list per priority step: the bare queue name
for step 0 and `<queue><sep><step>` for the others, every key behind the `global_keyprefix`
transport option. A queue's length is the sum of all of them; reading only the bare name would
miss every task sent with a priority. Tasks a worker has taken but not yet acknowledged sit in
the transport's unacked set instead and are not counted: they are being worked on.
"""

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import redis
from kombu.transport.redis import Channel as RedisChannel
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from perf_platform.logs import redact_url

log = logging.getLogger(__name__)

METRIC_NAME = "celery_queue_length"
METRIC_HELP = "Tasks waiting in the Celery queue, summed over its priority lists, read per scrape."


def queue_keys(queue: str, transport_options: Mapping[str, Any]) -> list[str]:
    """The Redis lists kombu uses for `queue` under these transport options."""
    sep = transport_options.get("sep", RedisChannel.sep)
    steps = transport_options.get("priority_steps", RedisChannel.priority_steps)
    prefix = transport_options.get("global_keyprefix", RedisChannel.global_keyprefix) or ""
    return [prefix + (f"{queue}{sep}{step}" if step else queue) for step in sorted(set(steps))]


class CeleryQueueLengthCollector(Collector):
    """Reads the length of every priority list of each queue with one pipelined round trip."""

    def __init__(
        self, broker_url: str, queues: Iterable[str], transport_options: Mapping[str, Any]
    ) -> None:
        self.broker_url = broker_url
        self.keys = {queue: queue_keys(queue, transport_options) for queue in queues}
        self.client = redis.Redis.from_url(broker_url, socket_connect_timeout=1, socket_timeout=2)

    def describe(self) -> Iterator[Metric]:
        # Registering must not reach Redis, so describe() names the family without samples.
        yield GaugeMetricFamily(METRIC_NAME, METRIC_HELP, labels=["queue_name"])

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(METRIC_NAME, METRIC_HELP, labels=["queue_name"])
        try:
            lengths = self.lengths()
        except redis.RedisError as exc:
            # No sample rather than a made-up 0: an autoscaler must not read an outage as idle.
            log.warning(
                "event=queue_length_unavailable broker=%s error=%s",
                redact_url(self.broker_url),
                exc,
            )
            yield gauge
            return

        for queue, length in lengths.items():
            gauge.add_metric([queue], float(length))
        yield gauge

    def lengths(self) -> dict[str, int]:
        """Pending tasks per queue, now."""
        with self.client.pipeline(transaction=False) as pipe:
            for keys in self.keys.values():
                for key in keys:
                    pipe.llen(key)
            counts: Sequence[int] = pipe.execute()

        lengths: dict[str, int] = {}
        position = 0
        for queue, keys in self.keys.items():
            lengths[queue] = sum(counts[position : position + len(keys)])
            position += len(keys)
        return lengths
