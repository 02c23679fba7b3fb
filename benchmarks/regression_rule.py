"""How often the regression rule cries wolf, and how often it catches a real slowdown.

Draws histories and runs from one noise model (a host-wide factor shared by both phases, plus
noise of each phase's own) and counts the verdicts. Prints a table, or JSON with --json.
"""

import argparse
import json
import random

from perf_platform.regression import RegressionRule, RunSample, Verdict, assess

SCENARIOS = {
    "same distribution": {},
    "model 10% slower": {"uncached_factor": 1.10},
    "model 25% slower": {"uncached_factor": 1.25},
    "cache 25% slower": {"cached_factor": 1.25},
    "host 30% slower (drift)": {"host_factor": 1.30},
}


def draw(rng: random.Random, host_noise: float, phase_noise: float, **factors: float) -> RunSample:
    host = factors.get("host_factor", 1.0) * rng.lognormvariate(0, host_noise)
    uncached = 8.0 * factors.get("uncached_factor", 1.0) * rng.lognormvariate(0, phase_noise)
    cached = 0.5 * factors.get("cached_factor", 1.0) * rng.lognormvariate(0, phase_noise)
    return RunSample(uncached_p50_ms=uncached * host, cached_p50_ms=cached * host)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--host-noise", type=float, default=0.05, help="lognormal sigma")
    parser.add_argument("--phase-noise", type=float, default=0.03, help="lognormal sigma")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    rule = RegressionRule()
    rates = {}
    for scenario, factors in SCENARIOS.items():
        flagged = 0
        for _ in range(args.trials):
            history = [draw(rng, args.host_noise, args.phase_noise) for _ in range(rule.window)]
            run = draw(rng, args.host_noise, args.phase_noise, **factors)
            flagged += assess(run, history, rule).verdict is Verdict.REGRESSION
        rates[scenario] = flagged / args.trials

    report = {
        "trials": args.trials,
        "host_noise": args.host_noise,
        "phase_noise": args.phase_noise,
        "flagged_rate": rates,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{'scenario':<26} {'flagged':>8}   ({args.trials} trials, history of {rule.window})")
        for scenario, rate in rates.items():
            print(f"{scenario:<26} {rate:>8.1%}")
    return report


if __name__ == "__main__":
    main()
