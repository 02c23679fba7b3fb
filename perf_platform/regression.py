"""The regression rule for benchmarks: robust statistics over a run's history, no I/O.

A run is compared with the last runs of the same benchmark, configuration and host. Each latency
is judged against the median and MAD (median absolute deviation) of its history, and a slowdown
counts only when the uncached/cached ratio, measured within the run, moves the same way: a host
that got slower overall slows both phases and leaves the ratio where it was.
"""

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

# Scales the MAD to the standard deviation of a normal distribution.
MAD_TO_SIGMA = 1.4826


class Verdict(StrEnum):
    OK = "ok"
    REGRESSION = "regression"
    NOISY = "noisy"
    INSUFFICIENT_HISTORY = "insufficient_history"


@dataclass(frozen=True)
class RunSample:
    """The numbers of one run that the rule looks at."""

    uncached_p50_ms: float
    cached_p50_ms: float
    # Spread within the run: (p95 - p50) / p50 of each phase.
    uncached_spread: float = 0.0
    cached_spread: float = 0.0

    @property
    def ratio(self) -> float:
        return self.uncached_p50_ms / self.cached_p50_ms


@dataclass(frozen=True)
class RegressionRule:
    min_history: int = 5
    window: int = 20
    mad_threshold: float = 3.0  # how many scaled MADs away the ratio must move
    min_relative_change: float = 0.10  # and never less than this fraction of its median
    max_spread: float = 1.5  # a phase whose p95 is 2.5x its p50 is too noisy to judge


@dataclass(frozen=True)
class MetricChange:
    name: str
    current: float
    median: float
    mad: float
    threshold: float  # the value beyond which the change counts
    changed: bool

    @property
    def relative_change(self) -> float:
        return (self.current - self.median) / self.median if self.median else 0.0


@dataclass(frozen=True)
class Assessment:
    verdict: Verdict
    reason: str
    history_size: int
    changes: dict[str, MetricChange] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict is not Verdict.REGRESSION


def assess(current: RunSample, history: Sequence[RunSample], rule: RegressionRule) -> Assessment:
    """Judge one run against the runs before it (newest last in `history`)."""
    recent = list(history)[-rule.window :]

    noisy = {
        phase: spread
        for phase, spread in (
            ("uncached", current.uncached_spread),
            ("cached", current.cached_spread),
        )
        if spread > rule.max_spread
    }
    if noisy:
        detail = ", ".join(f"{phase} (p95-p50)/p50 {value:.2f}" for phase, value in noisy.items())
        return Assessment(
            Verdict.NOISY, f"noisy run, not judged ({detail} > {rule.max_spread})", len(recent)
        )

    if len(recent) < rule.min_history:
        return Assessment(
            Verdict.INSUFFICIENT_HISTORY,
            f"{len(recent)} earlier runs of this configuration on this host; "
            f"{rule.min_history} are needed before judging",
            len(recent),
        )

    ratios = [s.ratio for s in recent]
    changes = {
        "ratio_up": _beyond("ratio", current.ratio, ratios, rule),
        "ratio_down": _beyond("ratio", -current.ratio, [-r for r in ratios], rule),
        "uncached_p50_ms": _beyond(
            "uncached_p50_ms",
            current.uncached_p50_ms,
            [s.uncached_p50_ms for s in recent],
            rule,
            spread_aware=False,
        ),
        "cached_p50_ms": _beyond(
            "cached_p50_ms",
            current.cached_p50_ms,
            [s.cached_p50_ms for s in recent],
            rule,
            spread_aware=False,
        ),
    }

    # The ratio is the signal (host drift cancels in it); the latency only has to confirm which
    # phase got slower. The model got slower: ratio up, uncached up. The cache: ratio down,
    # cached up. Both phases up with a steady ratio is the host, not the code.
    findings = []
    if changes["ratio_up"].changed and changes["uncached_p50_ms"].changed:
        findings.append(_describe(changes["uncached_p50_ms"], changes["ratio_up"]))
    if changes["ratio_down"].changed and changes["cached_p50_ms"].changed:
        findings.append(_describe(changes["cached_p50_ms"], changes["ratio_down"]))
    if findings:
        return Assessment(Verdict.REGRESSION, "; ".join(findings), len(recent), changes)

    drift = [name for name in ("uncached_p50_ms", "cached_p50_ms") if changes[name].changed]
    reason = (
        f"{' and '.join(drift)} slower with a steady uncached/cached ratio: host drift"
        if drift
        else f"within the spread of the last {len(recent)} runs"
    )
    return Assessment(Verdict.OK, reason, len(recent), changes)


def _beyond(
    name: str, current: float, past: list[float], rule: RegressionRule, *, spread_aware: bool = True
) -> MetricChange:
    """Whether `current` is above the history: by the MAD rule, or by the relative minimum only."""
    median = statistics.median(past)
    mad = statistics.median(abs(value - median) for value in past)
    margin = rule.min_relative_change * abs(median)
    if spread_aware:
        margin = max(margin, rule.mad_threshold * MAD_TO_SIGMA * mad)
    threshold = median + margin
    return MetricChange(name, current, median, mad, threshold, current > threshold)


def _describe(latency: MetricChange, ratio: MetricChange) -> str:
    ratio_change = (abs(ratio.current) - abs(ratio.median)) / abs(ratio.median)
    return (
        f"{latency.name} {latency.current:.3f} ms vs median {latency.median:.3f} ms "
        f"({latency.relative_change:+.0%}), uncached/cached ratio {abs(ratio.current):.2f} vs "
        f"{abs(ratio.median):.2f} ({ratio_change:+.0%})"
    )
