"""RFC 9110 entity tags and If-None-Match, on the pure functions of perf_platform.etag."""

import subprocess
import sys

import pytest

from perf_platform.etag import (
    is_entity_tag,
    is_not_modified,
    make_etag,
    not_modified_headers,
    parse_if_none_match,
    takes_etag,
    weak_match,
)

TAG = make_etag(b'{"result":{"data":1}}')


def test_an_etag_is_a_strong_quoted_tag_of_32_hex_digits() -> None:
    assert TAG.startswith('"') and TAG.endswith('"')
    assert not TAG.startswith("W/")
    assert len(TAG) == 34
    int(TAG[1:-1], 16)


def test_the_etag_depends_on_every_byte_of_the_body() -> None:
    assert make_etag(b'{"a":1}') == make_etag(b'{"a":1}')
    assert make_etag(b'{"a":1}') != make_etag(b'{"a":2}')
    assert make_etag(b'{"a":1}') != make_etag(b'{"a": 1}')


def test_the_etag_is_the_same_in_another_process() -> None:
    code = "from perf_platform.etag import make_etag; print(make_etag(b'hello'))"
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()

    assert other == make_etag(b"hello")
    # XXH3-128 has no seed: this value is fixed forever, across machines and restarts.
    assert other == '"b5e9c1ad071b3e7fc779cfaa5e523818"'


@pytest.mark.parametrize(
    ("field_value", "parsed"),
    [
        ('"xyzzy"', ('"xyzzy"',)),
        ('"xyzzy", "r2d2xxxx", "c3piozzzz"', ('"xyzzy"', '"r2d2xxxx"', '"c3piozzzz"')),
        ('W/"xyzzy"', ('"xyzzy"',)),
        ('W/"xyzzy", W/"r2d2xxxx"', ('"xyzzy"', '"r2d2xxxx"')),
        ("*", "*"),
        ('  "a" ,, ,"b"  ', ('"a"', '"b"')),
        ('""', ('""',)),
        ("", ()),
    ],
)
def test_if_none_match_parses_the_rfc_examples_and_lists(field_value: str, parsed: object) -> None:
    assert parse_if_none_match(field_value) == parsed


@pytest.mark.parametrize(
    "field_value",
    [
        "xyzzy",  # not quoted
        '"xyzzy',  # no closing quote
        '"a" "b"',  # no comma between two tags
        'w/"a"',  # W/ is case-sensitive
        'W/ "a"',  # nothing may stand between W/ and the quote
        '*, "a"',  # "*" is the whole value or nothing
        '"a b"',  # a space is not an etagc
        '"a"x',
    ],
)
def test_malformed_if_none_match_parses_to_none(field_value: str) -> None:
    assert parse_if_none_match(field_value) is None


def test_weak_comparison_ignores_the_weak_flag() -> None:
    assert weak_match('W/"1"', '"1"')
    assert weak_match('W/"1"', 'W/"1"')
    assert weak_match('"1"', '"1"')
    assert not weak_match('"1"', '"2"')


def test_a_matching_tag_is_not_modified() -> None:
    assert is_not_modified(TAG, TAG)


def test_a_matching_tag_inside_a_list_is_not_modified() -> None:
    assert is_not_modified(f'"other", {TAG}, "third"', TAG)


def test_a_weak_form_of_the_tag_is_not_modified() -> None:
    assert is_not_modified(f"W/{TAG}", TAG)


def test_star_matches_any_current_representation() -> None:
    assert is_not_modified("*", TAG)


def test_other_tags_are_modified() -> None:
    assert not is_not_modified('"stale", W/"older"', TAG)


def test_an_absent_or_malformed_header_is_no_condition() -> None:
    assert not is_not_modified(None, TAG)
    assert not is_not_modified(TAG[1:], TAG)
    assert not is_not_modified(f"{TAG} garbage", TAG)


def test_only_a_200_to_get_or_head_takes_an_etag() -> None:
    assert takes_etag("GET", 200)
    assert takes_etag("HEAD", 200)
    assert not takes_etag("POST", 200)
    assert not takes_etag("GET", 207)
    assert not takes_etag("GET", 404)


def test_a_304_keeps_the_validator_and_caching_fields_of_the_200_only() -> None:
    headers = {
        "ETag": TAG,
        "Cache-Control": "no-cache",
        "Vary": "trpc-accept",
        "Content-Type": "application/json",
        "Content-Length": "120",
    }

    assert not_modified_headers(headers) == {
        "ETag": TAG,
        "Cache-Control": "no-cache",
        "Vary": "trpc-accept",
    }


@pytest.mark.parametrize("value", ['"xyzzy"', 'W/"xyzzy"', '""', TAG, 'W/"signals-12.7-0a1b"'])
def test_a_single_entity_tag_is_recognised(value: str) -> None:
    assert is_entity_tag(value)


@pytest.mark.parametrize("value", ["", "xyzzy", '"a", "b"', '"a",', "*", 'w/"a"', '"a b"', '"a'])
def test_anything_else_is_not_an_entity_tag(value: str) -> None:
    assert not is_entity_tag(value)
