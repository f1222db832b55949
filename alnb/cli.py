"""``alnb`` command line: generate the weld dataset, run the whole study headless, or execute the notebooks.

Examples::

    alnb data weld --out data/weld --n-images 774 --size 512
    alnb run --data data/weld --workspace runs/weld --profile quick
    alnb notebooks --workspace runs/weld --profile quick      # what `make demo` calls
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _count(v: str):
    """A count (``178``) or a fraction (``0.23``)."""
    f = float(v)
    return int(f) if f.is_integer() and f >= 1 else f


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alnb", description="Active-learning notebooks for object detection.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("data", help="generate datasets")
    dsub = d.add_subparsers(dest="dataset", required=True)
    w = dsub.add_parser("weld", help="generate the synthetic weld-radiograph dataset (YOLO layout)")
    w.add_argument("--out", default="data/weld", help="output folder (default: data/weld)")
    w.add_argument("--n-images", type=int, default=774, help="number of images (default: 774, as in the study)")
    w.add_argument("--size", type=int, default=512, help="image width = height in pixels (default: 512)")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--overwrite", action="store_true", help="replace a dataset generated with other settings")

    r = sub.add_parser("run", help="the whole study headless: setup -> CAL1 -> scores -> GT2 -> CAL2 -> Control -> report")
    r.add_argument("--data", required=True, help="YOLO dataset folder (data.yaml + images/ + labels/)")
    r.add_argument("--workspace", required=True, help="experiment folder (created)")
    r.add_argument("--profile", default="quick", choices=["smoke", "quick", "paper"], help="training profile")
    r.add_argument("--seed", type=int, default=0, help="split, training and Control seed")
    r.add_argument("--T", type=int, default=20, help="MC-dropout passes")
    r.add_argument("--n-val", type=_count, default=178, help="VAL1 size: count or fraction (default 178)")
    r.add_argument("--n-gt1", type=_count, default=177, help="GT1 size: count or fraction (default 177)")
    r.add_argument("--conf", type=float, default=None,
                   help="auto-label confidence for every model (default: chosen per model on VAL1, max F1)")
    r.add_argument("--generate", action="store_true", help="generate the weld dataset into --data first")
    r.add_argument("--n-images", type=int, default=774, help="with --generate: number of images")
    r.add_argument("--size", type=int, default=512, help="with --generate: image size in pixels")
    r.add_argument("--budget", type=int, default=None, help="select the BUDGET hardest images instead of the study rule")
    r.add_argument("--labels", default=None, help="own data: people's labels for GT2/Control (folder or export file)")
    r.add_argument("--label-format", default="yolo", choices=["yolo", "labelstudio", "coco"])
    r.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    r.add_argument("--imgsz", type=int, default=None, help="override the profile's image size")

    e = sub.add_parser("export-queue", help="export a selection (default GT2, hardest first) with auto-label "
                                            "pre-annotations for Label Studio, CVAT or COCO tools")
    e.add_argument("--workspace", required=True)
    e.add_argument("--format", required=True, choices=["labelstudio", "cvat", "coco"])
    e.add_argument("--tag", default="GT2", help="manifest tag to export (default GT2)")
    e.add_argument("--out", default=None, help="output folder (default <workspace>/export/<format>)")

    i = sub.add_parser("import-labels", help="import people's labels (all or nothing) and mark them human-labelled")
    i.add_argument("source", help="Label Studio JSON export, COCO JSON, or a YOLO label folder / CVAT YOLO 1.1 zip")
    i.add_argument("--workspace", required=True)
    i.add_argument("--format", required=True, choices=["labelstudio", "coco", "yolo"])
    i.add_argument("--tag", default="GT2", help="the selection the labels belong to (default GT2)")
    i.add_argument("--overwrite", action="store_true", help="replace labels people already gave")
    i.add_argument("--dry-run", action="store_true", help="only validate; change nothing")

    n = sub.add_parser("notebooks", help="execute notebooks 00-04 headless; executed copies go to <workspace>/notebooks/")
    n.add_argument("--workspace", default="runs/weld")
    n.add_argument("--data", default="data/weld")
    n.add_argument("--profile", default="quick", choices=["smoke", "quick", "paper"])
    n.add_argument("--seed", type=int, default=0)
    n.add_argument("--T", type=int, default=20)
    n.add_argument("--n-images", type=int, default=774)
    n.add_argument("--size", type=int, default=512)
    n.add_argument("--n-val", type=_count, default=178)
    n.add_argument("--n-gt1", type=_count, default=177)
    n.add_argument("--only", nargs="*", default=None, help="run only these notebooks (e.g. 03_select_gt2)")
    _add_study_parser(sub)
    return p


def _add_study_parser(sub):
    """``alnb study``: strategies x budgets x seeds (alnb.study); choices come from the registries."""
    from alnb.acquisition import STRATEGIES
    from alnb.study import GRIDS

    s = sub.add_parser("study", help="acquisition strategies x labelling budgets x seeds (cached, resumable): "
                                     "tidy table, learning curves with intervals, verdicts vs random, report")
    s.add_argument("--data", default="data/weld", help="fully labelled YOLO dataset (simulation mode)")
    s.add_argument("--out", default="runs/study", help="study folder (seed<k>/ workspaces, results, figures)")
    s.add_argument("--grid", default="small", choices=sorted(GRIDS),
                   help="small: CPU, <= 60 min on 2 cores (quick profile); full: GPU (paper profile); smoke: tests")
    s.add_argument("--strategies", nargs="+", default=None, choices=sorted(STRATEGIES),
                   help="override the grid's strategies (must include random)")
    s.add_argument("--budgets", nargs="+", default=None, help="override the grid's budgets (image counts or 'rule')")
    s.add_argument("--seeds", nargs="+", type=int, default=None, help="override the grid's seeds")
    s.add_argument("--profile", default=None, choices=["smoke", "quick", "paper"], help="override the profile")
    s.add_argument("--T", type=int, default=None, help="override MC-dropout passes")
    s.add_argument("--n-val", type=_count, default=None, help="override VAL1 size")
    s.add_argument("--n-gt1", type=_count, default=None, help="override GT1 size")
    s.add_argument("--generate", action="store_true", help="generate the weld dataset into --data first")
    s.add_argument("--estimate", action="store_true", help="print the time estimate and stop")


def notebook_parameters(name: str, args) -> dict:
    """Parameters injected into each notebook (paths absolute, so the kernel's working directory does not matter)."""
    ws, data = str(Path(args.workspace).resolve()), str(Path(args.data).resolve())
    common = {"workspace": ws}
    if name.startswith("00"):
        return {**common, "data_dir": data, "generate": True, "n_images": args.n_images, "image_size": args.size,
                "n_val": args.n_val, "n_gt1": args.n_gt1, "seed": args.seed}
    if name.startswith("02"):
        return {**common, "T": args.T}
    if name.startswith("03"):  # no live widget headless: nbclient can block on ipywidgets comm traffic
        return {**common, "profile": args.profile, "seed": args.seed, "interactive": False}
    return {**common, "profile": args.profile, "seed": args.seed}


def run_notebooks(args) -> list:
    from alnb.notebooks import ORDER, available, run_notebook

    names = args.only or ORDER
    missing = [n for n in names if n not in available(ORDER)]
    if missing:
        raise SystemExit(f"alnb: notebook(s) not found in notebooks/: {missing}")
    out_dir = Path(args.workspace).resolve() / "notebooks"
    done = []
    for name in names:
        t = time.perf_counter()
        print(f"[alnb] executing {name} ...", flush=True)
        done.append(run_notebook(name, out_dir, notebook_parameters(name, args)))
        print(f"[alnb] {name} done in {time.perf_counter() - t:.0f} s -> {done[-1]}", flush=True)
    return done


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import alnb  # noqa: F401  (offline settings before ultralytics)

    if args.command == "data":
        from alnb import weld

        out = weld.generate(args.out, weld.WeldConfig(n_images=args.n_images, width=args.size, height=args.size,
                                                      seed=args.seed), overwrite=args.overwrite)
        print(f"[alnb] weld dataset: {Path(out).resolve()} ({args.n_images} images, {args.size}x{args.size})")
        return 0
    if args.command == "run":
        from alnb import pipeline

        overrides = {k: v for k, v in (("epochs", args.epochs), ("imgsz", args.imgsz)) if v is not None}
        res = pipeline.run(args.data, args.workspace, profile=args.profile, seed=args.seed, T=args.T,
                           generate=args.generate, n_images=args.n_images, image_size=args.size, n_val=args.n_val,
                           n_gt1=args.n_gt1, conf=args.conf, labels=args.labels, label_format=args.label_format,
                           rule="budget" if args.budget is not None else "study", budget=args.budget, **overrides)
        print(f"[alnb] finished in {res['seconds']:.0f} s")
        print(f"[alnb] report:  {res['report']}")
        print(f"[alnb] figures: {res['figures']}")
        return 0
    if args.command in ("export-queue", "import-labels"):
        from alnb import labelio
        from alnb.workspace import Workspace

        ws = Workspace.open(args.workspace)
        if args.command == "export-queue":
            out = labelio.export_queue(ws, args.format, out_dir=args.out, tag=args.tag)
            print(f"[alnb] {args.tag} queue exported for {args.format}: {out}")
            return 0
        try:
            summary = labelio.import_labels(ws, args.source, args.format, tag=args.tag, overwrite=args.overwrite,
                                            dry_run=args.dry_run)
        except labelio.ImportProblem as err:
            print(f"alnb: nothing was imported.\n{err}", file=sys.stderr)
            return 2
        verb = "would import" if args.dry_run else "imported"
        print(f"[alnb] {verb} labels for {len(summary)} image(s) from {args.source}")
        return 0
    if args.command == "notebooks":
        run_notebooks(args)
        ws = Path(args.workspace).resolve()
        print(f"[alnb] executed notebooks: {ws / 'notebooks'}")
        print(f"[alnb] report:  {ws / 'report.md'}")
        print(f"[alnb] figures: {ws / 'figures'}")
        return 0
    if args.command == "study":
        return _run_study(args)
    return 2  # pragma: no cover


def _run_study(args) -> int:
    from alnb import study

    budgets = None if args.budgets is None else [b if b == study.RULE_BUDGET else int(b) for b in args.budgets]
    kw = dict(grid=args.grid, strategies=args.strategies, budgets=budgets, seeds=args.seeds, profile=args.profile,
              T=args.T, n_val=args.n_val, n_gt1=args.n_gt1)
    if args.estimate:
        est = study.run_study(args.out, args.data, estimate_only=True, **kw)
        print(f"[alnb] {est['runs']} training run(s) to do, about {est['seconds'] / 60:.0f} min at "
              f"{est['images_per_s']} images/s")
        return 0
    res = study.run_study(args.out, args.data, generate=args.generate, **kw)
    print(res.verdicts[res.verdicts["x"] == "images"].to_string(index=False))
    print(f"[alnb] study finished in {res.seconds:.0f} s ({len(res.trained)} model(s) trained)")
    print(f"[alnb] table:   {res.study_dir / 'results.csv'}")
    print(f"[alnb] report:  {res.report}")
    print(f"[alnb] figures: {res.study_dir / 'figures'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
