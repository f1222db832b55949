"""alnb.evaluation.stats: exact t quantiles (against a table of scipy's values), the smallest detectable effect of a paired
comparison over seeds (against the power of the paired t-test computed from the noncentral t distribution) and the
seeds an effect needs."""

import math

import numpy as np
import pytest

from alnb.evaluation import stats

# scipy.stats.t.ppf(0.975, df), printed once with scipy 1.16 (the values are the distribution's, not scipy's version's)
T975_SCIPY = {1: 12.706204736, 2: 4.302652730, 3: 3.182446305, 4: 2.776445105, 5: 2.570581836, 6: 2.446911851,
              7: 2.364624252, 8: 2.306004135, 9: 2.262157163, 10: 2.228138852, 15: 2.131449546, 20: 2.085963447,
              29: 2.045229642, 30: 2.042272456, 31: 2.039513446, 40: 2.021075390, 60: 2.000297822,
              61: 1.999623585, 100: 1.983971519, 1000: 1.962339081}
# scipy.stats.t.ppf(0.8, df)
T80_SCIPY = {1: 1.376381920, 2: 1.060660172, 4: 0.940964577, 9: 0.883403860, 19: 0.860950550}


@pytest.mark.parametrize("df", sorted(T975_SCIPY))
def test_t_quantile_matches_scipy_table(df):
    assert stats.t_quantile(df) == pytest.approx(T975_SCIPY[df], abs=1e-3)
    assert abs(stats.t_quantile(df) - T975_SCIPY[df]) < 1e-6  # the old normal fallback was 3.9 % off at df = 31


def test_t_quantile_matches_scipy_for_every_df():
    from scipy.stats import t

    for df in range(1, 301):
        for q in (0.975, 0.8, 0.995):
            assert abs(stats.t_quantile(df, q) - t.ppf(q, df)) < 1e-6, (df, q)


@pytest.mark.parametrize("df", sorted(T80_SCIPY))
def test_t_quantile_other_levels(df):
    assert stats.t_quantile(df, 0.8) == pytest.approx(T80_SCIPY[df], abs=1e-6)


def _paired_t_power(effect, sd, n, alpha=0.05):
    """Power of the two-sided paired t-test: P(|T| > t_crit) with T ~ noncentral t(n - 1, effect sqrt(n) / sd)."""
    from scipy.stats import nct, t

    crit = t.ppf(1 - alpha / 2, n - 1)
    nc = effect * math.sqrt(n) / sd
    return float(nct.sf(crit, n - 1, nc) + nct.cdf(-crit, n - 1, nc))


@pytest.mark.parametrize("n", [3, 5, 10, 20])
def test_min_detectable_effect_has_the_stated_power(n):
    sd = 0.02
    mde = stats.min_detectable_effect(sd, n)
    # hand formula for n = 5: (2.776 + 0.941) * sd / sqrt(5)
    if n == 5:
        assert mde == pytest.approx((2.776445 + 0.940965) * sd / math.sqrt(5), rel=1e-5)
    # the approximation holds the nominal 80 % power to within a few points (exactly it is a little below)
    assert 0.72 < _paired_t_power(mde, sd, n) < 0.82
    assert stats.min_detectable_effect(sd, n + 1) < mde  # more seeds resolve smaller effects
    assert stats.min_detectable_effect(2 * sd, n) == pytest.approx(2 * mde)


def test_min_detectable_effect_degenerate_and_seeds_needed():
    assert math.isnan(stats.min_detectable_effect(0.02, 1)) and math.isnan(stats.min_detectable_effect(np.nan, 5))
    n = stats.seeds_needed(0.02, 0.01)
    assert stats.min_detectable_effect(0.02, n) <= 0.01 < stats.min_detectable_effect(0.02, n - 1)
    assert stats.seeds_needed(np.nan, 0.01) == 0 and stats.seeds_needed(0.02, 0.0) == 0


def test_nonneg_lstsq_matches_scipy_nnls():
    from scipy.optimize import nnls

    from alnb.evaluation.metrics import nonneg_lstsq

    rng = np.random.default_rng(0)
    for _ in range(50):
        X = np.c_[np.ones(30), rng.poisson(2, 30), rng.poisson(3, 30)].astype(float)
        y = X @ rng.normal(0.3, 1, 3) + rng.normal(0, 1, 30)
        assert nonneg_lstsq(X, y) == pytest.approx(nnls(X, y)[0], abs=1e-8)
