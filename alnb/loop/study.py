"""The experiment harness: acquisition strategies x labelling budgets x rounds x seeds, cached, resumable, local or
on a Ray cluster.

One **seed** = one split (``<study_dir>/seed<k>/``) with its CAL1 and POOL scores; every (strategy, budget) runs its
own **chain** of ``rounds`` cycles there (``chains/<strategy>__<budget>/``): the strategy picks ``budget`` images
with the chain's current model's scores, the simulated annotator reveals them, a model trains on GT1 + everything the
chain took exactly as CAL<k> does (:func:`alnb.loop.pipeline.train_and_evaluate`) and is evaluated on VAL1 (and a
held-out TEST set).  ``random`` is just another strategy (the control arm).  Every finished round writes one row file
under ``results/`` and is never touched again, so an interrupted study resumes; ``engine="ray"`` runs the chains as
Ray tasks with bit-identical numbers.  Results: :func:`results_table`, :func:`summarise`, :func:`paired_differences`,
:func:`verdicts`, :func:`label_savings`, :func:`seconds_savings`; ``alnb study`` writes the CSVs, figures and
``report.md``.

Design notes: docs/design/study.md
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from alnb.acquisition import strategies as acq
from alnb.core.records import Options, takes_options
from alnb.evaluation.stats import interval, t_quantile  # noqa: F401  (moved there; re-exported)
from alnb.core.cpu import ENV_THREADS, default_threads
from alnb.core.logs import quiet
from alnb.core.scoretable import scores_file
from alnb.core.workspace import WorkspaceError, atomic_write_json, atomic_write_text, cal_name, gt_tag, train_tags
from alnb.evaluation import stats
from alnb.evaluation.metrics import CostModel, coco_bootstrap_diff, coco_matches, labelling_seconds, predicted_seconds
from alnb.evaluation.step import evaluate, evaluate_external, load_predictions
from alnb.loop import forecaststep as fs
from alnb.loop import selection as sel

REFERENCE = "random"  # the strategy every other one is compared with
BASELINE = "gt1_only"  # CAL1 (GT1 alone): round 0, the start of every learning curve
RULE_BUDGET = "rule"  # budget label: the study rule's own size on that seed (every strategy then takes that many)
LEVEL = 0.95  # confidence level of the intervals over seeds
POWER = 0.8  # power of the smallest detectable effect reported next to every verdict
METRICS = ("mAP50", "mAP50-95", "precision", "recall", "f1", "boost")
TEST_SEED = 2000003  # weld generator seed of the held-out TEST images (study images: 0; the checkpoint's: 1000003)
# Training throughput (images x epochs per second, validation included) used for the time estimate until a run of
# the study has been measured: quick and smoke measured on 2 CPU cores, paper a rough GPU guess (where the numbers
# come from: docs/design/study.md).
DEFAULT_IMAGES_PER_S = {"smoke": 20.0, "quick": 46.0, "paper": 150.0}
OVERHEAD_S = {"smoke": 5.0, "quick": 15.0, "paper": 30.0}  # per run: evaluation on VAL1 + selection
# per seed: dataset validation + split, MC scoring of the POOL (docs/results/2026-12-07-measured-times.md)
SEED_OVERHEAD_S = {"smoke": 5.0, "quick": 25.0, "paper": 30.0}
# the report's forecast backtest: the measures it shows, and the file it writes (benchmarks/forecast_backtest.py's
# format: a backtest file for alnb.loop.forecaststep)
FORECAST_MEASURES = {"mAP50-95": "VAL1 mAP50-95", "test_mAP50-95": "TEST mAP50-95"}
FORECAST_BACKTEST_FILE = "forecast_backtest.json"


def parse_budget(budget) -> tuple:
    """``("images", n)`` for ``100``, ``("seconds", s)`` for ``"600s"`` (labelling seconds predicted from the
    auto-labels), ``("rule", None)`` for ``"rule"``; raises ``ValueError`` otherwise."""
    b = str(budget).strip().lower()
    if b == RULE_BUDGET:
        return "rule", None
    try:
        if b.endswith("s"):
            v = float(b[:-1])
            if v > 0 and math.isfinite(v):
                return "seconds", v
        else:
            v = float(b)
            if v >= 1 and v.is_integer():
                return "images", int(v)
    except ValueError:
        pass
    raise ValueError(f"a budget is a positive number of images (100), of labelling seconds (600s) or "
                     f"{RULE_BUDGET!r}, not {budget!r}")


def budget_label(budget) -> str:
    """The canonical text of a budget (``100``, ``600s``, ``rule``), used in file names and tables."""
    kind, v = parse_budget(budget)
    return RULE_BUDGET if kind == "rule" else (str(v) if kind == "images" else f"{v:g}s")


@dataclass(frozen=True)
class Grid:
    """A study grid: strategies x budgets x seeds, ``rounds`` cycles per chain, training profile and sizes.

    ``budgets``: per-round sizes (:func:`parse_budget`: images, ``<s>s`` seconds, or ``rule``).  ``test``: images of
    a held-out TEST set generated from :data:`TEST_SEED` (weld data only; 0 = evaluate on VAL1 alone).
    """

    strategies: tuple
    budgets: tuple
    seeds: tuple
    profile: str = "quick"
    T: int = 20
    n_val: int | float = 178
    n_gt1: int | float = 177
    rounds: int = 1
    test: int = 0
    note: str = ""


GRIDS = {
    # Tests: seconds on a tiny generated dataset.
    "smoke": Grid(("random", "hybrid"), (4,), (0, 1), profile="smoke", T=4, n_val=10, n_gt1=10,
                  note="test grid: tiny data, 1-epoch models"),
    # 2 CPU cores: "do the study rule and the best uncertainty strategy beat random?"  3 strategies x 1 budget x 5
    # seeds = 15 trainings of GT1 + 100 images, plus CAL1 once per seed (shared by all strategies).
    "small": Grid(("random", "study_rule", "hybrid"), (100,), (0, 1, 2, 3, 4), profile="quick",
                  note="study rule and hybrid uncertainty vs random, 5 seeds, 100 images, quick profile (CPU)"),
    # The cycles protocol on 2 CPU cores: 3 rounds of 50 images per chain, 5 seeds.
    "cycles": Grid(("random", "hybrid", "uncertain_diverse"), (50,), (0, 1, 2, 3, 4), profile="quick", rounds=3,
                   note="cycles protocol: 3 rounds x 50 images, 5 seeds, quick profile (CPU)"),
    # The GPU grid (paper profile): one strategy of each family (random, the study rule, hybrid, least confidence,
    # BALD, core-set, uncertainty + diversity) x 3 budgets x 3 seeds = 63 runs + 3 CAL1.
    "full": Grid(("random", "study_rule", "hybrid", "least_confidence", "bald", "coreset", "uncertain_diverse"),
                 (50, 100, 200), (0, 1, 2), profile="paper",
                 note="one strategy per family, 3 budgets, 3 seeds, paper profile (GPU)"),
}


def get_grid(grid: str | Grid = "small", **overrides) -> Grid:
    """A grid by name (:data:`GRIDS`) with fields replaced by ``overrides`` (None values ignored)."""
    if isinstance(grid, str) and grid not in GRIDS:
        raise KeyError(f"unknown grid {grid!r}; choose one of {sorted(GRIDS)}")
    g = GRIDS[grid] if isinstance(grid, str) else grid
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items() if v is not None}
    g = replace(g, **kw)
    unknown = [s for s in g.strategies if s not in acq.STRATEGIES]
    if unknown:
        raise KeyError(f"unknown strategies {unknown}; choose from {sorted(acq.STRATEGIES)}")
    if REFERENCE not in g.strategies:
        raise ValueError(f"the grid needs the reference strategy {REFERENCE!r} (every verdict is against it)")
    if len(g.seeds) < 1 or len(set(g.seeds)) != len(g.seeds):
        raise ValueError(f"seeds must be distinct, got {g.seeds}")
    g = replace(g, budgets=tuple(budget_label(b) for b in g.budgets))
    if int(g.rounds) != g.rounds or g.rounds < 1:
        raise ValueError(f"rounds must be a whole number >= 1, got {g.rounds}")
    if int(g.test) != g.test or g.test < 0:
        raise ValueError(f"test must be a number of TEST images >= 0, got {g.test}")
    return g


# ------------------------------------------------------------------------------------------------------- statistics
def verdict_of(iv: dict) -> str:
    """``better`` when the interval of the paired difference lies above 0, ``worse`` below, else ``no detectable
    difference``; ``too few seeds`` without an interval."""
    if iv["n"] < 2 or not np.isfinite(iv["lo"]):
        return "too few seeds"
    if iv["lo"] > 0:
        return "better"
    if iv["hi"] < 0:
        return "worse"
    return "no detectable difference"


def _curve(points: pd.DataFrame, x: str, y: str) -> tuple:
    """Sorted (x, y) arrays of a curve; repeated x values averaged."""
    g = points.groupby(x)[y].mean().sort_index()
    return g.index.to_numpy(float), g.to_numpy(float)


def min_detectable_effect(sd: float, n: int, level: float = LEVEL, power: float = POWER) -> float:
    """The smallest true mean paired difference a two-sided t-test over ``n`` seeds at ``level`` detects with
    probability ``power``, given the paired differences' standard deviation ``sd``: ``(t_{(1+level)/2, n-1} +
    t_{power, n-1}) * sd / sqrt(n)`` (the usual normal-approximation formula with t quantiles; NaN for n < 2)."""
    if n < 2 or not np.isfinite(sd):
        return float("nan")
    return float(stats.min_detectable_effect(sd, n, alpha=1 - level, power=power))


KEYS = ["strategy", "budget", "round"]  # one point of a learning curve (over seeds)


def _with_round(table: pd.DataFrame) -> pd.DataFrame:
    """A table without a ``round`` column is a one-round study (the baseline: round 0)."""
    if "round" in table:
        return table
    return table.assign(round=np.where(table["strategy"] == BASELINE, 0, 1))


def paired_differences(table: pd.DataFrame, *, metric: str = "mAP50", x: str = "images",
                       reference: str = REFERENCE) -> pd.DataFrame:
    """Each run's ``metric`` minus the reference strategy's on the **same seed**, at the same ``x``.

    The reference value is read off that seed's reference curve (all its runs, every budget and round, + the
    ``gt1_only`` point at 0) by linear interpolation, so strategies whose selections differ in size (the study rule,
    or ``x="labelling_s"``) are compared at their own ``x``; outside the reference's range the difference is NaN
    (never extrapolated).  Returns ``strategy, budget, round, seed, x, metric, reference, diff``.
    """
    table = _with_round(table)
    rows = []
    for seed, g in table.groupby("seed"):
        ref = g[g["strategy"].isin([reference, BASELINE])]
        if ref["strategy"].eq(reference).sum() == 0:
            continue
        xs, ys = _curve(ref, x, metric)
        for _, r in g[~g["strategy"].isin([reference, BASELINE])].iterrows():
            xv = float(r[x])
            inside = len(xs) and xs[0] - 1e-9 <= xv <= xs[-1] + 1e-9
            refv = float(np.interp(xv, xs, ys)) if inside else float("nan")
            rows.append({"strategy": r["strategy"], "budget": r["budget"], "round": int(r["round"]), "seed": seed,
                         "x": xv, "metric": float(r[metric]), "reference": refv, "diff": float(r[metric]) - refv})
    return pd.DataFrame(rows, columns=["strategy", "budget", "round", "seed", "x", "metric", "reference", "diff"])


def verdicts(table: pd.DataFrame, *, metric: str = "mAP50", x: str = "images",
             reference: str = REFERENCE) -> pd.DataFrame:
    """Per (strategy, budget, round): mean paired difference to the reference with its 95 % interval over seeds,
    the verdict (:func:`verdict_of`) and ``mde``, the smallest true difference these seeds detect with 80 % power
    (:func:`min_detectable_effect`): a "no detectable difference" says nothing about effects below it."""
    table = _with_round(table)
    d = paired_differences(table, metric=metric, x=x, reference=reference)
    rows = []
    for (s, b, r), g in d.groupby(KEYS, sort=False):
        iv = interval(g["diff"])
        rows.append({"strategy": s, "budget": b, "round": int(r), "metric": metric, "x": x, "n_seeds": iv["n"],
                     "mean_diff": iv["mean"], "lo": iv["lo"], "hi": iv["hi"], "verdict": verdict_of(iv),
                     "mde": min_detectable_effect(iv["sd"], iv["n"])})
    return pd.DataFrame(rows, columns=["strategy", "budget", "round", "metric", "x", "n_seeds", "mean_diff", "lo",
                                       "hi", "verdict", "mde"])


def verdict_table(table: pd.DataFrame, metrics=("mAP50", "mAP50-95"), xs=("images", "labelling_s")) -> pd.DataFrame:
    """:func:`verdicts` of every metric of ``metrics`` per image and per labelling second (``xs``), one table
    (``verdicts.csv``)."""
    return pd.concat([verdicts(table, metric=m, x=x) for m in metrics for x in xs], ignore_index=True)


NOISE_MEASURES = ("mAP50", "mAP50-95", "boost")  # the one-seed verdict's measures (alnb.ui.report.verdict)


def noise_from_study(table: pd.DataFrame, measures=NOISE_MEASURES) -> dict:
    """Seed-to-seed noise of a one-seed comparison of two selections, measured by a study: per measure the pooled
    standard deviation of the paired differences to random on the same seed (:func:`paired_differences`; one group
    per strategy x budget x round with two or more seeds, pooled with each group's degrees of freedom).
    ``{measure: {sd, n_seeds, n_groups}}``; a measure without such groups is left out."""
    out = {}
    for m in measures:
        if m not in table:
            continue
        d = paired_differences(table, metric=m).dropna(subset=["diff"])
        ss, df, n_groups, seeds = 0.0, 0, 0, set()
        for _, g in d.groupby(KEYS):
            if len(g) >= 2:
                ss += float(np.var(g["diff"].to_numpy(float), ddof=1)) * (len(g) - 1)
                df += len(g) - 1
                n_groups += 1
                seeds |= set(g["seed"])
        if df:
            out[m] = {"sd": math.sqrt(ss / df), "n_seeds": len(seeds), "n_groups": n_groups}
    return out


def record_noise(ws, study_dir) -> dict:
    """Write the workspace's ``metrics/noise.json``: the seed-to-seed noise a study on the same data measured
    (:func:`noise_from_study` on ``<study_dir>/results.csv``, each measure with its source), which the workspace's
    one-seed verdicts then use (:func:`alnb.ui.report.measured_noise`; measures the study cannot give keep the
    project's default).  Returns the record."""
    study_dir = Path(study_dir)
    path = study_dir / "results.csv"
    if not path.is_file():
        raise WorkspaceError(f"no results.csv in {study_dir}: run the strategy study first (notebook 05, alnb study).")
    rec = {m: {"sd": v["sd"], "n_seeds": v["n_seeds"],
               "source": f"the strategy study in {study_dir.name}/ ({v['n_groups']} selection(s) vs random, "
                         f"{v['n_seeds']} seeds)"}
           for m, v in noise_from_study(pd.read_csv(path)).items()}
    ws.save_json("noise", rec)
    return rec


def summarise(table: pd.DataFrame, metrics=METRICS) -> pd.DataFrame:
    """Means and 95 % intervals over seeds per (strategy, budget, round): ``images``, ``boxes``, ``labelling_s``
    (means) and ``<metric>``, ``<metric>_lo``, ``<metric>_hi`` for each metric, ``n_seeds``."""
    table = _with_round(table)
    rows = []
    for (s, b, r), g in table.groupby(KEYS, sort=False):
        row = {"strategy": s, "budget": b, "round": int(r), "n_seeds": int(g["seed"].nunique())}
        for c in ("images", "boxes", "labelling_s", "manual_s"):
            if c in g:
                row[c] = float(g[c].mean())
        for m in metrics:
            if m in g:
                iv = interval(g[m])
                row.update({m: iv["mean"], f"{m}_lo": iv["lo"], f"{m}_hi": iv["hi"]})
        rows.append(row)
    return pd.DataFrame(rows)


def random_images_for(value: float, xs, ys) -> float:
    """Images (or seconds) the reference curve ``(xs, ys)`` needs to reach ``value`` (linear interpolation on its
    running maximum, so a noisy dip does not create two answers); NaN beyond the curve's best value."""
    xs, ys = np.asarray(xs, float), np.maximum.accumulate(np.asarray(ys, float))
    if not len(xs) or not np.isfinite(value) or value > ys[-1] + 1e-12:
        return float("nan")
    if value <= ys[0]:
        return float(xs[0])
    i = int(np.searchsorted(ys, value, side="left"))  # first point at or above value
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return float(x1 if y1 == y0 else x0 + (value - y0) * (x1 - x0) / (y1 - y0))


def label_savings(table: pd.DataFrame, *, metric: str = "mAP50", reference: str = REFERENCE) -> pd.DataFrame:
    """How many reference (random) images reach each strategy's mean ``metric``: read off the mean random curve
    (GT1 alone = 0 images).  ``saved_images = random_images - images`` (> 0: the strategy saves labels); NaN when
    the strategy is better than every random point (``beyond_reference``)."""
    summ = summarise(table, metrics=(metric,))
    ref = summ[summ["strategy"].isin([reference, BASELINE])]
    xs, ys = _curve(ref, "images", metric)
    rows = []
    for _, r in summ[~summ["strategy"].isin([reference, BASELINE])].iterrows():
        need = random_images_for(r[metric], xs, ys)
        rows.append({"strategy": r["strategy"], "budget": r["budget"], "round": r["round"], "images": r["images"],
                     metric: r[metric], "random_images": need,
                     "saved_images": need - r["images"] if np.isfinite(need) else np.nan,
                     "beyond_reference": bool(np.isfinite(r[metric]) and not np.isfinite(need))})
    return pd.DataFrame(rows, columns=["strategy", "budget", "round", "images", metric, "random_images",
                                       "saved_images", "beyond_reference"])


def seconds_savings(table: pd.DataFrame, *, metric: str = "mAP50-95", reference: str = REFERENCE) -> pd.DataFrame:
    """Per (strategy, budget, round), paired over seeds: the labelling seconds random needs (read off that seed's
    random curve of ``metric`` over labelling seconds) to reach the strategy's ``metric``, and the share saved,
    ``saved = 1 - strategy seconds / random seconds`` (> 0: the strategy needs fewer seconds), with its 95 % interval
    over the seeds where random reaches it with some labelling (``n_reached`` of ``n_seeds``).  ``n_at_gt1``: seeds
    where the strategy is no better than GT1 alone (CAL1), so random needs 0 seconds and the strategy's seconds
    bought nothing (``saved`` would be minus infinity there: left out of the interval, which is then optimistic);
    the other seeds (``n_seeds - n_reached - n_at_gt1``) lie beyond random's curve."""
    table = _with_round(table)
    per = []
    for seed, g in table.groupby("seed"):
        ref = g[g["strategy"].isin([reference, BASELINE])]
        if ref["strategy"].eq(reference).sum() == 0:
            continue
        xs, ys = _curve(ref, "labelling_s", metric)
        for _, r in g[~g["strategy"].isin([reference, BASELINE])].iterrows():
            need = random_images_for(float(r[metric]), xs, ys)
            per.append({"strategy": r["strategy"], "budget": r["budget"], "round": int(r["round"]), "seed": seed,
                        "labelling_s": float(r["labelling_s"]), "random_s": need,
                        "at_gt1": bool(np.isfinite(need) and need <= 0),
                        "saved": 1 - float(r["labelling_s"]) / need if np.isfinite(need) and need > 0 else np.nan})
    d = pd.DataFrame(per, columns=["strategy", "budget", "round", "seed", "labelling_s", "random_s", "at_gt1", "saved"])
    rows = []
    for (s, b, r), g in d.groupby(KEYS, sort=False):
        iv = interval(g["saved"])
        rows.append({"strategy": s, "budget": b, "round": r, "metric": metric, "n_seeds": len(g), "n_reached": iv["n"],
                     "n_at_gt1": int(g["at_gt1"].sum()), "labelling_s": float(g["labelling_s"].mean()),
                     "random_s": float(g["random_s"].mean()), "saved": iv["mean"], "saved_lo": iv["lo"],
                     "saved_hi": iv["hi"]})
    return pd.DataFrame(rows, columns=["strategy", "budget", "round", "metric", "n_seeds", "n_reached", "n_at_gt1",
                                       "labelling_s", "random_s", "saved", "saved_lo", "saved_hi"])


# ---------------------------------------------------------------------------------------------------- the runs
@dataclass
class StudyResult:
    """What :func:`run_study` returns: the tidy table, its summaries and where things were written."""

    table: pd.DataFrame
    summary: pd.DataFrame
    verdicts: pd.DataFrame
    savings: pd.DataFrame
    study_dir: Path
    figures: dict = field(default_factory=dict)
    report: Path | None = None
    trained: list = field(default_factory=list)  # run ids trained in this call (not reused)
    seconds: float = 0.0
    seconds_savings: pd.DataFrame | None = None


def seed_dir(study_dir, seed: int) -> Path:
    """The seed workspace: split, CAL1 and its scores, shared by every chain of the seed."""
    return Path(study_dir) / f"seed{seed}"


def chain_dir(study_dir, seed: int, strategy: str, budget) -> Path:
    """The workspace of one (strategy, budget) chain of a seed."""
    return seed_dir(study_dir, seed) / "chains" / f"{strategy}__{budget_label(budget)}"


def row_file(study_dir, seed: int, strategy: str, budget, round: int = 1) -> Path:
    """``<study_dir>/results/seed<k>__<strategy>__<budget>__r<round>.json`` (the baseline: ``gt1_only``, budget 0,
    round 0)."""
    b = "0" if strategy == BASELINE else budget_label(budget)
    return Path(study_dir) / "results" / f"seed{seed}__{strategy}__{b}__r{int(round)}.json"


def _images_per_s(study_dir: Path, profile: str) -> float:
    """Measured training throughput of earlier runs of this study (median), else :data:`DEFAULT_IMAGES_PER_S`."""
    vals = []
    for f in list(Path(study_dir).glob("seed*/runs/*/alnb_run.json")) + list(
            Path(study_dir).glob("seed*/chains/*/runs/*/alnb_run.json")):
        try:
            info = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if info.get("profile") == profile and info.get("images_per_s"):
            vals.append(float(info["images_per_s"]))
    return float(np.median(vals)) if vals else DEFAULT_IMAGES_PER_S.get(profile, DEFAULT_IMAGES_PER_S["quick"])


def estimate_seconds(study_dir, grid: Grid, *, pool_size: int | None = None, workers: int = 1,
                     train_overrides: dict | None = None) -> dict:
    """Time estimate of the runs still to do: images x epochs / measured images per second + a per-run overhead,
    divided over ``workers`` parallel workers (the chains of a seed wait for its CAL1).

    ``pool_size`` sizes the study rule's budget and the seconds budgets (default: a 419-image POOL, the study's).
    ``train_overrides``: the study's (``epochs``, ``finetune_epochs=None`` = every model trained fresh, ...).
    """
    # heavy, imported where used: tqdm, matplotlib and the alnb modules that load them
    from alnb.model.train import get_profile, round_epochs

    prof = get_profile(grid.profile, **dict(train_overrides or {}))
    ips = _images_per_s(study_dir, grid.profile)
    n_gt1 = grid.n_gt1 if isinstance(grid.n_gt1, int) else 177
    pool = pool_size or 419
    per_image_s = 6 * CostModel().t_draw * 0.5  # ~30 s of assisted labelling per image (docs/guide/strategies.md, the small grid)
    round_ep = round_epochs(prof)  # a warm start trains finetune_epochs, a fresh round model all epochs
    base_s, chain_s, n_runs = 0.0, 0.0, 0
    for seed in grid.seeds:
        if not (seed_dir(study_dir, seed) / "runs" / "CAL1" / "alnb_run.json").is_file():
            base_s += n_gt1 * prof.epochs / ips + OVERHEAD_S.get(grid.profile, 20.0) + SEED_OVERHEAD_S.get(
                grid.profile, 30.0)
            n_runs += 1
        for s in grid.strategies:
            for b in grid.budgets:
                kind, v = parse_budget(b)
                k = int(round(0.6 * pool)) if kind == "rule" else (v if kind == "images" else int(v / per_image_s))
                for r in range(1, grid.rounds + 1):
                    if row_file(study_dir, seed, s, b, r).is_file():
                        continue
                    chain_s += (n_gt1 + r * k) * round_ep / ips + OVERHEAD_S.get(grid.profile, 20.0)
                    chain_s += SEED_OVERHEAD_S.get(grid.profile, 30.0) if r < grid.rounds else 0.0  # rescoring
                    n_runs += 1
    w = max(1, int(workers))
    return {"seconds": round((base_s + chain_s) / w, 1), "runs": n_runs, "images_per_s": round(ips, 2),
            "workers": w}


def _eval_row(ev: dict, test: dict | None) -> dict:
    o = ev["overall"]
    row = {"mAP50": ev["mAP50"], "mAP50-95": ev["mAP50-95"], "precision": o["precision"], "recall": o["recall"],
           "f1": o["f1"], "boost": o["boost"], "conf": ev["conf"]}
    for k, v in (test or {}).items():
        row[f"test_{k}"] = v
    return row


def _selection_costs(scores: pd.DataFrame, manifest: pd.DataFrame, stems, costs) -> dict:
    """Boxes and labelling seconds of a selection: manual (draw every box) and assisted (correct the auto-labels of
    the model that scored the pool -- the pre-annotations the queue would carry: verify each proposal, delete false
    positives, draw misses; :func:`alnb.evaluation.metrics.labelling_seconds`)."""
    s = scores.set_index("stem").loc[list(stems)]
    n_gt = manifest.set_index("stem").loc[list(stems), "n_boxes"].astype(int)
    n_pred = s["n_det"].astype(int)
    fp = s["n_fp"].astype(int) if "n_fp" in s else pd.Series(0, index=s.index)
    fn = s["n_fn"].astype(int) if "n_fn" in s else n_gt
    t = labelling_seconds(int(n_gt.sum()), int(n_pred.sum()), int(fp.sum()), int(fn.sum()), len(s), costs)
    out = {"boxes": int(n_gt.sum()), "labelling_s": t["assisted_s"], "manual_s": t["manual_s"],
           "n_failed": int(s["failed"].astype(bool).sum()),
           "n_empty": int((s["n_cand"] == 0).sum()) if "n_cand" in s else 0}
    if "pred_s" in s:
        out["predicted_s"] = float(s["pred_s"].sum())
    return out


def _write_row(path: Path, row: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, row)


def _scored_for(ws, key: str, T: int) -> bool:
    try:
        rec = ws.load_json("study_scoring")
    except Exception:  # noqa: BLE001 - missing: not scored for this study yet
        return False
    return rec.get("key") == key and rec.get("T") == T and (ws.root / "scores.csv").is_file()


def test_dir_for(study_dir, grid: Grid) -> Path | None:
    """The held-out TEST dataset of a study (``<study_dir>/test_data``, weld images from :data:`TEST_SEED`)."""
    return Path(study_dir) / "test_data" if grid.test else None


def _test_eval(ws, name: str, test_dir: Path | None, out: Path) -> dict | None:
    """The model's figures on the TEST set at its VAL1 operating point; its predictions go to ``out`` (for the
    paired bootstrap of the evaluation noise)."""
    if test_dir is None:
        return None

    r = evaluate_external(ws, name, test_dir, save_predictions=out)
    return {k: r[k] for k in ("mAP50", "mAP50-95", "precision", "recall", "boost", "n_images")}


def _with_test(study_dir, grid: Grid, path: Path, row: dict, ws) -> dict:
    """A finished row of a study that has a TEST set now but did not when the row was written: its model (kept in
    the workspace ``ws``) is evaluated on TEST and the row gains the ``test_*`` figures; nothing else in it changes
    (no retraining, the VAL1 figures stay as they were).  Rows that have them, or a study without TEST: as is."""
    td = test_dir_for(study_dir, grid)
    if td is None or row.get("test_mAP50") is not None:
        return row
    test = _test_eval(ws, row["run"], td, Path(study_dir) / "predictions" / f"{path.stem}.npz")
    row = {**row, **{f"test_{k}": v for k, v in test.items()}}
    _write_row(path, row)
    return row


def run_base(study_dir, data_dir, grid: Grid, seed: int, *, costs=None, train_overrides: dict | None = None) -> dict:
    """A seed's shared start: setup (its split), CAL1 on GT1, MC scoring of the POOL; writes the ``gt1_only`` row
    and returns it (``trained``: whether CAL1 was trained now)."""
    from alnb.loop import pipeline
    from alnb.acquisition import scoring

    costs = costs or CostModel()
    overrides = dict(train_overrides or {})
    ws = pipeline.setup(seed_dir(study_dir, seed), data_dir, n_val=grid.n_val, n_gt1=grid.n_gt1, seed=seed, log=None)
    if ws.mode != "simulation":
        raise ValueError(f"{data_dir}: the study needs every image labelled (simulation mode) to reveal selections.")
    cal1 = pipeline.train_and_evaluate(ws, "CAL1", ["GT1"], grid.profile, seed=seed, **overrides)
    if not _scored_for(ws, cal1["train"].key, grid.T):
        scoring.score_pool(ws, "CAL1", T=grid.T, seed=seed, progress=False)
        ws.save_json("study_scoring", {"key": cal1["train"].key, "T": grid.T})
    base = row_file(study_dir, seed, BASELINE, 0, 0)
    if not base.is_file():
        test = _test_eval(ws, "CAL1", test_dir_for(study_dir, grid), Path(study_dir) / "predictions" /
                          f"seed{seed}__{BASELINE}__0__r0.npz")
        res = cal1["train"]
        _write_row(base, {"strategy": BASELINE, "budget": "0", "round": 0, "seed": seed, "images": 0, "new_images": 0,
                          "boxes": 0, "labelling_s": 0.0, "manual_s": 0.0, "n_failed": 0, "n_empty": 0,
                          **_eval_row(cal1["eval"], test), "train_images": int(res.info.get("n_train", 0)),
                          "train_s": float(res.seconds), "reused": bool(res.reused), "run": "CAL1",
                          "selection_sha": "", "scores_model": ""})
    row = _with_test(study_dir, grid, base, json.loads(base.read_text()), ws)
    return {**row, "trained": not cal1["train"].reused}


CHAIN_FILES = ("scores.csv", "detections.csv", "embeddings.npz", "metrics/thresholds.json", "metrics/mc_scoring.json",
               "metrics/difficulty_vs_errors.json", "metrics/operating_point_CAL1.json", "metrics/eval_CAL1.json",
               "metrics/study_scoring.json")


def _chain_workspace(study_dir, data_dir, grid: Grid, seed: int, strategy: str, budget):
    """The chain's workspace: the seed's split (same dataset, sizes and seed), CAL1 and its scores copied in."""
    from alnb.loop import pipeline
    from alnb.acquisition.scoring import keep_model_copy

    base = seed_dir(study_dir, seed)
    d = chain_dir(study_dir, seed, strategy, budget)
    fresh = not (d / "runs" / "CAL1" / "alnb_run.json").is_file()
    ws = pipeline.setup(d, data_dir, n_val=grid.n_val, n_gt1=grid.n_gt1, seed=seed, log=None)
    if fresh:
        shutil.copytree(base / "runs" / "CAL1", d / "runs" / "CAL1", dirs_exist_ok=True)
        for rel in CHAIN_FILES:
            if (base / rel).is_file():
                (d / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(base / rel, d / rel)
        keep_model_copy(ws, "CAL1")
    return ws


def run_chain(study_dir, data_dir, grid: Grid, seed: int, strategy: str, budget, *, costs=None,
              train_overrides: dict | None = None) -> list:
    """Every round of one (seed, strategy, budget) chain (module docstring); returns the row dicts (``trained``:
    the run names trained now)."""
    from alnb.loop import pipeline
    from alnb.acquisition import scoring

    costs = costs or CostModel()
    overrides = dict(train_overrides or {})
    files = [row_file(study_dir, seed, strategy, budget, r) for r in range(1, grid.rounds + 1)]
    done = [json.loads(f.read_text()) for f in files if f.is_file()]
    if len(done) == len(files) and (grid.test == 0 or all(r.get("test_mAP50") is not None for r in done)):
        return done
    kind, value = parse_budget(budget)
    ws = _chain_workspace(study_dir, data_dir, grid, seed, strategy, budget)
    rows, cum, trained = [], {"images": 0, "boxes": 0, "labelling_s": 0.0, "manual_s": 0.0}, []
    for r, rf in enumerate(files, start=1):
        k = r + 1  # workspace round: GT<k> / CAL<k>
        if rf.is_file():
            row = _with_test(study_dir, grid, rf, json.loads(rf.read_text()), ws)  # TEST added to a finished study
            rows.append(row)
            cum = {c: row[c] for c in cum}
            continue
        model = cal_name(k - 1)
        if k >= 3:
            scoring.score_pool(ws, model, T=grid.T, seed=seed, progress=False)  # what the chain has not taken yet
        src = None if k == 2 else model
        tm, th = sel.default_thresholds(ws, src)
        pool = pipeline.selection_pool(ws, (tm, th), model=src, exclude=[gt_tag(j) for j in range(2, k)])
        pool = _with_predicted_seconds(ws, pool, model, costs)  # seconds budgets, cost_normalised, predicted_s
        n = None if kind == "seconds" else value
        if kind == "rule":
            rule = acq.select("study_rule", pool, None, seed=seed)
            n = None if strategy == "study_rule" else len(rule)
        if n is not None and n > len(pool):
            raise ValueError(f"budget {n} is larger than the {len(pool)} POOL images left for round {r} of seed "
                             f"{seed} ({strategy}).")
        extra = {"budget_s": value, "costs": costs} if kind == "seconds" else {}
        stems = acq.select(strategy, pool, n, seed=pipeline.round_seed(seed, k), **extra)
        sel.commit(ws, stems, gt_tag(k), info={"rule": f"study: {strategy} @ {budget_label(budget)}",
                                               "strategy": strategy, "round": k, "scores_model": model})
        pipeline.ensure_labelled(ws, gt_tag(k), log=None)
        c = _selection_costs(pool.scores, ws.manifest(), stems, costs)
        out = pipeline.train_and_evaluate(ws, cal_name(k), train_tags("cal", k), grid.profile, seed=seed,
                                          **overrides)
        res = out["train"]
        if not res.reused:
            trained.append(f"seed{seed}/{strategy}__{budget_label(budget)}/{cal_name(k)}")
        test = _test_eval(ws, cal_name(k), test_dir_for(study_dir, grid), Path(study_dir) / "predictions" /
                          f"{rf.stem}.npz")
        cum = {"images": cum["images"] + len(stems), "boxes": cum["boxes"] + c["boxes"],
               "labelling_s": cum["labelling_s"] + c["labelling_s"], "manual_s": cum["manual_s"] + c["manual_s"]}
        row = {"strategy": strategy, "budget": budget_label(budget), "round": r, "seed": seed, **cum,
               "new_images": len(stems), "new_labelling_s": c["labelling_s"], "n_failed": c["n_failed"],
               "n_empty": c["n_empty"], **({"predicted_s": c["predicted_s"]} if "predicted_s" in c else {}),
               **_eval_row(out["eval"], test), "train_images": int(res.info.get("n_train", 0)),
               "train_s": float(res.seconds), "reused": bool(res.reused), "run": cal_name(k),
               "selection_sha": hashlib.sha256("\n".join(sorted(stems)).encode()).hexdigest()[:16],
               "scores_model": model}
        _write_row(rf, row)
        rows.append(row)
    for row in rows:
        row["trained"] = trained
    return rows


def _with_predicted_seconds(ws, pool, model: str, costs):
    """The pool with ``pred_s``: each image's predicted assisted labelling seconds from its auto-labels and the
    model's VAL1 cost calibration (:func:`alnb.evaluation.metrics.predicted_seconds`); an evaluation written before the
    calibration existed is redone (same model, same numbers, plus the calibration)."""
    ev = ws.load_json(f"eval_{model}")
    if "cost_calibration" not in ev:
        ev = evaluate(ws, model, costs=costs)
    dets = pd.read_csv(_scores_path(ws, "detections.csv", model), dtype={"stem": str})
    pool.scores["pred_s"] = predicted_seconds(pool.scores, dets, ev["cost_calibration"], costs)
    return pool


def _scores_path(ws, name, model):
    return scores_file(ws, name, model)


def results_table(study_dir) -> pd.DataFrame:
    """Every row file of the study (``results/*.json``, each seed's ``gt1_only`` row included) as one tidy table."""
    rows = [json.loads(p.read_text()) for p in sorted(Path(study_dir).glob("results/*.json"))]
    return _tidy(rows)


COLUMNS = ["strategy", "budget", "round", "seed", "images", "new_images", "boxes", "labelling_s", "manual_s",
           "new_labelling_s", "predicted_s", "n_failed", "n_empty", "mAP50", "mAP50-95", "precision", "recall", "f1",
           "boost", "conf", "test_mAP50", "test_mAP50-95", "test_precision", "test_recall", "test_boost",
           "train_images", "train_s", "reused", "run", "selection_sha", "scores_model"]


def _tidy(rows) -> pd.DataFrame:
    t = pd.DataFrame([{k: v for k, v in r.items() if k != "trained"} for r in rows])
    for c in COLUMNS:
        if c not in t:
            t[c] = np.nan
    t["budget"] = t["budget"].astype(str)
    t["round"] = pd.to_numeric(t["round"], errors="coerce").fillna(1).astype(int)
    num = ("labelling_s", "manual_s", "new_labelling_s", "predicted_s", *METRICS, "conf", "train_s",
           *[c for c in COLUMNS if c.startswith("test_")])
    for c in num:  # JSON null -> NaN
        t[c] = pd.to_numeric(t[c], errors="coerce").astype(float)
    return t[COLUMNS].sort_values(["strategy", "budget", "round", "seed"], kind="mergesort").reset_index(drop=True)


# ------------------------------------------------------------------------------------------------------ engines
ENGINES = ("local", "ray")


@contextlib.contextmanager
def _env(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def task_log(args: tuple, kind: str) -> Path:
    """Where a study task's own output goes (``<study_dir>/logs/seed<k>__CAL1.log``, ``seed<k>__<chain>.log``)."""
    study_dir, seed = Path(args[0]), args[3]
    name = "CAL1" if kind == "base" else f"{args[4]}__{budget_label(args[5])}"
    return study_dir / "logs" / f"seed{seed}__{name}.log"


def _task(kind: str, threads: int, *args, verbose: bool = False, **kwargs):
    """One unit of study work with the study's thread count (the same in this process and in a Ray worker); its
    training logs go to :func:`task_log` (``verbose``: printed instead)."""
    with _env(**{ENV_THREADS: threads}), quiet(task_log(args, kind), verbose):
        return (run_base if kind == "base" else run_chain)(*args, **kwargs)


def task_resources(cluster: dict, threads: int) -> dict:
    """Ray resources of one study task (one training at a time) on a cluster with ``cluster`` resources
    (``ray.cluster_resources()``): ``threads`` CPUs, and one GPU each where the cluster has GPUs (the task then sees
    only its GPU, and the training picks it: :func:`alnb.model.train.auto_device`)."""
    return {"num_cpus": int(threads), "num_gpus": 1 if float(cluster.get("GPU", 0)) >= 1 else 0}


def cluster_workers(cluster: dict, threads: int) -> int:
    """How many study tasks run at once on ``cluster``: one per GPU where it has GPUs, else its CPUs / ``threads``."""
    gpus = int(float(cluster.get("GPU", 0)))
    return max(1, gpus if gpus else int(float(cluster.get("CPU", 1))) // max(1, int(threads)))


def _ray_session(address=None):
    from alnb.acquisition.engines import _import_ray

    ray = _import_ray()  # a clear message before any work when the extra is missing
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
    return ray


def _run_tasks(tasks: list, engine: str, threads: int, *, address=None, bar=None, log=print) -> list:
    """Run ``tasks`` (``(kind, args, kwargs)``) here, one after the other, or as Ray tasks of ``threads`` CPUs (and
    a GPU where the cluster has them: :func:`task_resources`) each; results in task order."""
    if engine == "local":
        out = []
        for kind, args, kwargs in tasks:
            if bar is not None:
                bar.set_postfix_str(_describe(kind, args))
            out.append(_task(kind, threads, *args, **kwargs))
            if bar is not None:
                bar.update(1)
        return out
    ray = _ray_session(address)
    remote = ray.remote(max_retries=0, **task_resources(ray.cluster_resources(), threads))(_task)
    refs = [remote.remote(kind, threads, *args, **kwargs) for kind, args, kwargs in tasks]
    index = {r: i for i, r in enumerate(refs)}
    out, pending = [None] * len(refs), list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        out[index[done[0]]] = ray.get(done[0])
        if bar is not None:
            bar.update(1)
    return out


def _describe(kind, args) -> str:
    return f"seed {args[3]}: CAL1" if kind == "base" else f"seed {args[3]}: {args[4]} @ {args[5]}"


@dataclass(frozen=True)
class StudyOptions(Options):
    """The settings of :func:`run_study` (its parameters of the same names and defaults, documented there):
    ``run_study(out, data, options=StudyOptions(grid="smoke", seeds=[0, 1]))``.  Where the study goes and what it
    reads (``study_dir``, ``data_dir``) and ``estimate_only`` stay arguments of the call."""

    # the grid and the fields that override it (get_grid)
    grid: str | Grid = "small"
    strategies: list | None = None
    budgets: list | None = None
    seeds: list | None = None
    profile: str | None = None
    T: int | None = None
    n_val: int | None = None
    n_gt1: int | None = None
    rounds: int | None = None
    test: int | None = None
    # the dataset, when the study generates it
    generate: bool = False
    n_images: int = 774
    image_size: int = 512
    data_seed: int = 0
    # output
    progress: bool = True
    log: object = print
    # every training; where the tasks run
    train_overrides: dict | None = None
    engine: str = "local"
    address: str | None = None
    threads: int | None = None
    workers: int | None = None
    verbose: bool = False
    # the labelling cost model
    costs: object = None  # alnb.evaluation.metrics.CostModel
    costs_source: str | None = None


@takes_options(StudyOptions)
def run_study(study_dir, data_dir, *, grid: str | Grid = "small", strategies=None, budgets=None, seeds=None,
              profile: str | None = None, T: int | None = None, n_val=None, n_gt1=None, rounds: int | None = None,
              test: int | None = None, generate: bool = False, n_images: int = 774, image_size: int = 512,
              data_seed: int = 0, progress: bool = True, log=print, estimate_only: bool = False,
              train_overrides: dict | None = None, engine: str = "local", address: str | None = None,
              threads: int | None = None, workers: int | None = None, verbose: bool = False,
              costs=None, costs_source: str | None = None) -> StudyResult | dict:
    """Run (or resume) a study grid and write its table, figures and report into ``study_dir``.

    ``options=StudyOptions(...)`` gives the settings in one object instead of keywords (:class:`StudyOptions`); a
    keyword beside it for one of its fields is a TypeError (:func:`alnb.core.records.takes_options`).

    Every task's own output (ultralytics' training logs) goes to ``<study_dir>/logs/`` (:func:`task_log`); the
    terminal shows one progress bar over the tasks (``verbose=True``: everything, as it is printed).

    Parameters
    ----------
    study_dir : path
        Study folder: ``seed<k>/`` workspaces (with ``chains/``), ``results/`` row files, ``results.csv``,
        ``summary.csv``, ``verdicts.csv``, ``savings.csv``, ``figures/``, ``report.md``, ``study.json`` (the grid).
    data_dir : path
        A fully labelled YOLO dataset (simulation mode); ``generate=True`` makes the weld dataset there first.
    grid : str or Grid
        ``smoke`` (tests), ``small`` / ``cycles`` (CPU) or ``full`` (GPU); ``strategies``, ``budgets``, ``seeds``,
        ``profile``, ``T``, ``n_val``, ``n_gt1``, ``rounds``, ``test`` override its fields.
    engine : {"local", "ray"}
        Where the seeds' CAL1s and then the chains run: here, one after the other, or as Ray tasks (``address``:
        ``"auto"`` joins a running cluster; default a local instance).  Same files, same numbers.
    threads : int, optional
        CPU threads of every training, evaluation and scoring (default :func:`alnb.core.cpu.default_threads`); recorded
        in ``study.json``: a resumed study keeps it (the models' numbers depend on it).
    workers : int, optional
        For the time estimate with ``engine="ray"``: parallel tasks (default :func:`cluster_workers`: one per GPU
        of the cluster where it has GPUs, else its CPUs / threads).
    estimate_only : bool
        Only return the time estimate (:func:`estimate_seconds`), run nothing.
    train_overrides : dict, optional
        Profile overrides for every training (e.g. ``{"epochs": 5}``); part of each run's cache key.
    costs : CostModel, optional
        The labelling seconds of every chain (seconds budgets, labelling_s, the per-second verdicts): default the
        literature defaults; ``alnb study --costs-from WS`` passes a workspace's measured ones
        (:func:`alnb.evaluation.labeltimes.workspace_costs`), ``costs_source`` says where they come from.  Recorded in
        ``study.json``; a study is never resumed with other costs (its rows would mix two cost models).
    """
    from tqdm.auto import tqdm

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    g = get_grid(grid, strategies=strategies, budgets=budgets, seeds=seeds, profile=profile, T=T, n_val=n_val,
                 n_gt1=n_gt1, rounds=rounds, test=test)
    study_dir = Path(study_dir).expanduser().resolve()
    prev = {}
    if (study_dir / "study.json").is_file():
        with contextlib.suppress(OSError, ValueError):
            prev = json.loads((study_dir / "study.json").read_text())
    threads = default_threads(threads if threads is not None else prev.get("threads"))
    if engine == "ray":  # a clear message before any work when the extra is missing; the cluster's size
        ray = _ray_session(address)
        workers = workers or cluster_workers(ray.cluster_resources(), threads)
    est = estimate_seconds(study_dir, g, workers=workers or 1, train_overrides=train_overrides)
    if estimate_only:
        return est
    study_dir.mkdir(parents=True, exist_ok=True)
    if generate:
        from alnb.datasets import weld

        weld.generate(data_dir, weld.WeldConfig(n_images=n_images, width=image_size, height=image_size,
                                                seed=data_seed), progress=progress)
    if g.test:
        from alnb.datasets import weld

        td = test_dir_for(study_dir, g)
        if not (td / "data.yaml").is_file():
            weld.generate(td, weld.WeldConfig(n_images=g.test, width=image_size, height=image_size, seed=TEST_SEED),
                          progress=progress)
    overrides = {**(train_overrides or {}), "threads": threads}
    costs = costs or CostModel()
    costs_source = costs_source or ("literature defaults" if costs == CostModel() else "given by the caller")
    if prev.get("costs", CostModel().to_dict()) != costs.to_dict() and any((study_dir / "results").glob("*.json")):
        raise ValueError(f"{study_dir} was run with other labelling costs ({prev.get('costs', 'the defaults')}); "
                         f"its rows would mix two cost models: use another --out folder for these costs "
                         f"({costs.to_dict()}).")
    atomic_write_json(study_dir / "study.json", {"grid": asdict(g), "data": str(Path(data_dir).resolve()),
                                                 "train_overrides": train_overrides or {}, "threads": threads,
                                                 "engine": engine, "costs": costs.to_dict(),
                                                 "costs_source": costs_source})
    chains = [(seed, s, b) for seed in g.seeds for s in g.strategies for b in g.budgets]
    if log:
        log(f"[alnb] study {study_dir}: {len(g.strategies)} strategies x {len(g.budgets)} budgets x {g.rounds} "
            f"round(s) x {len(g.seeds)} seeds, profile {g.profile}, {threads} thread(s) per training, engine "
            f"{engine}; {est['runs']} training run(s) to do, about {est['seconds'] / 60:.0f} min at "
            f"{est['images_per_s']} images/s" + (f" over {est['workers']} workers" if est["workers"] > 1 else ""))
    t0 = time.perf_counter()
    common = {"train_overrides": overrides, "verbose": verbose, "costs": costs}
    with tqdm(total=len(g.seeds) + len(chains), desc="study", unit="task", disable=not progress) as bar:
        bases = _run_tasks([("base", (study_dir, data_dir, g, seed), common) for seed in g.seeds], engine, threads,
                           address=address, bar=bar, log=log)
        chain_rows = _run_tasks([("chain", (study_dir, data_dir, g, seed, s, b), common) for seed, s, b in chains],
                                engine, threads, address=address, bar=bar, log=log)
    trained = [f"seed{b['seed']}/CAL1" for b in bases if b.get("trained")]
    rows = [{k: v for k, v in b.items() if k != "trained"} for b in bases]
    for rs in chain_rows:
        trained += rs[0].get("trained", []) if rs else []
        rows += rs
    table = _tidy(rows)
    res = write_outputs(study_dir, table)
    res.trained, res.seconds = trained, round(time.perf_counter() - t0, 1)
    return res


def variance_split(study_dir, table: pd.DataFrame, *, metric: str = "mAP50", n_boot: int = 200,
                   reference: str = REFERENCE) -> pd.DataFrame:
    """Where the spread of the paired differences comes from, per (strategy, budget, round) with TEST predictions:
    ``total`` = their variance over seeds; ``evaluation`` = the mean over seeds of the paired bootstrap variance of
    the difference on the TEST images (the same resampled images for both models, :func:`alnb.evaluation.metrics.
    coco_bootstrap`); ``training`` = what is left (total - evaluation, at least 0): the noise of which images were
    drawn and how the model trained.  Empty without TEST predictions (``test=0``)."""
    def matches(f):
        preds, gts, nc = load_predictions(f)
        return coco_matches(preds, gts, nc)

    pdir = Path(study_dir) / "predictions"
    rows = []
    key = f"test_{metric}"
    if key not in table or not table[key].notna().any():
        return pd.DataFrame(columns=["strategy", "budget", "round", "metric", "n_seeds", "total", "evaluation",
                                     "training"])
    d = paired_differences(table.assign(**{metric: table[key]}), metric=metric, x="images", reference=reference)
    for (s, b, r), g in d.groupby(KEYS, sort=False):
        ev = []
        for _, x in g.iterrows():
            ref = table[(table["seed"] == x["seed"]) & (table["strategy"] == reference) &
                        (table["images"] == x["x"])]
            a = pdir / f"{row_file(study_dir, int(x['seed']), s, b, r).stem}.npz"
            if len(ref) and a.is_file():
                rr = ref.iloc[0]
                bfile = pdir / f"{row_file(study_dir, int(x['seed']), reference, rr['budget'], rr['round']).stem}.npz"
                if bfile.is_file():
                    ev.append(float(np.var(coco_bootstrap_diff(matches(a), matches(bfile), metric=metric,
                                                               n_boot=n_boot, seed=int(x["seed"])), ddof=1)))
        tot = float(np.var(g["diff"].dropna(), ddof=1)) if g["diff"].notna().sum() > 1 else float("nan")
        e = float(np.mean(ev)) if ev else float("nan")
        rows.append({"strategy": s, "budget": b, "round": r, "metric": f"TEST {metric}", "n_seeds": len(g),
                     "total": tot, "evaluation": e, "training": max(tot - e, 0.0) if np.isfinite(e) else float("nan")})
    return pd.DataFrame(rows)


def write_outputs(study_dir, table: pd.DataFrame) -> StudyResult:
    """``results.csv``, ``summary.csv``, ``verdicts.csv``, ``savings.csv``, ``seconds_savings.csv``,
    ``variance.csv``, figures and ``report.md``."""
    import matplotlib.pyplot as plt

    from alnb.figures import study_plots
    from alnb.figures.plots import save_figure

    study_dir = Path(study_dir)
    summ = summarise(table)
    mets = ["mAP50", "mAP50-95"] + [m for m in ("test_mAP50", "test_mAP50-95") if table[m].notna().any()]
    ver = verdict_table(table, mets)
    sav = label_savings(table)
    ssav = seconds_savings(table)
    var = variance_split(study_dir, table)
    for name, df in (("results", table), ("summary", summ), ("verdicts", ver), ("savings", sav),
                     ("seconds_savings", ssav), ("variance", var)):
        atomic_write_text(study_dir / f"{name}.csv", df.to_csv(index=False))
    figs = {}
    for name, fig in (("study_curves_images", study_plots.learning_curves(summ, x="images")),
                      ("study_curves_seconds", study_plots.learning_curves(summ, x="labelling_s")),
                      ("study_paired_diff", study_plots.paired_difference(
                          paired_differences(table), verdicts(table)))):
        figs[name] = save_figure(fig, name, study_dir / "figures")
        plt.close(fig)
    chains, bt = forecast_backtest(table, name=study_dir.name)
    if any(v["n_forecasts"] for per in bt.values() for v in per.values()):
        atomic_write_text(study_dir / FORECAST_BACKTEST_FILE, json.dumps(fs.backtest_record(
            chains, bt, fs.BACKTEST_LEVEL, inputs=[str(study_dir.resolve())],
            written=time.strftime("%Y-%m-%dT%H:%M:%S%z"), command=["alnb", "study"]), indent=2) + "\n")
    rep = write_report(study_dir, table, summ, ver, sav, ssav, var, backtest=bt)
    return StudyResult(table, summ, ver, sav, study_dir, figs, rep, seconds_savings=ssav)


def forecast_backtest(table: pd.DataFrame, *, name: str = "study", level: float = fs.BACKTEST_LEVEL) -> tuple:
    """``(chains, result)``: the study's learning-curve chains (:func:`alnb.loop.forecaststep.study_chains_from_rows`
    on the table's rows: per seed, strategy and budget, GT1 alone then the chain's rounds) and the one-step-ahead
    backtest of every curve on them (:func:`alnb.loop.forecaststep.backtest_chains`)."""
    chains = fs.study_chains_from_rows(table.to_dict("records"), name=name)
    return chains, fs.backtest_chains(chains, level)


def forecast_accuracy_lines(table: pd.DataFrame, result: dict, level: float = fs.BACKTEST_LEVEL) -> list:
    """The report's section "Forecast accuracy (backtest)": per measure of :data:`FORECAST_MEASURES` the backtest
    ``result`` has, per curve: forecasts, mean absolute error, bias, error sd, coverage of the nominal OLS interval,
    and the lowest-error curve; a sentence instead when nothing could be backtested."""
    pct = f"{level:.0%}".replace("%", " %")
    lines = ["## Forecast accuracy (backtest)", "",
             "How well the next-round forecast (`alnb.loop.forecast`) would have predicted this study's own rounds.  "
             "One learning curve per seed, strategy and budget: GT1 alone (round 0), then the chain's rounds; x = the "
             "round model's training images.  Every curve fitted to points 1..k (k >= 2) predicts point k+1; error = "
             "predicted - measured (bias < 0: the curve under-predicts); coverage: how often the nominal "
             f"{pct} OLS prediction interval held the measured value.", ""]
    shown = [(m, label) for m, label in FORECAST_MEASURES.items()
             if any(v["n_forecasts"] for v in (result.get(m) or {}).values())]
    if not shown:
        chain_rounds = table.loc[table["strategy"] != BASELINE, "round"]
        if not len(chain_rounds) or int(chain_rounds.max()) <= 1:
            lines += ["One round per chain: nothing to backtest; run a cycles study with --rounds ≥ 3.", ""]
        else:
            lines += ["No chain has 3 points with the measure (GT1 alone and 2 rounds): nothing to backtest.", ""]
        return lines

    def f(x, fmt):
        return format(x, fmt) if x is not None and math.isfinite(x) else "n/a"

    for m, label in shown:
        per = result[m]
        chains = next(iter(per.values()))["chains"]
        lines += [f"{label}: {chains} chain(s).", "",
                  f"| curve | forecasts | mean abs error | bias | error sd | coverage ({pct} OLS) |",
                  "|---|---|---|---|---|---|"]
        for curve, v in per.items():
            lines.append(f"| {curve} | {v['n_forecasts']} | {f(v['mean_abs_error'], '.4f')} | "
                         f"{f(v['bias'], '+.4f')} | {f(v['error_scale'], '.4f')} | {f(v['coverage_ols'], '.0%')} |")
        lines += ["", f"Lowest mean absolute error: {fs.lowest_error_curve(per)}.", ""]
    lines += [f"`{FORECAST_BACKTEST_FILE}` holds these numbers in `benchmarks/forecast_backtest.py`'s format (recall "
              "too): copy it to a workspace's `metrics/forecast_backtest.json` and the forecast step uses its "
              "lowest-error curve and error sd.  A few chains of a few rounds: every number here is itself "
              "uncertain.", ""]
    return lines


def _signed_interval(row) -> str:
    """A :func:`verdicts` row as ``+0.003 [-0.038, +0.044]``, bold when its verdict is ``better`` or ``worse`` (the
    interval excludes 0); ``-`` without a value, the bare mean without an interval."""
    if not np.isfinite(row["mean_diff"]):
        return "-"
    if not (np.isfinite(row["lo"]) and np.isfinite(row["hi"])):
        return f"{row['mean_diff']:+.3f}"
    txt = f"{row['mean_diff']:+.3f} [{row['lo']:+.3f}, {row['hi']:+.3f}]"
    return f"**{txt}**" if row["verdict"] in ("better", "worse") else txt


def round_table(summ: pd.DataFrame, ver: pd.DataFrame, *, reference: str = REFERENCE,
                metrics=("mAP50", "mAP50-95")) -> dict:
    """Round by round, one table per budget: the reference's mean ``metrics`` and cumulative images, each other
    strategy's paired difference to it **per image** (``x = images``) and **at equal labelling seconds**
    (``x = labelling_s``), ``metrics`` joined by `` ; `` (mean [95 % interval over seeds], bold when it excludes 0;
    ``-`` where the strategy's seconds lie beyond the reference's curve), and every chain's cumulative labelling
    seconds.  Built from :func:`summarise` and :func:`verdicts` (``verdicts.csv``); returns ``{budget: DataFrame}``.
    """
    out = {}
    if summ is None or not len(summ) or ver is None:
        return out
    base = summ[summ["strategy"] == BASELINE]
    by_key = {(r.strategy, str(r.budget), int(r.round), r.metric, r.x): r._asdict() for r in ver.itertuples(index=False)}
    for b in [b for b in summ["budget"].drop_duplicates() if b != BASELINE and str(b) != "0"]:
        sb = summ[summ["budget"] == b]
        if not sb["strategy"].eq(reference).any():
            continue
        others = [x for x in sb["strategy"].drop_duplicates() if x != reference]
        rounds = sorted(int(r) for r in sb["round"].unique())
        rows = []
        for r in [0] + rounds:
            src = base if r == 0 else sb[(sb["strategy"] == reference) & (sb["round"] == r)]
            if not len(src):
                continue
            ref = src.iloc[0]
            row = {"round": r, f"{reference} images (cum.)": round(float(ref.get("images", 0.0)))
                   if r else 0, f"{reference} " + " / ".join(metrics): " / ".join(
                       f"{float(ref[m]):.3f}" for m in metrics)}
            for o in others:
                for x, label in (("images", "per image"), ("labelling_s", "equal seconds")):
                    found = [by_key.get((o, str(b), r, m, x)) for m in metrics]
                    cells = [_signed_interval(v) if r and v is not None else "" for v in found]
                    row[f"{o} - {reference}, {label}"] = " ; ".join(cells) if r and any(cells) else ""
            secs = []
            for sname in [reference] + others:
                v = src if r == 0 else sb[(sb["strategy"] == sname) & (sb["round"] == r)]
                secs.append(f"{float(v['labelling_s'].iloc[0]):,.0f}" if len(v) and "labelling_s" in v else "-")
            row["cum. labelling s: " + " / ".join([reference] + others)] = secs[0] if r == 0 else " / ".join(secs)
            rows.append(row)
        out[str(b)] = pd.DataFrame(rows)
    return out


def _md(df: pd.DataFrame, digits: int = 3) -> str:
    cols = list(df.columns)
    out = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for r in df.itertuples(index=False):
        out.append("| " + " | ".join(f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(out)


def _round_table_lines(summ: pd.DataFrame, ver: pd.DataFrame) -> list:
    """The report's compact round-by-round table (:func:`round_table`), one per budget, with what its cells mean."""
    tables = round_table(summ, ver)
    if not tables:
        return []
    lines = ["## Round by round: paired differences to random, per image and per labelling second", "",
             "Each cell: mean paired difference over seeds [95 % interval], mAP50 ; mAP50-95 on VAL1, **bold** when "
             "the interval excludes 0.  `per image`: at the same cumulative images; `equal seconds`: at the same "
             "cumulative labelling seconds (random's curve interpolated; `-` beyond it, never extrapolated).  "
             "Round 0 = GT1 alone (CAL1, shared by every chain).", ""]
    for b, df in tables.items():
        if len(tables) > 1:
            lines += [f"Budget per round: {b}", ""]
        lines += [_md(df), ""]
    return lines


def write_report(study_dir, table, summ, ver, sav, ssav=None, var=None, backtest=None) -> Path:
    """``report.md``: grid, the round-by-round summary with intervals, paired verdicts with the smallest detectable
    effect, label and seconds savings, where the variance comes from, the forecast backtest (``backtest``: the result of
    :func:`forecast_backtest`, computed from ``table`` when None), figures."""
    study_dir = Path(study_dir)
    info = json.loads((study_dir / "study.json").read_text()) if (study_dir / "study.json").is_file() else {}
    g = info.get("grid", {})
    n_seeds = int(table["seed"].nunique())
    cols = ["strategy", "budget", "round", "n_seeds", "images", "boxes", "labelling_s", "mAP50", "mAP50_lo",
            "mAP50_hi", "mAP50-95", "mAP50-95_lo", "mAP50-95_hi", "recall", "boost"]
    test_note = (f" Models are also evaluated on a held-out TEST set of {g.get('test')} weld images generated from "
                 f"another seed ({TEST_SEED}), never trained on or selected from, at their VAL1 operating point "
                 f"(`test_*` rows)." if g.get("test") else "")
    lines = ["# Acquisition strategies side by side", "",
             f"Grid: strategies {g.get('strategies')}, budgets per round {g.get('budgets')}, {g.get('rounds', 1)} "
             f"round(s), seeds {g.get('seeds')}, profile {g.get('profile')}, T = {g.get('T')}, "
             f"{info.get('threads', '?')} CPU thread(s) per training.  {n_seeds} seed(s) finished; each seed has its "
             f"own split, CAL1, scoring and random draws; every strategy (random included) runs its own chain of "
             f"rounds, selecting with its own current model.  Intervals: 95 % Student-t over seeds.  mAP = COCO-style "
             f"AP of the auto-label prediction path on VAL1 ({g.get('n_val', '?')} images in each seed's split)."
             + test_note, "",
             f"Labelling seconds (seconds budgets, `labelling_s`, the per-second verdicts): "
             f"{info.get('costs_source', 'literature defaults')}, {info.get('costs') or 'alnb.evaluation.metrics.CostModel()'}.",
             "",
             "## Results by round (mean over seeds, 95 % interval)", "",
             "`images`, `boxes`, `labelling_s`: cumulative over the rounds (labelling seconds = correcting the "
             "chain's previous model's auto-labels under the cost model); round 0 = GT1 alone.", "",
             _md(summ[[c for c in cols if c in summ]]), "",
             *_round_table_lines(summ, ver),
             "## Paired difference to random (same seed), verdict from the interval", "",
             _md(ver), "",
             "`better` / `worse`: the whole 95 % interval of the paired difference lies above / below 0.  "
             "`no detectable difference`: it contains 0.  `mde`: the smallest true difference these seeds would "
             "detect with 80 % power (two-sided t-test at 95 %): a difference smaller than it could be there and go "
             "unseen.  `x = labelling_s` compares at equal labelling seconds (random's curve interpolated).", "",
             "## Label savings (random images needed for the same mAP50)", "", _md(sav), "",
             "Read off the mean random curve (GT1 alone = 0 images) by linear interpolation; NaN = the strategy is "
             "above every random point (beyond the curve, no extrapolation).", ""]
    if ssav is not None and len(ssav):
        lines += ["## Labelling seconds saved for the same mAP50-95 (paired over seeds)", "", _md(ssav), "",
                  "`saved` = 1 - strategy seconds / the seconds random needs (its own seed's curve) for the "
                  "strategy's mAP50-95; > 0 saves time.  The goal of the selection issue: `saved` >= 0.30 with the "
                  "whole interval above 0.  `n_reached`: seeds where random reaches the strategy's value with some "
                  "labelling (the interval is over these); `n_at_gt1`: seeds where the strategy is no better than GT1 "
                  "alone (random needs 0 s: its seconds bought nothing, left out of the interval, which is then "
                  "optimistic); the rest lie beyond random's curve.", ""]
    if var is not None and len(var):
        lines += ["## Where the variance of the paired differences comes from (TEST set)", "", _md(var, 5), "",
                  "`evaluation`: paired bootstrap over the TEST images (both models on the same resampled images); "
                  "`training`: the rest (which images were drawn, how the models trained).", ""]
    if backtest is None:
        backtest = forecast_backtest(table, name=study_dir.name)[1]
    lines += forecast_accuracy_lines(table, backtest)
    lines += ["## Figures", "", "![curves per image](figures/study_curves_images.png)", "",
              "![curves per labelling second](figures/study_curves_seconds.png)", "",
              "![paired differences](figures/study_paired_diff.png)", ""]
    p = study_dir / "report.md"
    atomic_write_text(p, "\n".join(lines))
    return p
