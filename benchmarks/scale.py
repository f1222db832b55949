"""How the loop's steps grow with the pool: wall time, peak memory and disk at 1k, 10k, 100k images.

For each size ``n`` the script generates ``n + 355`` small weld radiographs (:mod:`alnb.datasets.weld`, ``--image-size`` px,
default 96), keeps labels only for the 355 that become VAL1 + GT1 (178 + 177, as in the study), so the POOL holds
exactly ``n`` unlabelled images (as at a plant: "real" mode; the generator's labels of the POOL play the people who
label the GT2 queue), and runs the steps of the loop, each in its own process:

==============  =========================================================================================
setup           validation of every image + split + manifest + view + lists (``alnb.loop.pipeline.setup``)
scoring         auto-labels + MC-dropout scores of the POOL, T = 20 (``alnb.acquisition.scoring.score_pool``, local engine)
tiering         re-cut the tiers at new thresholds (``alnb.acquisition.scoring.retier``: what moving the sliders does)
selection       select GT2 (``--labels`` = 1,000 images, study-rule order) and commit the tags (``select_gt2``)
import          import people's 1,000 labels for GT2 (a YOLO folder, ``alnb.labels.labelio.import_labels``)
report          selection figures + ``report.md`` (``selection_figures`` + ``alnb.ui.report.write_report``)
==============  =========================================================================================

Measured per step: wall time inside the process (imports excluded), the process's peak resident memory
(``ru_maxrss`` from ``wait4``: imports included, ~0.4 GB of it is torch + ultralytics) and the workspace's size on
disk after the step (``du``).  Then the growth exponent ``k`` of each step between consecutive sizes
(``time ~ n^k``: ``k = log(t2 / t1) / log(n2 / n1)``, ``n`` = POOL size) and the step that dominates at the largest
size.

The model: the quick profile's width-0.125 YOLOv8 (``alnb/models/yolov8-tiny.yaml``), started from the shipped
``weld-defect-tiny.pt`` and trained for ``--epochs`` (5) epochs at 256 px on 300 GT1 images of another generated
set (seed 7) with ``alnb.model.train.train_cal`` (cached in ``<out>/model``); scoring runs at its training size, 256 px.
Untimed, per size: evaluating CAL1 on VAL1 (its operating point; independent of the pool) and writing the import
folder.

Usage::

    python benchmarks/scale.py --sizes 1000 10000 100000          # ~45-60 min on 2 CPU cores
    python benchmarks/scale.py --sizes 200 400 --labels 50        # a quick look (tests use it)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STEPS = ["setup", "scoring", "tiering", "selection", "import", "report"]
N_VAL, N_GT1 = 178, 177  # the study's split sizes; the rest of the pool is POOL
MODEL_SEED = 7  # the generated set the benchmark model is trained on (any seed but the pools' 0)


# ----------------------------------------------------------------------------------------------------- child side
def run_step(a) -> dict:
    """One step in this process; returns ``{"seconds": ..., **details}``."""
    import torch

    import alnb  # noqa: F401  (offline settings)
    from alnb.core.workspace import Workspace

    if a.threads:
        torch.set_num_threads(a.threads)
    quiet = lambda *_, **__: None  # noqa: E731
    t0 = time.perf_counter()
    out = {"threads": torch.get_num_threads()}
    if a.step == "model":
        out["run_dir"] = str(prepare_model(a))
    elif a.step == "setup":
        from alnb.loop import pipeline

        ws = pipeline.setup(a.workspace, a.data, n_val=N_VAL, n_gt1=N_GT1, seed=0, log=quiet)
        out["pool"] = ws.tag_counts()["POOL"]
    elif a.step == "evaluate":  # untimed preparation: CAL1 in the workspace + its operating point on VAL1
        from alnb.evaluation import step as evaluation

        ws = Workspace.open(a.workspace)
        dst = ws.root / "runs" / "CAL1"
        if not dst.is_dir():
            shutil.copytree(a.model_run, dst)
        out["conf"] = evaluation.evaluate(ws, "CAL1")["conf"]
    elif a.step == "scoring":
        from alnb.acquisition.scoring import score_pool

        ws = Workspace.open(a.workspace)
        scores = score_pool(ws, "CAL1", T=a.T, batch=a.batch, progress=False)
        info = ws.load_json("mc_scoring")
        out.update(images=len(scores), ms_per_image=round(1000 * info["seconds_per_image"], 2),
                   candidates=int(scores["n_cand"].sum()))
    elif a.step == "tiering":
        from alnb.acquisition.scoring import retier
        from alnb.loop.selection import choose_thresholds, load_scores

        ws = Workspace.open(a.workspace)
        th = choose_thresholds(load_scores(ws), target_fraction=0.5, hard_share=0.3)
        retier(ws, th["t_medium"], th["t_hard"])
    elif a.step == "selection":
        from alnb.loop import pipeline

        ws = Workspace.open(a.workspace)
        out["selected"] = len(pipeline.select_gt2(ws, rule="budget", budget=a.labels))
    elif a.step == "import":
        from alnb.labels.labelio import import_labels, summary_counts

        ws = Workspace.open(a.workspace)
        out["counts"] = summary_counts(import_labels(ws, a.import_dir, "yolo", tag="GT2"))
    elif a.step == "report":
        import matplotlib

        matplotlib.use("Agg")
        from alnb.loop import pipeline
        from alnb.ui import report

        ws = Workspace.open(a.workspace)
        pipeline.selection_figures(ws)
        report.write_report(ws)
    else:
        raise SystemExit(f"unknown step {a.step}")
    out["seconds"] = time.perf_counter() - t0
    return out


# ---------------------------------------------------------------------------------------------------- parent side
def du(path) -> int:
    """Bytes on disk (blocks, as ``du``) of a folder; symlinks are not followed."""
    r = subprocess.run(["du", "-s", "-B1", str(path)], capture_output=True, text=True, check=True)
    return int(r.stdout.split()[0])


def child(step: str, a, **paths) -> dict:
    """Run ``step`` in a fresh process; add its peak RSS (``wait4``).

    This (parent) process never imports torch: Linux carries a process's peak RSS across ``exec``, so a child forked
    from a large parent would report the parent's size."""
    res_file = Path(a.out) / f".step_{os.getpid()}.json"
    cmd = [sys.executable, __file__, "--step", step, "--result", str(res_file), "--T", str(a.T), "--batch",
           str(a.batch), "--threads", str(a.threads), "--out", str(a.out), "--image-size", str(a.image_size),
           "--epochs", str(a.epochs), "--profile", a.profile, "--imgsz", str(a.imgsz)]
    for k, v in paths.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    env = {**os.environ, "YOLO_OFFLINE": "1", "MPLBACKEND": "Agg"}
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env)
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        raise SystemExit(f"step {step} failed (exit {p.returncode}): {' '.join(cmd)}")
    out = json.loads(res_file.read_text())
    res_file.unlink()
    out["peak_rss_mib"] = round(usage.ru_maxrss / 1024, 1)  # Linux: KiB
    out["process_seconds"] = round(time.perf_counter() - t0, 2)
    return out


def prepare_model(a) -> Path:
    """Train (or reuse) the benchmark's CAL1 (see the module docstring); returns its run folder."""
    import alnb  # noqa: F401
    from alnb.datasets import weld
    from alnb.model.train import train_cal
    from alnb.core.workspace import Workspace

    root = Path(a.out) / "model"
    data = weld.generate(root / "data", weld.WeldConfig(n_images=500, width=a.image_size, height=a.image_size,
                                                        seed=MODEL_SEED), progress=False)
    ws = Workspace.create(root / "ws", data, n_val=100, n_gt1=300, seed=0, progress=False)
    run = train_cal(ws, "CAL1", "GT1", profile=a.profile, epochs=a.epochs, imgsz=a.imgsz, seed=0, device="cpu",
                    verbose=False)
    print(f"[scale] model: {run.run_dir} ({'reused' if run.reused else f'trained in {run.seconds:.0f} s'}; "
          f"profile {a.profile}, {run.info.get('args', {}).get('epochs')} epochs, imgsz {a.imgsz}, VAL mAP50 "
          f"{run.metrics.get('mAP50', float('nan')):.3f})", flush=True)
    return run.run_dir


def prepare_data(a, n: int) -> tuple:
    """``n + N_VAL + N_GT1`` images (generated once) with labels only for the first N_VAL + N_GT1: a POOL of ``n``
    unlabelled images.  Returns ``(dataset folder, people's labels folder)``."""
    from alnb.datasets import weld

    data = Path(a.out) / f"data_{n}"
    people = Path(a.out) / f"people_{n}"
    done = data / ".scale_prepared"
    total = n + N_VAL + N_GT1
    stamp = f"{total} images, {a.image_size} px\n"
    if not done.is_file() or done.read_text() != stamp:
        shutil.rmtree(people, ignore_errors=True)
        t0 = time.perf_counter()
        weld.generate(data, weld.WeldConfig(n_images=total, width=a.image_size, height=a.image_size, seed=0),
                      progress=False, overwrite=True)
        people.mkdir(parents=True, exist_ok=True)
        keep = N_VAL + N_GT1
        for p in sorted((data / "labels").glob("*.txt"), key=lambda p: int(p.stem.split("_")[1]))[keep:]:
            os.replace(p, people / p.name)  # the POOL is unlabelled; these are the people's labels
        done.write_text(stamp)
        print(f"[scale] generated {total} images ({a.image_size} px) in {time.perf_counter() - t0:.0f} s", flush=True)
    return data, people


def exponents(rows: list) -> dict:
    """{step: [k between consecutive sizes]} from ``time ~ n^k``."""
    by = {}
    for r in rows:
        by.setdefault(r["step"], {})[r["n"]] = r["seconds"]
    out = {}
    for step, t in by.items():
        ns = sorted(t)
        out[step] = [round(math.log(max(t[b], 1e-6) / max(t[a], 1e-6)) / math.log(b / a), 2)
                     for a, b in zip(ns, ns[1:])]
    return out


def markdown(rows, ks, sizes, info) -> str:
    """The table of docs/results/2026-11-25-scaling.md."""
    lines = ["| step | " + " | ".join(f"POOL {n:,}: time / peak RSS / disk" for n in sizes) + " | k (time ~ n^k) |",
             "|---|" + "---|" * len(sizes) + "---|"]
    for step in STEPS:
        cells = []
        for n in sizes:
            r = next(r for r in rows if r["n"] == n and r["step"] == step)
            cells.append(f"{_fmt_s(r['seconds'])} / {r['peak_rss_mib'] / 1024:.2f} GiB / "
                         f"{r['disk_mib']:,.0f} MiB")
        lines.append(f"| {step} | " + " | ".join(cells) + " | " + ", ".join(f"{k:.2f}" for k in ks[step]) + " |")
    lines.append("| dataset on disk | " + " | ".join(f"{info['dataset_mib'][n]:,.0f} MiB" for n in sizes)
                 + " | |")
    return "\n".join(lines)


def _fmt_s(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000], help="POOL sizes")
    ap.add_argument("--image-size", type=int, default=96, help="generated image width = height (default 96)")
    ap.add_argument("--labels", type=int, default=1000,
                    help="GT2 budget = labels imported (default 1000; at most the POOL)")
    ap.add_argument("--T", type=int, default=20)
    ap.add_argument("--batch", type=int, default=16, help="scoring batch (speed only)")
    ap.add_argument("--epochs", type=int, default=5, help="epochs of the benchmark model")
    ap.add_argument("--profile", default="quick", help="training profile of the benchmark model (default quick)")
    ap.add_argument("--imgsz", type=int, default=256, help="training = scoring size of the model (default 256)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per step process (0: PyTorch's default)")
    ap.add_argument("--out", default="runs/scale", help="work folder (datasets, workspaces, results)")
    ap.add_argument("--keep", action="store_true", help="keep each size's workspace (default: removed after)")
    # child-process arguments
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--workspace", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--model-run", help=argparse.SUPPRESS)
    ap.add_argument("--import-dir", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.step:
        Path(a.result).write_text(json.dumps(run_step(a), default=str))
        return None

    os.environ["YOLO_OFFLINE"] = "1"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    model_run = child("model", a)["run_dir"]
    rows, info = [], {"dataset_mib": {}, "pool": {}, "labels": {}, "extra": {}}
    for n in a.sizes:
        data, people = prepare_data(a, n)
        info["dataset_mib"][n] = du(data) / 2 ** 20
        ws = out / f"ws_{n}"
        shutil.rmtree(ws, ignore_errors=True)
        budget = min(a.labels, n)
        info["labels"][n] = budget
        imp = out / f"import_{n}"
        for step in STEPS:
            kw = {"workspace": ws, "data": data}
            if step == "scoring":
                info["extra"].setdefault(n, {})["evaluate"] = child("evaluate", a, model_run=model_run, **kw)
            if step == "selection":
                kw["labels"] = budget
            if step == "import":  # what people hand back: YOLO files of the GT2 images (untimed)
                import pandas as pd

                m = pd.read_csv(ws / "manifest.csv", dtype=str, keep_default_na=False)
                gt2 = m.loc[m["tags"].str.split(";").map(lambda t: "GT2" in t), "stem"]
                shutil.rmtree(imp, ignore_errors=True)
                imp.mkdir(parents=True)
                for s in gt2:
                    shutil.copyfile(people / f"{s}.txt", imp / f"{s}.txt")
                kw["import_dir"] = imp
            r = child(step, a, **kw)
            r.update(n=n, step=step, disk_mib=round(du(ws) / 2 ** 20, 1))
            rows.append(r)
            print(f"[scale] n={n:>7,} {step:<10} {_fmt_s(r['seconds']):>9}  peak RSS {r['peak_rss_mib']:>7.0f} MiB  "
                  f"workspace {r['disk_mib']:>8,.0f} MiB  "
                  + json.dumps({k: v for k, v in r.items() if k not in ("n", "step", "seconds", "peak_rss_mib",
                                                                       "disk_mib", "process_seconds", "threads")}),
                  flush=True)
        info["pool"][n] = next(r["pool"] for r in rows if r["n"] == n and r["step"] == "setup")
        if not a.keep:
            shutil.rmtree(ws, ignore_errors=True)
            shutil.rmtree(imp, ignore_errors=True)
    ks = exponents(rows)
    big = max(a.sizes)
    top = max((r for r in rows if r["n"] == big), key=lambda r: r["seconds"])
    total = time.perf_counter() - t_all
    print("\n" + markdown(rows, ks, a.sizes, info))
    print(f"\ngrowth exponents k (time ~ n^k) between {', '.join(f'{x:,}' for x in a.sizes)}:")
    for step in STEPS:
        print(f"  {step:<10} {', '.join(f'{k:.2f}' for k in ks[step])}")
    print(f"dominating step at a POOL of {big:,}: {top['step']} ({_fmt_s(top['seconds'])}, "
          f"{100 * top['seconds'] / sum(r['seconds'] for r in rows if r['n'] == big):.0f} % of the steps)")
    print(f"peak RSS at a POOL of {big:,}: {max(r['peak_rss_mib'] for r in rows if r['n'] == big) / 1024:.2f} GiB; "
          f"benchmark total {_fmt_s(total)} (generation and model included)")
    res = {"sizes": a.sizes, "image_size": a.image_size, "T": a.T, "batch": a.batch, "labels": info["labels"],
           "pool": info["pool"], "threads": rows[0]["threads"], "cpus": os.cpu_count(),
           "rows": rows, "exponents": ks, "dominating": top["step"], "dataset_mib": info["dataset_mib"],
           "untimed": info["extra"], "total_seconds": round(total, 1), "model_run": str(model_run),
           "markdown": markdown(rows, ks, a.sizes, info)}
    (out / "scale_results.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(f"[scale] results: {out / 'scale_results.json'}")
    return res


if __name__ == "__main__":
    main()
