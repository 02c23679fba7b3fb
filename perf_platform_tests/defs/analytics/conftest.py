"""A PostgreSQL database of the module's own, for tests that change its indexes."""

import uuid
from collections.abc import Iterator

import pytest

from perf_platform.db import make_engine
from perf_platform_tests.databases import scratch_database
from perf_platform_tests.defs.analytics.analytics_dagster import url_text


@pytest.fixture(scope="module")
def fresh_postgres_url() -> Iterator[str]:
    """A PostgreSQL database of this module's own, migrated, dropped afterwards."""
    with scratch_database(f"perf_platform_test_analytics_{uuid.uuid4().hex[:8]}") as url:
        make_engine(url).dispose()
        yield url_text(url)
