"""The gateway's store of upstream validators: bounded, least recently used first out."""

import pytest

from services.gateway.revalidation import StoredValidators, ValidatorStore


def key(name: str) -> tuple[bool, tuple[tuple[str, str], ...]]:
    return (False, (("analytics.summary", f'{{"source":"{name}"}}'),))


def validators(tag: str) -> StoredValidators:
    return StoredValidators(upstream_etags=(f'W/"up-{tag}"',), etag=f'"gw-{tag}"')


def test_a_stored_entry_is_found_by_its_key() -> None:
    store = ValidatorStore(10)
    store.put(key("a"), validators("a"))

    assert store.get(key("a")) == validators("a")
    assert store.get(key("b")) is None


def test_a_batch_and_a_single_call_are_different_keys() -> None:
    store = ValidatorStore(10)
    single = key("a")
    store.put(single, validators("a"))

    assert store.get((True, single[1])) is None


def test_the_least_recently_used_entry_goes_first() -> None:
    store = ValidatorStore(2)
    store.put(key("a"), validators("a"))
    store.put(key("b"), validators("b"))
    store.get(key("a"))

    store.put(key("c"), validators("c"))

    assert len(store) == 2
    assert store.get(key("b")) is None
    assert store.get(key("a")) == validators("a")
    assert store.get(key("c")) == validators("c")


def test_putting_a_key_again_replaces_its_entry() -> None:
    store = ValidatorStore(2)
    store.put(key("a"), validators("old"))

    store.put(key("a"), validators("new"))

    assert len(store) == 1
    assert store.get(key("a")) == validators("new")


def test_discard_forgets_a_key_and_ignores_an_unknown_one() -> None:
    store = ValidatorStore(2)
    store.put(key("a"), validators("a"))

    store.discard(key("a"))
    store.discard(key("never"))

    assert store.get(key("a")) is None


def test_a_store_of_size_zero_keeps_nothing() -> None:
    store = ValidatorStore(0)

    store.put(key("a"), validators("a"))

    assert len(store) == 0
    assert store.get(key("a")) is None


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 0"):
        ValidatorStore(-1)
