"""The analytics service when its database connections drop or its database goes away."""

import uuid

import httpx
import sqlalchemy as sa

from perf_platform.db import normalize_url
from perf_platform.servers import serve_asgi
from perf_platform.settings import Settings, get_settings
from services.analytics.app import create_app


def test_a_dropped_connection_is_replaced_without_an_error(client, known_signals, postgres_url):
    assert client.get("/summary").json()["count"] == 7

    # Kill every other session on the test database, the service's pooled ones included.
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        killed = connection.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    admin.dispose()

    assert killed >= 1
    response = client.get("/aggregate", params={"group_by": "source"})
    assert response.status_code == 200
    assert [row["count"] for row in response.json()["rows"]] == [1, 3, 3]


def test_a_vanished_database_gives_503_with_the_reason():
    admin_url = normalize_url(get_settings().test_postgres_url)
    name = f"perf_platform_test_gone_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)

    try:
        app = create_app(Settings(database_url=url))
        with serve_asgi(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
            assert client.get("/summary").status_code == 200
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))

            response = client.get("/summary")
            health = client.get("/healthz")
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    assert response.status_code == 503
    assert "etag" not in response.headers
    assert response.json()["detail"].startswith("database unavailable: ")
    assert f'"{name}" does not exist' in response.json()["detail"]
    assert health.status_code == 200
