"""Training, evaluation and MC-scoring speed side by side: how alnb ran before vs each setting it adopts.

Usage::

    python benchmarks/train_speed.py WORKSPACE [--epochs 4] [--repeats 2] [--profile quick]

``WORKSPACE`` is a set-up workspace (e.g. ``alnb run ... `` or ``pipeline.setup``; the demo's ``runs/weld``).  Every
measurement runs in a fresh subprocess (so peak memory is its own), the arms are interleaved over ``--repeats``
rounds (a disturbance hits every arm alike), and the medians are printed.

Training arms (the profile's recipe on GT1 with its repeat-factor list; ``--epochs`` epochs; per-epoch training time
from the trainer's callbacks, the first epoch left out as warm-up, and one validation pass over VAL1):

* ``before``: what alnb did until now: ultralytics' CPU thread count (``cpu_count - 1`` = 1 on 2 cores), its
  default loader (``workers=8``, i.e. one process per core) decoding PNGs every epoch;
* ``+threads``: every usable core (:mod:`alnb.core.cpu`), the same loader;
* ``+threads +workers=0``: the loader in the training process (no loader processes competing for the cores);
* ``+threads +workers=0 +RAM cache``: decoded, resized images cached in RAM;
* ``+threads +workers=0 +RAM cache +channels-last (today)`` (= today's quick / smoke profile): the model and its EMA
  copy in channels-last memory layout (``Profile.channels_last``; ultralytics does this on CUDA only);
* ``1 thread +workers=0 +RAM cache +channels-last``: everything but the threads;
* ``+threads +workers=1 +RAM cache +channels-last``: one loader process beside the training threads.

The composed time of the profile's CAL1 run (``epochs`` training epochs + a validation every ``val_every`` epochs
and at the end, + ultralytics' re-validation of best.pt, which alnb no longer does) is printed for ``before`` and
today's setting, with the ratio.  Evaluation (one VAL1 prediction pass + ultralytics' validator for mAP before; one
pass with the COCO-style mAP of the same boxes now) and MC scoring (T = 20) are measured at ultralytics' thread count
and at the policy's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

TRAIN_ARMS = {  # name: (threads: None = alnb.core.cpu policy, 1 = ultralytics' count on 2 cores, workers, cache,
    #                 channels-last layout)
    "before": ("ultralytics", 8, False, False),
    "+threads": (None, 8, False, False),
    "+threads +workers=0": (None, 0, False, False),
    "+threads +workers=0 +RAM cache": (None, 0, "ram", False),
    "+threads +workers=0 +RAM cache +channels-last (today)": (None, 0, "ram", True),
    "1 thread +workers=0 +RAM cache +channels-last": ("ultralytics", 0, "ram", True),
    "+threads +workers=1 +RAM cache +channels-last": (None, 1, "ram", True),
}
TODAY = "+threads +workers=0 +RAM cache +channels-last (today)"


def _ultralytics_threads() -> int:
    return min(8, max(1, (os.cpu_count() or 1) - 1))  # ultralytics.utils.NUM_THREADS


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def train_arm(ws_dir: str, profile: str, epochs: int, arm: str, keep: str | None) -> dict:
    """One training measurement in this process."""
    import yaml

    import alnb  # noqa: F401
    from alnb.core.cpu import cpu_threads
    from alnb.model.train import dropout_trainer, get_profile, oversample_list, start_weights
    from alnb.core.workspace import Workspace

    threads, workers, cache, channels_last = TRAIN_ARMS[arm]
    threads = _ultralytics_threads() if threads == "ultralytics" else threads
    ws = Workspace.open(ws_dir)
    prof = get_profile(profile)
    data_yaml = ws.write_data_yaml("_speed", ["GT1"])
    train_list = Path(yaml.safe_load(Path(data_yaml).read_text())["train"])
    if prof.repeat_thresh:
        oversample_list(train_list, prof.repeat_thresh, len(ws.names), seed=0)
    n_samples = len(train_list.read_text().splitlines())
    name = f"_speed_{os.getpid()}"
    marks = {}

    def mark(event):
        return lambda trainer: marks.setdefault(event, []).append(time.perf_counter())

    args = {**prof.train_args(), "epochs": epochs, "close_mosaic": 0, "workers": workers, "cache": cache,
            "model": str(start_weights(prof.start)), "data": str(data_yaml), "project": str(ws.root / "runs"),
            "name": name, "exist_ok": True, "plots": False, "seed": 0, "deterministic": True, "device": "cpu",
            "verbose": False}
    with cpu_threads(threads, what="train_speed benchmark", log=None) as n:
        tr = dropout_trainer(prof.dropout, val_every=epochs, channels_last=channels_last)(overrides=args)  # one val
        for ev in ("on_train_epoch_start", "on_train_epoch_end", "on_fit_epoch_end"):
            tr.add_callback(ev, mark(ev))
        t0 = time.perf_counter()
        tr.train()
        total = time.perf_counter() - t0
    s, e, f = marks["on_train_epoch_start"], marks["on_train_epoch_end"], marks["on_fit_epoch_end"]
    epoch_s = sorted(e[i] - s[i] for i in range(1, len(s)))  # the first epoch is warm-up (cache, loaders)
    run = ws.root / "runs" / name
    if keep:
        Path(keep).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run / "weights" / "last.pt", keep)
    shutil.rmtree(run, ignore_errors=True)
    return {"kind": "train", "arm": arm, "threads": n, "workers": workers, "cache": cache,
            "channels_last": channels_last, "samples": n_samples,
            "epoch_s": epoch_s[len(epoch_s) // 2], "first_epoch_s": e[0] - s[0], "val_s": f[-1] - e[-1],
            "total_s": total, "peak_gib": _peak_gib(), "n_val": len(ws.stems("VAL1"))}


def eval_arm(ws_dir: str, weights: str, arm: str) -> dict:
    """One evaluation measurement: ``before`` = ultralytics' thread count, prediction pass + ultralytics' validator;
    ``today`` = the policy's threads, one prediction pass (COCO-style mAP of those boxes)."""
    import alnb  # noqa: F401
    from alnb.evaluation.step import evaluate
    from alnb.core.workspace import Workspace

    ws = Workspace.open(ws_dir)
    before = arm == "before"
    t0 = time.perf_counter()
    r = evaluate(ws, weights, save=False, ultralytics_map=before, threads=_ultralytics_threads() if before else None)
    return {"kind": "eval", "arm": arm, "seconds": time.perf_counter() - t0, "n": r["n_images"],
            "peak_gib": _peak_gib()}


def mc_arm(ws_dir: str, weights: str, arm: str, n_images: int) -> dict:
    """MC-dropout scoring (T = 20) of ``n_images`` POOL images at ultralytics' thread count or the policy's."""
    import alnb  # noqa: F401
    from alnb.core.cpu import cpu_threads
    from alnb.model.mc import MCScorer
    from alnb.model.train import load_model
    from alnb.core.workspace import Workspace

    ws = Workspace.open(ws_dir)
    m = ws.manifest().set_index("stem")
    stems = ws.stems("POOL")[:n_images]
    items = [(s, ws.dataset_root / m.at[s, "image"]) for s in stems]
    with cpu_threads(_ultralytics_threads() if arm == "before" else None, what="mc benchmark", log=None) as n:
        scorer = MCScorer(load_model(weights), T=20, conf=0.25, iou=0.5, batch=8)
        scorer.score(items[:8])  # warm-up
        t0 = time.perf_counter()
        scorer.score(items)
        sec = time.perf_counter() - t0
    return {"kind": "mc", "arm": arm, "threads": n, "ms_per_image": 1000 * sec / len(items), "peak_gib": _peak_gib()}


def _spawn(a, *argv) -> dict:
    cmd = [sys.executable, __file__, str(a.workspace), "--profile", a.profile, "--epochs", str(a.epochs),
           "--mc-images", str(a.mc_images), "--worker", *map(str, argv)]
    out = subprocess.run(cmd, capture_output=True, text=True,
                         env={**os.environ, "YOLO_OFFLINE": "1"})
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        raise RuntimeError(f"benchmark worker {argv} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def _median(vals):
    v = sorted(vals)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspace")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--epochs", type=int, default=4, help="training epochs per measurement (the first is warm-up)")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved rounds over all arms")
    ap.add_argument("--mc-images", type=int, default=120, help="POOL images per MC-scoring measurement")
    ap.add_argument("--arms", nargs="+", metavar="ARM", choices=list(TRAIN_ARMS),
                    help="only these training arms (the first is the ratios' base); skips evaluation and MC scoring")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        kind, *rest = a.worker
        fn = {"train": lambda: train_arm(a.workspace, a.profile, a.epochs, rest[0], rest[1] if len(rest) > 1 else None),
              "eval": lambda: eval_arm(a.workspace, rest[1], rest[0]),
              "mc": lambda: mc_arm(a.workspace, rest[1], rest[0], a.mc_images)}[kind]
        print(json.dumps(fn()), flush=True)
        return
    from alnb.core.cpu import usable_cores
    from alnb.model.train import get_profile

    prof = get_profile(a.profile)
    ws = Path(a.workspace).resolve()
    weights = ws / "runs" / "_speed_weights.pt"
    t_start = time.perf_counter()
    print(f"[train_speed] {ws}, profile {a.profile}, {usable_cores()} usable cores, {a.epochs} epochs per "
          f"measurement, {a.repeats} interleaved rounds; load average before: {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    arms = a.arms or list(TRAIN_ARMS)
    for r in range(a.repeats):
        for arm in arms:
            keep = str(weights) if (r == 0 and arm == "before" and not a.arms) else None
            rows.append(_spawn(a, "train", arm, *([keep] if keep else [])))
            print(f"  round {r + 1}: {arm:<54} epoch {rows[-1]['epoch_s']:6.2f} s  val {rows[-1]['val_s']:5.2f} s",
                  flush=True)
        for arm in ("before", "today") if not a.arms else ():
            rows.append(_spawn(a, "eval", arm, weights))
            rows.append(_spawn(a, "mc", arm, weights))
    weights.unlink(missing_ok=True)

    def med(kind, arm, key):
        return _median([x[key] for x in rows if x["kind"] == kind and x["arm"] == arm])

    base = med("train", arms[0], "epoch_s")
    samples = rows[0]["samples"]
    print(f"\nTraining ({a.profile}: {prof.model} at {prof.imgsz} px, batch {prof.batch}, {samples} samples per "
          f"epoch of GT1; VAL1 {rows[0]['n_val']} images); medians of {a.repeats}:")
    w = max(map(len, arms))
    print(f"{'arm':<{w}} {'threads':>7} {'epoch s':>8} {'img/s':>7} {'ratio':>6} {'val s':>6} {'val ratio':>9} "
          f"{'peak GiB':>8}")
    vbase = med("train", arms[0], "val_s")
    for arm in arms:
        ep, vs = med("train", arm, "epoch_s"), med("train", arm, "val_s")
        thr = next(x["threads"] for x in rows if x.get("arm") == arm and x["kind"] == "train")
        print(f"{arm:<{w}} {thr:>7} {ep:8.2f} {samples / ep:7.1f} {base / ep:5.2f}x {vs:6.2f} {vbase / vs:8.2f}x "
              f"{med('train', arm, 'peak_gib'):8.2f}")
    if a.arms:
        spread = {arm: sorted(round(x["epoch_s"], 2) for x in rows if x["kind"] == "train" and x["arm"] == arm)
                  for arm in arms}
        print("\nper-repeat epoch seconds (sorted): " + "; ".join(f"{k}: {v}" for k, v in spread.items()))
        print(f"[train_speed] {time.perf_counter() - t_start:.0f} s in all; load average after: {os.getloadavg()[0]:.2f}")
        return
    today = TODAY
    n_val = -(-prof.epochs // prof.val_every) if prof.val_every > 1 else prof.epochs
    t_before = prof.epochs * base + (n_val + 1) * vbase  # + ultralytics' re-validation of best.pt
    t_today = prof.epochs * med("train", today, "epoch_s") + n_val * med("train", today, "val_s")
    print(f"\nA {a.profile} CAL1 run ({prof.epochs} epochs, {n_val} validations; before also ultralytics' re-validation of best.pt): "
          f"before {t_before:.0f} s, today {t_today:.0f} s: {t_before / t_today:.2f}x "
          f"({samples * prof.epochs / t_before:.1f} -> {samples * prof.epochs / t_today:.1f} training images/s, "
          f"validation included)")
    eb, et = med("eval", "before", "seconds"), med("eval", "today", "seconds")
    print(f"Evaluation on VAL1: before {eb:.1f} s (prediction pass + ultralytics validator, "
          f"{_ultralytics_threads()} thread(s)), today {et:.1f} s (one pass, policy threads): {eb / et:.2f}x")
    mb, mt = med("mc", "before", "ms_per_image"), med("mc", "today", "ms_per_image")
    print(f"MC scoring (T = 20, {a.mc_images} POOL images): before {mb:.1f} ms/image ({_ultralytics_threads()} "
          f"thread(s)), today {mt:.1f} ms/image: {mb / mt:.2f}x")
    print(f"[train_speed] {time.perf_counter() - t_start:.0f} s in all; load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
