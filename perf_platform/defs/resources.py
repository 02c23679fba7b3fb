"""Resources shared by every area: the services the pipeline measures and the results store."""

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr
from sqlalchemy.engine import Engine

from perf_platform.db import make_engine
from perf_platform.servers import serve_asgi, serve_wsgi


class ServiceResource(dg.ConfigurableResource):
    """A service under measurement: started in this process on a free loopback port by default,
    or a deployed instance when `base_url` is set."""

    app_factory: str = Field(description="module:function that builds the app")
    base_url: str | None = Field(default=None, description="a running instance to measure")

    @contextmanager
    def running(self) -> Iterator[str]:
        """Yields the service's base URL for as long as the block runs."""
        if self.base_url:
            yield self.base_url.rstrip("/")
            return

        app = self.build_app()
        serve = serve_wsgi if hasattr(app, "wsgi_app") else serve_asgi
        with serve(app) as url:
            yield url

    def build_app(self) -> Any:
        module_name, _, factory = self.app_factory.partition(":")
        return getattr(importlib.import_module(module_name), factory)()


class BenchmarkStoreResource(dg.ConfigurableResource):
    """The database holding score_benchmarks: PERF_PLATFORM_DATABASE_URL unless configured."""

    database_url: str | None = Field(default=None, description="SQLAlchemy URL")

    _engine: Engine | None = PrivateAttr(default=None)

    def engine(self) -> Engine:
        """One migrated engine for the whole step, made on first use."""
        if self._engine is None:
            self._engine = make_engine(self.database_url)
        return self._engine

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()


defs = dg.Definitions(
    # Steps run one at a time, each in a process of its own: measurements must not share the CPU.
    executor=dg.multiprocess_executor.configured({"max_concurrent": 1}),
    resources={
        "scoring_service": ServiceResource(app_factory="services.scoring.app:create_app"),
        "analytics_service": ServiceResource(app_factory="services.analytics.app:create_app"),
        "benchmark_store": BenchmarkStoreResource(),
    },
)
