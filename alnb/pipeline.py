"""The study's steps as plain functions, shared by the notebooks and the ``alnb run`` command.

setup -> CAL1 (GT1) -> evaluate -> auto-label + MC-dropout scores -> GT2 (thresholds, study rule) -> label GT2 ->
CAL2 (GT1 + GT2) -> Control (random POOL sample of |GT2|) -> label Control -> Control model (GT1 + Control) ->
comparison figures + ``report.md``.  Every step reads from and writes to the workspace, so steps can run in separate
processes (notebooks) and re-running one is safe (training runs are cached by :func:`alnb.train.train_cal`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import matplotlib.pyplot as plt

from alnb import select as sel
from alnb.lock import locked, workspace_lock
from alnb.workspace import WaitingForLabels, Workspace, WorkspaceError


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
    from alnb import weld
    from alnb.workspace import check_location, excluded_summary, setup_summary

    check_location(workspace, data_dir)
    with workspace_lock(workspace, "setup", log=log):
        if generate:
            weld.generate(data_dir, weld.WeldConfig(n_images=n_images, width=image_size, height=image_size,
                                                    seed=data_seed), progress=progress)
        ws = Workspace.create(workspace, data_dir, n_val=n_val, n_gt1=n_gt1, seed=seed, overwrite=overwrite,
                              progress=progress)
        summary = setup_summary(ws)
        ws.save_json("setup", summary)
    _log("[alnb] " + excluded_summary(ws), log)
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


def warm_start_run(ws: Workspace, name: str, tags, profile="quick", warm_start="auto") -> str | None:
    """The run a model starts from: ``warm_start`` names it, None = the profile's own start, ``"auto"`` = CAL1 when
    the profile warm-starts (``finetune_epochs`` set), the tags are GT1 plus a selection and CAL1 has finished.

    CAL2 and Control both start from CAL1 and train ``finetune_epochs`` on their own set, so the two arms differ only
    in the images they add (a paired design: the same start, the same schedule), and the CPU budget of the demo
    holds with a few hundred more images; README "Training CAL models" gives the measurements behind it.
    """
    from alnb.train import _finished_info, get_profile

    if warm_start != "auto":
        return warm_start
    prof = get_profile(profile)  # a name or a Profile (with the caller's overrides)
    tags = [tags] if isinstance(tags, str) else list(tags)
    if prof.finetune_epochs is None or name == "CAL1" or "GT1" not in tags or len(tags) < 2:
        return None
    return "CAL1" if _finished_info(Path(ws.root) / "runs" / "CAL1") is not None else None


@locked
def train_and_evaluate(ws: Workspace, name: str, tags, profile: str = "quick", seed: int = 0, conf=None,
                       iou_thr: float = 0.5, warm_start="auto", **overrides) -> dict:
    """Train ``name`` on ``tags`` (cached) and evaluate it on VAL1 at its operating point; returns
    ``{"train", "eval"}``.  ``conf=None`` chooses the operating point on VAL1 (:func:`alnb.evaluation.evaluate`);
    ``warm_start`` see :func:`warm_start_run`."""
    from alnb.evaluation import evaluate
    from alnb.train import get_profile, load_run, train_cal

    prof = get_profile(profile, **{k: v for k, v in overrides.items() if k != "epochs"})
    start = warm_start_run(ws, name, tags, prof, warm_start)
    if start is not None:
        overrides = {"epochs": prof.finetune_epochs or prof.epochs, **overrides}
        res = train_cal(ws, name, tags, profile, seed=seed, weights=load_run(ws, start).weights, **overrides)
    else:
        res = train_cal(ws, name, tags, profile, seed=seed, **overrides)
    ev = evaluate(ws, name, conf=conf, iou_thr=iou_thr, tag="VAL1")
    return {"train": res, "eval": ev}


def selection_pool(ws: Workspace, thresholds: tuple | None = None):
    """The candidate POOL for every selection: eligible rows of ``scores.csv`` (+ embeddings), or, before scoring,
    the eligible POOL stems alone (enough for the random strategy)."""
    from alnb.acquisition import Pool
    from alnb.scoring import load_pool

    if (ws.root / "scores.csv").is_file():
        return load_pool(ws, thresholds=thresholds)
    import pandas as pd

    return Pool(pd.DataFrame({"stem": sel.pool_stems(ws.manifest())}), None, thresholds)


@locked
def select_gt2(ws: Workspace, rule: str = "study", t_medium=None, t_hard=None, budget=None, *, seed: int = 0) -> list:
    """Commit GT2 through the strategy registry (:func:`alnb.acquisition.select`); returns the selected stems.

    ``rule="study"``: medium + hard + failed at the thresholds (default: the scoring step's), the study rule at its
    own size; ``rule="budget"``: the ``budget`` first images of the study rule's order (failed first, then hardest);
    any other name of :data:`alnb.acquisition.STRATEGIES` (``"hybrid"``, ``"bald"``, ...) with ``budget``.
    """
    from alnb import acquisition as acq

    dm, dh = sel.default_thresholds(ws)
    tm, th = (dm if t_medium is None else float(t_medium)), (dh if t_hard is None else float(t_hard))
    sel.check_thresholds(tm, th)
    if rule == "study":
        strategy, k, thresholds = "study_rule", None, (tm, th)
        info = {"rule": "study: medium + hard + failed"}
    else:
        if budget is None:
            raise ValueError(f"rule={rule!r} needs budget=<number of images>.")
        if rule != "budget" and rule not in acq.STRATEGIES:
            raise ValueError(f"rule must be 'study', 'budget' or a strategy of {sorted(acq.STRATEGIES)}, not {rule!r}.")
        strategy, k, thresholds = ("study_rule" if rule == "budget" else rule), int(budget), None
        info = {"rule": (f"budget: top {k} by score, failed first" if rule == "budget" else
                         f"strategy {rule}: {k} images"), "budget": k}
    pool = selection_pool(ws, thresholds)  # read once: scores.csv (+ embeddings)
    if k is not None and k > len(pool):
        raise sel.SelectionError(f"budget k={k} is larger than the {len(pool)} eligible POOL images.")
    stems = acq.select(strategy, pool, k, seed=seed)
    counts = sel.tier_counts(pool.scores, tm, th)
    sel.commit(ws, stems, "GT2", info={**info, "strategy": strategy, "seed": seed, "t_medium": tm, "t_hard": th,
                                      "counts": counts, "defaults": {"t_medium": dm, "t_hard": dh}})
    return stems


def selection_figures(ws: Workspace, model: str = "CAL1", n_thumbs: int = 8) -> dict:
    """Score histogram at the committed thresholds + thumbnails of the hard tier; saved into ``figures/``."""
    from alnb import plots

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
def make_control(ws: Workspace, seed: int = 0, n: int | None = None) -> list:
    """Commit CONTROL: the ``random`` strategy (:func:`alnb.acquisition.select`, the same code path as GT2) with
    ``n`` (default ``|GT2|``) images.  Returns the stems."""
    from alnb import acquisition as acq

    gt2 = ws.stems("GT2")
    if n is None:
        if not gt2:
            raise WorkspaceError("no GT2 images: select GT2 first (notebook 03) so the Control set gets the same size.")
        n = len(gt2)
    pool = selection_pool(ws)
    if n > len(pool):
        raise sel.SelectionError(f"control size n={n} is larger than the {len(pool)} POOL images.")
    stems = acq.select("random", pool, int(n), seed=seed)
    sel.commit(ws, stems, "CONTROL", info={"rule": "random sample of the POOL", "strategy": "random", "seed": seed,
                                           "n_gt2": len(gt2), "overlap_with_gt2": sel.overlap(gt2, stems)})
    return stems


@locked
def ensure_labelled(ws: Workspace, tag: str, source=None, fmt: str = "yolo", log=print, annotation=None) -> dict:
    """:func:`alnb.select.label_selection`; raises :class:`alnb.workspace.WaitingForLabels` (the CLI: exit code 3,
    with the next command) while labels are still missing.  Labels people gave are never overwritten: a ``source``
    that changes them is refused with a per-image diff (:class:`alnb.labelio.ImportProblem`)."""
    from alnb.labelio import describe_import

    if source is not None and ws.mode == "simulation":
        _log(f"[alnb] note: {ws.dataset_root} labels every image (simulation mode), so the {tag} labels are revealed "
             f"from the dataset and {source} is not read.", log)
    st = sel.label_selection(ws, tag, source=source, fmt=fmt, annotation=annotation)
    if st["imported"] is not None:
        _log("[alnb] " + describe_import(st["imported"], source), log)
    if st["waiting"]:
        raise WaitingForLabels(tag, st["n"], st["waiting"], st["queue"])
    return st


def rerun_command(ws: Workspace, labels: bool = False) -> str:
    """The ``alnb run`` command that continues this workspace with the settings it was made with: the command last
    given (``metrics/run_command.json``, written by ``alnb run``), else one rebuilt from ``workspace.json`` (split
    sizes, seed) and CAL1's profile -- never one that the split check would refuse with advice to ``--overwrite``.
    ``labels``: add ``--labels EXPORT.json --label-format labelstudio`` (the real loop's label steps)."""
    import shlex

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


def loop_status(ws: Workspace) -> dict:
    """Where the loop stands: set sizes, labelled / waiting per selection, finished trainings, the lock holder and the
    next step (``next``: one sentence)."""
    from alnb.lock import holder_status

    m = ws.manifest()
    counts = ws.tag_counts(m)
    labels = {t: {k: v for k, v in sel.label_status(ws, t).items() if k != "tag"} for t in sel.SELECTION_TAGS}
    runs = {}
    for name in ("CAL1", "CAL2", "Control"):
        d = ws.root / "runs" / name
        runs[name] = (d / "alnb_run.json").is_file() and (d / "weights" / "best.pt").is_file()
    have = {"scores": (ws.root / "scores.csv").is_file(), "report": (ws.root / "report.md").is_file()}
    queue = {t: str(ws.root / "export" / f"{t}_labelstudio" / "tasks.json") for t in sel.SELECTION_TAGS
             if labels[t]["waiting"] and (ws.root / "export" / f"{t}_labelstudio" / "tasks.json").is_file()}
    steps = [(runs["CAL1"], "train CAL1 on GT1"), (have["scores"], "auto-label + score the POOL"),
             (counts["GT2"] > 0, "select GT2"), (counts["GT2"] > 0 and not labels["GT2"]["waiting"], "label GT2"),
             (runs["CAL2"], "train CAL2"), (counts["CONTROL"] > 0, "draw the Control set"),
             (counts["CONTROL"] > 0 and not labels["CONTROL"]["waiting"], "label Control"),
             (runs["Control"], "train Control"), (have["report"], "write the comparison report")]
    todo = next((what for done, what in steps if not done), None)
    if todo is None:
        nxt = f"done: the report is {ws.root / 'report.md'}"
    elif todo.startswith("label ") and ws.mode == "real":
        t = "GT2" if "GT2" in todo else "CONTROL"
        cmd = rerun_command(ws, labels=True)
        saved = ws.root / "metrics" / "next_command.json"  # the exact command `alnb run` printed when it stopped
        if saved.is_file():
            try:
                cmd = json.loads(saved.read_text())["command"]
            except (ValueError, KeyError, TypeError, OSError):
                pass
        nxt = (f"{todo}: {len(labels[t]['waiting'])} image(s) waiting" + (f", queue {queue[t]}" if t in queue else "")
               + f"; then {cmd}")
    else:  # simulation mode: the simulated annotator labels the selections inside the run
        nxt = f"{todo}: {rerun_command(ws)}"
    return {"workspace": str(ws.root), "dataset": str(ws.dataset_root), "mode": ws.mode, "sets": counts,
            "labels": labels, "queue": queue, "trainings": runs, **have, "lock": holder_status(ws.root),
            "next": nxt}


@locked
def compare(ws: Workspace) -> Path:
    """Comparison figures + ``report.md``; returns the report path."""
    from alnb import report

    evals = report.load_evals(ws)
    report.comparison_figures(ws, evals)
    return report.write_report(ws, evals)


def _check_budget(ws: Workspace, rule: str, budget):
    """Refuse a budget the POOL cannot hold as soon as the split is known (:func:`select_gt2` checks it again)."""
    if rule == "study" or budget is None:
        return
    n_pool = len(sel.pool_stems(ws.manifest()))
    if int(budget) > n_pool:
        raise sel.SelectionError(f"budget {budget} is larger than the {n_pool} POOL image(s) that can be selected "
                                 f"in {ws.root}: lower --budget (budget=). Nothing was trained.")


def run(data_dir, workspace, profile: str = "quick", seed: int = 0, T: int = 20, generate: bool = False,
        n_images: int = 774, image_size: int = 512, data_seed: int = 0, n_val=178, n_gt1=177, conf=None, labels=None,
        label_format: str = "yolo", rule: str = "study", budget=None, log=print, annotation=None,
        **train_overrides) -> dict:
    """Every step headless, in order; returns ``{"workspace", "report", "figures", "seconds"}``.

    ``seed`` drives the split, training and the Control draw; ``data_seed`` the generated dataset (``generate``).
    ``labels``: for a dataset with unlabelled POOL images, where people's labels for GT2/Control are imported from
    (``annotation``: which of several Label Studio annotations of a task, :func:`alnb.labelio.import_labels`).
    """
    from alnb.scoring import score_pool

    t0 = time.perf_counter()
    times = {}

    def step(name, fn, *a, **k):
        t = time.perf_counter()
        _log(f"[alnb] {name} ...", log)
        out = fn(*a, **k)
        times[name] = round(time.perf_counter() - t, 1)
        _log(f"[alnb] {name} done in {times[name]} s", log)
        return out

    ws = step("setup", setup, workspace, data_dir, generate=generate, n_images=n_images, image_size=image_size,
              data_seed=data_seed, n_val=n_val, n_gt1=n_gt1, seed=seed)
    _check_budget(ws, rule, budget)  # before CAL1 trains, not minutes later at "select GT2"
    step("CAL1 (GT1)", train_and_evaluate, ws, "CAL1", ["GT1"], profile, seed=seed, conf=conf, **train_overrides)
    step("auto-label + MC-dropout scores", score_pool, ws, model="CAL1", T=T, conf=conf)
    gt2 = step("select GT2", select_gt2, ws, rule=rule, budget=budget)
    _log(f"[alnb] GT2: {len(gt2)} images", log)
    step("selection figures", selection_figures, ws)
    step("label GT2", ensure_labelled, ws, "GT2", source=labels, fmt=label_format, annotation=annotation)
    step("CAL2 (GT1 + GT2)", train_and_evaluate, ws, "CAL2", ["GT1", "GT2"], profile, seed=seed, conf=conf,
         **train_overrides)
    step("Control set", make_control, ws, seed=seed)
    step("label Control", ensure_labelled, ws, "CONTROL", source=labels, fmt=label_format, annotation=annotation)
    step("Control (GT1 + Control)", train_and_evaluate, ws, "Control", ["GT1", "CONTROL"], profile, seed=seed,
         conf=conf, **train_overrides)
    rep = step("comparison + report", compare, ws)
    total = round(time.perf_counter() - t0, 1)
    ws.save_json("run_times", {"profile": profile, "seconds": times, "total_s": total})
    return {"workspace": ws.root, "report": rep, "figures": ws.figures_dir, "seconds": total}
