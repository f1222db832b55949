"""How much does more labelled data help under alnb's training protocol?  Random learning curves, two protocols side
by side.

Usage::

    python benchmarks/learning_curve.py WORKSPACE [--sizes 0 100 250 419] [--seed 0] [--test TEST_DIR]

``WORKSPACE``: a simulation workspace with a finished CAL1 (the demo's ``runs/weld``, or a study seed's
``runs/study/seed0``).  It is copied to ``WORKSPACE-curve/`` (the original is never touched).  For every size ``n``
a seeded random draw of ``n`` POOL images (nested: the 100 are inside the 250) is revealed and two models are
trained on GT1 + them:

* ``finetune``: from CAL1, ``finetune_epochs`` (10 in the quick profile) -- the protocol of CAL2 / Control and of
  every chain of ``alnb study``; at ``n = 0`` it is CAL1 trained 10 more epochs on GT1 alone (what more epochs give
  without more data);
* ``fresh``: from the profile's start checkpoint for the profile's full ``epochs`` (25), as CAL1 itself was trained
  (at ``n = 0`` that is CAL1).

It prints mAP50 / mAP50-95 on VAL1 (and on ``--test``, e.g. a study's ``test_data``: held-out images from another
generator seed, never trained on) per size and protocol, with the training seconds.  The slope of the random curve
bounds what any selection strategy can show: if 100 more random images add nothing, a strategy that picks better
100 can add little more.  Run it with nothing else on the machine when the seconds matter.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workspace")
    ap.add_argument("--sizes", nargs="+", type=int, default=[0, 100, 250, 419])
    ap.add_argument("--seed", type=int, default=0, help="training seed and the seed of the random draw")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--test", default=None, help="a labelled YOLO dataset never trained on (e.g. runs/study/test_data)")
    args = ap.parse_args(argv)

    import numpy as np

    from alnb.loop import pipeline
    from alnb.loop import selection as sel
    from alnb.evaluation.step import evaluate, evaluate_external
    from alnb.core.logs import folded_log
    from alnb.model.train import get_profile, load_run, train_cal
    from alnb.core.workspace import Workspace

    t_start = time.perf_counter()
    src = Workspace.open(args.workspace)
    if src.mode != "simulation":
        raise SystemExit(f"{src.root}: the POOL's labels are needed (a simulation workspace).")
    dst_root = Path(f"{src.root}-curve")
    if not dst_root.exists():
        shutil.copytree(src.root, dst_root, symlinks=True)
    ws = Workspace.open(dst_root)
    prof = get_profile(args.profile)
    pool = sorted(ws.stems("POOL"))
    sizes = sorted(set(args.sizes))
    if sizes[-1] > len(pool):
        raise SystemExit(f"--sizes: the POOL has {len(pool)} images, not {sizes[-1]}")
    order = [pool[i] for i in np.random.default_rng(args.seed).permutation(len(pool))]
    cal1 = load_run(ws, "CAL1")
    rows = []
    for n in sizes:
        tags = ["GT1"]
        if n:
            sel.commit(ws, order[:n], "CONTROL", info={"rule": f"learning curve: {n} random POOL images",
                                                       "seed": args.seed})
            pipeline.ensure_labelled(ws, "CONTROL", log=None)
            tags = ["GT1", "CONTROL"]
        for proto in ("finetune", "fresh"):
            name = "CAL1" if (proto == "fresh" and n == 0) else f"LC_{proto}_{n}"
            with folded_log(ws.root / "logs" / f"{name}.log"):
                if name == "CAL1":
                    res = cal1
                elif proto == "finetune":
                    res = train_cal(ws, name, tags, args.profile, seed=args.seed, weights=cal1.weights,
                                    epochs=prof.finetune_epochs or prof.epochs, verbose=False)
                else:
                    res = train_cal(ws, name, tags, args.profile, seed=args.seed, verbose=False)
                ev = evaluate(ws, name)
                test = evaluate_external(ws, name, args.test) if args.test else None
            rows.append({"n": n, "proto": proto, "name": name, "epochs": res.info.get("epochs_run"),
                         "train_s": res.seconds, "ev": ev, "test": test})
            t = f"  TEST {test['mAP50']:.3f} / {test['mAP50-95']:.3f}" if test else ""
            print(f"  +{n:>4} images, {proto:<8}: VAL1 mAP50 {ev['mAP50']:.3f}, mAP50-95 {ev['mAP50-95']:.3f}{t} "
                  f"({res.seconds:.0f} s)", flush=True)
    print(f"\nRandom learning curve, {ws.root} (seed {args.seed}, profile {args.profile}; GT1 = {len(ws.stems('GT1'))}"
          f" images; each model at its own VAL1 operating point)")
    head = f"{'+images':>7} {'protocol':<9} {'epochs':>6} {'train s':>8} {'VAL1 mAP50':>10} {'mAP50-95':>8}"
    print(head + (f" {'TEST mAP50':>10} {'mAP50-95':>8}" if args.test else ""))
    for r in rows:
        line = (f"{r['n']:>7} {r['proto']:<9} {str(r['epochs']):>6} {r['train_s']:8.0f} {r['ev']['mAP50']:10.3f} "
                f"{r['ev']['mAP50-95']:8.3f}")
        if r["test"]:
            line += f" {r['test']['mAP50']:10.3f} {r['test']['mAP50-95']:8.3f}"
        print(line)
    print(f"[learning_curve] {time.perf_counter() - t_start:.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
