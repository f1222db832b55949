"""Acquisition: per-detection uncertainty -> image scores -> strategies that order the POOL.

Pure: arrays and tables in, arrays, tables and stem lists out (no files, no model).  :mod:`alnb.model.mc` measures
the per-detection statistics; :mod:`alnb.acquisition.scoring` writes the tables.

* :func:`detection_uncertainty`: ``decision_unc`` (doubt of the auto-label decision at ``conf_op``), ``loc_unc``
  (box spread against the data-derived ``box_ref``, :func:`box_ref_from`) and ``hybrid``, their mean, in [0, 1).
* :func:`image_scores`: an image's ``score`` is the mean of its ``TOP_K`` largest ``hybrid`` values.
* :data:`STRATEGIES`: ``{name: fn(pool, k, rng) -> stems}`` (first = most wanted; add one with one line);
  :func:`select` is the one entry point and gives every strategy the same share of empty images
  (``round(k * n_empty / n)``, seeded) and seeded tie-breaks; ``whole_pool`` strategies (the study rule) excepted.

Design notes: docs/design/uncertainty-and-strategies.md
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from alnb.acquisition import tiers as sel

TOP_K = 3  # detections averaged per image in the default image score (see module docstring)
BOX_REF_FALLBACK = 0.05  # box_ref when no candidate has a positive spread (T=1 or dropout off): the old default
SHORTLIST_FACTOR = 3  # uncertainty+diversity: shortlist SHORTLIST_FACTOR * k most uncertain images (PPAL uses 2-4x)
FEATURE_EPS = 1e-8  # floor of a feature's standard deviation when embeddings are standardised
EPS = 1e-7  # probability clamp of decision_unc (as in alnb.model.mc)
IMAGE_COMPONENTS = ["cls_unc", "decision_unc", "entropy", "mutual_info", "box_spread"]
AGGREGATIONS = ("topk", "mean", "max", "sum")


# ------------------------------------------------------------------------------------------ per-detection uncertainty
def box_ref_from(box_spread) -> float:
    """The data's scale of localisation uncertainty: the median of the positive, finite relative box spreads.

    Falls back to :data:`BOX_REF_FALLBACK` when there is none (e.g. ``T=1`` or dropout off).
    """
    v = np.asarray(box_spread, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.median(v)) if len(v) else BOX_REF_FALLBACK


def localisation_unc(box_spread, box_ref: float) -> np.ndarray:
    """Relative box spread (>= 0) mapped to [0, 1): ``1 - 2 ** (-box_spread / box_ref)`` (0.5 at ``box_ref``)."""
    if not box_ref > 0:
        raise ValueError(f"box_ref must be > 0, got {box_ref}")
    s = np.clip(np.asarray(box_spread, dtype=np.float64), 0, None)
    return 1.0 - np.exp2(-s / box_ref)


def decision_unc(conf, conf_op: float) -> np.ndarray:
    """Uncertainty of the auto-label decision at the operating point, in [0, 1]: binary entropy (bits) of
    ``conf ** (ln 0.5 / ln conf_op)``; 1 at ``conf == conf_op``, towards 0 far above and far below it (why:
    docs/design/uncertainty-and-strategies.md)."""
    if not 0 < conf_op < 1:
        raise ValueError(f"the operating point must be in (0, 1), got {conf_op}")
    q = np.clip(np.asarray(conf, dtype=np.float64), EPS, 1 - EPS) ** (math.log(0.5) / math.log(conf_op))
    q = np.clip(q, EPS, 1 - EPS)
    return np.clip(-(q * np.log(q) + (1 - q) * np.log(1 - q)) / math.log(2), 0, 1)


def hybrid_unc(cls_term, box_spread, box_ref: float) -> np.ndarray:
    """Per-detection uncertainty in [0, 1): mean of a class term in [0, 1] (``decision_unc``, or ``cls_unc``) and
    localisation uncertainty."""
    cu = np.clip(np.asarray(cls_term, dtype=np.float64), 0, 1)
    return (cu + localisation_unc(box_spread, box_ref)) / 2


def detection_uncertainty(detections: pd.DataFrame, *, box_ref: float | None = None,
                          conf_op: float | None = None) -> tuple:
    """Copy of a detection table with ``loc_unc``, ``decision_unc`` (with ``conf_op``) and ``hybrid`` added;
    returns ``(table, box_ref)``.

    ``box_ref=None`` derives it from the table (:func:`box_ref_from`); ``conf_op`` is the auto-label operating point
    (without it the class term of ``hybrid`` is ``cls_unc``).
    """
    det = detections.copy()
    ref = box_ref_from(det["box_spread"]) if box_ref is None else float(box_ref)
    det["loc_unc"] = localisation_unc(det["box_spread"], ref) if len(det) else np.zeros(0)
    if conf_op is not None:
        det["decision_unc"] = decision_unc(det["conf"], conf_op) if len(det) else np.zeros(0)
    term = det["decision_unc"] if conf_op is not None else det["cls_unc"]
    det["hybrid"] = hybrid_unc(term, det["box_spread"], ref) if len(det) else np.zeros(0)
    return det, ref


# ---------------------------------------------------------------------------------------------------- image scores
def aggregate(detections: pd.DataFrame, column: str, *, how: str = "topk", k: int = TOP_K) -> pd.Series:
    """Per-image aggregate of a per-detection column (index ``stem``): ``topk`` mean of the ``k`` largest values,
    ``mean``, ``max`` or ``sum``.  Images without a row are absent (the caller decides what they get)."""
    if how not in AGGREGATIONS:
        raise ValueError(f"how must be one of {AGGREGATIONS}, not {how!r}")
    if not len(detections):
        return pd.Series(dtype=float, name=column)
    g = detections.groupby("stem")[column]
    if how == "topk":
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        return g.apply(lambda v: float(np.sort(v.to_numpy(float))[::-1][:k].mean())).rename(column)
    return getattr(g, how)().astype(float).rename(column)


def image_scores(detections: pd.DataFrame, images: pd.DataFrame, *, box_ref: float | None = None,
                 how: str = "topk", k: int = TOP_K) -> pd.DataFrame:
    """One row per image of ``images`` (``stem, n_det, n_cand, max_prob, count_mean, count_var`` ...).

    Adds ``score`` (per-detection ``hybrid`` aggregated by ``how``; top-k mean by default), ``score_sum``,
    ``score_mean``, ``score_max``, ``score_topk`` (the alternatives, for the evaluation), the components
    :data:`IMAGE_COMPONENTS` (same aggregation), ``least_conf = 1 - max_prob``, ``failed`` (nothing above the
    auto-label threshold) and ``empty`` (no candidate at all: every detection column is 0 there; :func:`select` treats
    these images the same way for every strategy).  ``detections`` needs ``stem, cls_unc, box_spread`` and the
    components; ``hybrid`` is computed when missing.
    """
    det = detections if "hybrid" in detections else detection_uncertainty(detections, box_ref=box_ref)[0]
    img = images.copy()
    cols = {}
    for alt in AGGREGATIONS:
        cols[f"score_{alt}"] = aggregate(det, "hybrid", how=alt, k=k)
    cols["score"] = cols[f"score_{how}"]
    for c in IMAGE_COMPONENTS:
        if c in det:
            cols[c] = aggregate(det, c, how=how, k=k)
    agg = pd.DataFrame({c: s.rename(None) for c, s in cols.items()})
    img = img.merge(agg, left_on="stem", right_index=True, how="left")
    for c in cols:
        img[c] = img[c].astype(float).fillna(0.0)
    img["failed"] = img["n_det"] == 0
    img["empty"] = img["n_cand"] == 0
    img["least_conf"] = 1.0 - img["max_prob"]
    first = ["stem", "n_det", "n_cand", "failed", "empty", "score", *IMAGE_COMPONENTS, "least_conf", "max_prob",
             "count_mean", "count_var", "score_topk", "score_mean", "score_max", "score_sum"]
    rest = [c for c in img.columns if c not in first]
    return img[[c for c in first if c in img.columns] + rest].reset_index(drop=True)


# ------------------------------------------------------------------------------------------------------ the pool
@dataclass
class Pool:
    """What strategies see: one row per candidate POOL image.

    Attributes
    ----------
    scores : DataFrame
        ``stem`` + score columns (:func:`image_scores`: ``score``, ``least_conf``, ``entropy``, ``mutual_info``,
        ``box_spread``, ``count_var``, ``failed``, ``n_cand`` ...), one row per image that may be selected.
    embeddings : ndarray, optional
        (n, C) image features, rows aligned with ``scores`` (:func:`alnb.model.mc.pooled_features`); diversity needs them.
    thresholds : tuple, optional
        ``(t_medium, t_hard)`` for the study rule.
    detections : DataFrame, optional
        Per-candidate rows (``stem, cls, hybrid`` ...: the scoring step's ``detections.csv``) for strategies that look
        at the classes of an image's boxes (:func:`class_balanced`).
    class_weights : dict, optional
        ``{class_id: weight}``: how weak the scoring model is on each class, measured on VAL1
        (:func:`class_weights_from_eval`).
    """

    scores: pd.DataFrame
    embeddings: np.ndarray | None = None
    thresholds: tuple | None = None
    detections: pd.DataFrame | None = None
    class_weights: dict | None = None

    def __post_init__(self):
        self.scores = self.scores.reset_index(drop=True)
        if self.scores["stem"].duplicated().any():
            raise ValueError("the pool has duplicate stems")
        if self.embeddings is not None:
            self.embeddings = np.asarray(self.embeddings, dtype=np.float64)
            if len(self.embeddings) != len(self.scores):
                raise ValueError(f"{len(self.embeddings)} embeddings for {len(self.scores)} images")

    def __len__(self):
        return len(self.scores)

    @property
    def stems(self) -> np.ndarray:
        return self.scores["stem"].astype(str).to_numpy()

    def subset(self, mask) -> "Pool":
        mask = np.asarray(mask, bool)
        return Pool(self.scores[mask], None if self.embeddings is None else self.embeddings[mask], self.thresholds,
                    self.detections, self.class_weights)

    def column(self, name: str) -> np.ndarray:
        if name not in self.scores:
            raise KeyError(f"the score table has no column {name!r}: score the pool with alnb.acquisition.scoring.score_pool "
                           f"(columns: {list(self.scores.columns)})")
        return self.scores[name].to_numpy(np.float64)

    def need_embeddings(self, strategy: str) -> np.ndarray:
        if self.embeddings is None:
            raise ValueError(f"strategy {strategy!r} needs image embeddings (embeddings.npz of the scoring step).")
        return self.embeddings


def top_k(pool: Pool, values, k: int, rng: np.random.Generator) -> list:
    """The ``k`` stems with the highest ``values`` (NaN lowest); ties broken by a seeded random permutation."""
    v = np.asarray(values, dtype=np.float64)
    v = np.where(np.isnan(v), -np.inf, v)
    order = np.lexsort((rng.permutation(len(v)), -v))
    return list(pool.stems[order[:k]])


# --------------------------------------------------------------------------------------------- diversity helpers
def standardise(x) -> np.ndarray:
    """Features centred and scaled per dimension (so no channel dominates the Euclidean distance)."""
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean(0)) / np.maximum(x.std(0), FEATURE_EPS)


def k_center_greedy(x, k: int, rng: np.random.Generator, *, first: int | None = None) -> list:
    """Core-set selection (Sener & Savarese 2018): repeatedly take the point farthest from everything taken.

    Starts at ``first`` (default: a random point).  Returns ``k`` row indices in selection order.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    k = min(int(k), n)
    if k <= 0:
        return []
    cur = int(rng.integers(n)) if first is None else int(first)
    picked = [cur]
    dist = np.linalg.norm(x - x[cur], axis=1)
    while len(picked) < k:
        dist[picked] = -1.0
        cur = int(np.argmax(dist))
        picked.append(cur)
        dist = np.minimum(dist, np.linalg.norm(x - x[cur], axis=1))
    return picked


def kmeans_pp(x, k: int, rng: np.random.Generator, *, first: int | None = None) -> list:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each next point drawn with probability ~ squared distance to
    the nearest point taken.  Returns ``k`` distinct row indices in selection order."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    k = min(int(k), n)
    if k <= 0:
        return []
    cur = int(rng.integers(n)) if first is None else int(first)
    picked = [cur]
    d2 = ((x - x[cur]) ** 2).sum(1)
    while len(picked) < k:
        d2[picked] = 0.0
        tot = d2.sum()
        if tot <= 0:  # the rest coincide with taken points: take them at random
            rest = np.setdiff1d(np.arange(n), picked)
            cur = int(rng.choice(rest))
        else:
            cur = int(rng.choice(n, p=d2 / tot))
        picked.append(cur)
        d2 = np.minimum(d2, ((x - x[cur]) ** 2).sum(1))
    return picked


# ------------------------------------------------------------------------------------------------------ strategies
@dataclass(frozen=True)
class StrategyInfo:
    """What :func:`select` needs to know about a strategy, declared where it is registered (:func:`strategy`).

    ``whole_pool``: the strategy defines its own size and takes failed images as part of its rule (no budget, no
    split of failed / empty images); ``failed_share``: failed images only at their POOL share; ``needs``: what the
    pool must carry besides scores (``embeddings``, ``detections``, ``pred_s``, ``thresholds``)."""

    name: str
    fn: Callable
    whole_pool: bool = False
    failed_share: bool = False
    needs: tuple = ()


STRATEGIES: dict = {}
"""Every acquisition strategy by name: ``fn(pool, k, rng) -> stems``.  Add one with one function and the
:func:`strategy` decorator line above it."""

STRATEGY_INFO: dict = {}
""":class:`StrategyInfo` of every strategy of :data:`STRATEGIES`, by name."""


def strategy(name: str, *, whole_pool: bool = False, failed_share: bool = False, needs: tuple = ()):
    """Register the decorated ``fn(pool, k, rng) -> stems`` as strategy ``name`` with its metadata."""
    def register(fn):
        if name in STRATEGIES:
            raise ValueError(f"strategy {name!r} is registered twice")
        STRATEGIES[name] = fn
        STRATEGY_INFO[name] = StrategyInfo(name, fn, whole_pool, failed_share, tuple(needs))
        return fn
    return register


def info(name: str) -> StrategyInfo:
    """The :class:`StrategyInfo` of strategy ``name`` (default metadata for a function put into :data:`STRATEGIES`
    directly)."""
    return STRATEGY_INFO.get(name) or StrategyInfo(name, STRATEGIES[name])


@strategy("random")
def random_strategy(pool: Pool, k: int, rng: np.random.Generator) -> list:
    """Random: a uniform random sample (the control arm)."""
    return list(pool.stems[rng.permutation(len(pool))[:k]])


@strategy("least_confidence")
def least_confidence(pool: Pool, k: int, rng: np.random.Generator) -> list:
    """Least confidence: highest ``1 - max`` class probability of the image (the plain baseline)."""
    return top_k(pool, pool.column("least_conf"), k, rng)


@strategy("entropy")
def entropy(pool: Pool, k: int, rng: np.random.Generator) -> list:
    """Entropy: highest predictive entropy of the mean class probabilities (top-k mean over detections)."""
    return top_k(pool, pool.column("entropy"), k, rng)


@strategy("bald")
def bald(pool: Pool, k: int, rng: np.random.Generator) -> list:
    """BALD: highest mutual information between prediction and dropout mask (epistemic part; top-k mean)."""
    return top_k(pool, pool.column("mutual_info"), k, rng)


@strategy("localisation")
def localisation(pool: Pool, k: int, rng: np.random.Generator) -> list:
    """Localisation: largest box spread over the MC passes, relative to box size (top-k mean)."""
    return top_k(pool, pool.column("box_spread"), k, rng)


@strategy("count_variance")
def count_variance(pool: Pool, k: int, rng: np.random.Generator) -> list:
    """Count variance: the number of detections varies most over the MC passes."""
    return top_k(pool, pool.column("count_var"), k, rng)


@strategy("hybrid")
def hybrid(pool: Pool, k: int, rng: np.random.Generator) -> list:
    """Hybrid: the study's difficulty score (top-k mean of (decision + localisation uncertainty) / 2)."""
    return top_k(pool, pool.column("score"), k, rng)


@strategy("hybrid_sum")
def hybrid_sum(pool: Pool, k: int, rng: np.random.Generator) -> list:
    """Hybrid, summed over all candidate boxes (favours crowded images; kept as the contrast to top-k)."""
    return top_k(pool, pool.column("score_sum"), k, rng)


@strategy("study_rule", whole_pool=True, needs=("thresholds",))
def study_rule(pool: Pool, k: int | None, rng: np.random.Generator) -> list:
    """Study rule: failed images first, then medium + hard at the thresholds, hardest first (budget = its own size).

    With a budget ``k`` the first ``k`` of that order over the whole pool (the budgeted rule, whatever the
    thresholds).  The one definition is :func:`alnb.acquisition.tiers.study_rule` / :func:`alnb.acquisition.tiers.budgeted` (the widget
    uses it too); ties are broken by stem, so ``rng`` is not used.
    """
    if k is None:
        if pool.thresholds is None:
            raise ValueError("the study rule at its own size needs thresholds (pool.thresholds = (t_medium, t_hard))")
        return sel.study_rule(pool.scores, *pool.thresholds)
    return sel.budgeted(pool.scores, int(k))




@strategy("coreset", needs=("embeddings",))
def coreset(pool: Pool, k: int, rng: np.random.Generator) -> list:
    """Core-set (diversity only): k-center greedy on standardised pooled backbone features, random first centre."""
    x = standardise(pool.need_embeddings("coreset"))
    return list(pool.stems[k_center_greedy(x, k, rng)])


@strategy("uncertain_diverse", needs=("embeddings",))
def uncertain_diverse(pool: Pool, k: int, rng: np.random.Generator) -> list:
    """Uncertainty + diversity (PPAL-style): shortlist the ``SHORTLIST_FACTOR * k`` highest hybrid scores, then
    k-means++ seeding on their pooled features, starting at the most uncertain image."""
    x = standardise(pool.need_embeddings("uncertain_diverse"))
    m = min(len(pool), max(int(k), int(math.ceil(SHORTLIST_FACTOR * k))))
    short = top_k(pool, pool.column("score"), m, rng)
    idx = np.array([int(np.flatnonzero(pool.stems == s)[0]) for s in short], dtype=int)
    pick = kmeans_pp(x[idx], k, rng, first=0)
    return [short[i] for i in pick]


def class_weights_from_eval(ev: dict) -> dict:
    """``{class_id: 1 - AP50}`` of a VAL1 evaluation (:func:`alnb.evaluation.step.evaluate`): the classes the model is
    weakest on weigh most; a class VAL1 cannot measure gets the largest weight of the others (or 1)."""
    ap = {int(r["class_id"]): r.get("mAP50") for r in ev["per_class"]}
    w = {c: 1.0 - float(v) for c, v in ap.items() if v is not None and np.isfinite(float(v))}
    top = max(w.values()) if w else 1.0
    return {c: w.get(c, top) for c in ap}


@strategy("class_balanced", needs=("detections",))
def class_balanced(pool: Pool, k: int, rng: np.random.Generator) -> list:
    """Class-balanced uncertainty: the largest ``hybrid`` uncertainty of a box times the weakness ``1 - AP50`` (VAL1)
    of its predicted class, so doubtful boxes of the classes the model is worst on come first (in the spirit of
    CALD's and PPAL's category-aware selection: Yu et al., "Consistency-based Active Learning for Object
    Detection", CVPRW 2022; Yang et al., "Plug and Play Active Learning for Object Detection", CVPR 2024)."""
    if pool.detections is None or pool.class_weights is None:
        raise ValueError("strategy 'class_balanced' needs the pool's detections and the model's class weights "
                         "(alnb.acquisition.scoring.load_pool gives both)")
    d = pool.detections
    d = d[d["stem"].astype(str).isin(set(pool.stems))]
    w = d["cls"].astype(int).map(pool.class_weights).fillna(1.0).to_numpy(float)
    v = pd.Series(d["hybrid"].to_numpy(float) * w, index=d["stem"].astype(str).to_numpy()).groupby(level=0).max()
    return top_k(pool, v.reindex(pool.stems).to_numpy(float), k, rng)


@strategy("study_rule_capped", failed_share=True, needs=("thresholds",))
def study_rule_capped(pool: Pool, k: int, rng: np.random.Generator) -> list:
    """Study rule with failed images priced, not first: medium + hard hardest first, and failed images (nothing above
    the auto-label threshold: mostly defect-free radiographs the model was right about,
    docs/results/2026-12-06-strategy-study.md) only at their share of the POOL, the same rule :func:`select` applies
    to empty images - each costs a quick "no defect" look, and taking them first spent a third of the study rule's
    budget on them."""
    return top_k(pool, pool.column("score"), k, rng)


@strategy("cost_normalised", needs=("pred_s",))
def cost_normalised(pool: Pool, k: int, rng: np.random.Generator) -> list:
    """Uncertainty per predicted labelling second: the hybrid ``score`` over the image's predicted assisted seconds
    ``pred_s`` (:func:`alnb.evaluation.metrics.predicted_seconds`), the cost-sensitive ranking of Settles, Craven & Friedland,
    "Active learning with real annotation costs" (NIPS workshop 2008) - cheap doubtful images first."""
    if "pred_s" not in pool.scores:
        raise ValueError("strategy 'cost_normalised' needs predicted seconds per image (pool.scores['pred_s']: "
                         "alnb.evaluation.metrics.predicted_seconds)")
    return top_k(pool, pool.column("score") / np.maximum(pool.column("pred_s"), 1e-9), k, rng)





DEFAULT_BUDGET_STRATEGY = "random"
"""The strategy a *budgeted* selection uses unless told otherwise (``alnb run --budget K``, notebook 03's and 06's
budget mode, ``rule="budget"``): the one with the best measured result per labelling second on the weld data, or
random when none beats it.  No strategy beats random per labelling second (docs/results/2026-12-06-strategy-study.md,
docs/results/2026-12-03-cycles.md; the numbers: docs/design/uncertainty-and-strategies.md), so the default is random;
``strategy=`` (``--strategy``) picks any other, ``study_rule`` = the seed's order (failed first, then hardest).  The
seed's walk-through (notebook 03 without a budget) keeps the study rule itself."""

SCORE_COLUMNS = {"least_confidence": "least_conf", "entropy": "entropy", "bald": "mutual_info",
                 "localisation": "box_spread", "count_variance": "count_var", "hybrid": "score",
                 "hybrid_sum": "score_sum"}
"""The image score column of each score-based strategy (what the error analysis evaluates)."""


def describe() -> pd.DataFrame:
    """Name and first docstring line of every registered strategy."""
    return pd.DataFrame([{"strategy": n, "description": (f.__doc__ or "").strip().split("\n")[0],
                          "whole_pool": info(n).whole_pool} for n, f in STRATEGIES.items()])


def _failed_mask(pool: Pool, strategy: str) -> np.ndarray:
    """Images held back to their POOL share: empty ones for every strategy, failed ones too for strategies marked
    ``failed_share`` (:func:`study_rule_capped`)."""
    n = len(pool)
    mask = pool.scores["n_cand"].to_numpy() == 0 if "n_cand" in pool.scores else np.zeros(n, bool)
    if info(strategy).failed_share and "failed" in pool.scores:
        mask = mask | pool.scores["failed"].to_numpy(bool)
    return mask


def select(strategy: str, pool: Pool, k: int | None, *, seed: int = 0, budget_s: float | None = None,
           costs=None) -> list:
    """The images strategy ``strategy`` picks from ``pool`` with budget ``k`` (``None``: the study rule's own size),
    or with a budget of ``budget_s`` predicted labelling seconds (``pool.scores["pred_s"]``, :func:`select_seconds`).

    Applies the one rule for empty images (module docstring): ``round(k * n_empty / n)`` empty images drawn at
    random, the rest chosen by the strategy among the scored images.  Same seed and pool -> same selection.
    Returns ``k`` distinct stems (strategy's picks first, then the empty ones).
    """
    if strategy not in STRATEGIES:
        raise KeyError(f"unknown strategy {strategy!r}; choose one of {sorted(STRATEGIES)}")
    if budget_s is not None:
        return select_seconds(strategy, pool, budget_s, seed=seed)
    fn = STRATEGIES[strategy]
    rng = np.random.default_rng(seed)
    if info(strategy).whole_pool:
        return list(fn(pool, k, rng))
    if k is None or int(k) != k or k < 0:
        raise ValueError(f"strategy {strategy!r} needs a budget k >= 0, got {k!r}")
    k = int(k)
    n = len(pool)
    if k > n:
        raise ValueError(f"budget k={k} is larger than the {n} candidate POOL images")
    empty = _failed_mask(pool, strategy)
    n_empty = int(empty.sum())
    k_empty = int(round(k * n_empty / n)) if n else 0
    k_empty = min(n_empty, max(k_empty, k - (n - n_empty)))
    picks = list(fn(pool.subset(~empty), k - k_empty, rng)) if k - k_empty > 0 else []
    empties = sorted(pool.stems[empty])
    extra = [empties[i] for i in rng.permutation(n_empty)[:k_empty]]
    out = picks + extra
    if len(set(out)) != k:
        raise RuntimeError(f"strategy {strategy!r} returned {len(set(out))} distinct images for a budget of {k}")
    return out


def ranking(strategy: str, pool: Pool, *, seed: int = 0) -> list:
    """Every POOL image in the order ``strategy`` wants them (first = most wanted), with the images held back to
    their share (empty ones; failed ones for ``failed_share`` strategies) spread evenly through the order - so every
    prefix holds about their POOL share, the image-budget rule of :func:`select`."""
    fn = STRATEGIES[strategy]
    rng = np.random.default_rng(seed)
    if info(strategy).whole_pool:
        return list(fn(pool, len(pool), rng))
    held = _failed_mask(pool, strategy)
    rest = pool.subset(~held)
    order = list(fn(rest, len(rest), rng)) if len(rest) else []
    spare = sorted(pool.stems[held])
    spare = [spare[i] for i in rng.permutation(len(spare))]
    n = len(order) + len(spare)
    slots = {int((j + 0.5) * n / len(spare)): j for j in range(len(spare))}  # distinct: n / len(spare) >= 1
    rest_it = iter(order)
    return [spare[slots[p]] if p in slots else next(rest_it) for p in range(n)]


def select_seconds(strategy: str, pool: Pool, budget_s: float, *, seed: int = 0) -> list:
    """The longest prefix of :func:`ranking` whose predicted labelling seconds (``pool.scores["pred_s"]``) fit in
    ``budget_s``: a seconds-budgeted selection never exceeds its budget (it may stop a little below it: the next
    image in the strategy's order would not fit)."""
    if "pred_s" not in pool.scores:
        raise ValueError("a budget in seconds needs predicted seconds per image (pool.scores['pred_s']: "
                         "alnb.evaluation.metrics.predicted_seconds)")
    if not budget_s >= 0:
        raise ValueError(f"a seconds budget must be >= 0, got {budget_s!r}")
    cost = dict(zip(pool.stems, pool.scores["pred_s"].to_numpy(float)))
    out, used = [], 0.0
    for s in ranking(strategy, pool, seed=seed):
        if used + cost[s] > budget_s:
            break
        out.append(s)
        used += cost[s]
    return out
