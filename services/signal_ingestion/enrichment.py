"""Enriching a stored batch: each signal's z-score within its (source, name) series in the batch.

The scoring is the pipeline's GPU-bound step, so it runs inside `gpu_slot`: at most GPU_SLOTS
batches use the devices at once, and the slot's index names the device a batch ran on.
"""

import logging
from collections import defaultdict
from collections.abc import Sequence
from statistics import fmean, pstdev
from typing import Any

from sqlalchemy.engine import Engine

from perf_platform.tasks import gpu_slot
from services.signal_ingestion import store

log = logging.getLogger(__name__)


def zscores(rows: Sequence[Any]) -> dict[str, float]:
    """signal_id -> (value - series mean) / series standard deviation; 0 for a flat series."""
    series: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for row in rows:
        series[(row.source, row.name)].append(row)

    scores: dict[str, float] = {}
    for members in series.values():
        values = [row.value for row in members]
        mean, spread = fmean(values), pstdev(values)
        for row in members:
            scores[row.signal_id] = (row.value - mean) / spread if spread else 0.0
    return scores


def enrich_batch(
    engine: Engine, batch_id: str, signal_ids: Sequence[str], *, slot_timeout: float
) -> int:
    """Score the batch's signals that it stored and write the scores to their attributes;
    returns how many were written. Running it again rewrites the same values."""
    with engine.connect() as connection:
        rows = store.batch_values(connection, batch_id, signal_ids)
    if not rows:
        return 0

    # Only the scoring holds the slot; reading and writing the database do not need the device.
    with gpu_slot(timeout=slot_timeout) as slot:
        # TODO(gpu): the arithmetic runs on the CPU; on GPU nodes run it on device slot.index
        # with a GPU array library (for example CuPy), which the slot already accounts for.
        scores = zscores(rows)
        device = slot.index

    attributes = {
        signal_id: {"zscore": score, "gpu_slot": device} for signal_id, score in scores.items()
    }
    with engine.begin() as connection:
        written = store.set_attributes(connection, attributes)
    log.info("event=batch_enriched batch_id=%s signals=%d gpu_slot=%d", batch_id, written, device)
    return written
