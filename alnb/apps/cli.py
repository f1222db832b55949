"""``alnb`` command line: generate the weld dataset, run the whole study headless, or execute the notebooks.

Examples::

    alnb run --data data/weld --workspace runs/weld --profile quick
    alnb status --workspace runs/weld                           # where the loop stands, and the next command
    alnb serve --workspace runs/weld                            # Label Studio ML backend on 127.0.0.1:9090

Exit codes: 0 done; 1 unexpected error (a bug: run again with ``--debug`` for the traceback); 2 a problem with the
input or the workspace (argparse usage errors too); 3 waiting for labels; 4 the workspace is busy (another process
holds its lock); 130 interrupted.  A user's mistake never prints a raw traceback; ``--debug`` (anywhere on the
command line) or ``ALNB_DEBUG=1`` adds it.

Design notes: docs/design/cli.md
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import traceback
from pathlib import Path

EXIT_OK, EXIT_BUG, EXIT_USER, EXIT_WAITING, EXIT_BUSY, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


def _count(v: str):
    """A count (``178``) or a fraction (``0.23``)."""
    try:
        f = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not a number: give a count (178) or a fraction (0.23)") from None
    if not (f >= 1 and f.is_integer()) and not 0 < f < 1:
        raise argparse.ArgumentTypeError(f"{v} is not a count >= 1 or a fraction between 0 and 1")
    return int(f) if f.is_integer() and f >= 1 else f


def build_parser() -> argparse.ArgumentParser:
    # start-up: each command's modules are imported where used, so `alnb --help` stays fast
    from alnb.acquisition.strategies import DEFAULT_BUDGET_STRATEGY, STRATEGIES
    from alnb.labels.formats import EXPORTERS, PARSERS  # the --format choices come from the registries, never by hand
    from alnb.model.recipes import RECIPES

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
    r.add_argument("--budget", type=int, default=None,
                   help="select BUDGET images per round by --strategy instead of the study rule")
    r.add_argument("--strategy", default=None, choices=sorted(STRATEGIES),
                   help=f"with --budget: the selection strategy (default {DEFAULT_BUDGET_STRATEGY}: no strategy beat it "
                        f"per labelling second on the weld data, docs/results/2026-12-06-strategy-study.md; "
                        f"study_rule = failed first, then hardest)")
    r.add_argument("--rounds", type=int, default=2,
                   help="active-learning rounds: 2 (default) = GT2 / CAL2 / Control, the seed's study; N goes on with "
                        "GT3 / CAL3 / Control3 ... up to round N (each round's selection chosen with the previous "
                        "round's model)")
    r.add_argument("--review-plan", action="store_true",
                   help="every round: recompute the review plan of the unlabelled POOL with the model that scores "
                        "the POOL (CAL1 in round 2, then CAL2, ...) right after it scored it (alnb review's plan; scores VAL1 once more per round; "
                        "the report lists the review hours per model)")
    r.add_argument("--labels", default=None, help="own data: people's labels for GT2/Control (folder or export file)")
    r.add_argument("--label-format", default="yolo", choices=list(PARSERS))
    _annotation_arg(r)
    r.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    r.add_argument("--imgsz", type=int, default=None, help="override the profile's image size")
    r.add_argument("--round-recipe", default=None, choices=list(RECIPES),
                   help="how CAL2, Control and every later round model train (default: the profile's; "
                        "benchmarks/round_recipe.py measures them side by side)")
    r.add_argument("--start", default=None,
                   help="starting checkpoint for CAL1: a local .pt (e.g. your COCO-pretrained yolov8n.pt), or 'none' "
                        "for random weights (default: the profile's; quick = the shipped weld-defect-tiny.pt)")
    r.add_argument("--device", default=None,
                   help="training device: cpu, 0, or several GPUs 0,1,2,3 for ultralytics' multi-GPU (DDP) training "
                        "(default: the first GPU if any, else cpu)")

    e = sub.add_parser("export-queue", help="export a selection (default GT2, hardest first) with auto-label "
                                            "pre-annotations for Label Studio, CVAT or COCO tools")
    e.add_argument("--workspace", required=True)
    e.add_argument("--format", required=True, choices=list(EXPORTERS))
    e.add_argument("--tag", default=None, help="manifest tag to export (default GT2)")
    e.add_argument("--review", action="store_true",
                   help="export the review queue instead: the images the review plan (alnb review) sends to review, "
                        "in plan order, with its model's auto-labels (default folder <workspace>/export/review/"
                        "<format>)")
    e.add_argument("--out", default=None, help="output folder (default <workspace>/export/<format>; with --review "
                                               "<workspace>/export/review/<format>)")
    e.add_argument("--url-prefix", default=None,
                   help="Label Studio image URL prefix (default /data/local-files/?d= : Label Studio's local files)")
    e.add_argument("--document-root", default=None,
                   help="folder the image paths in the URLs are relative to (default: the dataset folder; use the "
                        "same folder as LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)")

    i = sub.add_parser("import-labels", help="import people's labels (all or nothing) and mark them human-labelled")
    i.add_argument("source", help="Label Studio JSON export, COCO JSON, or a YOLO label folder / CVAT YOLO 1.1 zip")
    i.add_argument("--workspace", required=True)
    i.add_argument("--format", required=True, choices=list(PARSERS))
    i.add_argument("--tag", default="selections",
                   help="the selections the labels may be for: GT2, CONTROL, GT3, a comma list, 'any', or "
                        "'selections' (default: every round's selections, GT2, CONTROL, GT3, CONTROL3 ...; labels "
                        "equal to the workspace's count as unchanged wherever they are)")
    i.add_argument("--overwrite", action="store_true",
                   help="replace labels that differ from the ones people already gave (the old files are kept in "
                        "<workspace>/labels/.history/)")
    i.add_argument("--dry-run", action="store_true", help="only validate; change nothing")
    _annotation_arg(i)

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
    _add_score_parser(sub)
    _add_serve_parser(sub)
    _add_review_parser(sub)
    _add_reliability_parsers(p, sub)
    return p


def _add_review_parser(sub):
    """``alnb review``: the review plan of the rest of the POOL (:mod:`alnb.loop.reviewstep`)."""
    r = sub.add_parser("review", help="which auto-labels people must check: the review plan of the unlabelled POOL "
                                      "(hours vs residual errors at every cut); --accept writes the final label set")
    r.add_argument("--workspace", required=True)
    cut = r.add_mutually_exclusive_group()
    cut.add_argument("--fraction", type=float, default=None, help="review this share of the images (0-1)")
    cut.add_argument("--hours", type=float, default=None, help="review as many images as fit in these hours")
    cut.add_argument("--max-error-rate", type=float, default=None,
                     help="review the fewest images so that at most this share (0-1) of the accepted images is "
                          "predicted to hold an auto-label error (default 0.05)")
    r.add_argument("--method", default="auto", choices=["auto", "logistic", "isotonic"],
                   help="calibration of the error probability on VAL1 (auto: the lower cross-fitted Brier score)")
    r.add_argument("--seed", type=int, default=0, help="folds and bootstrap of the calibration")
    r.add_argument("--no-recalibrate", dest="recalibrate", action="store_false", default=None,
                   help="skip the second stage that recalibrates the expected false / missed boxes per image (an "
                        "isotonic map cross-fitted on VAL1; on by default: 39 of 40 measured cuts inside their "
                        "interval with it, docs/results/2026-12-07-review-plan.md)")
    r.add_argument("--accept", action="store_true",
                   help="accept the model's labels of the images after the cut (marked machine-accepted in the "
                        "manifest and in every export under <workspace>/final/); people's labels are never replaced")
    r.add_argument("--url-prefix", default=None,
                   help="with --accept: the image URL prefix of the final Label Studio tasks (default "
                        "/data/local-files/?d= : Label Studio's local files), as for export-queue")
    r.add_argument("--document-root", default=None,
                   help="with --accept: folder the final Label Studio image URLs are relative to (default: "
                        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT when set, else the dataset folder), as for export-queue")


def _add_score_parser(sub):
    """``alnb score``: the scoring step alone (alnb.acquisition.scoring.score_pool), here or on Ray (alnb.acquisition.engines)."""
    from alnb.acquisition.engines import ENGINES, PART_SIZE

    s = sub.add_parser("score", help="auto-label and MC-score the POOL with a trained model (streamed and resumable: "
                                     "an interrupted scoring continues where it stopped); --engine ray spreads it "
                                     "over a Ray cluster")
    s.add_argument("--workspace", required=True)
    s.add_argument("--model", default="CAL1", help="a training run of the workspace (CAL1, CAL2, ...) or a local .pt "
                                                   "(default CAL1)")
    s.add_argument("--T", type=int, default=20, help="MC-dropout passes (default 20)")
    s.add_argument("--conf", type=float, default=None,
                   help="auto-label confidence (default: the run's operating point chosen on VAL1; 0.25 for a .pt)")
    s.add_argument("--imgsz", type=int, default=None, help="inference size (default: the run's training size)")
    s.add_argument("--batch", type=int, default=8, help="images per network pass (speed only; default 8)")
    s.add_argument("--seed", type=int, default=0, help="seed of the dropout masks (default 0)")
    s.add_argument("--device", default=None, help="cpu (default), 0, cuda ...")
    s.add_argument("--engine", default="local", choices=list(ENGINES),
                   help="local: this process (default); ray: Ray Data actors, one model replica per worker "
                        "(pip install -e '.[ray]')")
    s.add_argument("--address", default=None,
                   help="with --engine ray: 'auto' joins the running cluster (`ray start --head`), ray://HOST:10001 a "
                        "remote one; default: a running local instance, or a new one on this machine")
    s.add_argument("--workers", type=int, default=None,
                   help="with --engine ray: model replicas (default: one per CPU, or per GPU with --device 0)")
    s.add_argument("--part-size", type=int, default=PART_SIZE,
                   help=f"images per part file / Ray task (default {PART_SIZE}); an interruption loses at most one")


def _annotation_arg(p, when: str = ""):
    """``--annotation`` (issue 22's choice between several people's annotations of one Label Studio task)."""
    p.add_argument("--annotation", default=None, metavar="latest|first|ANNOTATOR",
                   help=f"{when}Label Studio tasks that several people annotated: latest, first, or an annotator (user "
                        f"id, e-mail, username); default: the one marked ground truth, else refuse when they differ")


def _add_serve_parser(sub):
    """``alnb serve``: the workspace as a Label Studio ML backend (alnb.apps.serve)."""
    from alnb.apps.serve import DEFAULT_HOST, DEFAULT_PORT, TOKEN_ENV, URL_ENV

    s = sub.add_parser("serve", help="a Label Studio ML backend: pre-labels tasks with the current model, scores "
                                     "their difficulty (sort by prediction score ascending: hardest first) and trains "
                                     "the next model on 'Start training'")
    s.add_argument("--workspace", required=True, help="a workspace with a trained and scored model (CAL1 or later)")
    s.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST}: this machine "
                                                         f"only)")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    s.add_argument("--profile", default=None, choices=["smoke", "quick", "paper"],
                   help="training profile of the next model (default: CAL1's)")
    s.add_argument("--T", type=int, default=None, help="MC-dropout passes when rescoring (default: the POOL's)")
    s.add_argument("--seed", type=int, default=None, help="training seed (default: CAL1's)")
    s.add_argument("--document-root", default=None,
                   help="Label Studio's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, for images the workspace does not "
                        "know (default: that variable, else the dataset folder)")
    s.add_argument("--label-studio-url", default=None,
                   help=f"Label Studio's address for fetching annotations (default ${URL_ENV}, else what Label Studio "
                        f"sends when it connects); the token is read from ${TOKEN_ENV} only")
    _annotation_arg(s, "when training: ")
    s.set_defaults(label_format="labelstudio")  # what --annotation is checked against


def _add_study_parser(sub):
    """``alnb study``: strategies x budgets x seeds (alnb.loop.study); choices come from the registries."""
    from alnb.acquisition.strategies import STRATEGIES
    from alnb.loop.study import GRIDS

    s = sub.add_parser("study", help="acquisition strategies x labelling budgets x seeds (cached, resumable): "
                                     "tidy table, learning curves with intervals, verdicts vs random, report")
    s.add_argument("--data", default="data/weld", help="fully labelled YOLO dataset (simulation mode)")
    s.add_argument("--out", default="runs/study", help="study folder (seed<k>/ workspaces, results, figures)")
    s.add_argument("--grid", default="small", choices=sorted(GRIDS),
                   help="small: CPU, <= 60 min on 2 cores (quick profile); full: GPU (paper profile); smoke: tests")
    s.add_argument("--strategies", nargs="+", default=None, choices=sorted(STRATEGIES),
                   help="override the grid's strategies (must include random)")
    s.add_argument("--budgets", nargs="+", default=None,
                   help="override the grid's budgets per round: image counts (100), labelling seconds predicted from "
                        "the auto-labels (600s), or 'rule' (the study rule's own size)")
    s.add_argument("--per-round", default=None, metavar="B", help="the cycles protocol's budget per round "
                                                                  "(= --budgets B)")
    s.add_argument("--costs-from", default=None, metavar="WORKSPACE",
                   help="price labelling with the seconds measured in this workspace's Label Studio imports (alnb "
                        "costs; needs 30 measured annotations), instead of the literature defaults")
    s.add_argument("--rounds", type=int, default=None,
                   help="active-learning rounds per chain (each strategy selects with its own current model; "
                        "default: the grid's, 1 for small, 3 for cycles)")
    s.add_argument("--test", type=int, default=None, metavar="N",
                   help="also evaluate every model on N held-out TEST weld images generated from another seed "
                        "(never trained on or selected from); the report then splits the variance into training and "
                        "evaluation noise")
    s.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local: one run after the other here (default); ray: the seeds' CAL1s, then every chain, as "
                        "Ray tasks of --threads CPUs each (pip install -e '.[ray]'); same files, same numbers")
    s.add_argument("--address", default=None,
                   help="with --engine ray: 'auto' joins a running cluster (`ray start --head`), ray://HOST:10001 a "
                        "remote one; default: a local instance")
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
    from alnb.ui.notebooks import ORDER, available, run_notebook

    names = args.only or ORDER
    missing = [n for n in names if n not in available(ORDER)]
    if missing:
        raise ValueError(f"notebook(s) {missing} not found in notebooks/ (available: {available(ORDER)}).")
    out_dir = Path(args.workspace).resolve() / "notebooks"
    done = []
    for name in names:
        t = time.perf_counter()
        print(f"[alnb] executing {name} ...", flush=True)
        done.append(run_notebook(name, out_dir, notebook_parameters(name, args)))
        print(f"[alnb] {name} done in {time.perf_counter() - t:.0f} s -> {done[-1]}", flush=True)
    return done


def _add_reliability_parsers(p, sub):
    """``--debug``, ``alnb run --overwrite`` and ``alnb status`` (added after the other subcommands)."""
    p.add_argument("--debug", action="store_true", help="show full tracebacks (also: ALNB_DEBUG=1)")
    sub.choices["run"].add_argument("--overwrite", action="store_true",
                                    help="replace an existing split made with other settings (labels people gave "
                                         "in <workspace>/labels/ are kept)")
    for name in ("run", "study"):
        sub.choices[name].add_argument(
            "--verbose", action="store_true",
            help="print every step's own output (ultralytics' training log, progress bars) here instead of writing "
                 "it to a log file (alnb run: <workspace>/logs/, alnb study: <out>/logs/)")
    for name in ("run", "notebooks", "study", "score"):
        sub.choices[name].add_argument(
            "--threads", type=int, default=None,
            help="CPU threads of training, evaluation and scoring (default: every usable core, or ALNB_THREADS / "
                 "OMP_NUM_THREADS; a CPU model's numbers depend on it, so it is part of each training's cache key). "
                 "Another alnb job's cores are never shared: a job waits for them (docs/guide/training.md)")
    s = sub.add_parser("status", help="where the loop stands: sets, labelled / waiting, trainings, next command")
    s.add_argument("--workspace", required=True)
    s.add_argument("--json", action="store_true", help="print the status as JSON")
    c = sub.add_parser("costs", help="the annotators' own seconds: the cost model fitted from the lead times of the "
                                     "imported Label Studio annotations, and seconds per image / box per round")
    c.add_argument("--workspace", required=True)


def _strip(argv, flags_with_value=(), flags=()) -> list:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in flags_with_value:
            skip = True
            continue
        if a in flags or any(a.startswith(f + "=") for f in flags_with_value):
            continue
        out.append(a)
    return out


def _waiting_text(err, argv) -> str:
    """What to label, where the queue is, and the exact command to run next."""
    rest = _strip(argv, ("--labels", "--label-format"), ("--overwrite", "--generate"))
    wsi = rest.index("--workspace") + 1 if "--workspace" in rest else None
    ws = rest[wsi] if wsi is not None and wsi < len(rest) else "WORKSPACE"
    fmt = "labelstudio"
    export = "EXPORT.json"
    lines = [f"[alnb] waiting for labels: {len(err.waiting)} of {err.n} {err.tag} image(s) have no labels yet "
             f"(e.g. {', '.join(err.waiting[:5])}).",
             ]
    if err.queue:
        lines.append(f"  what to label: the {err.tag} queue, hardest first: {Path(err.queue) / 'tasks.json'} "
                     f"(Label Studio tasks with the auto-labels as pre-annotations; labelling config "
                     f"{Path(err.queue) / 'label_config.xml'}; order in queue.csv)")
    lines += [
        "  how: import tasks.json into your Label Studio project (docs/guide/labelling-tools.md), correct the boxes, "
        "submit, then Export > JSON (the whole project: tasks labelled earlier are recognised as unchanged)",
        "  next: " + shlex.join(["alnb", *rest, "--labels", export, "--label-format", fmt]),
        "  (or import first and check the counts: " + shlex.join(["alnb", "import-labels", export, "--workspace", ws,
                                                                   "--format", fmt]) + ")",
        f"  exit code {EXIT_WAITING} means 'waiting for labels'; nothing is lost: run the command above when the labels "
        f"are done.",
    ]
    return "\n".join(lines)


def _remember_next_command(err, argv):
    """Keep the exact next command in ``metrics/next_command.json`` for ``alnb status`` (best effort)."""
    from alnb.core.lock import workspace_lock
    from alnb.core.workspace import atomic_write_json

    rest = _strip(argv, ("--labels", "--label-format"), ("--overwrite", "--generate"))
    if "--workspace" not in rest or rest.index("--workspace") + 1 >= len(rest):
        return
    root = Path(rest[rest.index("--workspace") + 1])
    cmd = shlex.join(["alnb", *rest, "--labels", "EXPORT.json", "--label-format", "labelstudio"])
    try:
        with workspace_lock(root, "alnb (next command)"):
            atomic_write_json(root / "metrics" / "next_command.json", {"tag": err.tag, "command": cmd})
    except Exception:  # noqa: BLE001 - a hint only; never hide the real message
        pass


def _report_error(err: BaseException, argv, debug: bool) -> int:
    """One clear message and an exit code for every error; the traceback only with --debug."""
    from alnb.core.lock import WorkspaceBusy
    from alnb.core.workspace import WaitingForLabels, WorkspaceError

    if isinstance(err, KeyboardInterrupt):
        print("alnb: interrupted. Finished steps are kept; run the same command again to continue.", file=sys.stderr)
        return EXIT_INTERRUPTED
    if debug:
        traceback.print_exception(err)
    if isinstance(err, WaitingForLabels):
        print(_waiting_text(err, argv))
        _remember_next_command(err, argv)
        return EXIT_WAITING
    if isinstance(err, WorkspaceBusy):
        print(f"alnb: {err}", file=sys.stderr)
        return EXIT_BUSY
    from alnb.labels.labelio import ImportProblem

    tail = "" if debug else "\n(run again with --debug for the full traceback)"
    if isinstance(err, ImportProblem):
        print(f"alnb: nothing was imported.\n{err}", file=sys.stderr)
        return EXIT_USER
    if isinstance(err, PermissionError):
        print(f"alnb: permission denied: {err.filename or err}. Check that you can write there (choose another "
              f"--workspace / --out), and that the dataset folder is readable.{tail}", file=sys.stderr)
        return EXIT_USER
    if isinstance(err, (WorkspaceError, ValueError, OSError)) or type(err).__name__ == "PapermillExecutionError":
        msg = str(err) or type(err).__name__
        if isinstance(err, OSError) and not isinstance(err, WorkspaceError) and err.filename:
            msg = f"{err.strerror or msg}: {err.filename}"
        print(f"alnb: {msg}{tail}", file=sys.stderr)
        return EXIT_USER
    print(f"alnb: unexpected error ({type(err).__name__}: {err}). This looks like a bug in alnb or a case it does not "
          f"handle yet; run again with --debug for the full traceback and report it.", file=sys.stderr)
    return EXIT_BUG


def _print_status(ws, as_json: bool):
    from alnb.loop.pipeline import loop_status

    st = {**loop_status(ws).to_dict(), "forecast": _forecast_status(ws)}
    if as_json:
        print(json.dumps(st, indent=2, default=str))
        return
    print(f"workspace: {st['workspace']}  (dataset {st['dataset']}, mode {st['mode']})")
    print(f"round:     {st['round']} of {st['rounds']}")
    print("sets:      " + ", ".join(f"{k} {v}" for k, v in st["sets"].items()))
    for t, lab in st["labels"].items():
        if lab["n"]:
            q = f"; queue {st['queue'][t]}" if t in st["queue"] else ""
            print(f"{t + ':':<10} {lab['labelled']} of {lab['n']} labelled, {len(lab['waiting'])} waiting{q}")
    print("trainings: " + ", ".join(f"{k} {'done' if v else '-'}" for k, v in st["trainings"].items())
          + f"; scores {'done' if st['scores'] else '-'}; report {'done' if st['report'] else '-'}")
    lk = st["lock"]
    print("lock:      " + ("free" if not lk else
                           f"stale (pid {lk.get('pid')} on {lk.get('host')} is gone; the next writer takes it over)"
                           if lk.get("stale") else
                           f"held by pid {lk.get('pid')} on {lk.get('host')} ({lk.get('command')}) since "
                           f"{lk.get('since')}"))
    from alnb.evaluation.labeltimes import workspace_costs

    print(f"costs:     {workspace_costs(ws)[1]}")
    fcst = st["forecast"]
    print(f"forecast:  {fcst['line'] if 'line' in fcst else fcst['error']}")
    print(f"next:      {st['next']}")


def _forecast_status(ws) -> dict:
    """The next round's forecast for ``alnb status`` (:func:`alnb.loop.forecaststep.next_round_forecast`, nothing
    written), or ``{"error": why}`` when the workspace's records cannot be read: the status itself still prints."""
    from alnb.core.workspace import WorkspaceError
    from alnb.loop.forecaststep import next_round_forecast

    try:
        return next_round_forecast(ws).to_dict()
    except (WorkspaceError, ValueError) as e:
        return {"error": f"not available ({e})"}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("ALNB_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args, argv)
    except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - every error becomes one message + exit code
        return _report_error(err, argv, debug)


def check_args(args):
    """Every command-line value checked before any work starts (a bad ``--T`` or ``--conf`` used to be refused only
    after CAL1 had trained for minutes, or worse, accepted: ``--conf 1.5`` emptied every auto-label).  Raises
    ``ValueError`` naming the flag; the CLI turns it into exit 2."""
    from alnb.core.data import MIN_SIDE

    def need(flag, ok, what, hint=""):
        v = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if v is not None and not ok(v):
            raise ValueError(f"{flag} {what}, got {v}{hint}. Nothing was done.")

    need("--T", lambda v: v >= 1, "must be at least 1", " (MC-dropout passes; the study uses 20)")
    need("--conf", lambda v: 0 < v < 1, "must lie strictly between 0 and 1",
         " (an auto-label confidence; leave it out and each model's operating point is chosen on VAL1)")
    need("--budget", lambda v: v >= 1, "must be at least 1", " (a number of POOL images)")
    if args.command == "run" and getattr(args, "strategy", None) and args.budget is None:
        raise ValueError(f"--strategy {args.strategy} needs --budget K (the number of images per round it chooses); "
                         f"without --budget every round takes the study rule (medium + hard + failed). Nothing was "
                         f"done.")
    if args.command == "study":
        need("--rounds", lambda v: v >= 1, "must be at least 1", " (cycles per chain)")
        need("--test", lambda v: v >= 0, "must be a number of TEST images >= 0")
    else:
        need("--rounds", lambda v: v >= 2, "must be at least 2", " (round 2 = GT2 / CAL2 / Control; 3, 4 ... go on)")
    need("--threads", lambda v: v >= 1, "must be at least 1", " (CPU threads; default: every usable core)")
    need("--fraction", lambda v: 0 <= v <= 1, "must lie between 0 and 1", " (the share of images to review)")
    need("--hours", lambda v: v >= 0, "must be a number of hours >= 0")
    need("--max-error-rate", lambda v: 0 <= v <= 1, "must lie between 0 and 1",
         " (e.g. 0.05: at most 5 % of the accepted images with an error)")
    need("--epochs", lambda v: v >= 1, "must be at least 1")
    need("--imgsz", lambda v: v >= 32, "must be at least 32 (pixels; a multiple of 32)")
    imgsz = getattr(args, "imgsz", None)
    if imgsz is not None:
        from alnb.model.train import check_imgsz

        check_imgsz(imgsz, "--imgsz")
    need("--seed", lambda v: v >= 0, "must be a whole number >= 0")
    need("--batch", lambda v: v >= 1, "must be at least 1")
    need("--part-size", lambda v: v >= 1, "must be at least 1")
    need("--workers", lambda v: v >= 1, "must be at least 1")
    if getattr(args, "generate", False) or args.command == "data":
        need("--n-images", lambda v: v >= 1, "must be at least 1")
        need("--size", lambda v: v >= MIN_SIDE, f"must be at least {MIN_SIDE} (pixels a side)")
    if getattr(args, "seeds", None):
        bad = [v for v in args.seeds if v < 0]
        if bad:
            raise ValueError(f"--seeds must be whole numbers >= 0, got {bad[0]}. Nothing was done.")
    if getattr(args, "annotation", None) is not None:
        from alnb.labels.labelio import check_annotation_choice

        check_annotation_choice(args.annotation, getattr(args, "label_format", None) or args.format)
    labels = getattr(args, "labels", None)
    if labels is not None and not Path(labels).expanduser().exists():
        raise ValueError(f"--labels {labels}: no such file or folder. Pass the export of the labelling tool (Label "
                         f"Studio: Export > JSON) or a folder of YOLO label files. Nothing was done.")
    start = getattr(args, "start", None)
    if start is not None and start.lower() not in ("none", "scratch", ""):
        from alnb.model.train import check_checkpoint, start_weights

        check_checkpoint(start_weights(start))


def _run_argv(argv) -> list:
    """The ``alnb run`` command to continue with: as given, without --labels / --label-format / --overwrite /
    --generate."""
    return ["alnb", *_strip(argv, ("--labels", "--label-format"), ("--overwrite", "--generate"))]


def _remember_run_command(args, argv):
    """``metrics/run_command.json``: the ``alnb run`` command as given (:func:`_run_argv`), so ``alnb status`` prints
    a next command with the same --profile / --n-val / --n-gt1 ... (best effort, only once the workspace exists).
    :func:`alnb.apps.headless.run` records it already right after setup, before any training (a kill -9 in CAL1's
    training skips this ``finally``)."""
    from alnb.core.workspace import atomic_write_json

    root = Path(args.workspace).expanduser()
    if not (root / "workspace.json").is_file():
        return
    try:
        atomic_write_json(root / "metrics" / "run_command.json", {"argv": _run_argv(argv)})
    except OSError:  # a hint only; never hide the real outcome
        pass


def _dispatch(args, argv) -> int:
    import alnb  # noqa: F401  (offline settings before ultralytics)
    from alnb.core.lock import workspace_lock

    check_args(args)
    if getattr(args, "threads", None) is not None:  # the thread policy (alnb.core.cpu) of this process and its children
        from alnb.core.cpu import ENV_THREADS

        os.environ[ENV_THREADS] = str(args.threads)

    if args.command == "data":
        from alnb.datasets import weld

        out = weld.generate(args.out, weld.WeldConfig(n_images=args.n_images, width=args.size, height=args.size,
                                                      seed=args.seed), overwrite=args.overwrite)
        print(f"[alnb] weld dataset: {Path(out).resolve()} ({args.n_images} images, {args.size}x{args.size})")
        return 0
    if args.command == "status":
        from alnb.core.workspace import Workspace

        _print_status(Workspace.open(args.workspace), args.json)
        return 0
    if args.command == "costs":
        from alnb.evaluation.labeltimes import describe
        from alnb.core.workspace import Workspace

        print(describe(Workspace.open(args.workspace)))
        return 0
    if args.command == "run":
        from alnb.apps import headless
        from alnb.loop import pipeline
        from alnb.core.workspace import check_location

        overrides = {k: v for k, v in (("epochs", args.epochs), ("imgsz", args.imgsz), ("device", args.device))
                     if v is not None}
        if args.start is not None:
            overrides["start"] = None if args.start.lower() in ("none", "scratch", "") else args.start
        if args.round_recipe is not None:
            overrides["round_recipe"] = args.round_recipe
        check_location(args.workspace, args.data)
        with workspace_lock(args.workspace, shlex.join(["alnb", *argv]), log=print):
            try:
                if args.overwrite:  # a new split first; the run below then reopens it
                    pipeline.setup(args.workspace, args.data, generate=args.generate, n_images=args.n_images,
                                   image_size=args.size, n_val=args.n_val, n_gt1=args.n_gt1, seed=args.seed,
                                   overwrite=True, log=None)
                res = headless.run(args.data, args.workspace, profile=args.profile, seed=args.seed, T=args.T,
                                   generate=args.generate, n_images=args.n_images, image_size=args.size,
                                   n_val=args.n_val, n_gt1=args.n_gt1, conf=args.conf, labels=args.labels,
                                   label_format=args.label_format, annotation=args.annotation,
                                   rule="budget" if args.budget is not None else "study", budget=args.budget,
                                   strategy=args.strategy, rounds=args.rounds, verbose=args.verbose,
                                   command=_run_argv(argv), review_plan=args.review_plan, **overrides)
            finally:
                _remember_run_command(args, argv)
        print(f"[alnb] finished in {res['seconds']:.0f} s")
        print(f"[alnb] report:  {res['report']}")
        print(f"[alnb] figures: {res['figures']}")
        return 0
    if args.command in ("export-queue", "import-labels"):
        from alnb.labels import labelio
        from alnb.core.workspace import Workspace

        ws = Workspace.open(args.workspace)
        if args.command == "export-queue":
            kw = {k: v for k, v in (("url_prefix", args.url_prefix), ("document_root", args.document_root))
                  if v is not None}
            if args.review:
                return _export_review(ws, args, kw)
            tag = args.tag or "GT2"
            with workspace_lock(ws.root, "alnb export-queue", log=print):
                out = labelio.export_queue(ws, args.format, out_dir=args.out, tag=tag, **kw)
            print(f"[alnb] {tag} queue exported for {args.format}: {out}")
            return 0
        kw = dict(tag=args.tag, overwrite=args.overwrite, annotation=args.annotation)
        if args.dry_run:
            summary = labelio.import_labels(ws, args.source, args.format, dry_run=True, **kw)
            print("[alnb] " + labelio.describe_import(summary, args.source, dry_run=True))
            return 0
        from alnb.loop import reviewstep  # the final label set (if any) follows the imported labels

        with workspace_lock(ws.root, "alnb import-labels"):
            summary = labelio.import_labels(ws, args.source, args.format, **kw)
            print("[alnb] " + labelio.describe_import(summary, args.source))
            reviewstep.refresh_final(ws, log=print)
        return 0
    if args.command == "notebooks":
        from alnb.core.workspace import check_location

        check_location(args.workspace, args.data)
        with workspace_lock(args.workspace, "alnb notebooks"):  # the kernels inherit it (alnb.core.lock)
            run_notebooks(args)
        ws = Path(args.workspace).resolve()
        print(f"[alnb] executed notebooks: {ws / 'notebooks'}")
        print(f"[alnb] report:  {ws / 'report.md'}")
        print(f"[alnb] figures: {ws / 'figures'}")
        return 0
    if args.command == "study":
        return _run_study(args)
    if args.command == "score":
        return _run_score(args, argv)
    if args.command == "review":
        return _run_review(args)
    if args.command == "serve":
        from alnb.apps.serve import serve

        return serve(args.workspace, host=args.host, port=args.port, profile=args.profile, T=args.T, seed=args.seed,
                     document_root=args.document_root, label_studio_url=args.label_studio_url,
                     annotation=args.annotation)
    return 2  # pragma: no cover


def _export_review(ws, args, kw) -> int:
    """``alnb export-queue --review``: the review plan's queue (:func:`alnb.loop.reviewstep.export_review`)."""
    from alnb.loop import reviewstep
    from alnb.core.lock import workspace_lock

    if args.tag is not None:
        raise ValueError(f"--review exports the images the review plan sends to review; --tag {args.tag} chooses "
                         f"another selection. Give one of them. Nothing was done.")
    with workspace_lock(ws.root, "alnb export-queue --review", log=print):
        out = reviewstep.export_review(ws, args.format, out_dir=args.out, **kw)
    n = len(_queue_stems(out))
    back = {"cvat": "yolo"}.get(args.format, args.format)  # CVAT's YOLO 1.1 export comes back as yolo
    print(f"[alnb] review queue ({n} image(s) the review plan sends to review, plan order) exported for "
          f"{args.format}: {out}")
    print(f"[alnb] after the review, import the tool's export: alnb import-labels EXPORT --workspace {ws.root} "
          f"--format {back} --tag any (the reviewed images become people's labels)")
    return 0


def _queue_stems(out) -> list:
    """The stems of an exported queue (``queue.csv``)."""
    import csv

    with open(Path(out) / "queue.csv", newline="") as f:
        return [r["stem"] for r in csv.DictReader(f)]


def _run_review(args) -> int:
    from alnb.loop import reviewstep
    from alnb.core.lock import workspace_lock
    from alnb.core.workspace import Workspace

    ws = Workspace.open(args.workspace)
    cut = {"fraction": args.fraction, "hours": args.hours, "max_error_rate": args.max_error_rate}
    final_kw = {k: v for k, v in (("url_prefix", args.url_prefix), ("document_root", args.document_root))
                if v is not None}
    if final_kw and not args.accept:
        raise ValueError("--url-prefix / --document-root set the image URLs of the final label set, which only "
                         "--accept writes: add --accept or leave them out. Nothing was done.")
    with workspace_lock(ws.root, "alnb review" + (" --accept" if args.accept else ""), log=print):
        if args.accept:  # a document root without the dataset: refused before the plan is written
            reviewstep.check_document_root(ws, reviewstep.final_settings(ws, **final_kw))
        res = reviewstep.write_plan(ws, method=args.method, seed=args.seed, recalibrate=args.recalibrate, **cut)
        print(reviewstep.describe(res["summary"]))
        print(f"[alnb] plan: {ws.root / reviewstep.PLAN_FILE}, {ws.root / 'metrics' / 'review_plan.json'}")
        if args.accept:
            rec = reviewstep.accept(ws, **final_kw)
            print(f"[alnb] accepted the labels of {rec['model']} on {rec['n_accepted']} image(s) (machine-accepted); "
                  f"{rec['n_review']} image(s) wait for review: export them with pre-annotations (alnb export-queue "
                  f"--workspace {ws.root} --review --format labelstudio) and import the reviewed labels (alnb "
                  f"import-labels EXPORT --workspace {ws.root} --format labelstudio --tag any).")
            print(f"[alnb] final label set (with provenance): {ws.root / reviewstep.FINAL_DIR}")
    return 0


def _run_score(args, argv) -> int:
    from alnb.core.lock import workspace_lock
    from alnb.acquisition.scoring import score_pool
    from alnb.core.workspace import Workspace

    ws = Workspace.open(args.workspace)  # --T, --batch, --part-size, --workers, --conf: checked by check_args
    with workspace_lock(ws.root, shlex.join(["alnb", *argv]), log=print):
        scores = score_pool(ws, model=args.model, T=args.T, conf=args.conf, imgsz=args.imgsz, batch=args.batch,
                            seed=args.seed, device=args.device, engine=args.engine, address=args.address,
                            workers=args.workers, part_size=args.part_size)
    info = ws.load_json("mc_scoring")
    tiers = scores["tier"].value_counts()
    print(f"[alnb] scored {info['n_images']} POOL image(s) with {info['model']} (T={info['T']}, engine "
          f"{info['engine']}): {info['n_scored']} now in {info['seconds_this_run']:.0f} s, {info['n_reused']} "
          f"from earlier parts")
    print("[alnb] tiers: " + ", ".join(f"{t} {int(tiers.get(t, 0))}" for t in ("easy", "medium", "hard"))
          + f"; failed (nothing found) {int(scores['failed'].sum())}")
    print(f"[alnb] scores:  {ws.root / 'scores.csv'}")
    print(f"[alnb] auto-labels: {ws.root / 'autolabels' / info['model']}")
    return 0


def _run_study(args) -> int:
    from alnb.loop import study

    budgets = args.budgets
    if args.per_round is not None:
        if budgets is not None:
            raise ValueError("give --per-round B or --budgets B1 B2 ..., not both.")
        budgets = [args.per_round]
    if budgets is not None:
        budgets = [study.budget_label(b) for b in budgets]  # a clear error for a bad one, before any work
    kw = dict(grid=args.grid, strategies=args.strategies, budgets=budgets, seeds=args.seeds, profile=args.profile,
              T=args.T, n_val=args.n_val, n_gt1=args.n_gt1, rounds=args.rounds, test=args.test,
              engine=args.engine, address=args.address, threads=args.threads, verbose=args.verbose)
    if args.costs_from is not None:
        from alnb.evaluation.labeltimes import collect, fit_costs
        from alnb.core.workspace import Workspace

        fit = fit_costs(collect(Workspace.open(args.costs_from)), n_boot=0)
        if not fit.trusted:
            raise ValueError(f"--costs-from {args.costs_from}: {fit.message}; label more in Label Studio and import "
                             f"the export, or leave --costs-from out (literature defaults).")
        kw.update(costs=fit.costs, costs_source=f"{fit.message} in {args.costs_from}")
    if args.estimate:
        est = study.run_study(args.out, args.data, estimate_only=True, **kw)
        print(f"[alnb] {est['runs']} training run(s) to do, about {est['seconds'] / 60:.0f} min at "
              f"{est['images_per_s']} images/s")
        return 0
    res = study.run_study(args.out, args.data, generate=args.generate, **kw)
    print(res.verdicts[(res.verdicts["x"] == "images") & (res.verdicts["metric"] == "mAP50")].to_string(index=False))
    print(f"[alnb] study finished in {res.seconds:.0f} s ({len(res.trained)} model(s) trained)")
    print(f"[alnb] table:   {res.study_dir / 'results.csv'}")
    print(f"[alnb] report:  {res.report}")
    print(f"[alnb] figures: {res.study_dir / 'figures'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
