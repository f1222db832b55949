"""Seconds budgets, checked: predicted labelling seconds of a selection vs the cost model on its true labels.

Usage::

    python benchmarks/predicted_seconds.py WORKSPACE [--budgets 600s 1500s] [--model CAL1] [--seed 0]

``WORKSPACE``: a simulation workspace whose POOL ``--model`` has scored (the demo's ``runs/weld`` after notebook 02,
or ``alnb run``).  Nothing is written to it.  For every registered strategy and every budget it selects with the
budget in predicted seconds (:func:`alnb.acquisition.select` with ``budget_s``: each image's ``pred_s`` from its
auto-labels and the model's VAL1 cost calibration, before any label exists), then prints, side by side, the
predicted seconds, the budget, and the assisted seconds the cost model gives on the selected images' *true* labels
(verify each auto-label, delete the false positives, draw the misses, per-image time), the error and whether the
budget held.  The issue's targets: the budget is never exceeded; the prediction within 10 % of the true seconds.
"""

from __future__ import annotations

import argparse
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workspace")
    ap.add_argument("--budgets", nargs="+", default=["600s", "1500s"])
    ap.add_argument("--model", default="CAL1", help="the model whose scores and auto-labels the selection uses")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import numpy as np

    from alnb import acquisition as acq
    from alnb import pipeline, select as sel, study
    from alnb.metrics import CostModel
    from alnb.workspace import Workspace

    t0 = time.perf_counter()
    ws = Workspace.open(args.workspace)
    if ws.mode != "simulation":
        raise SystemExit(f"{ws.root}: the true labels of the POOL are needed (a simulation workspace).")
    costs = CostModel()
    pool = pipeline.selection_pool(ws, sel.default_thresholds(ws, None), model=None)
    pool = study._with_predicted_seconds(ws, pool, args.model, costs)
    man = ws.manifest()
    whole = study._selection_costs(pool.scores, man, list(pool.scores["stem"]), costs)
    print(f"[predicted_seconds] {ws.root}: {len(pool)} POOL images scored by {args.model}; the whole POOL: predicted "
          f"{whole['predicted_s']:.0f} s, cost model on the true labels {whole['labelling_s']:.0f} s "
          f"({100 * (whole['predicted_s'] / whole['labelling_s'] - 1):+.1f} %)\n")
    print(f"{'strategy':<20} {'budget':>7} {'images':>6} {'boxes':>6} {'predicted s':>11} {'true s':>8} "
          f"{'error':>7} {'budget held':>11}")
    errs = []
    for b in args.budgets:
        kind, value = study.parse_budget(b)
        if kind != "seconds":
            raise SystemExit(f"--budgets takes labelling seconds (600s), not {b!r}")
        for name in acq.STRATEGIES:
            stems = acq.select(name, pool, None, seed=args.seed, budget_s=value, costs=costs)
            c = study._selection_costs(pool.scores, man, stems, costs)
            err = c["predicted_s"] / c["labelling_s"] - 1 if c["labelling_s"] else float("nan")
            errs.append(err)
            print(f"{name:<20} {b:>7} {len(stems):>6} {c['boxes']:>6} {c['predicted_s']:>11.0f} "
                  f"{c['labelling_s']:>8.0f} {100 * err:>+6.1f}% {'yes' if c['predicted_s'] <= value else 'NO':>11}")
    e = np.abs(np.asarray(errs))
    print(f"\n{len(errs)} selections: mean error {100 * np.mean(errs):+.1f} %, mean |error| {100 * e.mean():.1f} %, "
          f"{int((e <= 0.10).sum())} within 10 %, worst {100 * np.asarray(errs)[e.argmax()]:+.1f} %; "
          f"{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
