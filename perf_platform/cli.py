"""perf-platform: the command-line entry point (`make run`, `make migrate`)."""

import argparse
import logging
import sys

from perf_platform.db import DatabaseError, current_revision, display_url, make_engine
from perf_platform.logs import configure_logging
from perf_platform.settings import InvalidSettings, get_settings

log = logging.getLogger("perf_platform.cli")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="perf-platform", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    migrate = commands.add_parser("migrate", help="apply the database migrations")
    migrate.add_argument("--database-url", help="SQLAlchemy URL (PERF_PLATFORM_DATABASE_URL)")

    commands.add_parser(
        "run", help="materialize every asset of the code location and print the results"
    )

    args = parser.parse_args(argv)
    try:
        get_settings()
    except InvalidSettings as exc:
        parser.error(str(exc))  # usage and the reason, exit status 2
    configure_logging()
    try:
        if args.command == "migrate":
            return _migrate(args.database_url)
        return _run()
    except DatabaseError as exc:
        print(f"perf-platform: {exc}", file=sys.stderr)
        return 1


def _migrate(database_url: str | None) -> int:
    engine = make_engine(database_url)
    print(f"schema at revision {current_revision(engine)} on {display_url(engine.url)}")
    return 0


def _run() -> int:
    # The store first: a database that cannot be used is one line, not a failed run's worth.
    make_engine().dispose()

    # Imported here: loading Dagster takes a second that `migrate` need not pay.
    from perf_platform.nightly import run_everything

    return run_everything()


if __name__ == "__main__":
    sys.exit(main())
