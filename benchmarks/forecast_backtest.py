"""How good is the next-round forecast on learning curves we measured?  The one-step-ahead backtest of every curve of
:data:`alnb.loop.forecast.CURVES` (:func:`alnb.loop.forecast.backtest`) over per-seed chains of (labelled images,
measure), and the error scale the forecast step uses (``metrics/forecast_backtest.json``).

Usage::

    python benchmarks/forecast_backtest.py INPUT [INPUT ...] [--recipe fresh] [--n-gt1 177] [--level 0.9]
                                           [--out forecast_backtest.json | --workspace WS]

Each ``INPUT`` is one of

* an ``alnb study`` folder (its ``results/*.json`` rows): one chain per (seed, strategy, budget), the seed's
  ``gt1_only`` row (CAL1) first, then the chain's rounds; x = the round model's training images (GT1 included);
  measures VAL1 ``mAP50-95`` and ``recall``, and ``test_mAP50-95`` when the study has a TEST set;
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

from alnb.loop.forecast import CURVES, backtest

STUDY_MEASURES = {"mAP50-95": "mAP50-95", "recall": "recall", "test_mAP50-95": "test_mAP50-95"}
RECIPE_MEASURES = {"mAP50-95": "val_mAP50-95", "test_mAP50-95": "test_mAP50-95"}
DEFAULT_N_GT1 = 177  # GT1's size in the default split (alnb run --n-gt1)


def _finite(v) -> bool:
    try:
        return v is not None and np.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _chain(points: list) -> tuple | None:
    """(n, y) sorted by n, or None when it has fewer than 2 points or repeats an n."""
    points = sorted(points)
    n = np.array([p[0] for p in points], float)
    if len(n) < 2 or np.any(np.diff(n) <= 0) or np.any(n <= 0):
        return None
    return n, np.array([p[1] for p in points], float)


def study_chains(study_dir) -> dict:
    """``{measure: {chain name: (n, y)}}`` from an ``alnb study`` folder's ``results/*.json`` rows."""
    d = Path(study_dir)
    files = sorted((d / "results").glob("*.json")) if (d / "results").is_dir() else sorted(d.glob("*.json"))
    rows = [json.loads(f.read_text()) for f in files]
    base = {r["seed"]: r for r in rows if r.get("strategy") == "gt1_only"}
    groups = defaultdict(list)
    for r in rows:
        if r.get("strategy") != "gt1_only":
            groups[(r["seed"], r["strategy"], str(r["budget"]))].append(r)
    out = defaultdict(dict)
    for (seed, strategy, budget), rs in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        b = base.get(seed)
        if b is None:
            continue
        n_gt1 = int(b.get("train_images") or 0)
        chain = [b, *sorted(rs, key=lambda r: int(r["round"]))]
        for key, col in STUDY_MEASURES.items():
            pts = [(int(r.get("train_images") or (n_gt1 + int(r["images"]))), float(r[col])) for r in chain
                   if _finite(r.get(col))]
            c = _chain(pts) if len(pts) == len(chain) else None
            if c is not None:
                out[key][f"{d.name}/seed{seed}/{strategy}@{budget}"] = c
    return dict(out)


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


def run(chains: dict, level: float = 0.9) -> dict:
    """``{measure: {curve: numbers}}``: the backtest of every curve, with and without its own error scale."""
    out = {}
    for measure, ch in chains.items():
        pairs = list(ch.values())
        out[measure] = {}
        for model in CURVES:
            bt = backtest(pairs, model=model, level=level)
            corr = backtest(pairs, model=model, level=level, error_scale=bt.error_scale, bias=bt.bias) \
                if np.isfinite(bt.error_scale) else None
            per_k = {}
            for k in sorted(set(bt.n_fitted.tolist())):
                e = bt.errors[bt.n_fitted == k]
                per_k[str(k)] = {"n_forecasts": int(len(e)), "mean_abs_error": float(np.abs(e).mean()),
                                 "bias": float(e.mean()), "error_sd": float(e.std(ddof=1)) if len(e) >= 2 else None}
            out[measure][model] = {
                "chains": len(pairs), "n_forecasts": bt.n_forecasts, "mean_abs_error": bt.mean_abs_error,
                "bias": bt.bias, "error_scale": bt.error_scale, "coverage_ols": bt.coverage,
                "coverage_backtest": corr.coverage if corr is not None else None,
                "errors": [float(e) for e in bt.errors], "by_fitted_points": per_k}
    return out


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
        best = min((m for m in per if per[m]["n_forecasts"]), key=lambda m: per[m]["mean_abs_error"], default=None)
        if best:
            lines.append(f"lowest MAE: {best} (the forecast step's choice with this file)")
    return "\n".join(lines)


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


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
    rec = {"level": args.level, "chains": max(len(c) for c in chains.values()),
           "inputs": [str(Path(i).resolve()) for i in args.inputs], "recipe": args.recipe,
           "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": ["python", "benchmarks/forecast_backtest.py", *(sys.argv[1:] if argv is None else argv)],
           "measures": result,
           "chain_points": {m: {k: [[float(a), float(b)] for a, b in zip(*c)] for k, c in ch.items()}
                            for m, ch in chains.items()}}
    out.write_text(json.dumps(_clean(rec), indent=2) + "\n")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
