"""tRPC's wire format on the pure functions of services.gateway.trpc."""

import pytest

from services.gateway.trpc import (
    NO_INPUT,
    TRPCError,
    decode_inputs,
    encode,
    error_envelope,
    response_status,
    result_envelope,
    split_paths,
)


def test_a_batch_path_is_split_on_commas_and_a_single_path_is_not() -> None:
    assert split_paths("a.b,c.d", is_batch=True) == ["a.b", "c.d"]
    assert split_paths("a.b,c.d", is_batch=False) == ["a.b,c.d"]


def test_a_single_input_is_the_decoded_json() -> None:
    assert decode_inputs('{"group_by":"day"}', is_batch=False, count=1) == [{"group_by": "day"}]


def test_no_input_is_undefined_for_every_call() -> None:
    assert decode_inputs(None, is_batch=True, count=2) == [NO_INPUT, NO_INPUT]
    assert decode_inputs(b"", is_batch=False, count=1) == [NO_INPUT]


def test_a_batch_input_is_keyed_by_position_and_missing_keys_are_undefined() -> None:
    # httpBatchLink drops undefined inputs from its {"0": ..., "1": ...} object.
    inputs = decode_inputs('{"1":{"x":1},"0":null}', is_batch=True, count=3)

    assert inputs == [None, {"x": 1}, NO_INPUT]


def test_text_that_is_not_json_is_a_parse_error() -> None:
    with pytest.raises(TRPCError) as raised:
        decode_inputs("{nope", is_batch=False, count=1)

    assert raised.value.code == "PARSE_ERROR"
    assert raised.value.http_status == 400
    assert raised.value.json_rpc_code == -32700


def test_a_batch_input_that_is_not_an_object_is_a_bad_request() -> None:
    with pytest.raises(TRPCError) as raised:
        decode_inputs("[1, 2]", is_batch=True, count=2)

    assert raised.value.code == "BAD_REQUEST"


def test_the_result_envelope() -> None:
    assert result_envelope({"count": 3}) == {"result": {"data": {"count": 3}}}


def test_the_error_envelope_has_message_json_rpc_code_and_data() -> None:
    envelope = error_envelope(TRPCError("NOT_FOUND", 'No procedure found on path "x"'), "x")

    assert envelope == {
        "error": {
            "message": 'No procedure found on path "x"',
            "code": -32004,
            "data": {"code": "NOT_FOUND", "httpStatus": 404, "path": "x"},
        }
    }


@pytest.mark.parametrize(
    ("code", "json_rpc_code", "http_status"),
    [
        ("PARSE_ERROR", -32700, 400),
        ("BAD_REQUEST", -32600, 400),
        ("METHOD_NOT_SUPPORTED", -32005, 405),
        ("UNSUPPORTED_MEDIA_TYPE", -32015, 415),
        ("INTERNAL_SERVER_ERROR", -32603, 500),
        ("BAD_GATEWAY", -32603, 502),
        ("GATEWAY_TIMEOUT", -32603, 504),
    ],
)
def test_error_codes_match_trpc(code: str, json_rpc_code: int, http_status: int) -> None:
    error = TRPCError(code, "m")

    assert (error.json_rpc_code, error.http_status) == (json_rpc_code, http_status)


def test_an_unknown_error_code_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown tRPC error code"):
        TRPCError("TEAPOT", "m")


def test_the_status_is_the_calls_status_when_they_agree_else_207() -> None:
    not_found = TRPCError("NOT_FOUND", "m")
    bad = TRPCError("BAD_REQUEST", "m")

    assert response_status([None, None]) == 200
    assert response_status([not_found, not_found]) == 404
    assert response_status([None, bad]) == 207
    assert response_status([not_found, bad]) == 207


def test_encoding_is_compact_utf8_json_in_key_order() -> None:
    assert encode({"b": [1, "é"], "a": 1.5}) == '{"b":[1,"é"],"a":1.5}'.encode()
