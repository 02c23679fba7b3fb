"""tRPC's HTTP wire format (v11, no transformer): paths and inputs in, envelopes out; no I/O.

A query is `GET /trpc/<path>?input=<url-encoded JSON>`, a mutation is `POST /trpc/<path>` with
the JSON input as its body. With `?batch=1` the path is a comma-separated list and the input an
object keyed by position ("0", "1", ...); the answer is then an array in the same order. Each
answer is `{"result": {"data": ...}}` or the error envelope
`{"error": {"message", "code": <JSON-RPC code>, "data": {"code", "httpStatus", "path"}}}`.
"""

from collections.abc import Sequence
from typing import Any, Final

import orjson

# tRPC's error keys with their JSON-RPC 2.0 code and the HTTP status tRPC answers with.
ERROR_CODES: Final[dict[str, tuple[int, int]]] = {
    "PARSE_ERROR": (-32700, 400),
    "BAD_REQUEST": (-32600, 400),
    "UNAUTHORIZED": (-32001, 401),
    "PAYMENT_REQUIRED": (-32002, 402),
    "FORBIDDEN": (-32003, 403),
    "NOT_FOUND": (-32004, 404),
    "METHOD_NOT_SUPPORTED": (-32005, 405),
    "TIMEOUT": (-32008, 408),
    "CONFLICT": (-32009, 409),
    "PRECONDITION_FAILED": (-32012, 412),
    "PAYLOAD_TOO_LARGE": (-32013, 413),
    "UNSUPPORTED_MEDIA_TYPE": (-32015, 415),
    "UNPROCESSABLE_CONTENT": (-32022, 422),
    "PRECONDITION_REQUIRED": (-32028, 428),
    "TOO_MANY_REQUESTS": (-32029, 429),
    "CLIENT_CLOSED_REQUEST": (-32099, 499),
    "INTERNAL_SERVER_ERROR": (-32603, 500),
    "NOT_IMPLEMENTED": (-32603, 501),
    "BAD_GATEWAY": (-32603, 502),
    "SERVICE_UNAVAILABLE": (-32603, 503),
    "GATEWAY_TIMEOUT": (-32603, 504),
}


class _NoInput:
    """JavaScript's `undefined`: the client sent no input for this call."""

    def __repr__(self) -> str:
        return "NO_INPUT"


NO_INPUT: Final = _NoInput()


class TRPCError(Exception):
    """A failed call, answered with tRPC's error envelope and the code's HTTP status."""

    def __init__(self, code: str, message: str) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown tRPC error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def json_rpc_code(self) -> int:
        return ERROR_CODES[self.code][0]

    @property
    def http_status(self) -> int:
        return ERROR_CODES[self.code][1]


def split_paths(path: str, *, is_batch: bool) -> list[str]:
    """The procedure paths of a request: one, or the comma-separated list of a batch."""
    return path.split(",") if is_batch else [path]


def decode_inputs(raw: str | bytes | None, *, is_batch: bool, count: int) -> list[Any]:
    """Each call's input from the `input` query parameter (GET) or the body (POST).

    Raises TRPCError for the whole request: PARSE_ERROR when the text is not JSON,
    BAD_REQUEST when a batch's input is not an object keyed by position.
    """
    if raw is None or raw in ("", b""):
        return [NO_INPUT] * count

    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TRPCError("PARSE_ERROR", f"input is not valid JSON: {exc}") from None

    if not is_batch:
        return [decoded]
    if not isinstance(decoded, dict):
        raise TRPCError("BAD_REQUEST", '"input" needs to be an object when doing a batch call')
    return [decoded.get(str(index), NO_INPUT) for index in range(count)]


def result_envelope(data: Any) -> dict[str, Any]:
    return {"result": {"data": data}}


def error_envelope(error: TRPCError, path: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {"code": error.code, "httpStatus": error.http_status}
    if path is not None:
        data["path"] = path
    return {"error": {"message": error.message, "code": error.json_rpc_code, "data": data}}


def response_status(outcomes: Sequence[TRPCError | None]) -> int:
    """The HTTP status of a response: each call's status when they agree, else 207."""
    statuses = {200 if outcome is None else outcome.http_status for outcome in outcomes}
    return statuses.pop() if len(statuses) == 1 else 207


def encode(payload: Any) -> bytes:
    """Compact UTF-8 JSON: the bytes the client receives and the ETag is computed from."""
    return orjson.dumps(payload)
