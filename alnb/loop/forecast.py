"""PURE forecast of what another round buys, and a stop rule in labelling hours (numpy only, no workspace I/O).

* :data:`CURVES`: ``{name: fit(n, y) -> Curve}`` learning curves on (labelled images, VAL1 measure) points:
  ``loglinear`` (a + b ln n), ``powerlaw`` (y_inf - b n^-c, c on a bounded grid) and ``flat`` (the null model).
* :func:`forecast` / :func:`forecast_gain`: the measure (or its gain over the last round) at ``n_next``, with an
  interval: the backtest's error spread when given (``error_scale``), else an OLS prediction interval.
* :func:`backtest`: one-step-ahead errors over past chains: coverage, bias (fed back as ``forecast(bias=...)``, a
  Mahmood-style correction) and ``error_scale``.
* :func:`stop_advice`: stop or continue, with the numbers; :func:`label_change`: the share of auto-label boxes that
  changed between two rounds' models (the stabilisation signal).

A forecast extrapolates the past rounds: it cannot know a shift in the POOL or classes not yet seen.
Design notes: docs/design/forecast.md
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from alnb.evaluation.stats import t_quantile

POWERLAW_C_RANGE = (0.05, 2.0)  # bounds of the power-law exponent c (grid, then a golden-section refinement)
POWERLAW_C_GRID = 60  # log-spaced grid points of c
POWERLAW_C_TWO_POINTS = 0.5  # c used with only 2 points (c, y_inf and b are not identifiable from 2 points)
POWERLAW_Y_MAX = 1.0  # upper bound of the asymptote y_inf (a mAP or a recall never exceeds 1)
SD_FLOOR = 1e-3  # smallest error sd an interval uses: a VAL1 measure is never known better than this
POINT = 0.01  # one "point" of a measure in [0, 1] (a percentage point), the unit of hours_saved_per_point
CAVEAT = "The forecast extrapolates past rounds: it cannot know a shift in the POOL or classes not yet seen."


@dataclass(frozen=True)
class Curve:
    """A fitted learning curve: ``predict(n)``; ``design(n)`` is the linear design matrix of the fit (c held fixed for
    the power law), used for the prediction interval; ``n_params`` counts every fitted parameter (c included)."""

    model: str
    params: dict
    n_params: int
    _predict: Callable = field(repr=False, compare=False)
    _design: Callable = field(repr=False, compare=False)

    def predict(self, n) -> np.ndarray:
        return self._predict(np.asarray(n, dtype=np.float64))

    def design(self, n) -> np.ndarray:
        return self._design(np.atleast_1d(np.asarray(n, dtype=np.float64)))


@dataclass(frozen=True)
class Forecast:
    """The predicted measure (or gain) at ``n_next``: ``mean`` and the ``level`` interval [``low``, ``high``]; NaN
    with a ``note`` when there is no forecast (fewer than 2 points)."""

    mean: float
    low: float
    high: float
    model: str
    n_points: int
    note: str
    level: float = 0.9


@dataclass(frozen=True)
class Backtest:
    """One-step-ahead errors (predicted - measured) over every chain and every k >= 2 fitted points; ``n_fitted``
    holds each error's k.  ``bias`` = mean error (negative: the curve under-predicts); ``error_scale`` = their sd."""

    errors: np.ndarray
    covered: np.ndarray
    n_fitted: np.ndarray
    coverage: float
    mean_abs_error: float
    bias: float
    error_scale: float
    n_forecasts: int
    model: str
    level: float


@dataclass(frozen=True)
class Advice:
    stop: bool
    reason: str
    numbers: dict


def _lstsq(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(X, y, rcond=None)[0]


def fit_loglinear(n, y) -> Curve:
    """y = a + b ln(n), least squares."""
    n, y = np.asarray(n, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def design(m):
        return np.column_stack([np.ones_like(m), np.log(m)])

    a, b = _lstsq(design(n), y)
    return Curve("loglinear", {"a": float(a), "b": float(b)}, 2, lambda m: a + b * np.log(m), design)


def fit_flat(n, y) -> Curve:
    """y = mean(y): the null model (another round buys nothing)."""
    mu = float(np.mean(np.asarray(y, dtype=np.float64)))
    return Curve("flat", {"mean": mu}, 1, lambda m: np.full(np.shape(m), mu),
                 lambda m: np.ones((len(m), 1)))


def _powerlaw_given_c(n: np.ndarray, y: np.ndarray, c: float, y_max: float) -> tuple[float, float, float]:
    """(y_inf, b, sse) of y = y_inf - b x, x = n^-c, least squares under y_inf <= y_max and b >= 0."""
    x = n ** -c
    y_inf, slope = _lstsq(np.column_stack([np.ones_like(x), x]), y)
    b = -slope
    if y_inf > y_max:  # the asymptote at its bound: fit b alone on (y_max - y) = b x
        y_inf, b = y_max, float(np.dot(y_max - y, x) / max(np.dot(x, x), 1e-300))
    if b < 0:  # a falling curve is no learning curve: flat within the family
        y_inf, b = min(float(np.mean(y)), y_max), 0.0
    sse = float(np.sum((y - (y_inf - b * x)) ** 2))
    return float(y_inf), float(b), sse


def fit_powerlaw(n, y, *, c_range: tuple[float, float] = POWERLAW_C_RANGE, y_max: float = POWERLAW_Y_MAX) -> Curve:
    """y = y_inf - b n^-c with b >= 0, y_inf <= ``y_max``: for each c of a log-spaced grid over ``c_range``, y_inf and b
    by least squares; the best c is refined by golden-section search between its grid neighbours (deterministic).
    With 2 points c is fixed at POWERLAW_C_TWO_POINTS (any c fits 2 points exactly)."""
    n, y = np.asarray(n, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(n) <= 2:
        c, n_params = POWERLAW_C_TWO_POINTS, 2
    else:
        n_params = 3
        grid = np.geomspace(c_range[0], c_range[1], POWERLAW_C_GRID)
        sse = [_powerlaw_given_c(n, y, float(c), y_max)[2] for c in grid]
        i = int(np.argmin(sse))
        lo, hi = math.log(grid[max(i - 1, 0)]), math.log(grid[min(i + 1, len(grid) - 1)])
        f = lambda lc: _powerlaw_given_c(n, y, math.exp(lc), y_max)[2]  # noqa: E731
        g = (math.sqrt(5) - 1) / 2
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        fa, fb = f(a), f(b)
        for _ in range(50):
            if fa <= fb:
                hi, b, fb = b, a, fa
                a = hi - g * (hi - lo)
                fa = f(a)
            else:
                lo, a, fa = a, b, fb
                b = lo + g * (hi - lo)
                fb = f(b)
        best = min([(sse[i], float(grid[i])), (f((lo + hi) / 2), math.exp((lo + hi) / 2))])
        c = best[1]
    y_inf, b, _ = _powerlaw_given_c(n, y, c, y_max)
    return Curve("powerlaw", {"y_inf": y_inf, "b": b, "c": float(c)}, n_params, lambda m: y_inf - b * m ** -c,
                 lambda m: np.column_stack([np.ones_like(m), m ** -c]))


CURVES: dict[str, Callable[..., Curve]] = {"loglinear": fit_loglinear, "powerlaw": fit_powerlaw, "flat": fit_flat}


@functools.lru_cache(maxsize=None)
def _t(df: int, q: float) -> float:
    return t_quantile(df, q)


@functools.lru_cache(maxsize=None)
def _z(q: float) -> float:
    """Standard normal quantile by bisection on erf."""
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _check(n, y) -> tuple[np.ndarray, np.ndarray]:
    n, y = np.asarray(n, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if len(n) != len(y):
        raise ValueError(f"n and y differ in length ({len(n)} != {len(y)})")
    if not (np.all(np.isfinite(n)) and np.all(np.isfinite(y))):
        raise ValueError("n and y must be finite")
    if np.any(n <= 0) or np.any(np.diff(n) <= 0):
        raise ValueError("n must be positive and strictly increasing (nested label sets)")
    return n, y


def forecast(n, y, n_next: float, *, model: str = "loglinear", level: float = 0.9, error_scale: float | None = None,
             bias: float | None = None) -> Forecast:
    """The ``model`` curve fitted on (n, y), predicted at ``n_next``, minus ``bias`` (a backtest's mean error) if given.

    Interval, two-sided at ``level``: with ``error_scale`` (the sd of a backtest's one-step-ahead errors) it is
    mean +- z * error_scale, so it never claims more than the backtest measured.  Without it, the OLS prediction
    interval of the curve's linear design (power law: c held at its fit): mean +- t_{df} * s * sqrt(1 + h), s the
    residual sd on df = points - parameters, h the leverage of n_next; widened for few points by the t quantile,
    and with df < 1 (2 points, or 3 for the power law) s is the last observed step |y_k - y_{k-1}| on df = 1.
    Every sd is at least SD_FLOOR.  Fewer than 2 points: NaN and a note (no exception); bad input: ValueError."""
    if model not in CURVES:
        raise ValueError(f"unknown model {model!r}; known: {sorted(CURVES)}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if not (np.isfinite(n_next) and n_next > 0):
        raise ValueError(f"n_next must be a positive number, got {n_next}")
    n, y = _check(n, y)
    m = len(n)
    if m < 2:
        nan = float("nan")
        return Forecast(nan, nan, nan, model, m, f"no forecast: {m} point(s), a curve needs at least 2", level)
    curve = CURVES[model](n, y)
    mean = float(curve.predict(n_next))
    q = (1 + level) / 2
    if error_scale is not None and np.isfinite(error_scale):
        half = _z(q) * max(float(error_scale), SD_FLOOR)
        note = f"{model} on {m} points; interval from the backtest's error sd {error_scale:.4g}"
    else:
        df = m - curve.n_params
        X, x0 = curve.design(n), curve.design([n_next])[0]
        h = float(x0 @ np.linalg.pinv(X.T @ X) @ x0)
        if df >= 1:
            s = math.sqrt(float(np.sum((y - curve.predict(n)) ** 2)) / df)
            why = f"residual sd on {df} df"
        else:
            df, s = 1, abs(float(y[-1] - y[-2]))
            why = "no residual df: the last step as sd, on 1 df"
        half = _t(df, q) * max(s, SD_FLOOR) * math.sqrt(1 + max(h, 0.0))
        if not np.isfinite(half):
            half = float("inf")
        note = f"{model} on {m} points; OLS prediction interval ({why})"
    if bias is not None and np.isfinite(bias):
        mean -= float(bias)
        note += f"; bias {bias:+.4g} subtracted"
    return Forecast(mean, mean - half, mean + half, model, m, note, level)


def forecast_gain(n, y, n_next: float, **options) -> Forecast:
    """:func:`forecast` at ``n_next`` minus the last measured value ``y[-1]``: what the next round is predicted to
    buy (same options)."""
    f = forecast(n, y, n_next, **options)
    if not np.isfinite(f.mean):
        return f
    cur = float(np.asarray(y, dtype=np.float64).ravel()[-1])
    return Forecast(f.mean - cur, f.low - cur, f.high - cur, f.model, f.n_points,
                    f.note + f"; gain over the last measured {cur:.4g}", f.level)


def backtest(chains, *, model: str = "loglinear", level: float = 0.9, error_scale: float | None = None,
             bias: float | None = None) -> Backtest:
    """For every chain (n, y) and every k >= 2, :func:`forecast` from points 1..k (with ``error_scale`` and ``bias`` if
    given) predicts point k+1: error = predicted - measured, covered = the interval holds it.  With ``bias`` given the
    reported bias is what remains after the correction."""
    errors, covered, ks = [], [], []
    for n, y in chains:
        n, y = _check(n, y)
        for k in range(2, len(n)):
            f = forecast(n[:k], y[:k], float(n[k]), model=model, level=level, error_scale=error_scale, bias=bias)
            errors.append(f.mean - y[k])
            covered.append(f.low <= y[k] <= f.high)
            ks.append(k)
    e = np.asarray(errors, dtype=np.float64)
    c = np.asarray(covered, dtype=bool)
    nan = float("nan")
    return Backtest(e, c, np.asarray(ks, dtype=int), float(c.mean()) if len(c) else nan,
                    float(np.abs(e).mean()) if len(e) else nan, float(e.mean()) if len(e) else nan,
                    float(e.std(ddof=1)) if len(e) >= 2 else nan, len(e), model, level)


def stop_advice(gain: Forecast, *, next_round_hours: float, hours_saved_per_point: float | None = None,
                target: float | None = None, current: float | None = None, stabilisation: float | None = None,
                stable_below: float = 0.02, min_gain: float = 0.0, point: float = POINT) -> Advice:
    """Stop when any of: ``current >= target``; the gain's upper bound <= ``min_gain`` (nothing to buy); the next
    round's labelling hours exceed the hours the gain's LOWER bound saves (``hours_saved_per_point`` per ``point`` of
    the measure, 0.01 = one percentage point); the auto-labels have stabilised (``stabilisation`` < ``stable_below``,
    see :func:`label_change`).  Otherwise continue.  A gain without a forecast (NaN) fires none of the gain rules."""
    if target is not None and current is None:
        raise ValueError("target needs current (the last measured value)")
    pct = f"{gain.level:.0%}"
    has = bool(np.isfinite(gain.mean))
    nums = {"gain_mean": gain.mean, "gain_low": gain.low, "gain_high": gain.high, "level": gain.level,
            "model": gain.model, "n_points": gain.n_points, "next_round_hours": float(next_round_hours)}
    said = (f"predicted gain {gain.mean:+.4f} ({pct} interval {gain.low:+.4f} to {gain.high:+.4f}, {gain.model} on "
            f"{gain.n_points} rounds)" if has else f"no forecast yet ({gain.note})")
    stops = []
    if target is not None:
        nums.update(target=float(target), current=float(current))
        if current >= target:
            stops.append(f"the target {target:.4f} is reached (current {current:.4f})")
    if has and gain.high <= min_gain:
        nums["min_gain"] = float(min_gain)
        stops.append(f"nothing to buy: the predicted gain's upper bound {gain.high:+.4f} is <= {min_gain:+.4f}")
    if hours_saved_per_point is not None and has:
        saved = float(hours_saved_per_point) * gain.low / point
        nums.update(hours_saved_per_point=float(hours_saved_per_point), point=float(point), hours_saved_low=saved)
        if next_round_hours > saved:
            stops.append(f"the next round costs {next_round_hours:.2f} h of labelling, more than the {saved:.2f} h "
                         f"the predicted gain's lower bound {gain.low:+.4f} saves at {hours_saved_per_point:.2f} h per "
                         f"point ({point:g})")
        else:
            said += (f"; the next round's {next_round_hours:.2f} h are predicted to save at least {saved:.2f} h "
                     f"({hours_saved_per_point:.2f} h per point)")
    if stabilisation is not None:
        nums.update(stabilisation=float(stabilisation), stable_below=float(stable_below))
        if stabilisation < stable_below:
            stops.append(f"the auto-labels have stabilised: {stabilisation:.1%} of boxes changed since the last "
                         f"round (< {stable_below:.1%})")
    if stops:
        reason = "stop: " + "; ".join(stops) + f". {said[0].upper() + said[1:]}. {CAVEAT}"
    else:
        reason = f"continue: {said}. {CAVEAT}"
    return Advice(bool(stops), reason, nums)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes [x1, y1, x2, y2] (rows of ``a`` against rows of ``b``)."""
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area = lambda r: np.clip(r[:, 2] - r[:, 0], 0, None) * np.clip(r[:, 3] - r[:, 1], 0, None)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _matched(a: np.ndarray, b: np.ndarray, iou: float) -> int:
    """Class-aware greedy matching: the highest-IoU same-class pair first, each box used once, IoU >= ``iou``."""
    if not len(a) or not len(b):
        return 0
    m = np.where(a[:, None, 0] == b[None, :, 0], _iou(a[:, 1:], b[:, 1:]), -1.0)
    count = 0
    while m.size:
        i, j = np.unravel_index(int(np.argmax(m)), m.shape)
        if m[i, j] < iou:
            break
        count += 1
        m[i, :], m[:, j] = -1.0, -1.0
    return count


def label_change(prev: dict, new: dict, *, iou: float = 0.5) -> float:
    """Share of auto-label boxes that changed between two rounds' models on the same images: 1 - 2 matched /
    (n_prev + n_new), pooled over the stems of both dicts (stem -> (m, 5) array [cls, x1, y1, x2, y2]; a missing stem
    has no boxes); 0 when both are empty."""
    matched = total = 0
    for stem in set(prev) | set(new):
        a = np.asarray(prev.get(stem, ()), dtype=np.float64).reshape(-1, 5)
        b = np.asarray(new.get(stem, ()), dtype=np.float64).reshape(-1, 5)
        total += len(a) + len(b)
        matched += _matched(a, b, iou)
    return 0.0 if total == 0 else 1.0 - 2.0 * matched / total
