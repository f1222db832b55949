"""``alnb run``: every step of the loop headless, in order, from a dataset folder to ``report.md``."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt

from alnb.core.records import Options, Record, takes_options
from alnb.loop.pipeline import _check_budget, _log, budget_strategy, next_round, setup, train_and_evaluate
from alnb.ui.report import compare
from alnb.core.logs import quiet
from alnb.figures.plots import diagnostic_figures


def _diagnostic_figures(ws, model: str) -> list:
    """:func:`alnb.figures.plots.diagnostic_figures` saved and closed (headless); returns the figure names."""
    figs = diagnostic_figures(ws, model)
    for fig in figs.values():
        plt.close(fig)
    return sorted(figs)


@dataclass(frozen=True)
class RunOptions(Options):
    """The settings of :func:`run` (its parameters of the same names and defaults, documented there):
    ``run(data, ws, options=RunOptions(profile="smoke", rounds=3))``.  The folders (``data_dir``, ``workspace``) and
    ``command`` stay arguments of the call; ``train_overrides`` are :func:`run`'s extra keywords (``epochs=5``)."""

    profile: str = "quick"
    seed: int = 0
    T: int = 20
    # the dataset (generated) and its split
    generate: bool = False
    n_images: int = 774
    image_size: int = 512
    data_seed: int = 0
    n_val: int = 178
    n_gt1: int = 177
    conf: float | None = None
    # labels of the selections (real mode)
    labels: object = None
    label_format: str = "yolo"
    annotation: object = None
    # every round's selection
    rule: str = "study"
    budget: int | None = None
    strategy: str | None = None
    rounds: int = 2
    review_plan: bool = False
    # output
    log: object = print
    verbose: bool = False
    train_overrides: dict | None = None  # profile overrides of every training (run's **train_overrides)

    def kwargs(self) -> dict:
        out = super().kwargs()
        return {**{k: v for k, v in out.items() if k != "train_overrides"}, **(self.train_overrides or {})}


@dataclass(frozen=True, eq=False)
class RunResult(Record):
    """What :func:`run` returns (also ``res["report"]`` ..., the dict's keys before)."""

    workspace: Path
    report: Path  # report.md
    figures: Path  # the figures folder
    seconds: float  # the whole run


@takes_options(RunOptions)
def run(data_dir, workspace, profile: str = "quick", seed: int = 0, T: int = 20, generate: bool = False,
        n_images: int = 774, image_size: int = 512, data_seed: int = 0, n_val=178, n_gt1=177, conf=None, labels=None,
        label_format: str = "yolo", rule: str = "study", budget=None, log=print, annotation=None, rounds: int = 2,
        strategy: str | None = None, verbose: bool = False, command=None, review_plan: bool = False,
        **train_overrides) -> RunResult:
    """Every step headless, in order; returns :class:`RunResult` (``workspace``, ``report``, ``figures``,
    ``seconds``).  ``options=RunOptions(...)`` gives the settings in one object instead of keywords; a keyword beside
    it for one of its fields (or one of its ``train_overrides``) is a TypeError
    (:func:`alnb.core.records.takes_options`).

    Each step's own output (ultralytics' training log, progress bars) goes to ``<workspace>/logs/<step>.log``; only
    the ``[alnb]`` lines reach ``log``'s terminal (``verbose=True``: everything, as it is printed).

    ``rule`` / ``budget`` / ``strategy``: every round's selection (:func:`select_round`; ``rule="budget"`` takes
    ``budget`` images by ``strategy``, default :data:`alnb.acquisition.strategies.DEFAULT_BUDGET_STRATEGY`).
    ``rounds``: 2 (default) = the seed's study (GT2 / CAL2 / Control); N continues with rounds 3 ... N
    (:func:`next_round`), the report showing both chains round by round.
    ``review_plan``: in every round, the review plan of the unlabelled POOL recomputed with CAL<k-1> right
    after it scored the POOL (opt-in: it scores VAL1 once more per round; the report then lists the review hours per
    model).

    ``seed`` drives the split, training and the Control draw; ``data_seed`` the generated dataset (``generate``).
    ``labels``: for a dataset with unlabelled POOL images, where people's labels for GT2/Control are imported from
    (``annotation``: which of several Label Studio annotations of a task, :func:`alnb.labels.labelio.import_labels`).
    ``command``: the ``alnb run`` command line (a list, ``alnb`` first) to record in ``metrics/run_command.json`` as
    soon as the workspace exists, before any training, so ``alnb status`` prints it with the same settings even after
    the process was killed in CAL1's training (:func:`rerun_command`).
    """
    t0 = time.perf_counter()
    times = {}

    def step(name, fn, *a, **k):
        t = time.perf_counter()
        _log(f"[alnb] {name} ...", log)
        path = Path(workspace) / "logs" / (re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") + ".log")
        with quiet(path, verbose) as folded:
            out = fn(*a, **k)
        times[name] = round(time.perf_counter() - t, 1)
        more = f" (log: {Path('logs') / path.name}, {folded.lines} lines)" if folded and folded.lines > 3 else ""
        _log(f"[alnb] {name} done in {times[name]} s{more}", log)
        return out

    if int(rounds) != rounds or rounds < 2:
        raise ValueError(f"rounds={rounds}: the loop has at least round 2 (GT2 / CAL2 / Control); give 2, 3, ...")
    ws = step("setup", setup, workspace, data_dir, generate=generate, n_images=n_images, image_size=image_size,
              data_seed=data_seed, n_val=n_val, n_gt1=n_gt1, seed=seed)
    if command is not None:  # the settings, recorded before the first training starts (issue 37)
        ws.save_json("run_command", {"argv": [str(a) for a in command]})
    ws.save_json("run_plan", {"rounds": int(rounds), "rule": rule, "budget": budget,
                              "strategy": budget_strategy(strategy) if rule == "budget" else None})
    _check_budget(ws, rule, budget)  # before CAL1 trains, not minutes later at "select GT2"
    budget_strategy(strategy)  # an unknown --strategy is named before any training too
    step("CAL1 (GT1)", train_and_evaluate, ws, "CAL1", ["GT1"], profile, seed=seed, conf=conf, **train_overrides)
    step("CAL1 diagnostics figures", _diagnostic_figures, ws, "CAL1")
    for k in range(2, int(rounds) + 1):  # one code path for every round (round 2 = GT2 / CAL2 / Control)
        next_round(ws, k, profile, seed=seed, T=T, conf=conf, rule=rule, budget=budget, strategy=strategy,
                   labels=labels, label_format=label_format, annotation=annotation, step=step, log=log,
                   review_plan=review_plan, **train_overrides)
    rep = step("comparison + report", compare, ws)
    total = round(time.perf_counter() - t0, 1)
    ws.save_json("run_times", {"profile": profile, "rounds": int(rounds), "seconds": times, "total_s": total})
    return RunResult(workspace=ws.root, report=rep, figures=ws.figures_dir, seconds=total)
