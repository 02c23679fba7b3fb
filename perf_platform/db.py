"""SQLAlchemy engines for the platform's database, migrated to the newest schema on first use."""

import logging
import threading
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from perf_platform.logs import redact_url
from perf_platform.metrics import instrument_pool
from perf_platform.settings import PROJECT_ROOT, get_settings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = PROJECT_ROOT / "sql" / "migrations"

# A fixed key for pg_advisory_lock, so processes starting together migrate one at a time.
_MIGRATION_LOCK_KEY = 7_301_446_129

_migrated: set[str] = set()
_migrated_lock = threading.Lock()


class DatabaseError(RuntimeError):
    """The database could not be reached or used; the message names it with the password hidden."""


def normalize_url(url: str | URL) -> URL:
    """The URL with an explicit driver: psycopg 3 for PostgreSQL, whatever SQLAlchemy picks else."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(f"not a database URL: {redact_url(str(url))!r}") from exc

    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def display_url(url: str | URL) -> str:
    return make_url(url).render_as_string(hide_password=True)


def make_engine(
    url: str | URL | None = None,
    *,
    pool_size: int | None = None,
    migrate: bool = True,
    service: str | None = None,
) -> Engine:
    """An engine on `url` (PERF_PLATFORM_DATABASE_URL by default), checked and migrated.

    The pool holds DB_POOL_SIZE connections unless `pool_size` says otherwise. A service names
    itself in `service`, and its pool shows on /metrics as `db_pool_size` and `db_pool_in_use`
    with that label. Raises DatabaseError with one readable line when the database cannot be
    reached.
    """
    settings = get_settings()
    parsed = normalize_url(url or settings.database_url)
    size = pool_size or settings.db_pool_size

    try:
        if parsed.get_backend_name() == "sqlite":
            engine = _sqlite_engine(parsed, size)
        else:
            engine = sa.create_engine(
                parsed, pool_size=size, max_overflow=0, pool_pre_ping=True, pool_timeout=10
            )
    except (NoSuchModuleError, ArgumentError, ImportError) as exc:
        raise DatabaseError(
            f"cannot use database URL {display_url(parsed)}: {exc} "
            "(PERF_PLATFORM_DATABASE_URL takes sqlite:///path or postgresql://user@host/db)"
        ) from None

    check_connection(engine)
    if migrate:
        ensure_schema(engine)
    if service is not None:
        instrument_pool(engine, service)
    return engine


def _sqlite_engine(url: URL, pool_size: int) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, pool_size=pool_size, max_overflow=0, pool_timeout=10)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # WAL lets the services write while Dagster reads; the timeout waits out short locks.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    return engine


def check_connection(engine: Engine) -> None:
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(
            f"cannot connect to database {display_url(engine.url)}: {reason}"
        ) from exc


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def ensure_schema(engine: Engine) -> None:
    """Apply every migration not yet applied; cheap after the first call in a process."""
    key = engine.url.render_as_string(hide_password=False)
    with _migrated_lock:
        if key in _migrated:
            return

        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            command.upgrade(alembic_config(connection), "head")
        _migrated.add(key)
        log.info("event=schema_ready database=%s", display_url(engine.url))


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
