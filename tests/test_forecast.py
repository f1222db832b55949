"""alnb.loop.forecast: learning curves, forecast intervals, the backtest, the stop rule, the label-change signal."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alnb.loop.forecast import (CAVEAT, CURVES, Forecast, backtest, fit_powerlaw, forecast, forecast_gain,
                                label_change, stop_advice)

N4 = np.array([100.0, 200.0, 400.0, 800.0])


def test_exact_power_law_is_recovered_and_covered():
    y = 0.6 - 0.5 * N4 ** -0.5
    truth = 0.6 - 0.5 * 1600 ** -0.5
    f = forecast(N4, y, 1600, model="powerlaw")
    assert f.mean == pytest.approx(truth, abs=1e-3)
    assert f.low <= truth <= f.high and f.low < f.mean < f.high
    p = fit_powerlaw(N4, y).params
    assert p["c"] == pytest.approx(0.5, abs=1e-3) and p["y_inf"] == pytest.approx(0.6, abs=1e-3)
    assert f.model == "powerlaw" and f.n_points == 4 and f.level == 0.9


def test_power_law_asymptote_is_capped_at_one():
    n = np.array([10.0, 20.0, 40.0, 80.0, 160.0])
    y = 1.3 - 2.0 * n ** -0.3  # a curve whose free asymptote would be 1.3
    p = fit_powerlaw(n, y).params
    assert p["y_inf"] <= 1.0 + 1e-12 and p["b"] > 0


def test_exact_loglinear_is_exact():
    y = 0.1 + 0.05 * np.log(N4)
    f = forecast(N4, y, 1600, model="loglinear")
    assert f.mean == pytest.approx(0.1 + 0.05 * math.log(1600), abs=1e-9)
    assert f.low < f.mean < f.high


def test_registry_and_flat_model():
    assert set(CURVES) == {"loglinear", "powerlaw", "flat"}
    y = np.array([0.3, 0.5, 0.4, 0.6])
    f = forecast(N4, y, 1600, model="flat")
    assert f.mean == pytest.approx(0.45)
    with pytest.raises(ValueError, match="unknown model"):
        forecast(N4, y, 1600, model="nope")


def test_fewer_than_two_points_is_nan_with_a_note_and_bad_input_raises():
    f = forecast([100], [0.3], 200)
    assert math.isnan(f.mean) and math.isnan(f.low) and math.isnan(f.high) and "at least 2" in f.note
    assert f.n_points == 1
    with pytest.raises(ValueError, match="increasing"):
        forecast([200, 100], [0.3, 0.4], 400)
    with pytest.raises(ValueError, match="length"):
        forecast([100, 200], [0.3], 400)


def test_two_points_interval_uses_the_last_step_and_is_wide():
    f = forecast([100, 200], [0.30, 0.35], 400)
    assert f.mean == pytest.approx(0.40)
    assert f.high - f.low > 2 * 0.05  # wider than the last step: 2 points say little
    assert "no residual df" in f.note


def test_error_scale_sets_the_interval_and_bias_shifts_the_mean():
    y = 0.1 + 0.05 * np.log(N4)
    f = forecast(N4, y, 1600, error_scale=0.02, bias=-0.01)
    assert f.mean == pytest.approx(0.1 + 0.05 * math.log(1600) + 0.01, abs=1e-9)
    assert (f.high - f.low) / 2 == pytest.approx(1.6448536 * 0.02, rel=1e-5)
    assert "backtest" in f.note and "bias" in f.note


def test_flat_curve_gains_nothing_and_the_advice_is_stop():
    y = np.full(4, 0.42)
    g = forecast_gain(N4, y, 1600)
    assert abs(g.mean) < 1e-9 and g.high < 0.01 and g.low < 0
    a = stop_advice(g, next_round_hours=3.0, min_gain=0.01)
    assert a.stop and "upper bound" in a.reason and a.numbers["gain_high"] == g.high
    # the hours rule stops it too: the lower bound saves no hour
    b = stop_advice(g, next_round_hours=3.0, hours_saved_per_point=10.0)
    assert b.stop and "3.00 h" in b.reason and b.numbers["hours_saved_low"] <= 0


def test_backtest_coverage_with_its_own_error_scale_is_near_nominal():
    rng = np.random.default_rng(0)
    chains = []
    for _ in range(200):
        n = 50 * 2.0 ** np.arange(8) * rng.uniform(0.8, 1.2)
        chains.append((n, 0.2 + 0.05 * np.log(n) + rng.normal(0, 0.01, 8)))
    first = backtest(chains, model="loglinear", level=0.9)
    assert first.n_forecasts == 200 * 6 and len(first.errors) == first.n_forecasts
    assert set(first.n_fitted) == set(range(2, 8))
    assert first.error_scale == pytest.approx(np.std(first.errors, ddof=1))
    assert first.error_scale > 0.01  # one-step-ahead errors exceed the noise (extrapolation adds its own)
    assert abs(first.bias) < 0.003  # the right model: no bias
    second = backtest(chains, model="loglinear", level=0.9, error_scale=first.error_scale)
    assert 0.8 <= second.coverage <= 0.97
    assert second.coverage == pytest.approx(second.covered.mean())


def _convex_chain(rng):
    n = 50 * 2.0 ** np.arange(7) * rng.uniform(0.8, 1.2)
    t = np.log(n / 50)
    return n, 0.1 + 0.02 * t + 0.015 * t ** 2 + rng.normal(0, 0.003, 7)


def test_backtest_shows_under_estimate_and_the_bias_correction_helps():
    rng = np.random.default_rng(1)
    past = [_convex_chain(rng) for _ in range(30)]
    bt = backtest(past, model="loglinear")
    assert bt.bias < -0.01 and bt.bias == pytest.approx(bt.errors.mean())
    held = [_convex_chain(rng) for _ in range(30)]
    raw, fixed = [], []
    for n, y in held:
        for k in range(2, len(n)):
            raw.append(abs(forecast(n[:k], y[:k], n[k]).mean - y[k]))
            fixed.append(abs(forecast(n[:k], y[:k], n[k], bias=bt.bias).mean - y[k]))
    assert np.mean(fixed) < 0.7 * np.mean(raw)
    assert abs(backtest(held, model="loglinear", bias=bt.bias).bias) < abs(bt.bias) / 3


def test_backtest_of_short_chains_is_empty():
    bt = backtest([([100, 200], [0.1, 0.2])])
    assert bt.n_forecasts == 0 and math.isnan(bt.coverage) and math.isnan(bt.error_scale)


def _box(cls, x, y, w=10.0, h=10.0):
    return [cls, x, y, x + w, y + h]


def test_label_change():
    prev = {"a": np.array([_box(0, 0, 0), _box(0, 50, 50)]), "b": np.array([_box(1, 0, 0), _box(1, 30, 0)])}
    assert label_change(prev, prev) == 0.0
    assert label_change({}, {}) == 0.0 and label_change({"a": np.zeros((0, 5))}, {"a": []}) == 0.0
    disjoint = {k: v + np.array([0, 200, 200, 200, 200]) for k, v in prev.items()}
    assert label_change(prev, disjoint) == 1.0
    assert label_change(prev, {}) == 1.0
    half = {"a": prev["a"], "b": prev["b"] + np.array([0, 8, 0, 8, 0])}  # b's boxes moved: IoU 2/18 < 0.5
    assert label_change(prev, half) == pytest.approx(0.5)
    reclass = {"a": prev["a"], "b": prev["b"] * np.array([0, 1, 1, 1, 1]) + np.array([2, 0, 0, 0, 0])}
    assert label_change(prev, reclass) == pytest.approx(0.5)
    # a small shift stays matched (IoU 0.82 >= 0.5) but not at iou=0.9
    shifted = {"a": prev["a"] + np.array([0, 1, 0, 1, 0]), "b": prev["b"]}
    assert label_change(prev, shifted) == 0.0 and label_change(prev, shifted, iou=0.9) == pytest.approx(0.5)
    # one extra box: 4 matched of 4 + 5
    extra = {"a": np.vstack([prev["a"], [_box(0, 80, 80)]]), "b": prev["b"]}
    assert label_change(prev, extra) == pytest.approx(1 - 8 / 9)


def _gain(mean, low, high):
    return Forecast(mean, low, high, "loglinear", 4, "test", 0.9)


def test_stop_advice_target_hours_stabilisation_and_continue():
    g = _gain(0.02, 0.01, 0.03)
    a = stop_advice(g, next_round_hours=2.0, target=0.5, current=0.52)
    assert a.stop and "target" in a.reason and a.numbers["target"] == 0.5
    # lower bound 0.01 = 1 point at 1.5 h per point saves 1.5 h < 2 h
    b = stop_advice(g, next_round_hours=2.0, hours_saved_per_point=1.5)
    assert b.stop and "2.00 h" in b.reason and "1.50 h" in b.reason
    assert b.numbers["hours_saved_low"] == pytest.approx(1.5)
    c = stop_advice(g, next_round_hours=2.0, hours_saved_per_point=3.0, target=0.6, current=0.5, stabilisation=0.1)
    assert not c.stop and c.reason.startswith("continue") and c.numbers["hours_saved_low"] == pytest.approx(3.0)
    for adv in (a, b, c):
        assert "predicted" in adv.reason.lower() and "+0.0100 to +0.0300" in adv.reason and CAVEAT in adv.reason
        assert "POOL" in adv.reason and "classes not yet seen" in adv.reason
    d = stop_advice(g, next_round_hours=2.0, stabilisation=0.01)
    assert d.stop and "stabilised" in d.reason
    e = stop_advice(_gain(-0.01, -0.03, -0.001), next_round_hours=2.0)
    assert e.stop and "nothing to buy" in e.reason
    with pytest.raises(ValueError):
        stop_advice(g, next_round_hours=1.0, target=0.5)


def test_stop_advice_without_a_forecast_continues():
    g = forecast_gain([100], [0.3], 200)
    a = stop_advice(g, next_round_hours=2.0, hours_saved_per_point=1.0)
    assert not a.stop and "no forecast yet" in a.reason
    assert stop_advice(g, next_round_hours=2.0, target=0.3, current=0.3).stop


hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


@hypothesis.settings(max_examples=150, deadline=None)
@hypothesis.given(
    st.lists(st.integers(1, 10**6), min_size=2, max_size=8, unique=True),
    st.data(),
    st.sampled_from(sorted(CURVES)),
    st.floats(0.5, 0.99),
)
def test_forecast_never_raises_and_is_ordered(ns, data, model, level):
    n = sorted(ns)
    y = data.draw(st.lists(st.floats(-10, 10, allow_nan=False), min_size=len(n), max_size=len(n)))
    n_next = data.draw(st.integers(1, 2 * 10**6))
    f = forecast(n, y, n_next, model=model, level=level)
    assert not math.isnan(f.mean) and f.low <= f.mean <= f.high
    g = forecast_gain(n, y, n_next, model=model, level=level)
    assert g.low <= g.mean <= g.high
