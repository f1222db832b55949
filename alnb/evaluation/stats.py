"""PURE small statistics shared by the comparison report (:mod:`alnb.ui.report`) and the strategy study
(:mod:`alnb.loop.study`): 95 % Student-t intervals of a handful of values (one per seed), the smallest effect a
paired comparison over n seeds detects, and the seeds a given effect needs."""

from __future__ import annotations

import math

import numpy as np

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        de = d * c
        h *= de
        if abs(de - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def t_cdf(x: float, df: float) -> float:
    """Student-t distribution function with ``df`` degrees of freedom (through the incomplete beta function)."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + x * x))
    return 1.0 - tail if x > 0 else tail


def t_quantile(df: float, q: float = 0.975) -> float:
    """The exact Student-t quantile ``t_{q, df}`` (default the two-sided 95 % one, ``q = 0.975``); NaN for df < 1.
    Inverts :func:`t_cdf` by bisection to 1e-12 (no scipy at run time); tests/test_stats.py checks it against a
    table of scipy's values for every df it uses."""
    if not df >= 1 or not 0 < q < 1:
        return float("nan")
    if q < 0.5:
        return -t_quantile(df, 1 - q)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return (lo + hi) / 2


def interval(values) -> dict:
    """Mean and 95 % t-interval of the finite ``values``: ``{mean, lo, hi, sd, n}`` (lo/hi NaN with n < 2)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "sd": float("nan"), "n": 0}
    mean = float(v.mean())
    if n < 2:
        return {"mean": mean, "lo": float("nan"), "hi": float("nan"), "sd": float("nan"), "n": 1}
    sd = float(v.std(ddof=1))
    half = t_quantile(n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "sd": sd, "n": n}


def min_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean paired difference that a two-sided paired t-test over ``n`` seeds at level ``alpha``
    detects with probability ``power``, given the paired differences' standard deviation ``sd``:
    ``(t_{1-alpha/2, n-1} + t_{power, n-1}) * sd / sqrt(n)`` (the usual approximation with t quantiles, as in
    power tables for the paired t-test).  NaN for n < 2 or a non-finite ``sd``."""
    if n < 2 or not np.isfinite(sd):
        return float("nan")
    df = n - 1
    return float((t_quantile(df, 1 - alpha / 2) + t_quantile(df, power)) * sd / math.sqrt(n))


def seeds_needed(sd: float, effect: float, alpha: float = 0.05, power: float = 0.8, max_n: int = 10_000) -> int:
    """The fewest seeds ``n`` whose :func:`min_detectable_effect` is at most ``effect`` (``max_n`` + 1 if none up to
    ``max_n``; 0 for a non-finite ``sd`` or a non-positive ``effect``)."""
    if not (np.isfinite(sd) and effect > 0):
        return 0
    for n in range(2, max_n + 1):
        if min_detectable_effect(sd, n, alpha, power) <= effect:
            return n
    return max_n + 1
