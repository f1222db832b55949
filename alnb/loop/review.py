"""The review plan: which auto-labels a person must check, which are accepted without a look (pure: arrays in,
tables out; the step that reads and writes the workspace is :mod:`alnb.loop.reviewstep`).

* :func:`features` -> :func:`fit_calibration` / :func:`predict`: per image ``p_error`` = P(>= 1 auto-label error),
  ``e_fp`` / ``e_fn`` = expected false / missed boxes, fitted where the truth is known (VAL1; ``method`` logistic,
  isotonic or auto); :func:`cross_fit` / :func:`compare_methods` give out-of-fold numbers.  ``recalibrate``: a
  second stage maps each first-stage expected count through an isotonic fit of the true count on the calibration
  set's out-of-fold predictions (the map never sees the images it is judged on; refitted in every bootstrap refit).
* :func:`review_seconds` / :func:`manual_seconds`: the :class:`alnb.evaluation.metrics.CostModel` on an image.
* :func:`plan_order` sorts by expected wrong boxes fixed per review second; :func:`curve` gives every cut's review
  hours, predicted residual errors (95 % interval) and hours saved; :func:`choose_cut` picks one.

Same inputs and seed -> the same plan, bit for bit.

Design notes: docs/design/review-plan.md
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from alnb.evaluation.metrics import CostModel

METHODS = ("logistic", "isotonic")
ISOTONIC_FEATURE = "score_sum"  # the isotonic fit's one score: hybrid summed over boxes (docs/design/review-plan.md)
FEATURE_NAMES = ("log_n_det", "log_n_weak", "score", "log_score_sum", "log_count_var", "failed")
RIDGE = 1.0  # L2 penalty of the logistic / Poisson fits on standardised features (VAL1 holds ~180 images)
N_FOLDS = 5  # cross-fitting folds on the calibration set
N_BOOT = 200  # bootstrap refits for the intervals
LEVEL = 0.95  # the intervals' coverage
RECALIBRATE = True  # the plan recalibrates the counts by default (5 seeds: docs/results/2026-12-07-review-plan.md)


# ------------------------------------------------------------------------------------------------------- features
def features(scores: pd.DataFrame) -> np.ndarray:
    """(n, 6) design matrix from score-table rows: log1p of the auto-label count, of the weak candidates (below the
    operating point), the hybrid top-k score, log1p of its sum over boxes and of the count variance, failed (0/1)."""
    s = scores
    n_det = s["n_det"].to_numpy(float)
    n_weak = np.maximum(s["n_cand"].to_numpy(float) - n_det, 0.0) if "n_cand" in s else np.zeros(len(s))
    col = (lambda c: s[c].to_numpy(float) if c in s else np.zeros(len(s)))
    failed = s["failed"].to_numpy(bool).astype(float) if "failed" in s else (n_det == 0).astype(float)
    X = np.column_stack([np.log1p(n_det), np.log1p(n_weak), col("score"), np.log1p(np.maximum(col("score_sum"), 0)),
                         np.log1p(np.maximum(col("count_var"), 0)), failed])
    return np.nan_to_num(X, nan=0.0, posinf=0.0, neginf=0.0)


# -------------------------------------------------------------------------------------------------- the fits
def _glm(X, y, *, family: str, ridge: float = RIDGE, iters: int = 50) -> np.ndarray:
    """Newton / IRLS fit of a logistic (``family="binomial"``) or Poisson (log link) GLM with an intercept and an L2
    penalty on the other coefficients; X already standardised.  Returns the coefficients (intercept first)."""
    A = np.column_stack([np.ones(len(X)), X])
    w = np.zeros(A.shape[1])
    ybar = float(np.mean(y)) if len(y) else 0.0
    if family == "binomial":
        w[0] = np.log((ybar + 0.5 / max(len(y), 1)) / (1 - ybar + 0.5 / max(len(y), 1)))
    else:
        w[0] = np.log(ybar + 1e-3)
    P = np.eye(A.shape[1]) * ridge
    P[0, 0] = 0.0
    for _ in range(iters):
        eta = np.clip(A @ w, -30, 30)
        if family == "binomial":
            mu = 1 / (1 + np.exp(-eta))
            W = mu * (1 - mu)
        else:
            mu = np.exp(eta)
            W = mu
        g = A.T @ (y - mu) - P @ w
        H = A.T @ (A * W[:, None]) + P + 1e-9 * np.eye(A.shape[1])
        step = np.linalg.solve(H, g)
        w = w + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return w


def isotonic(x, y, w=None) -> tuple:
    """Pool-adjacent-violators: the non-decreasing step function of ``x`` closest to ``y`` in (weighted) least
    squares.  Returns ``(knots_x, values)``; :func:`_iso_predict` interpolates between knots (flat outside)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    w = np.ones(len(x)) if w is None else np.asarray(w, float)
    order = np.lexsort((y, x))
    x, y, w = x[order], y[order], w[order]
    # equal x values form one block first
    ux, start = np.unique(x, return_index=True)
    sums = np.add.reduceat(y * w, start)
    ws = np.add.reduceat(w, start)
    vals, wts, xs = [], [], []
    for v, ww, xx in zip(sums / ws, ws, ux):
        vals.append(v)
        wts.append(ww)
        xs.append([xx])
        while len(vals) > 1 and vals[-2] > vals[-1]:
            v2, w2, x2 = vals.pop(), wts.pop(), xs.pop()
            vals[-1] = (vals[-1] * wts[-1] + v2 * w2) / (wts[-1] + w2)
            wts[-1] += w2
            xs[-1] += x2
    kx, kv = [], []
    for v, xx in zip(vals, xs):  # each block: its value at its first and last x
        kx += [xx[0], xx[-1]]
        kv += [v, v]
    return np.asarray(kx), np.asarray(kv)


def _iso_predict(knots, x) -> np.ndarray:
    kx, kv = knots
    return np.interp(np.asarray(x, float), kx, kv) if len(kx) else np.zeros(len(np.atleast_1d(x)))


@dataclass
class Calibration:
    """A fitted calibration: ``method`` and its parameters (standardisation + GLM coefficients, or isotonic knots;
    ``params["recal"]``: the second stage's isotonic knots for ``fp`` / ``fn``, None when it is off)."""

    method: str
    params: dict
    n: int

    @property
    def recalibrated(self) -> bool:
        return self.params.get("recal") is not None

    def to_dict(self) -> dict:
        return {"method": self.method, "n_images": self.n, "recalibrated": self.recalibrated}


def _truth(truth: pd.DataFrame) -> tuple:
    t = truth
    return (t["has_error"].to_numpy(bool).astype(float), t["n_fp"].to_numpy(float), t["n_fn"].to_numpy(float))


def fit_calibration(X, truth: pd.DataFrame, *, method: str = "logistic", iso_x=None, recalibrate: bool = False,
                    k: int = N_FOLDS, seed: int = 0, groups=None) -> Calibration:
    """Fit ``p_error``, ``e_fp``, ``e_fn`` on a labelled set: ``X`` (:func:`features`), ``truth`` columns
    ``has_error, n_fp, n_fn`` (:func:`alnb.acquisition.difficulty.match_errors`); ``iso_x`` the isotonic score
    (isotonic only).  ``recalibrate``: add the second stage, an isotonic map per count from the first stage's
    out-of-fold expected count (``k`` folds dealt by ``seed`` over the distinct ``groups``: a bootstrap's copies of
    one image stay in one fold) to the true count; skipped (None) when fewer than 3 distinct images are given."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    X = np.asarray(X, float)
    if len(X) < 2:
        raise ValueError(f"the calibration set has {len(X)} image(s); it needs at least 2 (VAL1 scored by the model).")
    err, fp, fn = _truth(truth)
    if method == "logistic":
        mu, sd = X.mean(0), X.std(0)
        sd = np.where(sd > 0, sd, 1.0)
        Z = (X - mu) / sd
        params = {"mu": mu, "sd": sd, "p": _glm(Z, err, family="binomial"), "fp": _glm(Z, fp, family="poisson"),
                  "fn": _glm(Z, fn, family="poisson")}
    else:
        x = np.asarray(iso_x, float)
        params = {"p": isotonic(x, err), "fp": isotonic(x, fp), "fn": isotonic(x, fn)}
    params["recal"] = None
    g = np.arange(len(X)) if groups is None else np.asarray(groups)
    if recalibrate and len(np.unique(g)) >= 3:
        oof = cross_fit(X, truth, method=method, iso_x=iso_x, k=k, seed=seed, groups=g, recalibrate=False)
        params["recal"] = {"fp": isotonic(oof["e_fp"], fp), "fn": isotonic(oof["e_fn"], fn)}
    return Calibration(method, params, len(X))


def predict(cal: Calibration, X, *, iso_x=None) -> pd.DataFrame:
    """``p_error, e_fp, e_fn`` for each row of ``X`` (``iso_x``: the isotonic score of the same rows)."""
    X = np.asarray(X, float)
    if cal.method == "logistic":
        A = np.column_stack([np.ones(len(X)), (X - cal.params["mu"]) / cal.params["sd"]])
        p = 1 / (1 + np.exp(-np.clip(A @ cal.params["p"], -30, 30)))
        fp = np.exp(np.clip(A @ cal.params["fp"], -30, 30))
        fn = np.exp(np.clip(A @ cal.params["fn"], -30, 30))
    else:
        x = np.asarray(iso_x, float)
        p, fp, fn = (_iso_predict(cal.params[k], x) for k in ("p", "fp", "fn"))
    if cal.params.get("recal") is not None:  # the second stage: first-stage mean -> calibrated mean
        fp, fn = _iso_predict(cal.params["recal"]["fp"], fp), _iso_predict(cal.params["recal"]["fn"], fn)
    return pd.DataFrame({"p_error": np.clip(p, 0.0, 1.0), "e_fp": np.maximum(fp, 0.0), "e_fn": np.maximum(fn, 0.0)})


def folds(n: int, k: int = N_FOLDS, seed: int = 0) -> np.ndarray:
    """Fold index (0..k-1) of each of ``n`` images: a seeded permutation dealt round-robin."""
    k = max(2, min(int(k), n))
    f = np.empty(n, int)
    f[np.random.default_rng(seed).permutation(n)] = np.arange(n) % k
    return f


def cross_fit(X, truth: pd.DataFrame, *, method: str = "logistic", iso_x=None, k: int = N_FOLDS,
              seed: int = 0, groups=None, recalibrate: bool = False) -> pd.DataFrame:
    """Out-of-fold predictions on the calibration set itself: image i is predicted by a model fitted on the other
    folds only (never on its own truth); with ``recalibrate`` that model's second stage is cross-fitted inside those
    other folds, so it never sees fold i either.  ``groups``: rows with one group value share a fold."""
    X = np.asarray(X, float)
    g = np.arange(len(X)) if groups is None else np.asarray(groups)
    ug, inv = np.unique(g, return_inverse=True)
    f = folds(len(ug), k, seed)[inv]
    out = pd.DataFrame(index=np.arange(len(X)), columns=["p_error", "e_fp", "e_fn"], dtype=float)
    xs = np.zeros(len(X)) if iso_x is None else np.asarray(iso_x, float)
    t = truth.reset_index(drop=True)
    for j in np.unique(f):
        tr, te = f != j, f == j
        cal = fit_calibration(X[tr], t[tr], method=method, iso_x=xs[tr], recalibrate=recalibrate, k=k, seed=seed,
                              groups=g[tr])
        out.loc[te] = predict(cal, X[te], iso_x=xs[te]).to_numpy()
    return out.astype(float)


def calibration_quality(pred: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """Brier score and log-loss of ``p_error``; mean absolute error and totals of the expected vs true counts."""
    err, fp, fn = _truth(truth)
    p = np.clip(pred["p_error"].to_numpy(float), 1e-6, 1 - 1e-6)
    return {"n": int(len(p)), "brier": float(np.mean((p - err) ** 2)),
            "log_loss": float(-np.mean(err * np.log(p) + (1 - err) * np.log(1 - p))),
            "mae_fp": float(np.mean(np.abs(pred["e_fp"] - fp))), "mae_fn": float(np.mean(np.abs(pred["e_fn"] - fn))),
            "error_images": int(err.sum()), "error_images_predicted": float(p.sum()),
            "fp": int(fp.sum()), "fp_predicted": float(pred["e_fp"].sum()),
            "fn": int(fn.sum()), "fn_predicted": float(pred["e_fn"].sum())}


def compare_methods(X, truth: pd.DataFrame, *, iso_x, k: int = N_FOLDS, seed: int = 0,
                    recalibrate: bool = False) -> dict:
    """Cross-fitted :func:`calibration_quality` of every method (with ``recalibrate``: its second stage cross-fitted
    inside each fold's training part); ``chosen`` = the lower Brier (logistic on a tie; the second stage leaves
    ``p_error`` alone, so it never changes the choice)."""
    res = {m: calibration_quality(cross_fit(X, truth, method=m, iso_x=iso_x, k=k, seed=seed,
                                            recalibrate=recalibrate), truth)
           for m in METHODS}
    res["chosen"] = min(METHODS, key=lambda m: (round(res[m]["brier"], 12), METHODS.index(m)))
    return res


# ------------------------------------------------------------------------------------------------------ seconds
def review_seconds(n_det, e_fp, e_fn, costs: CostModel | None = None) -> np.ndarray:
    """Expected seconds to review one image's auto-labels: ``n_det * t_verify + e_fp * t_delete + e_fn * t_draw +
    t_image``."""
    c = costs or CostModel()
    return (np.asarray(n_det, float) * c.t_verify + np.asarray(e_fp, float) * c.t_delete
            + np.asarray(e_fn, float) * c.t_draw + c.t_image)


def manual_seconds(n_boxes, costs: CostModel | None = None) -> np.ndarray:
    """Seconds to draw ``n_boxes`` boxes of one image by hand: ``n_boxes * t_draw + t_image``."""
    c = costs or CostModel()
    return np.asarray(n_boxes, float) * c.t_draw + c.t_image


# -------------------------------------------------------------------------------------------------------- order
ORDERS = ("plan", "difficulty", "least_confidence", "random")


def plan_order(stems, value) -> np.ndarray:
    """Indices that sort ``value`` descending (highest first, NaN last); ties broken by stem (unique), so the order
    is a function of the inputs only."""
    stems = np.asarray(stems, dtype=str)
    value = np.nan_to_num(np.asarray(value, float), nan=-np.inf)
    return np.lexsort((stems, -value))


def order_values(plan: pd.DataFrame, how: str = "plan") -> np.ndarray:
    """The value each order sorts by (descending): ``plan`` expected wrong boxes per review second, ``difficulty`` the
    hybrid score, ``least_confidence`` 1 - top class probability, ``random`` a seeded draw (caller's column
    ``_random``)."""
    if how == "plan":
        return plan["value"].to_numpy(float)
    if how == "difficulty":
        return plan["score"].to_numpy(float)
    if how == "least_confidence":
        return plan["least_conf"].to_numpy(float)
    if how == "random":
        return plan["_random"].to_numpy(float)
    raise ValueError(f"order must be one of {ORDERS}, got {how!r}")


def make_plan(scores: pd.DataFrame, pred: pd.DataFrame, *, costs: CostModel | None = None,
              target: str = "boxes") -> pd.DataFrame:
    """One row per image in plan order: the score-table row's ``stem, n_det, score, ...`` + ``p_error, e_fp, e_fn,
    review_s, manual_s, value`` (``target="boxes"``: expected wrong boxes ``e_fp + e_fn`` per review second;
    ``"images"``: ``p_error`` per review second), ``rank`` 1 = review first."""
    if target not in ("boxes", "images"):
        raise ValueError(f"target must be 'boxes' or 'images', got {target!r}")
    s = scores.reset_index(drop=True).copy()
    for c in ("p_error", "e_fp", "e_fn"):
        s[c] = pred[c].to_numpy(float)
    s["review_s"] = review_seconds(s["n_det"], s["e_fp"], s["e_fn"], costs)
    s["manual_s"] = manual_seconds(np.maximum(s["n_det"] - s["e_fp"], 0) + s["e_fn"], costs)
    gain = s["e_fp"] + s["e_fn"] if target == "boxes" else s["p_error"]
    s["value"] = gain / s["review_s"]
    s = s.iloc[plan_order(s["stem"], s["value"])].reset_index(drop=True)
    s.insert(0, "rank", np.arange(1, len(s) + 1))
    return s


# -------------------------------------------------------------------------------------------------------- curve
def _accepted_sums(v) -> np.ndarray:
    """``out[j]`` = sum of ``v[j:]`` (what is left in the accepted images when the first j are reviewed), j=0..n."""
    v = np.asarray(v, float)
    return np.concatenate([np.cumsum(v[::-1])[::-1], [0.0]]) if v.ndim == 1 else \
        np.concatenate([np.cumsum(v[:, ::-1], axis=1)[:, ::-1], np.zeros((len(v), 1))], axis=1)


def curve(plan: pd.DataFrame, *, draws: dict | None = None, truth: pd.DataFrame | None = None,
          costs: CostModel | None = None, level: float = LEVEL) -> pd.DataFrame:
    """Numbers of every cut j = 0..n along ``plan``'s row order (j images reviewed, the rest accepted).

    Columns: ``reviewed, accepted, fraction, review_h, manual_h`` (drawing every image by hand: the same for every
    cut), ``saved_h = manual_h - review_h``, ``err_images, fp, fn, wrong_boxes`` (predicted residuals in the accepted
    images: sums of ``p_error`` / ``e_fp`` / ``e_fn``), ``err_rate`` (err_images / accepted, 0 when nothing is
    accepted); with ``draws`` (:func:`residual_draws`, rows aligned with ``plan``) ``*_lo`` / ``*_hi``: the
    ``level`` interval; with ``truth`` (``has_error, n_fp, n_fn, n_gt`` aligned with ``plan``) the actual numbers
    ``actual_err_images, actual_fp, actual_fn, actual_wrong_boxes, actual_review_h, actual_manual_h``.
    """
    n = len(plan)
    j = np.arange(n + 1)
    out = pd.DataFrame({"reviewed": j, "accepted": n - j, "fraction": j / max(n, 1)})
    out["review_h"] = np.concatenate([[0.0], np.cumsum(plan["review_s"].to_numpy(float))]) / 3600
    out["manual_h"] = float(plan["manual_s"].sum()) / 3600
    out["saved_h"] = out["manual_h"] - out["review_h"]
    out["err_images"] = _accepted_sums(plan["p_error"])
    out["fp"] = _accepted_sums(plan["e_fp"])
    out["fn"] = _accepted_sums(plan["e_fn"])
    out["wrong_boxes"] = out["fp"] + out["fn"]
    out["err_rate"] = out["err_images"] / np.maximum(out["accepted"], 1)
    if draws is not None:
        a = (1 - level) / 2
        for k in ("err_images", "fp", "fn", "wrong_boxes"):
            res = _accepted_sums(draws[k])
            out[f"{k}_lo"] = np.quantile(res, a, axis=0)
            out[f"{k}_hi"] = np.quantile(res, 1 - a, axis=0)
        out["err_rate_hi"] = out["err_images_hi"] / np.maximum(out["accepted"], 1)
    if truth is not None:
        t = truth.reset_index(drop=True)
        fp, fn = t["n_fp"].to_numpy(float), t["n_fn"].to_numpy(float)
        c = costs or CostModel()
        out["actual_err_images"] = _accepted_sums(t["has_error"].to_numpy(bool).astype(float))
        out["actual_fp"] = _accepted_sums(fp)
        out["actual_fn"] = _accepted_sums(fn)
        out["actual_wrong_boxes"] = out["actual_fp"] + out["actual_fn"]
        sec = review_seconds(plan["n_det"], fp, fn, c)
        out["actual_review_h"] = np.concatenate([[0.0], np.cumsum(sec)]) / 3600
        out["actual_manual_h"] = float(manual_seconds(t["n_gt"].to_numpy(float), c).sum()) / 3600
    return out


def residual_draws(boot_preds: list, *, seed: int = 0) -> dict:
    """Per-image residual draws for the intervals: for each bootstrap calibration's predictions (a list of
    ``p_error, e_fp, e_fn`` frames for the same images) one draw of each image's own outcome (Bernoulli error,
    Poisson false / missed boxes).  Returns ``{err_images, fp, fn, wrong_boxes}``: (B, n) arrays."""
    rng = np.random.default_rng(seed)
    P = np.stack([b["p_error"].to_numpy(float) for b in boot_preds])
    FP = np.stack([b["e_fp"].to_numpy(float) for b in boot_preds])
    FN = np.stack([b["e_fn"].to_numpy(float) for b in boot_preds])
    e = (rng.random(P.shape) < P).astype(float)
    fp, fn = rng.poisson(FP).astype(float), rng.poisson(FN).astype(float)
    return {"err_images": e, "fp": fp, "fn": fn, "wrong_boxes": fp + fn}


def bootstrap_predictions(X_cal, truth: pd.DataFrame, X, *, method: str, iso_cal=None, iso_x=None,
                          n_boot: int = N_BOOT, seed: int = 0, recalibrate: bool = False) -> list:
    """Predictions for ``X`` from ``n_boot`` calibrations refitted on bootstrap resamples of the calibration set
    (``recalibrate``: the second stage too, cross-fitted inside each resample with one image's copies in one fold
    and the folds dealt afresh per resample)."""
    rng = np.random.default_rng(seed)
    fold_seeds = np.random.default_rng([seed, 1]).integers(0, 2 ** 31, n_boot)
    X_cal = np.asarray(X_cal, float)
    t = truth.reset_index(drop=True)
    iso_cal = np.zeros(len(X_cal)) if iso_cal is None else np.asarray(iso_cal, float)
    out = []
    for b in range(n_boot):
        i = rng.integers(0, len(X_cal), len(X_cal))
        cal = fit_calibration(X_cal[i], t.iloc[i], method=method, iso_x=iso_cal[i], recalibrate=recalibrate,
                              seed=int(fold_seeds[b]), groups=i)
        out.append(predict(cal, X, iso_x=iso_x))
    return out


# ---------------------------------------------------------------------------------------------------------- cuts
def choose_cut(cv: pd.DataFrame, *, fraction: float | None = None, hours: float | None = None,
               max_error_rate: float | None = None) -> int:
    """The number of images to review (a row of :func:`curve`), asked for by exactly one of: ``fraction`` of the
    images (rounded up), ``hours`` (the most images whose review fits), ``max_error_rate`` (the fewest images reviewed
    so that the predicted share of accepted images with an error is at most this)."""
    given = [x is not None for x in (fraction, hours, max_error_rate)]
    if sum(given) != 1:
        raise ValueError("give exactly one of fraction, hours, max_error_rate.")
    n = int(cv["reviewed"].iloc[-1])
    if fraction is not None:
        if not 0 <= fraction <= 1:
            raise ValueError(f"fraction must be in [0, 1], got {fraction}")
        return int(min(n, np.ceil(fraction * n - 1e-9)))
    if hours is not None:
        if hours < 0:
            raise ValueError(f"hours must be >= 0, got {hours}")
        ok = np.flatnonzero(cv["review_h"].to_numpy(float) <= hours + 1e-12)
        return int(ok[-1])
    if not 0 <= max_error_rate <= 1:
        raise ValueError(f"max_error_rate must be in [0, 1], got {max_error_rate}")
    ok = np.flatnonzero(cv["err_rate"].to_numpy(float) <= max_error_rate + 1e-12)
    return int(ok[0])


def cut_summary(cv: pd.DataFrame, j: int) -> dict:
    """One cut's numbers (a row of :func:`curve`) as a plain dict."""
    return {k: (int(v) if k in ("reviewed", "accepted") else float(v)) for k, v in cv.iloc[int(j)].items()}


REPORT_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)  # review fractions every plan reports (besides the chosen cut)


def equal_hours(plan: pd.DataFrame, truth: pd.DataFrame, hours, *, how: str, seed: int = 0,
                costs: CostModel | None = None) -> pd.DataFrame:
    """Actual residual wrong boxes and error images after reviewing, in order ``how``, as many images as fit in each
    of ``hours`` (true review seconds); simulation only.  Rows aligned with ``plan``, ``truth`` too."""
    p = plan.reset_index(drop=True).copy()
    t = truth.reset_index(drop=True)
    p["_random"] = np.random.default_rng(seed).random(len(p))
    idx = plan_order(p["stem"], order_values(p, how))
    fp, fn = t["n_fp"].to_numpy(float)[idx], t["n_fn"].to_numpy(float)[idx]
    err = t["has_error"].to_numpy(bool)[idx].astype(float)
    sec = np.concatenate([[0.0], np.cumsum(review_seconds(p["n_det"].to_numpy(float)[idx], fp, fn, costs))]) / 3600
    rows = []
    for h in np.atleast_1d(hours):
        j = int(np.flatnonzero(sec <= h + 1e-12)[-1])
        rows.append({"order": how, "hours": float(h), "reviewed": j, "wrong_boxes": float((fp + fn)[j:].sum()),
                     "err_images": float(err[j:].sum())})
    return pd.DataFrame(rows)
