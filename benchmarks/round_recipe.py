"""How should a round model be trained?  The round recipes (:data:`alnb.model.train.RECIPES`) side by side on the
same images: fine-tune (today's default), fine-tune at a quarter of the learning rate, shrink and perturb, fresh.

Usage::

    python benchmarks/round_recipe.py BASE [BASE ...] [--sizes 0 100 250] [--recipes ...] [--test TEST_DIR]
                                      [--out results.json]
    python benchmarks/round_recipe.py BASE --summary-of results.json   # the table of a finished (or partial) run

Each ``BASE`` is a simulation workspace with a finished CAL1 (a study seed's base, e.g. ``runs/study/seed0``;
different split seeds give the repeats).  It is copied to ``BASE-recipe/`` (the original is never touched).  For
every size ``n`` a seeded random draw of ``n`` POOL images (nested: the 100 are inside the 250) is revealed and
every recipe trains a model on GT1 + them through :func:`alnb.loop.pipeline.train_and_evaluate` -- the code path of
CAL_k and Control_k -- with ``round_recipe`` set; at ``n = 0`` the warm recipes start from CAL1 on GT1 alone (what
the recipe does without new labels) and ``fresh`` is CAL1 itself.  Each model is evaluated on VAL1 and, with
``--test``, on a held-out TEST set (e.g. a study's ``test_data``: weld images from another generator seed).

``--diagnose``: instead, why the fine-tune first loses ground -- CAL1 trained ``finetune_epochs`` more on GT1 alone
(no new labels) from CAL1 under today's settings and with one setting changed at a time (no warm-up, a quarter of the
learning rate, no mosaic, no warm-up of the bias learning rate), on the first ``BASE``.

Printed: per recipe and size, the mean gain over CAL1 (GT1 alone) in mAP50 / mAP50-95 on VAL1 and TEST with a 95 %
t-interval over the bases, the share of fresh training's gain, and the mean training seconds.  Rows are written to
``--out`` as they finish (a rerun reuses finished trainings through the run cache).  Run it with nothing else on the
machine when the seconds matter.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path


def train_row(ws, cal1, n: int, recipe: str, tags, seed: int, profile: str, test) -> dict:
    from alnb.core.logs import folded_log
    from alnb.evaluation.step import evaluate, evaluate_external
    from alnb.loop import pipeline

    if recipe == "fresh" and n == 0:
        name, res, ev = "CAL1", cal1, evaluate(ws, "CAL1")
    elif n == 0:  # the recipe on GT1 alone, from CAL1: what it does without new labels
        from alnb.model.train import get_profile, train_cal

        name = f"R_{recipe}_0"
        prof = get_profile(profile, round_recipe=recipe)
        with folded_log(ws.root / "logs" / f"{name}.log"):
            res = train_cal(ws, name, tags, prof, seed=seed, verbose=False,
                            **pipeline.recipe_start(ws, prof, "CAL1", seed))
            ev = evaluate(ws, name)
    else:
        name = f"R_{recipe}_{n}"
        with folded_log(ws.root / "logs" / f"{name}.log"):
            out = pipeline.train_and_evaluate(ws, name, tags, profile, seed=seed, round_recipe=recipe,
                                              warm_start="CAL1", verbose=False)
        res, ev = out["train"], out["eval"]
    t = evaluate_external(ws, name, test) if test else None
    return {"base": str(ws.root), "n": n, "recipe": recipe, "name": name, "epochs": res.info.get("epochs_run"),
            "train_s": res.seconds, "reused": res.reused, "val_mAP50": ev["mAP50"], "val_mAP50-95": ev["mAP50-95"],
            "test_mAP50": t["mAP50"] if t else None, "test_mAP50-95": t["mAP50-95"] if t else None}


DIAGNOSIS = {"fine-tune (today)": {}, "no warm-up": {"warmup_epochs": 0},
             "no warm-up, lr0 / 4": {"warmup_epochs": 0, "lr0": 0.0005}, "no warm-up, no mosaic": {"warmup_epochs": 0,
                                                                                           "close_mosaic": 10},
             "lr0 / 4": {"lr0": 0.0005}, "no bias warm-up": {"warmup_bias_lr": 0.0}}
"""One setting changed at a time against the quick profile's fine-tune (lr0 0.002, 3 warm-up epochs, mosaic in the
first half of the 10 epochs, bias learning rate warmed up from 0.1)."""


def diagnose(base: str, profile: str, seed: int) -> int:
    from alnb.core.logs import folded_log
    from alnb.core.workspace import Workspace
    from alnb.evaluation.step import evaluate
    from alnb.model.train import get_profile, load_run, train_cal

    src = Workspace.open(base)
    dst = Path(f"{src.root}-diagnose")
    if not dst.exists():
        shutil.copytree(src.root, dst, symlinks=True)
    ws = Workspace.open(dst)
    prof = get_profile(profile)
    cal1 = load_run(ws, "CAL1")
    ev = evaluate(ws, "CAL1")
    print(f"CAL1 (GT1, {cal1.info.get('epochs_run')} epochs): VAL1 mAP50 {ev['mAP50']:.3f}, mAP50-95 {ev['mAP50-95']:.3f}")
    for i, (what, ov) in enumerate(DIAGNOSIS.items()):
        name = f"D{i}"
        with folded_log(ws.root / "logs" / f"{name}.log"):
            res = train_cal(ws, name, "GT1", profile, seed=seed, weights=cal1.weights,
                            epochs=prof.finetune_epochs or prof.epochs, verbose=False, **ov)
            e = evaluate(ws, name)
        print(f"CAL1 + {prof.finetune_epochs} epochs on GT1, {what:<24}: VAL1 mAP50 {e['mAP50']:.3f} "
              f"({e['mAP50'] - ev['mAP50']:+.3f}), mAP50-95 {e['mAP50-95']:.3f} ({e['mAP50-95'] - ev['mAP50-95']:+.3f})"
              f"  {res.seconds:.0f} s", flush=True)
    return 0


def summarise(rows: list, recipes, sizes) -> list:
    """Per recipe and size, over the bases (mean and 95 % t-interval of the paired differences), per measure:
    ``gain`` = the model - CAL1 (GT1 alone, the base's ``fresh`` at n = 0); ``labels`` = the model - the same recipe
    at n = 0 (what the new images add under that recipe, its extra epochs on GT1 taken out: flattering for a recipe
    that first loses ground); ``share`` = the recipe's mean ``gain`` / fresh training's mean ``gain`` at the same size
    (both from CAL1: what a round's model is worth against what fresh training makes of the same images)."""
    import numpy as np

    from alnb.evaluation.stats import interval

    by = {(r["base"], r["n"], r["recipe"]): r for r in rows}
    bases = sorted({r["base"] for r in rows})
    out = []
    for n in sizes:
        for rec in recipes:
            have = [b for b in bases if (b, n, rec) in by and (b, 0, "fresh") in by and (b, 0, rec) in by]
            if not have:
                continue
            line = {"n": n, "recipe": rec, "bases": len(have),
                    "train_s": float(np.mean([by[(b, n, rec)]["train_s"] for b in have]))}
            for m in ("val_mAP50", "val_mAP50-95", "test_mAP50", "test_mAP50-95"):
                if by[(have[0], n, rec)][m] is None:
                    continue
                line[m] = interval([by[(b, n, rec)][m] - by[(b, 0, "fresh")][m] for b in have])
                vs = [b for b in have if (b, n, "fresh") in by]
                if vs:  # paired on the base: the recipe - fresh training on the same images
                    line[f"vs_fresh_{m}"] = interval([by[(b, n, rec)][m] - by[(b, n, "fresh")][m] for b in vs])
                if n:
                    line[f"labels_{m}"] = interval([by[(b, n, rec)][m] - by[(b, 0, rec)][m] for b in have])
                    fresh = [b for b in have if (b, n, "fresh") in by]
                    fg = float(np.mean([by[(b, n, "fresh")][m] - by[(b, 0, "fresh")][m] for b in fresh])) \
                        if fresh else float("nan")
                    line[m]["share_of_fresh"] = (line[m]["mean"] / fg if fg > 0 else None)
            out.append(line)
    return out


def print_table(summary: list):
    def cell(d):
        if d is None:
            return f"{'':>22}"
        return f"{100 * d['mean']:+5.1f} [{100 * d['lo']:+5.1f}, {100 * d['hi']:+5.1f}]".rjust(22)

    n_b = max((s["bases"] for s in summary), default=0)
    print(f"\nPoints of mAP, mean [95 % t-interval] over {n_b} bases.  gain = the model - CAL1 (GT1 alone); "
          "labels = the model - the same recipe on GT1 alone (what the new images add); share = gain / fresh "
          "training's gain (mAP50-95); - fresh = the recipe - fresh training on the same base and images")
    print(f"{'+images':>7} {'recipe':<15} {'n':>2} {'train s':>8} {'gain VAL1 mAP50-95':>22} {'gain TEST mAP50-95':>22} "
          f"{'labels VAL1 50-95':>22} {'labels TEST 50-95':>22} {'share VAL1':>10} {'share TEST':>10} "
          f"{'gain VAL1 mAP50':>22} {'gain TEST mAP50':>22} {'- fresh VAL1 50-95':>22} {'- fresh TEST 50-95':>22}")
    for s in summary:
        sv = (s.get("val_mAP50-95") or {}).get("share_of_fresh")
        st = (s.get("test_mAP50-95") or {}).get("share_of_fresh")
        print(f"{s['n']:>7} {s['recipe']:<15} {s['bases']:>2} {s['train_s']:8.0f} {cell(s.get('val_mAP50-95'))} "
              f"{cell(s.get('test_mAP50-95'))} {cell(s.get('labels_val_mAP50-95'))} "
              f"{cell(s.get('labels_test_mAP50-95'))} {'' if sv is None else f'{sv:10.2f}':>10} "
              f"{'' if st is None else f'{st:10.2f}':>10} {cell(s.get('val_mAP50'))} {cell(s.get('test_mAP50'))} "
              f"{cell(s.get('vs_fresh_val_mAP50-95'))} {cell(s.get('vs_fresh_test_mAP50-95'))}")


def main(argv=None) -> int:
    from alnb.model.train import RECIPES

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bases", nargs="+")
    ap.add_argument("--sizes", nargs="+", type=int, default=[0, 100, 250])
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--test", default=None, help="a labelled YOLO dataset never trained on (a study's test_data)")
    ap.add_argument("--out", default=None, help="JSON file the rows are written to as they finish")
    ap.add_argument("--seed", type=int, default=0, help="training seed and the seed of the random draws")
    ap.add_argument("--diagnose", action="store_true", help="why the fine-tune first loses ground (first BASE)")
    ap.add_argument("--summary-of", default=None, help="print the table of an --out file of an earlier run and stop")
    args = ap.parse_args(argv)
    if args.diagnose:
        return diagnose(args.bases[0], args.profile, args.seed)
    if args.summary_of:
        saved = json.loads(Path(args.summary_of).read_text())
        rows = saved["rows"] if isinstance(saved, dict) else saved
        print_table(summarise(rows, [r for r in RECIPES if any(x["recipe"] == r for x in rows)],
                              sorted({x["n"] for x in rows})))
        return 0

    import numpy as np

    from alnb.core.workspace import Workspace
    from alnb.loop import pipeline
    from alnb.loop import selection as sel
    from alnb.model.train import load_run

    t_start = time.perf_counter()
    rows = []
    out = Path(args.out) if args.out else None
    sizes = sorted(set(args.sizes) | {0})
    recipes = [r for r in RECIPES if r in args.recipes]
    if "fresh" not in recipes:
        recipes.append("fresh")  # CAL1 (fresh at n = 0) is every gain's reference
    for base in args.bases:
        src = Workspace.open(base)
        if src.mode != "simulation":
            raise SystemExit(f"{src.root}: the POOL's labels are needed (a simulation workspace).")
        dst = Path(f"{src.root}-recipe")
        if not dst.exists():
            shutil.copytree(src.root, dst, symlinks=True)
        ws = Workspace.open(dst)
        cal1 = load_run(ws, "CAL1")
        pool = sorted(ws.stems("POOL"))
        order = [pool[i] for i in np.random.default_rng(args.seed).permutation(len(pool))]
        for n in sizes:
            tags = ["GT1"]
            if n:
                sel.commit(ws, order[:n], "CONTROL", info={"rule": f"round recipe: {n} random POOL images",
                                                           "seed": args.seed})
                pipeline.ensure_labelled(ws, "CONTROL", log=None)
                tags = ["GT1", "CONTROL"]
            for rec in recipes:
                row = train_row(ws, cal1, n, rec, tags, args.seed, args.profile, args.test)
                rows.append(row)
                t = (f", TEST {row['test_mAP50']:.3f} / {row['test_mAP50-95']:.3f}" if row["test_mAP50"] is not None
                     else "")
                print(f"[round_recipe] {ws.root.name} +{n:>3} {rec:<15} VAL1 {row['val_mAP50']:.3f} / "
                      f"{row['val_mAP50-95']:.3f}{t} ({row['train_s']:.0f} s{' reused' if row['reused'] else ''})",
                      flush=True)
                if out:
                    out.write_text(json.dumps(rows, indent=1))
    summary = summarise(rows, recipes, sizes)
    if out:
        out.write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    print_table(summary)
    print(f"[round_recipe] {time.perf_counter() - t_start:.0f} s in all ({len(args.bases)} bases)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
