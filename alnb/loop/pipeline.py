"""The study's steps as plain functions, shared by the notebooks and the ``alnb run`` command.

setup -> CAL1 (GT1) -> evaluate -> auto-label + MC-dropout scores -> GT2 (thresholds, study rule) -> label GT2 ->
CAL2 (GT1 + GT2) -> Control (random POOL sample of |GT2|) -> label Control -> Control model (GT1 + Control) ->
comparison figures + ``report.md``.  Every step reads from and writes to the workspace, so steps can run in separate
processes (notebooks) and re-running one is safe (training runs are cached by :func:`alnb.model.train.train_cal`).
"""

from __future__ import annotations

import json
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from alnb.loop import selection as sel
from alnb.evaluation.labeltimes import resolve_costs
from alnb.core.lock import holder_status, locked, workspace_lock
from alnb.core.records import Record
from alnb.core.workspace import (WaitingForLabels, Workspace, WorkspaceError, cal_name, check_location, control_name,
                                 control_tag, excluded_summary, gt_tag, model_round, setup_summary, tag_round,
                                 train_tags)
from alnb.acquisition import strategies as acq
from alnb.acquisition.strategies import Pool
from alnb.core.scoretable import load_scores, scores_file
from alnb.evaluation.step import evaluate, selection_cost
from alnb.figures import plots
from alnb.labels.labelio import describe_import
from alnb.loop.reviewstep import refresh_final, update_plan


@dataclass(frozen=True, eq=False)
class TrainEvalResult(Record):
    """What :func:`train_and_evaluate` returns: the training run and its VAL1 evaluation (also ``r["train"]``,
    ``r["eval"]``, the dict's keys before)."""

    train: object  # alnb.model.train.TrainResult
    eval: object  # alnb.evaluation.step.EvalResult


@dataclass(frozen=True, eq=False)
class RoundResult(Record):
    """What :func:`next_round` returns: each chain's model of the round (also ``r["cal"]``, ``r["control"]``)."""

    cal: TrainEvalResult  # CAL<k>
    control: TrainEvalResult  # Control<k>


@dataclass(frozen=True, eq=False)
class LoopStatus(Record):
    """What :func:`loop_status` returns (``alnb status``; ``--json`` prints :meth:`to_dict`).  Also the read-only
    mapping it was as a dict (``st["next"]``); a caller that adds keys builds a dict: ``{**st.to_dict(), ...}``."""

    workspace: str
    dataset: str
    mode: str  # "simulation" or "real"
    round: int  # the round the next step belongs to
    rounds: int  # the rounds planned (planned_rounds)
    sets: dict  # {tag: images}
    labels: dict  # {selection tag: {n, labelled, waiting (stems), ...}}
    queue: dict  # {selection tag: its Label Studio tasks.json} where images wait for labels
    trainings: dict  # {model: finished}
    scores: bool  # scores.csv exists
    report: bool  # report.md exists
    lock: dict | None  # the workspace lock's holder (alnb.core.lock.holder_status), None when free
    next: str  # the next step, one sentence


def _log(msg, log=print):
    if log:
        log(msg)


def setup(workspace, data_dir, generate: bool = False, n_images: int = 774, image_size: int = 512, data_seed: int = 0,
          n_val=178, n_gt1=177, seed: int = 0, overwrite: bool = False, progress: bool = False,
          log=print) -> Workspace:
    """Notebook 00's work: optionally generate the weld dataset, validate it, split it, record ``metrics/setup.json``.

    Refuses a workspace inside the dataset folder; holds the workspace lock; re-validates the dataset when the
    workspace already exists (fixed images rejoin the POOL).  ``log`` gets a summary of excluded images, classes
    without GT1 instances and what the re-validation changed.
    """
    # heavy, imported where used: alnb.datasets.weld, alnb.model.train, alnb.acquisition.scoring
    from alnb.datasets import weld

    check_location(workspace, data_dir)
    with workspace_lock(workspace, "setup", log=log):
        if generate:
            weld.generate(data_dir, weld.WeldConfig(n_images=n_images, width=image_size, height=image_size,
                                                    seed=data_seed), progress=progress)
        ws = Workspace.create(workspace, data_dir, n_val=n_val, n_gt1=n_gt1, seed=seed, overwrite=overwrite,
                              progress=progress)
        summary = setup_summary(ws)
        ws.save_json("setup", summary)
    for line in excluded_summary(ws).splitlines():  # each line "[alnb] ...": the CLI shows only those (alnb.core.logs)
        _log("[alnb] " + line, log)
    for k, stems in summary["refreshed"].items():
        _log(f"[alnb] re-validated the dataset: {len(stems)} image(s) {k.replace('_', ' ')} "
             f"(e.g. {', '.join(stems[:3])})", log)
    if summary["not_in_GT1"]:
        _log(f"[alnb] warning: class(es) {summary['not_in_GT1']} have no instance in GT1, so CAL1 cannot learn "
             f"them; a larger --n-gt1 or more labels of those classes help.", log)
    if summary["not_measurable_on_VAL1"]:
        _log(f"[alnb] warning: class(es) {summary['not_measurable_on_VAL1']} have no instance in VAL1: their "
             f"precision/recall cannot be measured (reported as not measurable).", log)
    return ws


WARM_START = "previous"  # the warm-start rule of rounds >= 3 for both chains (docs/results/2026-12-06-warm-start.md)
WARM_START_RULES = ("previous", "CAL1")


def warm_start_run(ws: Workspace, name: str, tags, profile="quick", warm_start="auto") -> str | None:
    """The run a model starts from: ``warm_start`` names it, None = the profile's own start, ``"auto"`` = the rule
    :data:`WARM_START` when the profile warm-starts (``finetune_epochs`` set) and the model adds selections to GT1.

    Round 2: CAL2 and Control both start from CAL1 and train ``finetune_epochs`` on their own set, so the two arms
    differ only in the images they add (a paired design: the same start, the same schedule); docs/guide/training.md gives the measurements behind it.  Rounds k >= 3 (run names ``CAL<k>`` / ``Control<k>``): rule
    ``"previous"`` starts each chain from its own model of round k-1 (CAL<k-1> / Control<k-1>), rule ``"CAL1"``
    every round from CAL1; both chains always follow the same rule.  Any other run name trained on GT1 + selections
    starts from CAL1.  A start that has not finished yet gives None (the profile's start).
    """
    from alnb.model.train import _finished_info, get_profile

    if warm_start not in ("auto", *WARM_START_RULES):
        return warm_start
    rule = WARM_START if warm_start == "auto" else warm_start
    prof = get_profile(profile)  # a name or a Profile (with the caller's overrides)
    tags = [tags] if isinstance(tags, str) else list(tags)
    if prof.finetune_epochs is None or name == "CAL1" or "GT1" not in tags or len(tags) < 2:
        return None
    r = model_round(name)
    start = "CAL1"
    if r is not None and rule == "previous" and r[1] >= 3:
        start = cal_name(r[1] - 1) if r[0] == "cal" else control_name(r[1] - 1)
    return start if _finished_info(Path(ws.root) / "runs" / start) is not None else None


@locked
def train_and_evaluate(ws: Workspace, name: str, tags, profile: str = "quick", seed: int = 0, conf=None,
                       iou_thr: float = 0.5, warm_start="auto", **overrides) -> TrainEvalResult:
    """Train ``name`` on ``tags`` (cached) and evaluate it on VAL1 at its operating point; returns
    :class:`TrainEvalResult` (``.train``, ``.eval``).  ``conf=None`` chooses the operating point on VAL1 (:func:`alnb.evaluation.step.evaluate`);
    ``warm_start`` see :func:`warm_start_run`; the profile's round recipe (:data:`alnb.model.train.RECIPES`) decides
    how a model with a warm start trains (epochs, learning rate, shrink and perturb) or whether it starts afresh."""
    from alnb.model.train import get_profile, recipe_of, train_cal

    prof = get_profile(profile, **{k: v for k, v in overrides.items() if k != "epochs"})
    start = warm_start_run(ws, name, tags, prof, warm_start) if recipe_of(prof).warm else None
    if start is not None:
        warm = recipe_start(ws, prof, start, seed)  # the caller's epochs win; its lr0 is in prof, scaled there
        res = train_cal(ws, name, tags, profile, seed=seed, **{**warm, **{k: v for k, v in overrides.items()
                                                                        if not (k == "lr0" and "lr0" in warm)}})
    else:
        res = train_cal(ws, name, tags, profile, seed=seed, recipe="fresh" if name != "CAL1" else None, **overrides)
    ev = evaluate(ws, name, conf=conf, iou_thr=iou_thr, tag="VAL1")
    return TrainEvalResult(train=res, eval=ev)


def recipe_start(ws: Workspace, profile, start: str, seed: int = 0) -> dict:
    """The :func:`alnb.model.train.train_cal` arguments of a warm start from run ``start`` under the profile's round
    recipe: ``weights`` (the run's ``best.pt``, shrunk and perturbed where the recipe says so), ``epochs`` (the
    profile's ``finetune_epochs``), ``lr0`` (scaled by the recipe) and ``recipe`` (its name, recorded in the run)."""
    from alnb.model.train import get_profile, load_run, recipe_of, round_epochs, shrink_perturb_checkpoint

    prof = get_profile(profile)
    recipe = recipe_of(prof)
    weights = load_run(ws, start).weights
    if recipe.shrink is not None:
        weights = shrink_perturb_checkpoint(weights, Path(ws.root) / "runs" / ".starts", recipe.shrink,
                                            recipe.perturb, seed)
    out = {"weights": weights, "epochs": round_epochs(prof), "recipe": recipe.name}
    if recipe.lr_scale != 1.0:
        out["lr0"] = float(prof.extra.get("lr0", 0.01)) * recipe.lr_scale
    return out


def selection_pool(ws: Workspace, thresholds: tuple | None = None, *, model: str | None = None, exclude=(),
                   scored: bool = True):
    """The candidate POOL for every selection: eligible rows of ``scores.csv`` (``model``: that model's scores) +
    embeddings; with ``scored=False`` or before scoring, the eligible POOL stems alone (enough for the random
    strategy).  Images carrying a tag of ``exclude`` are left out."""
    from alnb.acquisition.scoring import load_pool

    if scored and scores_file(ws, "scores.csv", model).is_file():
        return load_pool(ws, thresholds=thresholds, model=model, exclude=exclude)

    return Pool(pd.DataFrame({"stem": sel.pool_stems(ws.manifest(), exclude)}), None, thresholds)


def budget_strategy(strategy: str | None = None) -> str:
    """The strategy of a budgeted selection: ``strategy``, else :data:`alnb.acquisition.strategies.DEFAULT_BUDGET_STRATEGY`."""
    name = strategy or acq.DEFAULT_BUDGET_STRATEGY
    if name not in acq.STRATEGIES:
        raise ValueError(f"strategy must be one of {sorted(acq.STRATEGIES)}, not {name!r}.")
    return name


def budget_rule_text(n: int, strategy: str | None = None) -> str:
    """How a budgeted selection was made, in words (the selection record, the explorer, the report)."""
    name = budget_strategy(strategy)
    how = {"study_rule": "the study rule's order: failed first, then hardest",
           "random": "at random (no strategy beat it per labelling second)"}.get(name, f"strategy {name}")
    return f"budget: {n} images, {how}"


def round_seed(seed: int, k: int) -> int:
    """The seed of round ``k``'s draws: ``seed`` itself in round 2 (the seed's numbers), then a number derived from
    ``(seed, k)`` (numpy SeedSequence), so every round's random draws are their own and reproducible."""
    return int(seed) if k == 2 else int(np.random.SeedSequence([int(seed), int(k)]).generate_state(1)[0])


@locked
def select_round(ws: Workspace, k: int, rule: str = "study", t_medium=None, t_hard=None, budget=None, *,
                 seed: int = 0, strategy: str | None = None) -> list:
    """Commit GT<k> (round ``k`` >= 2) through the strategy registry (:func:`alnb.acquisition.strategies.select`), from the
    scores of CAL<k-1> over the POOL images no earlier round selected; returns the selected stems.

    ``rule="study"``: medium + hard + failed at the thresholds (default: CAL<k-1>'s scoring step's), the study rule
    at its own size; ``rule="budget"``: ``budget`` images chosen by ``strategy`` (default
    :data:`alnb.acquisition.strategies.DEFAULT_BUDGET_STRATEGY`, random: no strategy beat it per labelling second; ``"study_rule"``
    = the study rule's order, failed first, then hardest); any other name of :data:`alnb.acquisition.strategies.STRATEGIES`
    (``"hybrid"``, ``"bald"``, ...) as ``rule`` with ``budget``.
    The record (``metrics/selection.json`` for GT2, ``metrics/gt<k>.json`` after) names the model whose scores chose
    it (``scores_model``).
    """
    model = cal_name(k - 1)
    src = model if k > 2 else None  # round 2 reads the workspace's scores.csv, as notebooks 02-03 always did
    scored_by = str(load_scores(ws, src)["model"].iloc[0]) if k > 2 else model
    if scored_by != model:
        raise WorkspaceError(f"round {k} selects with {model}'s scores, but the scores found are {scored_by}'s: "
                             f"score the POOL with {model} first (alnb score --workspace {ws.root} --model {model}).")
    earlier = [gt_tag(j) for j in range(2, k)]
    dm, dh = sel.default_thresholds(ws, src)
    tm, th = (dm if t_medium is None else float(t_medium)), (dh if t_hard is None else float(t_hard))
    sel.check_thresholds(tm, th)
    if rule == "study":
        strategy, n, thresholds = "study_rule", None, (tm, th)
        info = {"rule": "study: medium + hard + failed"}
    else:
        if budget is None:
            raise ValueError(f"rule={rule!r} needs budget=<number of images>.")
        if rule != "budget" and rule not in acq.STRATEGIES:
            raise ValueError(f"rule must be 'study', 'budget' or a strategy of {sorted(acq.STRATEGIES)}, not {rule!r}.")
        strategy, n, thresholds = (budget_strategy(strategy) if rule == "budget" else rule), int(budget), None
        info = {"rule": (budget_rule_text(n, strategy) if rule == "budget" else f"strategy {rule}: {n} images"),
                "budget": n}
    pool = selection_pool(ws, thresholds, model=src, exclude=earlier)  # read once: scores (+ embeddings)
    if n is not None and n > len(pool):
        raise sel.SelectionError(f"budget k={n} is larger than the {len(pool)} eligible POOL images.")
    stems = acq.select(strategy, pool, n, seed=round_seed(seed, k))
    counts = sel.tier_counts(pool.scores, tm, th)
    sel.commit(ws, stems, gt_tag(k), info={**info, "strategy": strategy, "seed": seed, "round": k,
                                          "scores_model": model, "t_medium": tm, "t_hard": th, "counts": counts,
                                          "defaults": {"t_medium": dm, "t_hard": dh}})
    return stems


def select_gt2(ws: Workspace, rule: str = "study", t_medium=None, t_hard=None, budget=None, *, seed: int = 0,
               strategy: str | None = None) -> list:
    """Round 2's selection (GT2, from CAL1's scores): :func:`select_round` with ``k=2``."""
    return select_round(ws, 2, rule, t_medium, t_hard, budget, seed=seed, strategy=strategy)


def selection_figures(ws: Workspace, model: str = "CAL1", n_thumbs: int = 8) -> dict:
    """Score histogram at the committed thresholds + thumbnails of the hard tier; saved into ``figures/``."""
    info = ws.load_json("selection")
    tm, th = info["t_medium"], info["t_hard"]
    scores = sel.eligible(sel.load_scores(ws), ws.manifest())
    hard = sel.tier_stems(scores, sel.categorise(scores, tm, th), "hard")
    out = {}
    for name, fig in (("score_histogram", plots.score_histogram(scores, tm, th)),
                      ("gt2_thumbnails_hard", plots.tier_thumbnails(ws, scores, hard[:n_thumbs], "hard",
                                                                    n_in_tier=len(hard), model=model))):
        out[name] = plots.save_figure(fig, name, ws)
        plt.close(fig)
    return out


@locked
def make_control(ws: Workspace, seed: int = 0, n: int | None = None, *, k: int = 2) -> list:
    """Commit round ``k``'s control images (CONTROL for round 2, CONTROL<k> after): the ``random`` strategy
    (:func:`alnb.acquisition.strategies.select`, the same code path as GT<k>) with ``n`` (default ``|GT<k>|``) images, drawn
    from the POOL images the control chain has not taken yet, with the round's own seed (:func:`round_seed`).
    Returns the stems."""
    gt = ws.stems(gt_tag(k))
    if n is None:
        if not gt:
            raise WorkspaceError(f"no {gt_tag(k)} images: select {gt_tag(k)} first (notebook 03 / the round's "
                                 f"notebook) so the control set gets the same size.")
        n = len(gt)
    earlier = [control_tag(j) for j in range(2, k)]
    # round 2 draws as it always did (over the scored POOL); later rounds over the stems the chain has not taken
    pool = selection_pool(ws, scored=k == 2, exclude=earlier)
    if n > len(pool):
        raise sel.SelectionError(f"control size n={n} is larger than the {len(pool)} POOL images.")
    stems = acq.select("random", pool, int(n), seed=round_seed(seed, k))
    ov = sel.overlap(gt, stems)
    sel.commit(ws, stems, control_tag(k), info={"rule": "random sample of the POOL", "strategy": "random",
                                                "seed": seed, "round": k, "n_gt": len(gt), "overlap_with_gt": ov,
                                                **({"n_gt2": len(gt), "overlap_with_gt2": ov} if k == 2 else {})})
    return stems


@locked
def ensure_labelled(ws: Workspace, tag: str, source=None, fmt: str = "yolo", log=print, annotation=None,
                    prelabels: str | None = None) -> dict:
    """:func:`alnb.loop.selection.label_selection`; raises :class:`alnb.core.workspace.WaitingForLabels` (the CLI: exit code 3,
    with the next command) while labels are still missing.  Labels people gave are never overwritten: a ``source``
    that changes them is refused with a per-image diff (:class:`alnb.labels.labelio.ImportProblem`).  A final label
    set written before (``<workspace>/final/``, ``alnb review --accept``) is refreshed with the new labels
    (:func:`alnb.loop.reviewstep.refresh_final`), so it never keeps machine labels of images people have labelled."""
    if source is not None and ws.mode == "simulation":
        _log(f"[alnb] note: {ws.dataset_root} labels every image (simulation mode), so the {tag} labels are revealed "
             f"from the dataset and {source} is not read.", log)
    st = sel.label_selection(ws, tag, source=source, fmt=fmt, annotation=annotation, prelabels=prelabels)
    if st["imported"] is not None:
        _log("[alnb] " + describe_import(st["imported"], source), log)
    refresh_final(ws, log=lambda msg: _log(msg, log))
    if st["waiting"]:
        raise WaitingForLabels(tag, st["n"], st["waiting"], st["queue"])
    return st


def rerun_command(ws: Workspace, labels: bool = False) -> str:
    """The ``alnb run`` command that continues this workspace with the settings it was made with: the command last
    given (``metrics/run_command.json``, written by ``alnb run``), else one rebuilt from ``workspace.json`` (split
    sizes, seed) and CAL1's profile -- never one that the split check would refuse with advice to ``--overwrite``.
    ``labels``: add ``--labels EXPORT.json --label-format labelstudio`` (the real loop's label steps)."""
    argv = None
    saved = ws.root / "metrics" / "run_command.json"
    if saved.is_file():
        try:
            argv = [str(a) for a in json.loads(saved.read_text())["argv"]]
        except (ValueError, KeyError, TypeError, OSError):
            argv = None
    if argv is None:
        cfg = ws.config
        argv = ["alnb", "run", "--data", str(cfg.get("data_yaml") or ws.dataset_root), "--workspace", str(ws.root)]
        try:
            profile = json.loads((ws.root / "runs" / "CAL1" / "alnb_run.json").read_text()).get("profile")
        except (ValueError, OSError, AttributeError):
            profile = None
        if profile:
            argv += ["--profile", str(profile)]
        argv += [x for k, flag in (("n_val", "--n-val"), ("n_gt1", "--n-gt1"), ("seed", "--seed"))
                 if cfg.get(k) is not None for x in (flag, str(cfg[k]))]
    if labels:
        argv += ["--labels", "EXPORT.json", "--label-format", "labelstudio"]
    return shlex.join(argv)


def planned_rounds(ws: Workspace) -> int:
    """The rounds the loop is to run: ``metrics/run_plan.json`` (``alnb run --rounds``), at least the last round
    that has a selection, at least 2."""
    try:
        planned = int(ws.load_json("run_plan").get("rounds", 2))
    except (WorkspaceError, ValueError, TypeError, AttributeError):
        planned = 2
    present = [tag_round(t)[1] for t in ws.selection_tags()]
    return max([2, planned, *present])


def _finished(ws: Workspace, name: str) -> bool:
    d = ws.root / "runs" / name
    return (d / "alnb_run.json").is_file() and (d / "weights" / "best.pt").is_file()


def loop_status(ws: Workspace) -> LoopStatus:
    """Where the loop stands (:class:`LoopStatus`): the round, set sizes, labelled / waiting per selection, finished
    trainings, the lock holder and the next step (``next``: one sentence)."""
    m = ws.manifest()
    ws.check_selections(m)  # a hand-edited tag (GT2 -> GT3) is named, never reported as round 3
    counts = ws.tag_counts(m)
    n_rounds = planned_rounds(ws)
    tags = [t for k in range(2, n_rounds + 1) for t in (gt_tag(k), control_tag(k))]
    labels = {t: {k: v for k, v in sel.label_status(ws, t).items() if k != "tag"} for t in tags}
    names = ["CAL1"] + [n for k in range(2, n_rounds + 1) for n in (cal_name(k), control_name(k))]
    runs = {name: _finished(ws, name) for name in names}
    have = {"scores": (ws.root / "scores.csv").is_file(), "report": (ws.root / "report.md").is_file()}
    queue = {t: str(ws.root / "export" / f"{t}_labelstudio" / "tasks.json") for t in tags
             if labels[t]["waiting"] and (ws.root / "export" / f"{t}_labelstudio" / "tasks.json").is_file()}
    steps = [(1, runs["CAL1"], "train CAL1 on GT1", None), (2, have["scores"], "auto-label + score the POOL", None)]
    for k in range(2, n_rounds + 1):
        g, c = gt_tag(k), control_tag(k)
        if k > 2:
            steps.append((k, scores_file(ws, "scores.csv", cal_name(k - 1)).is_file(),
                          f"auto-label + score the rest of the POOL with {cal_name(k - 1)}", None))
        steps += [(k, counts.get(g, 0) > 0, f"select {g}", None),
                  (k, counts.get(g, 0) > 0 and not labels[g]["waiting"], f"label {g}", g),
                  (k, runs[cal_name(k)], f"train {cal_name(k)}", None),
                  (k, counts.get(c, 0) > 0, f"draw the control set {c}", None),
                  (k, counts.get(c, 0) > 0 and not labels[c]["waiting"], f"label {c}", c),
                  (k, runs[control_name(k)], f"train {control_name(k)}", None)]
    steps.append((n_rounds, have["report"], "write the comparison report", None))
    todo = next(((k, what, t) for k, done, what, t in steps if not done), None)
    current = todo[0] if todo else n_rounds
    if todo is None:
        nxt = f"done: the report is {ws.root / 'report.md'}"
    elif todo[2] is not None and ws.mode == "real":
        t = todo[2]
        cmd = rerun_command(ws, labels=True)
        saved = ws.root / "metrics" / "next_command.json"  # the exact command `alnb run` printed when it stopped
        if saved.is_file():
            try:
                cmd = json.loads(saved.read_text())["command"]
            except (ValueError, KeyError, TypeError, OSError):
                pass
        nxt = (f"round {current}, {todo[1]}: {len(labels[t]['waiting'])} image(s) waiting"
               + (f", queue {queue[t]}" if t in queue else "") + f"; then {cmd}")
    else:  # simulation mode: the simulated annotator labels the selections inside the run
        nxt = f"round {current}, {todo[1]}: {rerun_command(ws)}"
    return LoopStatus(workspace=str(ws.root), dataset=str(ws.dataset_root), mode=ws.mode, round=current,
                      rounds=n_rounds, sets=counts, labels=labels, queue=queue, trainings=runs, **have,
                      lock=holder_status(ws.root), next=nxt)


def _check_budget(ws: Workspace, rule: str, budget):
    """Refuse a budget the POOL cannot hold as soon as the split is known (:func:`select_gt2` checks it again)."""
    if rule == "study" or budget is None:
        return
    n_pool = len(sel.pool_stems(ws.manifest()))
    if int(budget) > n_pool:
        raise sel.SelectionError(f"budget {budget} is larger than the {n_pool} POOL image(s) that can be selected "
                                 f"in {ws.root}: lower --budget (budget=). Nothing was trained.")


@locked
def record_round(ws: Workspace, k: int, costs=None) -> dict:
    """``metrics/round_<k>.json``: round ``k``'s selections, each chain's cumulative labelled images and the
    labelling seconds of its new images when people correct the chain's previous model's auto-labels
    (:func:`alnb.evaluation.step.selection_cost`: CAL<k-1> for GT<k>, Control<k-1> (CAL1 in round 2) for the control
    images)."""
    costs = resolve_costs(ws, costs)[0]
    if k > 2 and not (ws.root / "metrics" / f"round_{k - 1}.json").is_file():
        record_round(ws, k - 1, costs)  # e.g. round 2 run by notebooks 03-04, which do not record it
    rec = {"round": k, "costs": costs.to_dict(), "chains": {}}
    for arm, tag, model, prev in (("cal", gt_tag(k), cal_name(k), cal_name(k - 1)),
                                  ("control", control_tag(k), control_name(k),
                                   "CAL1" if k == 2 else control_name(k - 1))):
        stems = ws.stems(tag)
        cum = sorted(set(ws.stems(*train_tags(arm, k)[1:])))
        c = selection_cost(ws, stems, prev, costs)
        rec["chains"][arm] = {"tag": tag, "model": model, "prelabels": prev, "new_images": len(stems),
                              "cumulative_images": len(cum), **{f"new_{kk}": v for kk, v in c.items()
                                                                if kk not in ("model", "images")}}
    for arm in ("cal", "control"):  # cumulative seconds: this round's plus the earlier rounds'
        prev_s = ws.load_json(f"round_{k - 1}")["chains"][arm]["cumulative_assisted_s"] if k > 2 else 0.0
        prev_m = ws.load_json(f"round_{k - 1}")["chains"][arm]["cumulative_manual_s"] if k > 2 else 0.0
        ch = rec["chains"][arm]
        ch["cumulative_assisted_s"] = prev_s + ch["new_assisted_s"]
        ch["cumulative_manual_s"] = prev_m + ch["new_manual_s"]
    ws.save_json(f"round_{k}", rec)
    return rec


def check_round_ready(ws: Workspace, k: int) -> None:
    """Raise :class:`WorkspaceError` saying what to run first unless round ``k`` (>= 3) can start: both models of
    round ``k - 1`` (CAL<k-1>, Control<k-1>) trained and evaluated on VAL1."""
    if int(k) != k or k < 3:
        raise WorkspaceError(f"round = {k}: this step runs rounds 3, 4, ... (round 2 is notebooks 03-04); "
                             "give 3 or more.")
    missing = [m for m in (cal_name(k - 1), control_name(k - 1))
               if not (_finished(ws, m) and (ws.root / "metrics" / f"eval_{m}.json").is_file())]
    if missing:
        how = ("run notebooks 03 and 04 (round 2)" if k == 3 else f"run this notebook with round = {k - 1}")
        raise WorkspaceError(f"round {k} starts from round {k - 1}'s models, but {' and '.join(missing)} "
                             f"{'is' if len(missing) == 1 else 'are'} not trained and evaluated in {ws.root} yet: "
                             f"{how}, or `alnb run --rounds {k}`.")


def next_round(ws: Workspace, k: int, profile: str = "quick", *, seed: int = 0, T: int = 20, conf=None,
               rule: str = "study", budget=None, labels=None, label_format: str = "yolo", annotation=None,
               step=None, log=print, strategy: str | None = None, review_plan: bool = False,
               **train_overrides) -> RoundResult:
    """Round ``k`` >= 2 of the loop (round 2 = GT2 / CAL2 / Control, the seed's study; ``alnb run`` runs every
    round through here): CAL<k-1> auto-labels and MC-scores the POOL images no earlier round selected,
    GT<k> is chosen from those scores (``rule`` / ``budget`` / ``strategy`` as :func:`select_round`), labelled, and CAL<k> trains on
    GT1 + GT2 ... GT<k>; the control chain adds |GT<k>| random images it has not taken yet (CONTROL<k>) and trains
    Control<k> on GT1 + CONTROL ... CONTROL<k>.  Each step is cached, so rerunning continues where it stopped.
    ``step(name, fn, *args, **kw)`` runs (and times) each step (default: just call it).  ``review_plan``: right after
    CAL<k-1> scored the POOL, the review plan of what is still unlabelled is recomputed with it
    (:func:`alnb.loop.reviewstep.update_plan`: VAL1 scored by CAL<k-1>, one line per model in
    ``metrics/review_plan_rounds.json``); it changes no selection, model or number of the loop."""
    from alnb.acquisition.scoring import score_pool

    if int(k) != k or k < 2:
        raise ValueError(f"next_round runs round 2 (GT2 / CAL2 / Control), 3, ...; got {k}")
    step = step or (lambda name, fn, *a, **kw: fn(*a, **kw))
    lab = dict(source=labels, fmt=label_format, annotation=annotation, log=log)
    step(f"round {k}: auto-label + MC-dropout scores with {cal_name(k - 1)}", score_pool, ws, model=cal_name(k - 1),
         T=T, conf=conf, seed=seed, progress=False)
    if review_plan:
        step(f"round {k}: review plan with {cal_name(k - 1)}", update_plan, ws, cal_name(k - 1), log=log, seed=seed)
    gt = step(f"round {k}: select {gt_tag(k)}", select_round, ws, k, rule=rule, budget=budget, seed=seed,
              strategy=strategy)
    _log(f"[alnb] {gt_tag(k)}: {len(gt)} images", log)
    if k == 2:  # figures/score_histogram and gt2_thumbnails_hard: the report's GT2 figures (notebook 03 draws them)
        step(f"round {k}: selection figures", selection_figures, ws, cal_name(k - 1))
    step(f"round {k}: label {gt_tag(k)}", ensure_labelled, ws, gt_tag(k), **lab)
    cal = step(f"round {k}: {cal_name(k)} ({' + '.join(train_tags('cal', k))})", train_and_evaluate, ws,
               cal_name(k), train_tags("cal", k), profile, seed=seed, conf=conf, **train_overrides)
    step(f"round {k}: control set {control_tag(k)}", make_control, ws, seed=seed, k=k)
    step(f"round {k}: label {control_tag(k)}", ensure_labelled, ws, control_tag(k),
         prelabels=control_name(k - 1) if k > 2 else None, **lab)  # round 2: CAL1's, from the scoring
    ctl = step(f"round {k}: {control_name(k)} (GT1 + the control chain)", train_and_evaluate, ws, control_name(k),
               train_tags("control", k), profile, seed=seed, conf=conf, **train_overrides)
    step(f"round {k}: labelling costs", record_round, ws, k)
    return RoundResult(cal=cal, control=ctl)
