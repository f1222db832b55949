"""Review plan, measured: the plan's order vs difficulty vs least-confidence vs random at equal review hours, and
predicted vs actual residual errors, over several seeds' workspaces (simulation mode).

Usage::

    python benchmarks/review_plan.py WORKSPACE [WORKSPACE ...] [--seed 0] [--n-boot 200] [--calibration-bins]
        [--recalibrate on|off|both]

``WORKSPACE``: a simulation workspace whose POOL has been scored (the demo's ``runs/weld`` after notebook 02, or a
study's ``seed<k>`` bases: one per seed).  The only file written is the VAL1 score cache
(``scores/<MODEL>/val1_scores.csv``, :func:`alnb.loop.reviewstep.val1_scores`).  Per workspace: the true review hours at
which random order leaves a quarter of the wrong boxes, and at a quarter / half / three quarters of the hours that
reviewing everything takes; at each, every order's residual wrong boxes and error images (the cost model on the true
labels decides how many images fit).  Over the workspaces: paired differences against random with 95 % Student-t
intervals (:func:`alnb.evaluation.stats.interval`), and how many reported cuts hold the actual residuals inside the predicted
95 % interval.  The issue's goal: at most half of random's residual wrong boxes at the hours where random leaves a
quarter of them.  ``--recalibrate``: the second-stage count recalibration on, off (default: the plan's default,
:data:`alnb.loop.review.RECALIBRATE`) or ``both``: each variant's numbers, then the coverage, the goal's ratio and the
cross-fitted VAL1 count errors side by side.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from alnb.loop import review as rv
from alnb.loop import reviewstep
from alnb.evaluation.stats import interval
from alnb.core.workspace import Workspace


def hours_random_leaves(plan, truth, share: float = 0.25, *, seed: int = 0) -> float:
    """The fewest true review hours after which random order leaves at most ``share`` of the wrong boxes."""
    total = float((truth["n_fp"] + truth["n_fn"]).sum())
    p = plan.reset_index(drop=True).assign(_random=np.random.default_rng(seed).random(len(plan)))
    idx = rv.plan_order(p["stem"], p["_random"].to_numpy())
    t = truth.reset_index(drop=True)
    left = np.concatenate([np.cumsum((t["n_fp"] + t["n_fn"]).to_numpy(float)[idx][::-1])[::-1], [0.0]])
    sec = np.concatenate([[0.0], np.cumsum(rv.review_seconds(p["n_det"].to_numpy(float)[idx],
                                                             t["n_fp"].to_numpy(float)[idx],
                                                             t["n_fn"].to_numpy(float)[idx]))]) / 3600
    return float(sec[int(np.flatnonzero(left <= share * total + 1e-9)[0])])


def one(ws_path, *, seed: int, n_boot: int, recalibrate: bool | None = None) -> tuple:
    ws = Workspace.open(ws_path)
    res = reviewstep.build_plan(ws, seed=seed, n_boot=n_boot, fraction=0.5, recalibrate=recalibrate)
    plan, cv, s = res["plan"], res["curve"], res["summary"]
    if not s["simulation"]:
        raise SystemExit(f"{ws_path}: not a simulation workspace (the POOL's truth is needed).")
    truth = plan[["has_error", "n_fp", "n_fn", "n_gt"]].copy()
    truth["has_error"] = truth["has_error"].astype(str).str.lower().isin(("true", "1"))
    h25 = hours_random_leaves(plan, truth, 0.25, seed=seed)
    all_h = float(cv["actual_review_h"].iloc[-1])
    hours = {"random leaves 25 %": h25, "25 % of review-all": 0.25 * all_h, "50 % of review-all": 0.5 * all_h,
             "75 % of review-all": 0.75 * all_h}
    rows = []
    for name, h in hours.items():
        for how in rv.ORDERS:
            r = rv.equal_hours(plan, truth, [h], how=how, seed=seed).iloc[0].to_dict()
            rows.append({"workspace": str(ws_path), "at": name, **r})
    cov = []
    for c in s["cuts"]:
        if c["accepted"] == 0:
            continue
        for k in ("err_images", "wrong_boxes"):
            cov.append({"workspace": str(ws_path), "reviewed": c["reviewed"], "what": k, "predicted": c[k],
                        "lo": c[f"{k}_lo"], "hi": c[f"{k}_hi"], "actual": c[f"actual_{k}"],
                        "inside": c[f"{k}_lo"] <= c[f"actual_{k}"] <= c[f"{k}_hi"]})
    return pd.DataFrame(rows), pd.DataFrame(cov), s


def calibration_bins(workspaces, *, seed: int = 0, bins: int = 8, recalibrate: bool | None = None) -> tuple:
    """Predicted vs true per image, pooled over ``workspaces``: means per quantile bin of the predicted wrong boxes
    (``e_fp + e_fn`` against ``n_fp + n_fn``) and of ``p_error`` (against the share of images with an error)."""
    rows = []
    for w in workspaces:
        p = reviewstep.build_plan(Workspace.open(w), seed=seed, n_boot=20, fraction=0.5,
                                  recalibrate=recalibrate)["plan"]
        rows.append(p.assign(pred=p["e_fp"] + p["e_fn"], act=p["n_fp"] + p["n_fn"],
                             err=p["has_error"].astype(str).str.lower().isin(("true", "1"))))
    d = pd.concat(rows, ignore_index=True)
    d["bin"] = pd.qcut(d["pred"], bins, labels=False, duplicates="drop")
    d["pbin"] = pd.qcut(d["p_error"], bins, labels=False, duplicates="drop")
    return (d.groupby("bin")[["pred", "act", "e_fp", "n_fp", "e_fn", "n_fn"]].mean().round(2),
            d.groupby("pbin")[["p_error", "err"]].mean().round(2))


VARIANTS = {"off": False, "on": True}


def report(a, recalibrate) -> tuple:
    """One variant's full output (the numbers of the original benchmark); returns ``(eq, cov, summaries)``."""
    eq, cov, sums = [], [], {}
    for w in a.workspaces:
        e, c, s = one(w, seed=a.seed, n_boot=a.n_boot, recalibrate=recalibrate)
        eq.append(e)
        cov.append(c)
        sums[w] = s
        print(f"{w}: {s['n_images']} images, model {s['model']}, calibration {s['calibration']['method']}"
              f"{' + count recalibration' if s['calibration']['recalibrated'] else ''}; review all "
              f"{s['review_all_h']:.2f} h predicted, draw all {s['manual_all_h']:.2f} h")
    eq, cov = pd.concat(eq, ignore_index=True), pd.concat(cov, ignore_index=True)
    print("\nresidual errors at equal true review hours (mean over workspaces):")
    print(eq.groupby(["at", "order"])[["hours", "reviewed", "wrong_boxes", "err_images"]].mean().round(2))
    print("\npaired differences against random (order - random), mean [95 % interval], n workspaces:")
    for (at, how), g in eq.groupby(["at", "order"]):
        if how == "random":
            continue
        base = eq[(eq["at"] == at) & (eq["order"] == "random")].set_index("workspace")
        g = g.set_index("workspace")
        for k in ("wrong_boxes", "err_images"):
            iv = interval((g[k] - base.loc[g.index, k]).to_numpy(float))
            print(f"  {at:>20} {how:>16} {k:>11}: {iv['mean']:+8.1f} [{iv['lo']:+.1f}, {iv['hi']:+.1f}] n={iv['n']}")
    print(f"\ngoal (plan <= half of random's residual wrong boxes where random leaves 25 %): plan/random = "
          f"{goal_ratios(eq).round(3).tolist()}")
    print(f"\npredicted vs actual residuals: {int(cov['inside'].sum())} of {len(cov)} reported cuts inside the "
          f"predicted 95 % interval")
    print(cov.round(2).to_string(index=False))
    return eq, cov, sums


def goal_ratios(eq) -> pd.Series:
    h = eq[(eq["at"] == "random leaves 25 %")].pivot(index="workspace", columns="order", values="wrong_boxes")
    return h["plan"] / h["random"]


def side_by_side(res: dict, *, seed: int, n_boot: int):
    """Coverage, the goal's ratio and the cross-fitted VAL1 count errors of each variant next to each other."""
    print("\n=== side by side: second-stage count recalibration off vs on ===")
    cov = {v: r[1].set_index(["workspace", "reviewed", "what"]) for v, r in res.items()}
    t = pd.DataFrame(index=cov["off"].index)
    for v, c in cov.items():  # the actual residuals too: each variant's order accepts its own images
        t[f"{v}: actual"], t[f"{v}: pred"], t[f"{v}: lo"], t[f"{v}: hi"], t[f"{v}: in"] = \
            c["actual"], c["predicted"], c["lo"], c["hi"], c["inside"]
    for v, c in cov.items():
        by = c.groupby(level="what")["inside"]
        print(f"{v:>3}: {int(c['inside'].sum())} of {len(c)} reported cuts inside the predicted 95 % interval "
              f"({', '.join(f'{k} {int(n)} of {len(g)}' for (k, n), (_, g) in zip(by.sum().items(), by))}); "
              f"actual below the interval at {int((c['actual'] < c['lo']).sum())}, above at "
              f"{int((c['actual'] > c['hi']).sum())}")
    print(t.round(2).to_string())
    print("\nresidual wrong boxes at the reported cuts that accept images, predicted - actual (mean, mean |.|) and "
          "the 95 % interval's mean width, per review fraction:")
    for v, c in cov.items():
        w = c.xs("wrong_boxes", level="what").reset_index()
        w["diff"], w["width"] = w["predicted"] - w["actual"], w["hi"] - w["lo"]
        by = w.groupby("reviewed").agg(bias=("diff", "mean"), mae=("diff", lambda d: d.abs().mean()),
                                       width=("width", "mean")).round(1)
        print(f"  {v:>3}: " + "; ".join(f"reviewed {j}: {r.bias:+.1f}, {r.mae:.1f}, width {r.width:.1f}"
                                         for j, r in by.iterrows()))
    print("\ngoal's ratio plan/random where random leaves 25 % (per workspace; mean):")
    for v, r in res.items():
        g = goal_ratios(r[0])
        print(f"  {v:>3}: {g.round(3).tolist()}; mean {g.mean():.3f}")
    print(f"\nthe default cut (at most {100 * reviewstep.DEFAULT_MAX_ERROR_RATE:.0f} % of accepted images with an "
          "error): reviewed, accepted; residual wrong boxes predicted [95 %] / actual")
    for w in res["off"][2]:
        parts = []
        for v in res:
            c = reviewstep.build_plan(Workspace.open(w), seed=seed, n_boot=n_boot,
                                      recalibrate=VARIANTS[v])["summary"]["cut"]
            parts.append(f"{v}: {c['reviewed']}, {c['accepted']}; {c['wrong_boxes']:.1f} [{c['wrong_boxes_lo']:.0f}, "
                         f"{c['wrong_boxes_hi']:.0f}] / {c['actual_wrong_boxes']:.0f}")
        print(f"  {w}: " + " | ".join(parts))
    print("\nVAL1, cross-fitted (the second stage nested inside each fold): mean absolute error and total of the "
          "expected counts vs the truth")
    for w in res["off"][2]:
        parts = []
        for v, r in res.items():
            s = r[2][w]["calibration"]
            ev = s["cross_fitted"][s["method"]]
            parts.append(f"{v}: mae fp {ev['mae_fp']:.3f} fn {ev['mae_fn']:.3f}, fp {ev['fp_predicted']:.1f} of "
                         f"{ev['fp']}, fn {ev['fn_predicted']:.1f} of {ev['fn']}")
        print(f"  {w}: " + " | ".join(parts))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("workspaces", nargs="+")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-boot", type=int, default=rv.N_BOOT)
    ap.add_argument("--calibration-bins", action="store_true",
                    help="only print predicted vs true per image, pooled, in 8 quantile bins (the diagnosis)")
    ap.add_argument("--recalibrate", choices=("on", "off", "both"), default=None,
                    help="the second-stage count recalibration (default: the plan's default); both: side by side")
    a = ap.parse_args(argv)
    pd.set_option("display.width", 200)
    names = {None: [None], "both": ["off", "on"]}.get(a.recalibrate, [a.recalibrate])
    variants = {v: (None if v is None else VARIANTS[v]) for v in names}
    t0 = time.time()
    if a.calibration_bins:
        for v, r in variants.items():
            if v is not None:
                print(f"--- second-stage count recalibration {v} ---")
            for table in calibration_bins(a.workspaces, seed=a.seed, recalibrate=r):
                print(table)
        print(f"{time.time() - t0:.0f} s")
        return 0
    res = {}
    for v, r in variants.items():
        if v is not None:
            print(f"\n=== second-stage count recalibration {v} ===")
        res[v] = report(a, r)
    if set(res) == {"off", "on"}:
        side_by_side(res, seed=a.seed, n_boot=a.n_boot)
    print(f"\n{time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
