"""PURE small statistics shared by the comparison report (:mod:`alnb.report`) and the strategy study
(:mod:`alnb.study`): 95 % Student-t intervals of a handful of values (one per seed).  No scipy needed."""

from __future__ import annotations

import math

import numpy as np

# Student-t quantiles t_{0.975, df} for df = 1..30 (two-sided 95 %); above 30 the normal 1.96 is within 2 %.
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
Z975 = 1.96  # normal quantile for df > 30


def t_quantile(df: int) -> float:
    """Two-sided 95 % Student-t quantile for ``df`` degrees of freedom (:data:`T975`)."""
    if df < 1:
        return float("nan")
    return T975[df - 1] if df <= len(T975) else Z975


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
