"""The scoring service served over real HTTP, on the real Redis, each test under its own keys."""

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import httpx
import pytest

from perf_platform.servers import serve_asgi
from perf_platform.settings import Settings
from perf_platform_tests.services.scoring.harness import TEST_ITERATIONS
from services.scoring.app import create_app

StartScoring = Callable[..., AbstractContextManager[httpx.Client]]


@pytest.fixture
def key_prefix(redis_prefix: str) -> str:
    """A key prefix of this test's own, under the run's prefix (deleted after the run)."""
    return f"{redis_prefix}scoring:{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def scoring_settings(redis_url: str, key_prefix: str) -> Callable[..., Settings]:
    """Settings for a scoring service on the shared Redis under this test's keys; overrides win."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "score_cache_prefix": key_prefix,
            "score_model_iterations": TEST_ITERATIONS,
        }
        return Settings(**{**values, **overrides})

    return make


@pytest.fixture
def start_scoring(scoring_settings: Callable[..., Settings]) -> StartScoring:
    """`with start_scoring(**settings) as client:` a service of its own, and a client on it."""

    @contextmanager
    def start(**overrides: Any) -> Iterator[httpx.Client]:
        app = create_app(scoring_settings(**overrides))
        with serve_asgi(app) as base_url, httpx.Client(base_url=base_url, timeout=10) as client:
            yield client

    return start


@pytest.fixture
def scoring(start_scoring: StartScoring) -> Iterator[httpx.Client]:
    """A client on a scoring service backed by the shared Redis."""
    with start_scoring() as client:
        yield client
