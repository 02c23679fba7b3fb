"""Entity tags and If-None-Match, as RFC 9110 defines them; pure functions, no I/O.

Shared by the services that answer conditional GETs. The gateway tags each successful query
response with a strong validator computed from the exact body bytes, so the same body gets the
same tag in every process and after every restart; the analytics service tags its answers with
the version of the data behind them. A client that sends the tag back in If-None-Match gets
304 Not Modified instead of the body again.
"""

from collections.abc import Sequence
from typing import Final, Literal

import xxhash

ANY: Final = "*"

IfNoneMatch = Literal["*"] | tuple[str, ...]


# What a 304 repeats from the 200 it stands for (RFC 9110 section 15.4.5); Date is the server's.
_NOT_MODIFIED_FIELDS = ("cache-control", "content-location", "etag", "expires", "vary")


def takes_etag(method: str, status: int) -> bool:
    """Whether a response gets an ETag and If-None-Match is evaluated for it.

    Only a 200 to GET or HEAD: the conditional GET of RFC 9110 section 13.2.2 is defined for
    those methods, and section 13.2.1 has the server ignore preconditions when the answer without
    them would not be 2xx, so an error is never turned into a 304.
    """
    return status == 200 and method in ("GET", "HEAD")


def not_modified_headers(headers: dict[str, str]) -> dict[str, str]:
    """The fields of a 200's headers that its 304 carries (RFC 9110 section 15.4.5)."""
    return {name: value for name, value in headers.items() if name.lower() in _NOT_MODIFIED_FIELDS}


def make_etag(body: bytes) -> str:
    """A strong entity tag for `body` (RFC 9110 section 8.8.3): its XXH3-128 digest, quoted.

    A strong validator changes whenever the representation data changes (section 8.8.1); a
    128-bit digest of the exact bytes does that, and XXH3 has no per-process seed, so every
    replica and every restart gives one body the same tag.
    """
    return f'"{xxhash.xxh3_128_hexdigest(body)}"'


def if_none_match_field(field_lines: Sequence[str]) -> str | None:
    """A request's If-None-Match field lines as one value, or None when it has none.

    Several field lines make one comma-separated list (RFC 9110 section 5.3); pass what a
    headers object's `getlist("if-none-match")` gives.
    """
    return ", ".join(field_lines) if field_lines else None


def parse_if_none_match(field_value: str) -> IfNoneMatch | None:
    """Parse an If-None-Match field value (RFC 9110 section 13.1.2).

    Returns `"*"`, or the opaque tags of the listed entity tags with any `W/` prefix removed
    (only the weak comparison of section 8.8.3.2 is used with If-None-Match), or None when the
    value does not follow the grammar, so the caller can ignore the header. Several field lines
    are combined with ", " before parsing (section 5.3); empty list elements are skipped
    (section 5.6.1).
    """
    value = field_value.strip(" \t")
    if value == ANY:
        return ANY

    tags: list[str] = []
    position = 0
    length = len(value)
    while position < length:
        position = _skip_list_separators(value, position)
        if position >= length:
            break

        if value.startswith("W/", position):
            position += 2
        if position >= length or value[position] != '"':
            return None
        closing = value.find('"', position + 1)
        if closing == -1:
            return None
        opaque_tag = value[position : closing + 1]
        if not all(_is_etagc(character) for character in opaque_tag[1:-1]):
            return None
        tags.append(opaque_tag)
        position = closing + 1

        after = _skip_whitespace(value, position)
        if after < length and value[after] != ",":
            return None
        position = after

    return tuple(tags)


def is_entity_tag(value: str) -> bool:
    """Whether `value` is one entity-tag (RFC 9110 section 8.8.3), weak or strong."""
    opaque_tag = _opaque(value)
    return (
        len(opaque_tag) >= 2
        and opaque_tag[0] == opaque_tag[-1] == '"'
        and all(_is_etagc(character) for character in opaque_tag[1:-1])
    )


def weak_match(tag_a: str, tag_b: str) -> bool:
    """Weak comparison (RFC 9110 section 8.8.3.2): the opaque tags match, W/ or not."""
    return _opaque(tag_a) == _opaque(tag_b)


def is_not_modified(if_none_match: str | None, current_etag: str) -> bool:
    """Whether a GET or HEAD carrying `if_none_match` is answered 304 Not Modified.

    RFC 9110 section 13.1.2: the If-None-Match condition is false when the value is "*" (a
    current representation exists: the caller asks only about a successful response) or when
    a listed tag weakly matches the current one; a false condition on GET or HEAD gives 304
    (section 13.2.2, step 3). A missing or malformed field is no condition at all.
    """
    if if_none_match is None:
        return False

    parsed = parse_if_none_match(if_none_match)
    if parsed is None:
        return False
    if parsed == ANY:
        return True

    return any(weak_match(tag, current_etag) for tag in parsed)


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def _is_etagc(character: str) -> bool:
    # etagc = %x21 / %x23-7E / obs-text; header values arrive decoded as latin-1.
    code = ord(character)
    return code == 0x21 or 0x23 <= code <= 0x7E or 0x80 <= code <= 0xFF


def _skip_whitespace(value: str, position: int) -> int:
    while position < len(value) and value[position] in " \t":
        position += 1
    return position


def _skip_list_separators(value: str, position: int) -> int:
    while position < len(value) and value[position] in " \t,":
        position += 1
    return position
