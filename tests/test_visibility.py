"""The visibility answer: features, the logistic fit, its JSON form, AUROC."""
import numpy as np
import pytest

from avsdk.errors import InputError
from avsdk.visibility import (FEATURES, SILENCE_DB, Calibration, auroc, fit_calibration, level_db,
                              map_features)


def test_level_db_closed_forms():
    t = np.arange(16000) / 16000
    assert level_db(np.sin(2 * np.pi * 440 * t)) == pytest.approx(-3.0103, abs=1e-3)  # rms 1/sqrt(2)
    assert level_db(np.full(100, 0.1)) == pytest.approx(-20.0)
    assert level_db(np.zeros(100)) == SILENCE_DB
    assert level_db(np.full(10, 1e-9)) == SILENCE_DB  # -180 dB, floored


def test_map_features():
    sim = np.array([[0.0, 0.2], [0.2, 0.8]], dtype=np.float32)
    np.testing.assert_allclose(map_features(sim, -12.0), [0.8, 0.8 - 0.3, -12.0], atol=1e-7)


def _two_clouds(n=400, seed=0):
    rng = np.random.default_rng(seed)
    on = rng.random(n) < 0.5
    x = np.stack([rng.normal(0.5, 0.1, n) + 0.3 * on, rng.normal(0.2, 0.05, n),
                  rng.normal(-20, 5, n) - 40 * (~on & (rng.random(n) < 0.3))], axis=1)
    return x, on


def test_fit_separates_and_is_calibrated_on_its_data():
    x, on = _two_clouds()
    cal = fit_calibration(x, on)
    p = cal.probability(x)
    assert auroc(p, on) > 0.95
    # a maximum-likelihood logistic fit with a bias matches the base rate on its data
    assert abs(p.mean() - on.mean()) < 0.01
    assert cal.weights[0] > 0 and cal.weights[2] > 0  # higher score, louder sound: on screen
    assert abs(cal.weights[1]) < abs(cal.weights[0])  # the uninformative feature weighs less


def test_probability_of_one_row_is_a_float_in_0_1():
    x, on = _two_clouds()
    cal = fit_calibration(x, on)
    p = cal.probability(x[0])
    assert isinstance(p, float) and 0.0 < p < 1.0
    assert cal.probability(x[:5]).shape == (5,)
    with pytest.raises(InputError, match="features"):
        cal.probability(np.zeros(2))


def test_separable_data_stays_finite():
    x = np.array([[0.1, 0.0, -30.0], [0.2, 0.0, -30.0], [0.8, 0.1, -10.0], [0.9, 0.1, -10.0]])
    cal = fit_calibration(x, np.array([False, False, True, True]))
    assert all(np.isfinite(cal.weights)) and np.isfinite(cal.bias)
    assert cal.probability(x[2]) > 0.9 > 0.1 > cal.probability(x[0])


def test_json_round_trip_and_refusals():
    x, on = _two_clouds()
    cal = fit_calibration(x, on)
    again = Calibration.from_json(cal.to_json())
    np.testing.assert_allclose(again.probability(x), cal.probability(x))
    assert again.features == FEATURES
    bad = cal.to_json() | {"features": ["score"]}
    for data in (bad, {"format": "other"}, None, cal.to_json() | {"scale": [1, 0, 1]}):
        with pytest.raises(InputError, match="visibility"):
            Calibration.from_json(data)


def test_fit_refuses_one_class_and_bad_shapes():
    x, _ = _two_clouds(10)
    with pytest.raises(InputError, match="on_screen"):
        fit_calibration(x, np.ones(10, bool))
    with pytest.raises(InputError, match="features"):
        fit_calibration(x[:, :2], np.arange(10) % 2 == 0)
    with pytest.raises(InputError, match="features"):
        fit_calibration(np.full((10, 3), np.nan), np.arange(10) % 2 == 0)


def test_auroc_matches_pairwise_counting():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, 60).astype(float)  # many ties
    positive = rng.random(60) < 0.4
    pos, neg = scores[positive], scores[~positive]
    pairwise = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
    assert auroc(scores, positive) == pytest.approx(pairwise)
    assert auroc(np.arange(4.0), np.array([False, False, True, True])) == 1.0
    with pytest.raises(InputError, match="positive"):
        auroc(np.arange(3.0), np.zeros(3, bool))
