from services.scoring.cache import cache_key, canonical_features

FEATURES = {"orders": 17.0, "age_days": 412.0, "returns": 2.0}


def key(features, *, model_id="m1:i5", prefix="p:"):
    return cache_key(features, model_id=model_id, prefix=prefix)


def test_the_key_ignores_the_order_of_the_features():
    assert key(FEATURES) == key(dict(reversed(list(FEATURES.items()))))


def test_the_key_ignores_how_a_number_was_written():
    assert key({"x": 1, "y": 0.0}) == key({"x": 1.0, "y": -0.0})
    assert key({"x": 100}) == key({"x": 1e2})


def test_the_key_changes_with_any_value_or_name():
    assert key({"x": 1.0}) != key({"x": 1.0000000000000002})
    assert key({"x": 1.0}) != key({"X": 1.0})
    assert key({"x": 1.0}) != key({"x": 1.0, "y": 0.0})


def test_the_key_changes_with_the_model():
    assert key(FEATURES, model_id="m1:i5") != key(FEATURES, model_id="m2:i5")
    assert key(FEATURES, model_id="m1:i5") != key(FEATURES, model_id="m1:i6")


def test_the_key_lives_under_the_prefix_and_names_the_model():
    assert key(FEATURES, prefix="tests:abc:", model_id="m1:i5").startswith("tests:abc:m1:i5:")


def test_names_that_could_be_confused_with_separators_stay_distinct():
    assert canonical_features({'a",1.0],["b': 2.0}) != canonical_features({"a": 1.0, "b": 2.0})
    assert key({'a",1.0],["b': 2.0}) != key({"a": 1.0, "b": 2.0})


def test_the_canonical_form_is_compact_sorted_json():
    # Keys already in Redis stay valid only while these bytes stay the same.
    assert canonical_features({"b": 2, "a": -0.0}) == b'[["a",0.0],["b",2.0]]'
