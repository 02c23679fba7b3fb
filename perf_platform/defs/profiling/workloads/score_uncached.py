"""Workload: the scoring model's uncached path, scoring many random feature sets.

    python -m perf_platform.defs.profiling.workloads.score_uncached [--scores 200]
        [--features 16] [--iterations N] [--seed 0]

Every feature set is new, so each score is computed by `compute_score`, as on a cache miss.
"""

import argparse
import random
import sys
import time
from collections.abc import Sequence

from perf_platform.settings import get_settings
from services.scoring.model import MODEL_VERSION, compute_score


def random_feature_sets(count: int, features: int, seed: int) -> list[dict[str, float]]:
    """`count` feature sets of `features` named values each, reproducible from `seed`."""
    rng = random.Random(seed)
    return [
        {f"feature_{index}": rng.uniform(-3.0, 3.0) for index in range(features)}
        for _ in range(count)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", type=int, default=200, help="feature sets to score")
    parser.add_argument("--features", type=int, default=16, help="features in each set")
    parser.add_argument(
        "--iterations", type=int, help="model steps per score (SCORE_MODEL_ITERATIONS)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.scores < 1 or args.features < 1:
        parser.error("--scores and --features must be at least 1")
    iterations = args.iterations or get_settings().score_model_iterations
    if iterations < 1:
        parser.error("--iterations must be at least 1")

    feature_sets = random_feature_sets(args.scores, args.features, args.seed)
    started = time.perf_counter()
    total = sum(compute_score(features, iterations=iterations) for features in feature_sets)
    elapsed = time.perf_counter() - started

    # A command-line workload: its one result line goes to stdout.
    print(  # noqa: T201
        f"scored {args.scores} feature sets with {MODEL_VERSION} ({iterations} iterations) "
        f"in {elapsed:.3f}s; mean score {total / args.scores:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
