"""The tables of a cycles study for a results file, from **every** row in the study folder: the round-by-round paired
differences to random per image and at equal labelling seconds (:func:`alnb.loop.study.round_table`), the labelling
seconds random needs for each strategy's mAP50-95 (:func:`alnb.loop.study.seconds_savings`), the smallest effects
the seeds detect, boxes / seconds per chain and the measured training time.

Usage::

    python benchmarks/study_tables.py STUDY_DIR [--seeds 0 1 2] [--rounds 3]

``alnb study`` writes its report from the rows of the grid it was called with; this script reads the folder's
``results/*.json`` instead, so a random chain continued further (``alnb study --strategies random --rounds 5`` into
the same folder) extends random's curve over labelling seconds, and the strategies' later rounds, whose seconds lie
beyond random's 3-round curve, get an equal-seconds comparison too (interpolated, never extrapolated).
``--seeds``: only these seeds (default: every seed with a random chain); ``--rounds``: the strategies' rounds shown
(default: the most any non-random chain has).  Pure pandas on the row files: seconds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alnb.loop import study as S  # noqa: E402

METRICS = ("mAP50", "mAP50-95")


def tables(study_dir, seeds=None, rounds=None) -> dict:
    """The tables as DataFrames: ``rows`` (the tidy rows used), ``round_table``, ``verdicts``, ``seconds_savings``,
    ``chains`` (per strategy and round: seeds, images, boxes, labelling seconds, mean training seconds)."""
    t = S.results_table(study_dir)
    if t.empty:
        raise SystemExit(f"{study_dir}: no results/*.json rows.")
    if seeds is None:
        seeds = sorted(t.loc[t["strategy"] == S.REFERENCE, "seed"].unique())
    t = t[t["seed"].isin(list(seeds))]
    others = t[~t["strategy"].isin([S.REFERENCE, S.BASELINE])]
    if rounds is None:
        rounds = int(others["round"].max()) if len(others) else int(t["round"].max())
    # the strategies' rounds up to `rounds`; random's whole chain (its curve)
    t = t[(t["strategy"].isin([S.REFERENCE, S.BASELINE])) | (t["round"] <= rounds)]
    ver = S.verdict_table(t, METRICS)
    summ = S.summarise(t)
    rt = S.round_table(summ, ver)
    chains = (t[t["strategy"] != S.BASELINE].groupby(["strategy", "round"])
              .agg(seeds=("seed", "nunique"), images=("images", "mean"), boxes=("boxes", "mean"),
                   labelling_s=("labelling_s", "mean"), train_images=("train_images", "mean"),
                   train_s=("train_s", "mean")).reset_index())
    return {"rows": t, "round_table": rt, "verdicts": ver, "seconds_savings": S.seconds_savings(t), "chains": chains,
            "seeds": list(seeds), "rounds": rounds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study_dir")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--rounds", type=int, default=None)
    a = ap.parse_args(argv)
    r = tables(a.study_dir, a.seeds, a.rounds)
    rows = r["rows"]
    print(f"# {a.study_dir}: seeds {r['seeds']}, strategies' rounds 1-{r['rounds']}, random's chain to round "
          f"{int(rows.loc[rows['strategy'] == S.REFERENCE, 'round'].max())}\n")
    for b, df in r["round_table"].items():
        print(f"## Round by round, budget {b} (VAL1 mAP50 ; mAP50-95, mean paired difference [95 % interval])\n")
        print(S._md(df), "\n")
    print("## Smallest detectable effect (80 % power) per strategy, measure and x, over the rounds\n")
    v = r["verdicts"]
    for (s, m, x), g in v.groupby(["strategy", "metric", "x"], sort=False):
        print(f"* {s} {m} {x}: mde {', '.join(f'{e:.3f}' for e in g['mde'])}; verdicts {', '.join(g['verdict'])}")
    print("\n## Labelling seconds random needs for each strategy's mAP50-95 (saved = 1 - strategy s / random s)\n")
    print(S._md(r["seconds_savings"]), "\n")
    print("## Chains: seeds, cumulative images, boxes, labelling seconds; training images and seconds (means)\n")
    print(S._md(r["chains"], 1), "\n")
    tr = rows[rows["strategy"] != S.BASELINE]
    print(f"trainings: {len(tr)}, training seconds {tr['train_s'].sum():,.0f} "
          f"(reused: {int(tr['reused'].fillna(False).astype(bool).sum())})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
