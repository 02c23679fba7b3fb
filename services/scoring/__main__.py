"""python -m services.scoring: serve the scoring service with the platform's log set up."""

import argparse

import uvicorn

from perf_platform.logs import configure_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.scoring", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    configure_logging()
    uvicorn.run(
        "services.scoring.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,  # keep the platform's one-line log format
        access_log=False,  # add_profiling logs every request already
    )


if __name__ == "__main__":
    main()
