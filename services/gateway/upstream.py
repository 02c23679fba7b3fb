"""The services behind the gateway, called over HTTP; every failure becomes a TRPCError."""

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from perf_platform.etag import is_entity_tag
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


@dataclass(frozen=True)
class UpstreamAnswer:
    """One successful upstream answer: its decoded JSON, or "not modified", and its ETag.

    `not_modified` answers a conditional GET whose tag still names the current data; `data` is
    then None, and the caller already holds what it needs. `etag` is the upstream's validator
    when it sent a well-formed one.
    """

    data: Any
    etag: str | None = None
    not_modified: bool = False


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

    async def get_json(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        if_none_match: str | None = None,
    ) -> UpstreamAnswer:
        """GET `path`; with `if_none_match`, a conditional GET that may answer not_modified."""
        conditional = if_none_match is not None
        headers = {"If-None-Match": if_none_match} if conditional else None
        return await self._call(
            "GET", path, params=params, headers=headers, conditional=conditional
        )

    async def post_json(
        self, path: str, payload: Any, headers: Mapping[str, str] | None = None
    ) -> UpstreamAnswer:
        return await self._call("POST", path, json=payload, headers=headers)

    async def _call(
        self, method: str, path: str, *, conditional: bool = False, **kwargs: Any
    ) -> UpstreamAnswer:
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

        return self._answer_of(response, url, conditional=conditional)

    def _answer_of(
        self, response: httpx.Response, url: str, *, conditional: bool
    ) -> UpstreamAnswer:
        status = response.status_code
        etag = response.headers.get("etag")
        if etag is not None and not is_entity_tag(etag):
            etag = None
        if status == 304 and conditional:
            return UpstreamAnswer(None, etag, not_modified=True)
        if status in _CLIENT_ERRORS:
            raise TRPCError(_CLIENT_ERRORS[status], _reason(response))
        if status == 503:
            raise TRPCError("SERVICE_UNAVAILABLE", f"{self.name} is unavailable (503)")
        if status != 200:
            log.warning("upstream=%s url=%s outcome=status status=%d", self.name, url, status)
            raise TRPCError("BAD_GATEWAY", f"{self.name} answered HTTP {status}")

        # orjson refuses NaN and Infinity, which would break every JSON client downstream.
        try:
            return UpstreamAnswer(orjson.loads(response.content), etag)
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
