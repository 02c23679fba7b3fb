import math

import pytest

from services.scoring.model import MODEL_VERSION, compute_score

FEATURES = {"age_days": 412.0, "orders": 17.0, "returns": 2.0, "avg_basket": 38.5}


def test_the_same_features_always_give_the_same_score():
    assert compute_score(FEATURES, iterations=50) == compute_score(dict(FEATURES), iterations=50)


def test_the_score_is_a_probability():
    for features in (FEATURES, {"x": 1e12}, {"x": -1e12}, {"x": 0.0}):
        score = compute_score(features, iterations=20)
        assert 0.0 < score < 1.0
        assert math.isfinite(score)


def test_the_order_of_the_features_does_not_change_the_score():
    reordered = dict(reversed(list(FEATURES.items())))

    assert compute_score(reordered, iterations=30) == compute_score(FEATURES, iterations=30)


def test_different_features_give_different_scores():
    changed = {**FEATURES, "orders": 18.0}

    assert compute_score(changed, iterations=30) != compute_score(FEATURES, iterations=30)


def test_the_number_of_iterations_changes_the_score():
    assert compute_score(FEATURES, iterations=3) != compute_score(FEATURES, iterations=4)


def test_at_least_one_iteration_is_required():
    with pytest.raises(ValueError, match="at least 1"):
        compute_score(FEATURES, iterations=0)


def test_the_model_has_a_version():
    assert isinstance(MODEL_VERSION, str) and MODEL_VERSION
