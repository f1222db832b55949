"""Tiers and selection rules (pure: a score table in, stems out): thresholds, tiers, the study rule, budgets, the
random control draw.

Score table: one row per POOL image, as in ``scores.csv`` (``stem, score, failed``, optionally ``tier``; higher =
harder).  Tiers from ``t_medium <= t_hard``: easy below ``t_medium``, medium below ``t_hard``, hard from ``t_hard``
on; a failed image (scoring gave no usable prediction) is "failed" whatever its score.

* :func:`study_rule` -- the study's rule: GT2 = medium + hard + failed images.
* :func:`budgeted` -- top-k by score, failed images first, for experiments that vary the labelling budget.
* :func:`random_control` -- a seeded random sample of POOL images of the same size (the Control set).

Every rule only looks at POOL images (:func:`eligible`): GT2 and Control never include VAL1 or GT1 images, and
:func:`alnb.loop.selection.commit` refuses anything else.
Design notes: docs/design/uncertainty-and-strategies.md
"""


from __future__ import annotations

import json

import numpy as np
import pandas as pd

from alnb.core.scoretable import SelectionError, check_scores, load_scores  # noqa: F401  (re-exported)
from alnb.core.workspace import Workspace, has_tag
from alnb.core.scoretable import scores_file

TIERS = ("easy", "medium", "hard")  # from the score alone (tier_of)
TIER_BARS = {"easy": 1, "medium": 2, "hard": 3}  # difficulty bars drawn per tier
SELECTION_TAGS = ("GT2", "CONTROL")  # round 2's selections; later rounds add GT<k> / CONTROL<k> (ws.selection_tags)
CATEGORIES = ("easy", "medium", "hard", "failed")  # tiers, with failed images as their own category
STUDY_CATEGORIES = ("medium", "hard", "failed")
FORBIDDEN = ("VAL1", "GT1", "EXCLUDED")  # never selected
ABOVE_ALL = 1e-9  # a threshold this far above the top score flags nobody


# SelectionError, load_scores and check_scores live in alnb.core.scoretable (below select and labelio, which both read the
# score table) and are re-exported here.


def check_thresholds(t_medium: float, t_hard: float):
    if not (np.isfinite(t_medium) and np.isfinite(t_hard)):
        raise SelectionError(f"thresholds must be finite numbers, got t_medium={t_medium}, t_hard={t_hard}.")
    if t_medium > t_hard:
        raise SelectionError(f"t_medium={t_medium} is above t_hard={t_hard}: the easy|medium threshold must not be "
                             f"above the medium|hard one.")


def tier_of(score, t_medium: float, t_hard: float) -> np.ndarray:
    """Tier per score: ``easy`` below ``t_medium``, ``medium`` up to ``t_hard``, ``hard`` at or above it."""
    s = np.asarray(score, dtype=float)
    return np.where(s >= t_hard, "hard", np.where(s >= t_medium, "medium", "easy")).astype(object)


def choose_thresholds(scores: pd.DataFrame, target_fraction: float = 0.6, hard_share: float = 0.4, *,
                      column: str = "score") -> dict:
    """Default thresholds: about ``target_fraction`` of the images end up medium, hard or failed.

    Failed images count toward the target whatever their score; ``t_medium`` flags the top-scored non-failed images
    that make up the rest (``round(target_fraction * n) - n_failed``), and ``t_hard`` marks the top ``hard_share`` of
    those flagged non-failed images as hard.  Thresholds sit half-way between neighbouring scores.  The study flagged
    251 of 419 POOL images (60%).

    Returns ``{"t_medium", "t_hard", "target_fraction", "hard_share", "column"}``.
    """
    if not 0 < target_fraction <= 1 or not 0 <= hard_share <= 1:
        raise SelectionError(f"need 0 < target_fraction <= 1 and 0 <= hard_share <= 1, got {target_fraction}, "
                             f"{hard_share}")
    n = len(scores)
    if n == 0:
        raise SelectionError("no scores: score the pool first (alnb.acquisition.scoring.score_pool).")
    failed = scores["failed"].to_numpy(bool) if "failed" in scores else np.zeros(n, bool)
    s = np.sort(scores.loc[~failed, column].to_numpy(float))[::-1]  # descending, non-failed only

    def top_k_threshold(k):
        if len(s) == 0:
            return 1.0
        if k <= 0:
            return float(s[0] + ABOVE_ALL)  # above every score: nobody flagged
        if k >= len(s):
            return float(s[-1])
        return float((s[k - 1] + s[k]) / 2) if s[k - 1] > s[k] else float(s[k - 1])

    k_flag = max(0, int(round(target_fraction * n)) - int(failed.sum()))
    t_medium = top_k_threshold(k_flag)
    t_hard = max(t_medium, top_k_threshold(int(round(hard_share * min(k_flag, len(s))))))
    return {"t_medium": t_medium, "t_hard": t_hard, "target_fraction": target_fraction, "hard_share": hard_share,
            "column": column}


def assign_tiers(scores: pd.DataFrame, t_medium: float, t_hard: float, *, column: str = "score") -> pd.DataFrame:
    """Copy of ``scores`` with ``tier`` (:func:`tier_of`: easy | medium | hard) and ``bars`` (1/2/3).

    ``failed`` (added from ``n_det == 0`` if missing) is kept as its own flag; failed images still get a tier from
    their score, and :func:`categorise` / the study rule put them under ``failed``.
    """
    if t_hard < t_medium:
        raise SelectionError(f"t_hard ({t_hard}) must be >= t_medium ({t_medium})")
    out = scores.copy()
    out["tier"] = tier_of(out[column], t_medium, t_hard).astype(str)
    out["bars"] = out["tier"].map(TIER_BARS).astype(int)
    if "failed" not in out:
        out["failed"] = out["n_det"] == 0
    return out


def categorise(scores: pd.DataFrame, t_medium: float, t_hard: float) -> pd.Series:
    """Category per row (easy | medium | hard | failed), indexed like ``scores``."""
    check_thresholds(t_medium, t_hard)
    s = check_scores(scores)
    cat = tier_of(s["score"], t_medium, t_hard)
    cat[s["failed"].to_numpy(bool)] = "failed"
    return pd.Series(cat, index=s.index, name="category")


def tier_stems(scores: pd.DataFrame, categories: pd.Series, tier: str) -> list:
    """Stems of one category (``categories`` as from :func:`categorise`), highest score first (ties by stem)."""
    if tier not in CATEGORIES:
        raise ValueError(f"tier must be one of {CATEGORIES}, not {tier!r}")
    s = scores[(categories == tier).to_numpy()]
    return list(s.sort_values(["score", "stem"], ascending=[False, True], kind="mergesort")["stem"])


def tier_counts(scores: pd.DataFrame, t_medium: float, t_hard: float) -> dict:
    """Images per category ``{easy, medium, hard, failed}`` (every row counted once)."""
    vc = categorise(scores, t_medium, t_hard).value_counts()
    return {c: int(vc.get(c, 0)) for c in CATEGORIES}


def default_thresholds(ws: Workspace, model: str | None = None) -> tuple:
    """``(t_medium, t_hard)`` chosen by the scoring step (``metrics/thresholds.json``; ``model``: that model's
    scoring, ``scores/<model>/thresholds.json``)."""
    if model is None:
        th = ws.load_json("thresholds")
    else:
        p = scores_file(ws, "metrics/thresholds.json", model)
        if not p.is_file():
            raise WorkspaceError(f"{p} missing: score the POOL with {model} first.")
        th = json.loads(p.read_text())
    try:
        return float(th["t_medium"]), float(th["t_hard"])
    except KeyError as e:
        raise WorkspaceError(f"{ws.root / 'metrics' / 'thresholds.json'} lacks {e}; re-run notebook 02.") from None


# -------------------------------------------------------------------------------------------------------------- rules
def eligible(scores: pd.DataFrame, manifest: pd.DataFrame | None, exclude=()) -> pd.DataFrame:
    """Rows of ``scores`` that may be selected: POOL images that are not VAL1, GT1 or EXCLUDED, nor in ``exclude``
    (e.g. the earlier rounds' selections GT2 ... GT<k-1> when round k selects).

    With ``manifest=None`` the table is taken as it is (hand-made tables in tests).
    """
    s = check_scores(scores)
    if manifest is None:
        return s
    ok = has_tag(manifest, "POOL")
    for t in (*FORBIDDEN, *exclude):
        ok &= ~has_tag(manifest, t)
    allowed = set(manifest.loc[ok, "stem"])
    return s[s["stem"].isin(allowed)].reset_index(drop=True)


def _order(s: pd.DataFrame) -> pd.DataFrame:
    """Failed first, then by score (descending), ties by stem: a total, reproducible order."""
    key = s.assign(_f=~s["failed"], _s=-s["score"].fillna(np.inf))
    return key.sort_values(["_f", "_s", "stem"], kind="mergesort").drop(columns=["_f", "_s"])


def study_rule(scores: pd.DataFrame, t_medium: float, t_hard: float, manifest: pd.DataFrame | None = None) -> list:
    """The study's rule: GT2 = every eligible image that is medium, hard or failed.

    Returns stems in selection order (failed first, then hardest first).
    """
    s = eligible(scores, manifest)
    cat = categorise(s, t_medium, t_hard)
    return list(_order(s[cat.isin(STUDY_CATEGORIES)])["stem"])


def budgeted(scores: pd.DataFrame, k: int, manifest: pd.DataFrame | None = None) -> list:
    """Budgeted rule: the ``k`` hardest eligible images, failed images first (then by score, ties by stem)."""
    s = eligible(scores, manifest)
    if int(k) != k or k < 0:
        raise SelectionError(f"budget k={k} must be a non-negative whole number.")
    if k > len(s):
        raise SelectionError(f"budget k={k} is larger than the {len(s)} eligible POOL images.")
    return list(_order(s)["stem"].iloc[:int(k)])


def pool_stems(manifest: pd.DataFrame, exclude=()) -> list:
    """Sorted POOL stems that may be selected (not VAL1/GT1/EXCLUDED, nor carrying a tag of ``exclude``)."""
    ok = has_tag(manifest, "POOL")
    for t in (*FORBIDDEN, *exclude):
        ok &= ~has_tag(manifest, t)
    return sorted(manifest.loc[ok, "stem"])


def random_control(candidates, n: int, seed: int = 0) -> list:
    """A seeded random sample of exactly ``n`` stems from ``candidates`` (a manifest -> its POOL, or a list).

    The candidates are sorted first, so the same seed and the same POOL give the same Control set whatever order they
    come in.  The Control set is drawn from the whole POOL, independently of GT2 (overlap is possible and reported).
    """
    pool = pool_stems(candidates) if isinstance(candidates, pd.DataFrame) else sorted(set(map(str, candidates)))
    if int(n) != n or n < 0:
        raise SelectionError(f"control size n={n} must be a non-negative whole number.")
    if n > len(pool):
        raise SelectionError(f"control size n={n} is larger than the {len(pool)} POOL images.")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(pool), size=int(n), replace=False)
    return sorted(pool[i] for i in idx)


def overlap(a, b) -> dict:
    """Sizes of ``a`` only, both, ``b`` only, and the Jaccard index."""
    a, b = set(a), set(b)
    union = len(a | b)
    return {"only_a": len(a - b), "both": len(a & b), "only_b": len(b - a),
            "jaccard": (len(a & b) / union) if union else float("nan")}
