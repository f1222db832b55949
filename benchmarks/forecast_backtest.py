"""How good is the next-round forecast on learning curves we measured?  The one-step-ahead backtest of every curve of
:data:`alnb.loop.forecast.CURVES` (:func:`alnb.loop.forecast.backtest`) over per-seed chains of (labelled images,
measure), and the error scale the forecast step uses (``metrics/forecast_backtest.json``).

Usage::

    python benchmarks/forecast_backtest.py INPUT [INPUT ...] [--recipe fresh] [--n-gt1 177] [--level 0.9]
                                           [--out forecast_backtest.json | --workspace WS]

Each ``INPUT`` is one of

* an ``alnb study`` folder (its ``results/*.json`` rows): one chain per (seed, strategy, budget), the seed's
  ``gt1_only`` row (CAL1) first, then the chain's rounds; x = the round model's training images (GT1 included);
  measures VAL1 ``mAP50-95`` and ``recall``, and ``test_mAP50-95`` when the study has a TEST set
  (:func:`alnb.loop.forecaststep.study_chains`, which ``alnb study``'s report uses too);
* the rows JSON of ``benchmarks/round_recipe.py`` (``{"rows": [...]}``): one chain per base workspace from the
  ``--recipe`` rows (default ``fresh``: +0 = CAL1 on GT1, +100, +250 images, nested draws); x = GT1 + the extra
  images, GT1's size read from the base's ``runs/CAL1/alnb_run.json`` (``n_train``), else ``--n-gt1``; measures VAL1
  ``mAP50-95`` and ``test_mAP50-95``;
* a workspace of ``alnb run --rounds N`` (a folder with ``workspace.json``): two chains, the CAL chain (CAL1, CAL2,
  ... as :func:`alnb.loop.forecaststep.finished_rounds` reads them) and the control chain (CAL1, Control,
  Control3, ... at the same labelled images); measures VAL1 ``mAP50-95`` and ``recall``.

Printed, per measure and curve: the forecasts made (every chain, every k >= 2 fitted points predicting point k+1),
mean absolute error, bias (mean of predicted - measured; negative: the curve under-predicts), error sd, and the
coverage of the nominal ``--level`` interval two ways: the OLS interval (what the step uses without a backtest) and
mean - bias +- z * error sd (what it uses with this file; in-sample, so optimistic).  Written: the same numbers as
JSON; the step reads ``measures[<measure>][<curve>]`` (``error_scale``, ``bias``, ``mean_abs_error``).  Pure numpy:
seconds.  A chain of 3 points gives 1 forecast: with a handful of chains every number here is itself uncertain.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from statistics import NormalDist

import numpy as np

from alnb.loop.forecaststep import (  # noqa: F401  (study_chains, run: this benchmark's names, kept)
    STUDY_MEASURES, backtest_chains as run, backtest_record, chain_of as _chain, _is_finite as _finite,
    lowest_error_curve, study_chains)

RECIPE_MEASURES = {"mAP50-95": "val_mAP50-95", "test_mAP50-95": "test_mAP50-95"}
DEFAULT_N_GT1 = 177  # GT1's size in the default split (alnb run --n-gt1)


def recipe_chains(path, *, recipe: str = "fresh", n_gt1: int | None = None) -> dict:
    """``{measure: {base: (n, y)}}`` from ``benchmarks/round_recipe.py``'s rows: the ``recipe`` rows of each base,
    x = GT1 (the base's CAL1 ``n_train``, else ``n_gt1``, else :data:`DEFAULT_N_GT1`) + the extra images."""
    data = json.loads(Path(path).read_text())
    rows = data["rows"] if isinstance(data, dict) else data
    by = defaultdict(list)
    for r in rows:
        if r.get("recipe") == recipe:
            by[r["base"]].append(r)
    out = defaultdict(dict)
    for base, rs in sorted(by.items()):
        gt1 = n_gt1
        if gt1 is None:
            try:
                gt1 = int(json.loads((Path(base) / "runs" / "CAL1" / "alnb_run.json").read_text())["n_train"])
            except (OSError, ValueError, KeyError, TypeError):
                gt1 = DEFAULT_N_GT1
        for key, col in RECIPE_MEASURES.items():
            pts = [(gt1 + int(r["n"]), float(r[col])) for r in rs if _finite(r.get(col))]
            c = _chain(pts) if len(pts) == len(rs) else None
            if c is not None:
                out[key][f"{Path(base).name}"] = c
    return dict(out)


def workspace_chains(ws_dir) -> dict:
    """``{measure: {chain name: (n, y)}}``: the CAL and control chains of an ``alnb run --rounds N`` workspace."""
    from alnb.core.workspace import Workspace, control_name
    from alnb.loop.forecaststep import MEASURES, finished_rounds

    ws = Workspace.open(ws_dir)
    rounds = finished_rounds(ws)
    out = defaultdict(dict)
    for measure in MEASURES:
        cal = [(r.images, r.measures[measure]) for r in rounds if _finite(r.measures[measure])]
        ctl = [(rounds[0].images, rounds[0].measures[measure])] if rounds else []
        for r in rounds[1:]:
            p = ws.root / "metrics" / f"eval_{control_name(r.round)}.json"
            if not p.is_file():
                break
            ev = json.loads(p.read_text())
            v = ev.get("mAP50-95") if measure == "mAP50-95" else (ev.get("overall") or {}).get("recall")
            if _finite(v):
                ctl.append((r.images, float(v)))
        for name, pts in (("cal", cal), ("control", ctl)):
            c = _chain(pts)
            if c is not None:
                out[measure][f"{Path(ws_dir).name}/{name}"] = c
    return dict(out)


def table(result: dict, level: float) -> str:
    lines = []
    for measure, per in result.items():
        any_model = next(iter(per.values()))
        lines += ["", f"{measure}: {any_model['chains']} chains, one-step-ahead forecasts (predicted - measured), "
                      f"coverage of the nominal {level:.0%} interval", "",
                  f"{'curve':<10} {'forecasts':>9} {'MAE':>8} {'bias':>8} {'error sd':>9} {'cover OLS':>10} "
                  f"{'cover bt':>9}"]
        for model, v in per.items():
            def f(x, fmt):
                return format(x, fmt) if x is not None and np.isfinite(x) else "n/a"
            lines.append(f"{model:<10} {v['n_forecasts']:>9} {f(v['mean_abs_error'], '.4f'):>8} "
                         f"{f(v['bias'], '+.4f'):>8} {f(v['error_scale'], '.4f'):>9} "
                         f"{f(v['coverage_ols'], '.0%'):>10} {f(v['coverage_backtest'], '.0%'):>9}")
        best = lowest_error_curve(per)
        if best:
            lines.append(f"lowest MAE: {best} (the forecast step's choice with this file)")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", help="alnb study folders, round_recipe.py rows JSON files and/or alnb run "
                                              "--rounds N workspaces")
    ap.add_argument("--recipe", default="fresh", help="round_recipe.py rows: the recipe whose rows form the chains")
    ap.add_argument("--n-gt1", type=int, default=None, help="round_recipe.py rows: GT1's size when the base's "
                                                            "runs/CAL1/alnb_run.json cannot be read")
    ap.add_argument("--level", type=float, default=0.9, help="nominal level of the intervals")
    ap.add_argument("--out", default="forecast_backtest.json", help="the error-scale JSON to write")
    ap.add_argument("--workspace", default=None, help="write it as WS/metrics/forecast_backtest.json instead, where "
                                                      "the forecast step reads it")
    args = ap.parse_args(argv)
    chains = defaultdict(dict)
    for inp in args.inputs:
        p = Path(inp)
        if not p.exists():
            print(f"forecast_backtest: {p} does not exist", file=sys.stderr)
            return 2
        got = (workspace_chains(p) if (p / "workspace.json").is_file() else study_chains(p)) if p.is_dir() \
            else recipe_chains(p, recipe=args.recipe, n_gt1=args.n_gt1)
        for measure, ch in got.items():
            chains[measure].update(ch)
    if not chains:
        print("forecast_backtest: no chain of 2 or more points in the inputs", file=sys.stderr)
        return 2
    result = run(dict(chains), args.level)
    for measure, ch in chains.items():
        print(f"{measure} chains (labelled images: value):")
        for name, (n, y) in ch.items():
            print(f"  {name}: " + ", ".join(f"{int(a)}: {b:.4f}" for a, b in zip(n, y)))
    print(table(result, args.level))
    print(f"\n(z for the backtest interval: {NormalDist().inv_cdf((1 + args.level) / 2):.4f}; 'cover bt' is in-sample)")
    out = Path(args.workspace) / "metrics" / "forecast_backtest.json" if args.workspace else Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rec = backtest_record(chains, result, args.level, inputs=[str(Path(i).resolve()) for i in args.inputs],
                          recipe=args.recipe, written=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                          command=["python", "benchmarks/forecast_backtest.py",
                                   *(sys.argv[1:] if argv is None else argv)])
    out.write_text(json.dumps(rec, indent=2) + "\n")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
