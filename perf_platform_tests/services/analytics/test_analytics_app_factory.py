"""create_app: the pool size from the settings, and the endpoints every service serves."""

import httpx

from perf_platform.servers import serve_asgi
from perf_platform.settings import Settings
from services.analytics.app import create_app


def test_the_pool_holds_db_pool_size_connections(sqlite_url):
    app = create_app(Settings(database_url=sqlite_url, db_pool_size=3))

    assert app.state.engine.pool.size() == 3


def test_metrics_show_the_services_pool(sqlite_url):
    app = create_app(Settings(database_url=sqlite_url, db_pool_size=4))

    with serve_asgi(app) as base_url:
        httpx.get(f"{base_url}/summary", timeout=30).raise_for_status()
        scrape = httpx.get(f"{base_url}/metrics", timeout=30)

    assert scrape.status_code == 200
    assert 'db_pool_size{service="analytics"}' in scrape.text
