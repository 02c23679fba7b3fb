"""PostgreSQL databases the tests make for themselves on the test server, and drop again."""

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import URL

from perf_platform.db import normalize_url
from perf_platform.settings import get_settings


def _admin() -> tuple[sa.Engine, URL]:
    admin_url = normalize_url(get_settings().test_postgres_url)
    return sa.create_engine(admin_url, isolation_level="AUTOCOMMIT"), admin_url


def create_database(name: str) -> URL:
    """Create an empty database called `name`; its URL."""
    admin, admin_url = _admin()
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return admin_url.set(database=name)


def drop_database(name: str) -> None:
    """Drop the database if it is there, whoever is still connected to it."""
    admin, _ = _admin()
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def scratch_database(name: str) -> Iterator[URL]:
    """A database of the caller's own for the length of the block."""
    url = create_database(name)
    try:
        yield url
    finally:
        drop_database(name)
