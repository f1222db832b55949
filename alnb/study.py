"""The experiment harness: acquisition strategies x labelling budgets x seeds, cached and resumable.

One **seed** is one repetition of the whole study in its own workspace ``<study_dir>/seed<k>/``: the split
(VAL1 / GT1 / POOL) is drawn with that seed, CAL1 is trained on GT1 with that seed and scores the POOL once
(MC dropout with that seed); then for every strategy and budget the strategy picks its images
(:func:`alnb.acquisition.select`, random draws with that seed), the simulated annotator reveals their labels, a model is
trained on GT1 + the selection exactly as CAL2 / Control are (:func:`alnb.pipeline.train_and_evaluate`, which decides
about warm starts) and evaluated on the seed's VAL1 at its operating point.

Cache and resume: every finished (strategy, budget, seed) run writes one row file ``<study_dir>/results/
seed<k>__<strategy>__<budget>.json``; a run with a row file is never touched again, and a run interrupted after
training reuses the trained model (``alnb.train.train_cal``'s cache: same images, labels and settings).  CAL1 and the
POOL scores are shared by every strategy of a seed.

Results: :func:`results_table` (one tidy row per run, plus one ``gt1_only`` row per seed: CAL1 at budget 0, the
common start of every curve), :func:`summarise` (means and 95 % t-intervals over seeds), :func:`paired_differences`
and :func:`verdicts` (each strategy minus random *on the same seed*, interpolated on that seed's random curve when
the image counts differ), :func:`label_savings` (random images needed for the same mAP, read off the mean random
curve).  ``alnb study`` / :func:`run_study` write ``results.csv``, ``summary.csv``, ``verdicts.csv``,
``figures/`` and ``report.md`` into the study folder.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from alnb import acquisition as acq
from alnb.stats import T975, Z975, interval, t_quantile  # noqa: F401  (moved there; re-exported)

TAG = "STUDY"  # manifest tag of the current run's selection inside a seed workspace
REFERENCE = "random"  # the strategy every other one is compared with
BASELINE = "gt1_only"  # CAL1 (GT1 alone): budget 0, the start of every learning curve
RULE_BUDGET = "rule"  # budget label: the study rule's own size on that seed (every strategy then takes that many)
LEVEL = 0.95  # confidence level of the intervals over seeds
METRICS = ("mAP50", "mAP50-95", "precision", "recall", "f1")
# Training throughput (images x epochs per second, validation included) used for the time estimate until a run of
# the study has been measured: quick = README's 2-core CPU measurement (CAL1: 177 images x 25 epochs in 163 s);
# smoke = the test suite's runs; paper = a rough figure for yolov8n at 640 px on one modern GPU.
DEFAULT_IMAGES_PER_S = {"smoke": 20.0, "quick": 27.0, "paper": 150.0}
OVERHEAD_S = {"smoke": 5.0, "quick": 20.0, "paper": 30.0}  # per run: evaluation on VAL1 + mAP pass + selection
# per seed: dataset validation + split, MC scoring of the POOL (README: 419 images at T=20 in ~15 s on 2 cores)
SEED_OVERHEAD_S = {"smoke": 5.0, "quick": 30.0, "paper": 30.0}


@dataclass(frozen=True)
class Grid:
    """A study grid: strategies x budgets x seeds, training profile and sizes.

    ``budgets``: image counts, or :data:`RULE_BUDGET` (``"rule"``: the study rule's own size on each seed).
    """

    strategies: tuple
    budgets: tuple
    seeds: tuple
    profile: str = "quick"
    T: int = 20
    n_val: int | float = 178
    n_gt1: int | float = 177
    note: str = ""


GRIDS = {
    # Tests: seconds on a tiny generated dataset.
    "smoke": Grid(("random", "hybrid"), (4,), (0, 1), profile="smoke", T=4, n_val=10, n_gt1=10,
                  note="test grid: tiny data, 1-epoch models"),
    # 2 CPU cores, <= 60 min: "do the study rule and the best uncertainty strategy beat random?"  3 strategies x
    # 1 budget x 3 seeds = 9 trainings of GT1 + 100 images, plus CAL1 once per seed (shared by all strategies).
    # hybrid = the study's score (best image-level AUROC among the uncertainty scores on the demo, see
    # metrics/difficulty_vs_errors.json; pass --strategies to compare another one).
    "small": Grid(("random", "study_rule", "hybrid"), (100,), (0, 1, 2), profile="quick",
                  note="study rule and hybrid uncertainty vs random, 3 seeds, 100 images, quick profile (CPU)"),
    # The GPU grid (paper profile): one strategy of each family (random, the study rule, hybrid, least confidence,
    # BALD, core-set, uncertainty + diversity) x 3 budgets x 3 seeds = 63 runs + 3 CAL1 (a few GPU hours; pass
    # --strategies / --budgets / --seeds for more, e.g. budget "rule" = the study rule's own size).
    "full": Grid(("random", "study_rule", "hybrid", "least_confidence", "bald", "coreset", "uncertain_diverse"),
                 (50, 100, 200), (0, 1, 2), profile="paper",
                 note="one strategy per family, 3 budgets, 3 seeds, paper profile (GPU)"),
}


def get_grid(grid: str | Grid = "small", **overrides) -> Grid:
    """A grid by name (:data:`GRIDS`) with fields replaced by ``overrides`` (None values ignored)."""
    g = GRIDS[grid] if isinstance(grid, str) else grid
    if isinstance(grid, str) and grid not in GRIDS:
        raise KeyError(f"unknown grid {grid!r}; choose one of {sorted(GRIDS)}")
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items() if v is not None}
    g = replace(g, **kw)
    unknown = [s for s in g.strategies if s not in acq.STRATEGIES]
    if unknown:
        raise KeyError(f"unknown strategies {unknown}; choose from {sorted(acq.STRATEGIES)}")
    if REFERENCE not in g.strategies:
        raise ValueError(f"the grid needs the reference strategy {REFERENCE!r} (every verdict is against it)")
    if len(g.seeds) < 1 or len(set(g.seeds)) != len(g.seeds):
        raise ValueError(f"seeds must be distinct, got {g.seeds}")
    for b in g.budgets:
        if b != RULE_BUDGET and (int(b) != b or b < 1):
            raise ValueError(f"a budget is a positive number of images or {RULE_BUDGET!r}, not {b!r}")
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


def paired_differences(table: pd.DataFrame, *, metric: str = "mAP50", x: str = "images",
                       reference: str = REFERENCE) -> pd.DataFrame:
    """Each run's ``metric`` minus the reference strategy's on the **same seed**, at the same ``x``.

    The reference value is read off that seed's reference curve (its runs + the ``gt1_only`` point at 0) by linear
    interpolation, so strategies whose selections differ in size (the study rule, or ``x="labelling_s"``) are
    compared at their own ``x``; outside the reference's range the difference is NaN (never extrapolated).
    Returns ``strategy, budget, seed, x, metric, reference, diff``.
    """
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
            rows.append({"strategy": r["strategy"], "budget": r["budget"], "seed": seed, "x": xv,
                         "metric": float(r[metric]), "reference": refv, "diff": float(r[metric]) - refv})
    return pd.DataFrame(rows, columns=["strategy", "budget", "seed", "x", "metric", "reference", "diff"])


def verdicts(table: pd.DataFrame, *, metric: str = "mAP50", x: str = "images",
             reference: str = REFERENCE) -> pd.DataFrame:
    """Per (strategy, budget): mean paired difference to the reference with its 95 % interval over seeds and the
    verdict (:func:`verdict_of`)."""
    d = paired_differences(table, metric=metric, x=x, reference=reference)
    rows = []
    for (s, b), g in d.groupby(["strategy", "budget"], sort=False):
        iv = interval(g["diff"])
        rows.append({"strategy": s, "budget": b, "metric": metric, "x": x, "n_seeds": iv["n"],
                     "mean_diff": iv["mean"], "lo": iv["lo"], "hi": iv["hi"], "verdict": verdict_of(iv)})
    return pd.DataFrame(rows, columns=["strategy", "budget", "metric", "x", "n_seeds", "mean_diff", "lo", "hi",
                                       "verdict"])


def summarise(table: pd.DataFrame, metrics=METRICS) -> pd.DataFrame:
    """Means and 95 % intervals over seeds per (strategy, budget): ``images``, ``boxes``, ``labelling_s`` (means)
    and ``<metric>``, ``<metric>_lo``, ``<metric>_hi`` for each metric, ``n_seeds``."""
    rows = []
    for (s, b), g in table.groupby(["strategy", "budget"], sort=False):
        row = {"strategy": s, "budget": b, "n_seeds": int(g["seed"].nunique())}
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
    """Images the reference curve ``(xs, ys)`` needs to reach ``value`` (linear interpolation on its running
    maximum, so a noisy dip does not create two answers); NaN beyond the curve's best value."""
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
    (budget 0 = GT1 alone).  ``saved_images = random_images - images`` (> 0: the strategy saves labels); NaN when
    the strategy is better than every random point (``beyond_reference``)."""
    summ = summarise(table, metrics=(metric,))
    ref = summ[summ["strategy"].isin([reference, BASELINE])]
    xs, ys = _curve(ref, "images", metric)
    rows = []
    for _, r in summ[~summ["strategy"].isin([reference, BASELINE])].iterrows():
        need = random_images_for(r[metric], xs, ys)
        rows.append({"strategy": r["strategy"], "budget": r["budget"], "images": r["images"], metric: r[metric],
                     "random_images": need, "saved_images": need - r["images"] if np.isfinite(need) else np.nan,
                     "beyond_reference": bool(np.isfinite(r[metric]) and not np.isfinite(need))})
    return pd.DataFrame(rows, columns=["strategy", "budget", "images", metric, "random_images", "saved_images",
                                       "beyond_reference"])


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


def row_file(study_dir, seed: int, strategy: str, budget) -> Path:
    """``<study_dir>/results/seed<k>__<strategy>__<budget>.json``."""
    return Path(study_dir) / "results" / f"seed{seed}__{strategy}__{budget}.json"


def run_name(strategy: str, budget) -> str:
    """Training run name inside the seed workspace."""
    return f"S_{strategy}_{budget}"


def _images_per_s(study_dir: Path, profile: str) -> float:
    """Measured training throughput of earlier runs of this study (median), else :data:`DEFAULT_IMAGES_PER_S`."""
    vals = []
    for f in Path(study_dir).glob("seed*/runs/*/alnb_run.json"):
        try:
            info = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if info.get("profile") == profile and info.get("images_per_s"):
            vals.append(float(info["images_per_s"]))
    return float(np.median(vals)) if vals else DEFAULT_IMAGES_PER_S.get(profile, DEFAULT_IMAGES_PER_S["quick"])


def estimate_seconds(study_dir, grid: Grid, *, pool_size: int | None = None) -> dict:
    """Time estimate of the runs still to do: images x epochs / measured images per second + a per-run overhead.

    ``pool_size`` sizes the study rule's budget (default: 60 % of a 419-image POOL, the study's share).
    """
    from alnb.train import get_profile

    prof = get_profile(grid.profile)
    ips = _images_per_s(study_dir, grid.profile)
    n_gt1 = grid.n_gt1 if isinstance(grid.n_gt1, int) else 177
    rule_size = int(round(0.6 * (pool_size or 419)))
    ft_epochs = getattr(prof, "finetune_epochs", None) or prof.epochs
    todo_s, n_runs = 0.0, 0
    for seed in grid.seeds:
        cal1 = Path(study_dir) / f"seed{seed}" / "runs" / "CAL1" / "alnb_run.json"
        if not cal1.is_file():
            todo_s += n_gt1 * prof.epochs / ips + OVERHEAD_S.get(grid.profile, 20.0)
            todo_s += SEED_OVERHEAD_S.get(grid.profile, 30.0)
            n_runs += 1
        for s in grid.strategies:
            for b in grid.budgets:
                if row_file(study_dir, seed, s, b).is_file():
                    continue
                k = rule_size if b == RULE_BUDGET else int(b)
                todo_s += (n_gt1 + k) * ft_epochs / ips + OVERHEAD_S.get(grid.profile, 20.0)
                n_runs += 1
    return {"seconds": round(todo_s, 1), "runs": n_runs, "images_per_s": round(ips, 2)}


def _cal1_row(seed: int, ev: dict, res) -> dict:
    o = ev["overall"]
    return {"strategy": BASELINE, "budget": 0, "seed": seed, "images": 0, "boxes": 0, "labelling_s": 0.0,
            "manual_s": 0.0, "n_failed": 0, "n_empty": 0, "mAP50": ev["mAP50"], "mAP50-95": ev["mAP50-95"],
            "precision": o["precision"], "recall": o["recall"], "f1": o["f1"], "conf": ev["conf"],
            "train_images": int(res.info.get("n_train", 0)), "train_s": float(res.seconds), "reused": bool(res.reused),
            "run": "CAL1", "selection_sha": ""}


def _selection_costs(scores: pd.DataFrame, manifest: pd.DataFrame, stems, costs) -> dict:
    """Boxes and labelling seconds of a selection: manual (draw every box) and assisted (correct CAL1's auto-labels:
    verify each proposal, delete false positives, draw misses; :func:`alnb.metrics.labelling_seconds`)."""
    from alnb.metrics import labelling_seconds

    s = scores.set_index("stem").loc[list(stems)]
    n_gt = manifest.set_index("stem").loc[list(stems), "n_boxes"].astype(int)
    n_pred = s["n_det"].astype(int)
    fp = s["n_fp"].astype(int) if "n_fp" in s else pd.Series(0, index=s.index)
    fn = s["n_fn"].astype(int) if "n_fn" in s else n_gt
    t = labelling_seconds(int(n_gt.sum()), int(n_pred.sum()), int(fp.sum()), int(fn.sum()), len(s), costs)
    return {"boxes": int(n_gt.sum()), "labelling_s": t["assisted_s"], "manual_s": t["manual_s"],
            "n_failed": int(s["failed"].astype(bool).sum()),
            "n_empty": int((s["n_cand"] == 0).sum()) if "n_cand" in s else 0}


def _write_row(path: Path, row: dict):
    from alnb.workspace import atomic_write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, row)


def _scored_for(ws, key: str, T: int) -> bool:
    try:
        rec = ws.load_json("study_scoring")
    except Exception:  # noqa: BLE001 - missing: not scored for this study yet
        return False
    return rec.get("key") == key and rec.get("T") == T and (ws.root / "scores.csv").is_file()


def run_seed(study_dir, data_dir, grid: Grid, seed: int, *, costs=None, bar=None, trained=None,
             train_overrides: dict | None = None) -> list:
    """All runs of one seed (setup, CAL1, scoring, every strategy x budget); returns the row dicts."""
    from alnb import pipeline, scoring
    from alnb import select as sel
    from alnb.metrics import CostModel

    costs = costs or CostModel()
    overrides = dict(train_overrides or {})
    trained = trained if trained is not None else []
    study_dir = Path(study_dir)
    ws = pipeline.setup(study_dir / f"seed{seed}", data_dir, n_val=grid.n_val, n_gt1=grid.n_gt1, seed=seed)
    if ws.mode != "simulation":
        raise ValueError(f"{data_dir}: the study needs every image labelled (simulation mode) to reveal selections.")
    cal1 = pipeline.train_and_evaluate(ws, "CAL1", ["GT1"], grid.profile, seed=seed, **overrides)
    if not cal1["train"].reused:
        trained.append(f"seed{seed}/CAL1")
    base = row_file(study_dir, seed, BASELINE, 0)
    if not base.is_file():
        _write_row(base, _cal1_row(seed, cal1["eval"], cal1["train"]))
    rows = [json.loads(base.read_text())]
    if bar is not None:
        bar.update(1)
    if not _scored_for(ws, cal1["train"].key, grid.T):
        scoring.score_pool(ws, "CAL1", T=grid.T, seed=seed, progress=False)
        ws.save_json("study_scoring", {"key": cal1["train"].key, "T": grid.T})
    tm, th = sel.default_thresholds(ws)
    pool = scoring.load_pool(ws, thresholds=(tm, th))
    rule_size = len(acq.select("study_rule", pool, None, seed=seed))
    for strategy in grid.strategies:
        for budget in grid.budgets:
            rf = row_file(study_dir, seed, strategy, budget)
            if rf.is_file():
                rows.append(json.loads(rf.read_text()))
                if bar is not None:
                    bar.update(1)
                continue
            k = (None if strategy == "study_rule" else rule_size) if budget == RULE_BUDGET else int(budget)
            if k is not None and k > len(pool):
                raise ValueError(f"budget {k} is larger than the {len(pool)} POOL images of seed {seed}.")
            stems = acq.select(strategy, pool, k, seed=seed)
            name = run_name(strategy, budget)
            if bar is not None:
                bar.set_postfix_str(f"seed {seed}: {strategy} @ {budget}")
            sel.commit(ws, stems, TAG)
            pipeline.ensure_labelled(ws, TAG)
            out = pipeline.train_and_evaluate(ws, name, ["GT1", TAG], grid.profile, seed=seed, **overrides)
            res, ev = out["train"], out["eval"]
            if not res.reused:
                trained.append(f"seed{seed}/{name}")
            o = ev["overall"]
            row = {"strategy": strategy, "budget": budget, "seed": seed, "images": len(stems),
                   **_selection_costs(pool.scores, ws.manifest(), stems, costs),
                   "mAP50": ev["mAP50"], "mAP50-95": ev["mAP50-95"], "precision": o["precision"],
                   "recall": o["recall"], "f1": o["f1"], "conf": ev["conf"],
                   "train_images": int(res.info.get("n_train", 0)), "train_s": float(res.seconds),
                   "reused": bool(res.reused), "run": name,
                   "selection_sha": hashlib.sha256("\n".join(sorted(stems)).encode()).hexdigest()[:16]}
            _write_row(rf, row)
            rows.append(row)
            if bar is not None:
                bar.update(1)
    return rows


def results_table(study_dir) -> pd.DataFrame:
    """Every row file of the study (``results/*.json``, each seed's ``gt1_only`` row included) as one tidy table."""
    rows = [json.loads(p.read_text()) for p in sorted(Path(study_dir).glob("results/*.json"))]
    return _tidy(rows)


def _tidy(rows) -> pd.DataFrame:
    cols = ["strategy", "budget", "seed", "images", "boxes", "labelling_s", "manual_s", "n_failed", "n_empty",
            "mAP50", "mAP50-95", "precision", "recall", "f1", "conf", "train_images", "train_s", "reused", "run",
            "selection_sha"]
    t = pd.DataFrame(rows)
    for c in cols:
        if c not in t:
            t[c] = np.nan
    t["budget"] = t["budget"].astype(str)
    for c in ("labelling_s", "manual_s", *METRICS, "mAP50-95", "conf", "train_s"):  # JSON null -> NaN
        t[c] = pd.to_numeric(t[c], errors="coerce").astype(float)
    return t[cols].sort_values(["strategy", "budget", "seed"], kind="mergesort").reset_index(drop=True)


def run_study(study_dir, data_dir, *, grid: str | Grid = "small", strategies=None, budgets=None, seeds=None,
              profile: str | None = None, T: int | None = None, n_val=None, n_gt1=None, generate: bool = False,
              n_images: int = 774, image_size: int = 512, data_seed: int = 0, progress: bool = True, log=print,
              estimate_only: bool = False, train_overrides: dict | None = None) -> StudyResult | dict:
    """Run (or resume) a study grid and write its table, figures and report into ``study_dir``.

    Parameters
    ----------
    study_dir : path
        Study folder: ``seed<k>/`` workspaces, ``results/`` row files, ``results.csv``, ``summary.csv``,
        ``verdicts.csv``, ``savings.csv``, ``figures/``, ``report.md``, ``study.json`` (the grid).
    data_dir : path
        A fully labelled YOLO dataset (simulation mode); ``generate=True`` makes the weld dataset there first.
    grid : str or Grid
        ``smoke`` (tests), ``small`` (CPU, <= 60 min on 2 cores) or ``full`` (GPU); ``strategies``, ``budgets``,
        ``seeds``, ``profile``, ``T``, ``n_val``, ``n_gt1`` override its fields.
    estimate_only : bool
        Only return the time estimate (:func:`estimate_seconds`), run nothing.
    train_overrides : dict, optional
        Profile overrides for every training (e.g. ``{"epochs": 5}``); part of each run's cache key.
    """
    from tqdm.auto import tqdm

    from alnb.workspace import atomic_write_json

    g = get_grid(grid, strategies=strategies, budgets=budgets, seeds=seeds, profile=profile, T=T, n_val=n_val,
                 n_gt1=n_gt1)
    study_dir = Path(study_dir).expanduser().resolve()
    est = estimate_seconds(study_dir, g)
    if estimate_only:
        return est
    study_dir.mkdir(parents=True, exist_ok=True)
    if generate:
        from alnb import weld

        weld.generate(data_dir, weld.WeldConfig(n_images=n_images, width=image_size, height=image_size,
                                                seed=data_seed), progress=progress)
    atomic_write_json(study_dir / "study.json", {"grid": asdict(g), "data": str(Path(data_dir).resolve()),
                                                 "train_overrides": train_overrides or {}})
    n_steps = len(g.seeds) * (1 + len(g.strategies) * len(g.budgets))
    if log:
        log(f"[alnb] study {study_dir}: {len(g.strategies)} strategies x {len(g.budgets)} budgets x {len(g.seeds)} "
            f"seeds, profile {g.profile}; {est['runs']} training run(s) to do, about {est['seconds'] / 60:.0f} min "
            f"at {est['images_per_s']} images/s")
    t0 = time.perf_counter()
    trained, rows = [], []
    with tqdm(total=n_steps, desc="study", unit="run", disable=not progress) as bar:
        for seed in g.seeds:
            rows += run_seed(study_dir, data_dir, g, seed, bar=bar, trained=trained,
                             train_overrides=train_overrides)
            if log and seed == g.seeds[0] and len(g.seeds) > 1:
                left = estimate_seconds(study_dir, replace(g, seeds=g.seeds[1:]))
                log(f"[alnb] seed {seed} done; about {left['seconds'] / 60:.0f} min left "
                    f"(measured {left['images_per_s']} images/s)")
    table = _tidy(rows)
    res = write_outputs(study_dir, table)
    res.trained, res.seconds = trained, round(time.perf_counter() - t0, 1)
    return res


def write_outputs(study_dir, table: pd.DataFrame) -> StudyResult:
    """``results.csv``, ``summary.csv``, ``verdicts.csv``, ``savings.csv``, figures and ``report.md``."""
    import matplotlib.pyplot as plt

    from alnb import study_plots
    from alnb.plots import save_figure
    from alnb.workspace import atomic_write_text

    study_dir = Path(study_dir)
    summ = summarise(table)
    ver = pd.concat([verdicts(table, metric=m, x=x) for m in ("mAP50", "mAP50-95")
                     for x in ("images", "labelling_s")], ignore_index=True)
    sav = label_savings(table)
    for name, df in (("results", table), ("summary", summ), ("verdicts", ver), ("savings", sav)):
        atomic_write_text(study_dir / f"{name}.csv", df.to_csv(index=False))
    figs = {}
    for name, fig in (("study_curves_images", study_plots.learning_curves(summ, x="images")),
                      ("study_curves_seconds", study_plots.learning_curves(summ, x="labelling_s")),
                      ("study_paired_diff", study_plots.paired_difference(
                          paired_differences(table), verdicts(table)))):
        figs[name] = save_figure(fig, name, study_dir / "figures")
        plt.close(fig)
    rep = write_report(study_dir, table, summ, ver, sav)
    return StudyResult(table, summ, ver, sav, study_dir, figs, rep)


def _md(df: pd.DataFrame, digits: int = 3) -> str:
    cols = list(df.columns)
    out = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for r in df.itertuples(index=False):
        out.append("| " + " | ".join(f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(out)


def write_report(study_dir, table, summ, ver, sav) -> Path:
    """``report.md``: grid, tidy summary with intervals, verdicts, label savings, figures."""
    from alnb.workspace import atomic_write_text

    study_dir = Path(study_dir)
    info = json.loads((study_dir / "study.json").read_text()) if (study_dir / "study.json").is_file() else {}
    g = info.get("grid", {})
    n_seeds = int(table["seed"].nunique())
    cols = ["strategy", "budget", "n_seeds", "images", "boxes", "labelling_s", "mAP50", "mAP50_lo", "mAP50_hi",
            "mAP50-95", "mAP50-95_lo", "mAP50-95_hi"]
    lines = ["# Acquisition strategies side by side", "",
             f"Grid: strategies {g.get('strategies')}, budgets {g.get('budgets')}, seeds {g.get('seeds')}, profile "
             f"{g.get('profile')}, T = {g.get('T')}.  {n_seeds} seed(s) finished; each seed has its own split, "
             f"CAL1, scoring and random draws.  Intervals: 95 % Student-t over seeds.", "",
             "## Results (mean over seeds, 95 % interval)", "", _md(summ[[c for c in cols if c in summ]]), "",
             "## Paired difference to random (same seed), verdict from the interval", "",
             _md(ver), "",
             "`better` / `worse`: the whole 95 % interval of the paired difference lies above / below 0.  "
             "`no detectable difference`: it contains 0 (with this many seeds a real difference of that size "
             "cannot be told from noise).", "",
             "## Label savings (random images needed for the same mAP50)", "", _md(sav), "",
             "Read off the mean random curve (GT1 alone = 0 images) by linear interpolation; NaN = the strategy is "
             "above every random point (beyond the curve, no extrapolation).", "",
             "## Figures", "", "![curves per image](figures/study_curves_images.png)", "",
             "![curves per labelling second](figures/study_curves_seconds.png)", "",
             "![paired differences](figures/study_paired_diff.png)", ""]
    p = study_dir / "report.md"
    atomic_write_text(p, "\n".join(lines))
    return p
