"""The services behind the gateway, called over HTTP; every failure becomes a TRPCError."""

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from services.gateway.trpc import TRPCError

log = logging.getLogger(__name__)

# Upstream statuses whose reason is the caller's fault, passed on with the upstream's words.
_CLIENT_ERRORS = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    422: "BAD_REQUEST",
    429: "TOO_MANY_REQUESTS",
}


class Upstream:
    """One upstream service: its name (for messages and logs), base URL and deadline.

    The `httpx.AsyncClient` is shared by all upstreams, so connections are pooled per host.
    httpx's own timeouts bound each phase; `deadline_seconds` bounds the whole exchange, so an
    upstream that drips its answer byte by byte cannot hold a request forever either.
    """

    def __init__(
        self, name: str, base_url: str, client: httpx.AsyncClient, deadline_seconds: float
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.deadline_seconds = deadline_seconds

    async def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return await self._call("GET", path, params=params)

    async def post_json(
        self, path: str, payload: Any, headers: Mapping[str, str] | None = None
    ) -> Any:
        return await self._call("POST", path, json=payload, headers=headers)

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.base_url}{path}"
        try:
            async with asyncio.timeout(self.deadline_seconds):
                response = await self.client.request(method, url, **kwargs)
        except (TimeoutError, httpx.TimeoutException):
            log.warning("upstream=%s url=%s outcome=timeout", self.name, url)
            raise TRPCError(
                "GATEWAY_TIMEOUT",
                f"{self.name} did not answer within {self.deadline_seconds:g} s",
            ) from None
        except httpx.TransportError as exc:
            log.warning("upstream=%s url=%s outcome=unreachable error=%r", self.name, url, exc)
            raise TRPCError(
                "BAD_GATEWAY", f"{self.name} is unreachable: {type(exc).__name__}"
            ) from None

        return self._data_of(response, url)

    def _data_of(self, response: httpx.Response, url: str) -> Any:
        status = response.status_code
        if status in _CLIENT_ERRORS:
            raise TRPCError(_CLIENT_ERRORS[status], _reason(response))
        if status == 503:
            raise TRPCError("SERVICE_UNAVAILABLE", f"{self.name} is unavailable (503)")
        if status != 200:
            log.warning("upstream=%s url=%s outcome=status status=%d", self.name, url, status)
            raise TRPCError("BAD_GATEWAY", f"{self.name} answered HTTP {status}")

        # orjson refuses NaN and Infinity, which would break every JSON client downstream.
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            log.warning("upstream=%s url=%s outcome=not_json", self.name, url)
            raise TRPCError("BAD_GATEWAY", f"{self.name} answered with invalid JSON") from None


def _reason(response: httpx.Response) -> str:
    """The upstream's explanation: FastAPI's `detail` (a string or a list of errors)."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text[:500] or f"HTTP {response.status_code}"

    if isinstance(detail, list):
        return "; ".join(_describe_validation_error(item) for item in detail)
    return str(detail) if detail else f"HTTP {response.status_code}"


def _describe_validation_error(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    location = ".".join(str(part) for part in item.get("loc", ()) if part not in ("body", "query"))
    message = item.get("msg", "invalid")
    return f"{location}: {message}" if location else str(message)
