"""A PostgreSQL database of the module's own, for tests that change its indexes."""

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from perf_platform.db import make_engine, normalize_url
from perf_platform.settings import get_settings
from perf_platform_tests.defs.analytics.analytics_dagster import url_text


@pytest.fixture(scope="module")
def fresh_postgres_url() -> Iterator[str]:
    """A PostgreSQL database of this module's own, migrated, dropped afterwards."""
    admin_url = normalize_url(get_settings().test_postgres_url)
    name = f"perf_platform_test_analytics_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = url_text(admin_url.set(database=name))
    engine = make_engine(url)
    engine.dispose()

    yield url

    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
