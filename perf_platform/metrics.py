"""Prometheus metrics: the /metrics endpoint every service serves.

TODO(metrics): multiprocess mode, DB pool gauges and GPU slot metrics are issue #8.
"""

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest


def metrics_payload() -> tuple[bytes, str]:
    """The current scrape of this process: body and content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def add_metrics_endpoint(app: Any) -> Any:
    """Serve GET /metrics on a FastAPI/Starlette or Flask app."""
    if hasattr(app, "wsgi_app"):
        from flask import Response as FlaskResponse

        def flask_metrics() -> FlaskResponse:
            body, content_type = metrics_payload()
            return FlaskResponse(body, content_type=content_type)

        app.add_url_rule("/metrics", "metrics", flask_metrics, methods=["GET"])
    else:
        from starlette.responses import Response

        async def starlette_metrics(_request: Any) -> Response:
            body, content_type = metrics_payload()
            return Response(body, media_type=content_type)

        app.add_route("/metrics", starlette_metrics, methods=["GET"], include_in_schema=False)
    return app
