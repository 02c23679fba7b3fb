"""Validators the gateway keeps so a client's If-None-Match can be checked at the upstream.

For each query answered 200 whose upstreams all sent an ETag, the gateway remembers those
upstream tags next to its own ETag of the body it built from them. When a client sends that
ETag back, the gateway asks the upstreams with their tags instead of fetching the data again;
if every upstream answers 304, so does the gateway. No body is stored: when anything changed,
the answer is fetched and built as if nothing had been remembered.
"""

from collections import OrderedDict
from dataclasses import dataclass

# One call: its procedure path and canonical JSON input.
CallKey = tuple[str, str]
# A request: whether it is a batch (its body is an array) and its calls in order.
RequestKey = tuple[bool, tuple[CallKey, ...]]


@dataclass(frozen=True)
class StoredValidators:
    """The upstream tags of a 200's calls, in order, and the gateway's ETag of its body."""

    upstream_etags: tuple[str, ...]
    etag: str


class ValidatorStore:
    """A bounded map RequestKey -> StoredValidators; the least recently used go first.

    It lives in one process and is touched only from the event loop, so it needs no lock.
    `max_entries` 0 keeps nothing, and every request takes the full path.
    """

    def __init__(self, max_entries: int) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries must be at least 0, not {max_entries}")
        self.max_entries = max_entries
        self._entries: OrderedDict[RequestKey, StoredValidators] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: RequestKey) -> StoredValidators | None:
        stored = self._entries.get(key)
        if stored is not None:
            self._entries.move_to_end(key)
        return stored

    def put(self, key: RequestKey, validators: StoredValidators) -> None:
        if self.max_entries == 0:
            return
        self._entries[key] = validators
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def discard(self, key: RequestKey) -> None:
        self._entries.pop(key, None)
