"""The warm-start rule of rounds >= 3, measured: each chain from its own previous model vs each round from CAL1.

Usage::

    python benchmarks/warm_start.py WORKSPACE [--round 3] [--profile quick]

``WORKSPACE`` holds a finished round ``--round`` (``alnb run --rounds 3``), trained under today's rule
(:data:`alnb.loop.pipeline.WARM_START`).  The script copies it to ``WORKSPACE-warmstart/`` (the original is never
touched) and trains that round's two models again under the other rule, on the *same* images: GT<k> was chosen
with CAL<k-1>'s scores and the control chain's draws do not depend on any model, so round ``k``'s sets are the same
under both rules and only the start differs (a paired comparison; for rounds after ``k`` the selections would
differ too).  It prints, side by side, each model's start, epochs, training seconds and VAL1 measures (each at its
own operating point), and the CAL - Control difference under each rule.  Run it with nothing else on the machine
when the seconds matter.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workspace")
    ap.add_argument("--round", type=int, default=3)
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from alnb.loop import pipeline
    from alnb.core.workspace import Workspace, cal_name, control_name, control_tag, gt_tag, train_tags

    k = args.round
    src = Workspace.open(args.workspace)
    pipeline.check_round_ready(src, k + 1)  # round k's two models are finished under today's rule
    today = pipeline.WARM_START
    other = next(r for r in pipeline.WARM_START_RULES if r != today)
    dst_root = Path(f"{src.root}-warmstart")
    if not dst_root.exists():
        shutil.copytree(src.root, dst_root, symlinks=True)
    dst = Workspace.open(dst_root)
    rows = []
    for arm, name in (("cal", cal_name(k)), ("control", control_name(k))):
        info = json.loads((src.root / "runs" / name / "alnb_run.json").read_text())
        ev = src.load_json(f"eval_{name}")
        rows.append({"rule": today, "model": name, "start": pipeline.warm_start_run(src, name, train_tags(arm, k),
                                                                                   args.profile),
                     "epochs": info.get("epochs_run"), "train_s": info["seconds"], "ev": ev})
        alt = f"{name}_from{other}"
        res = pipeline.train_and_evaluate(dst, alt, train_tags(arm, k), args.profile, seed=args.seed,
                                          warm_start=other)
        rows.append({"rule": other, "model": alt, "start": other if other == "CAL1" else "previous",
                     "epochs": res["train"].info.get("epochs_run"), "train_s": res["train"].seconds, "ev": res["eval"]})
    print(f"round {k}, profile {args.profile}, seed {args.seed}: the same {gt_tag(k)} / {control_tag(k)} sets, two "
          "warm-start rules")
    print(f"{'rule':9s} {'model':18s} {'start':9s} {'epochs':>6s} {'train s':>8s} {'mAP50':>7s} {'mAP50-95':>8s} "
          f"{'recall':>7s} {'boost':>6s}")
    for r in rows:
        ev = r["ev"]
        print(f"{r['rule']:9s} {r['model']:18s} {str(r['start']):9s} {str(r['epochs']):>6s} {r['train_s']:8.1f} "
              f"{ev['mAP50']:7.4f} {ev['mAP50-95']:8.4f} {ev['overall']['recall']:7.3f} {ev['overall']['boost']:6.2f}")
    for rule in (today, other):
        cal, ctl = [r["ev"] for r in rows if r["rule"] == rule]
        print(f"CAL{k} - Control{k} under rule {rule!r}: mAP50 {cal['mAP50'] - ctl['mAP50']:+.4f}, "
              f"mAP50-95 {cal['mAP50-95'] - ctl['mAP50-95']:+.4f}, "
              f"boost {cal['overall']['boost'] - ctl['overall']['boost']:+.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
