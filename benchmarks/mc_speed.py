"""MC-dropout scoring speed: cached-backbone sampler vs T full forward passes vs one ordinary pass.

Scores the same images three ways with :func:`alnb.model.mc.mc_predict` and prints wall times and ratios:

* ``one pass``: T=1, dropout off, a full forward pass (what ultralytics' predict does), NMS;
* ``cached``: backbone + neck once, the dropout head convs T times (the default sampler);
* ``full``: T complete forward passes with dropout on (the naive way).

It also checks that the samplers agree: with dropout off the cached and full mean detections must be identical (up
to float rounding); with dropout on (both read the same per-image masks, alnb.model.mc.dropout_keep) the mean detections
are matched by IoU >= 0.5 and the share that agrees is printed.  Each timing is the best of ``--repeats`` runs (the CPU may be shared).

Usage::

    python benchmarks/mc_speed.py --workspace runs/weld --model CAL1           # a trained run (its imgsz)
    python benchmarks/mc_speed.py --weights path/to/best.pt --images data/weld/images --imgsz 256
    python benchmarks/mc_speed.py --untrained --images data/weld/images --imgsz 256   # speed only, random weights
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import alnb  # noqa: E402,F401  (offline before ultralytics)
from alnb.model import mc as U  # noqa: E402
from alnb.acquisition.scoring import _resolve_model  # noqa: E402


def untrained_model(imgsz: int, seed: int = 0, p: float = 0.1):
    """The quick-profile architecture with random weights and a dropout head (speed measurements only)."""
    return U.untrained_dropout_model(str(Path(alnb.__file__).parent / "models" / "yolov8-tiny.yaml"), imgsz, p, seed)


def agreement(a: "U.MCResult", b: "U.MCResult", iou_thr: float = 0.5) -> dict:
    """Match the above-threshold mean detections of ``a`` to those of ``b`` (class-aware, IoU >= ``iou_thr``)."""
    from alnb.evaluation.metrics import match_image

    da, db = a.detections[a.detections["above"]], b.detections[b.detections["above"]]
    cols = ["cls", "x0", "y0", "x1", "y1", "conf"]
    tp = na = nb = 0
    dconf = []
    for stem in a.images["stem"]:
        pa = da[da["stem"] == stem][cols].to_numpy(float)
        pb = db[db["stem"] == stem][cols].to_numpy(float)
        r = match_image(pa, pb[:, :5], iou_thr=iou_thr)
        tp, na, nb = tp + r["tp_n"], na + len(pa), nb + len(pb)
        for i in np.where(r["tp"])[0]:
            dconf.append(abs(pa[i, 5] - pb[r["gt_index"][i], 5]))
    return {"n_a": na, "n_b": nb, "matched": tp, "f1": 2 * tp / (na + nb) if na + nb else 1.0,
            "mean_abs_dconf": float(np.mean(dconf)) if dconf else 0.0}


def exact_diff(a: "U.MCResult", b: "U.MCResult") -> float:
    """Largest absolute difference between two detection tables with the same rows (inf if counts differ)."""
    if len(a.detections) != len(b.detections):
        return float("inf")
    cols = ["x0", "y0", "x1", "y1", "conf"]
    if not len(a.detections):
        return 0.0
    if (a.detections["cls"].to_numpy() != b.detections["cls"].to_numpy()).any():
        return float("inf")
    return float(np.abs(a.detections[cols].to_numpy() - b.detections[cols].to_numpy()).max())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workspace", help="workspace folder (POOL images are scored)")
    ap.add_argument("--model", default="CAL1", help="run name in the workspace (default CAL1)")
    ap.add_argument("--weights", help="a .pt file instead of a run")
    ap.add_argument("--untrained", action="store_true", help="random quick-profile weights (speed only)")
    ap.add_argument("--images", help="folder of images instead of the workspace POOL")
    ap.add_argument("--n-images", type=int, default=64)
    ap.add_argument("--imgsz", type=int, default=None, help="default: the run's training size (256 untrained)")
    ap.add_argument("--T", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--out", help="write the results as JSON here")
    a = ap.parse_args(argv)

    import torch

    from alnb.core.workspace import Workspace

    if a.threads:
        torch.set_num_threads(a.threads)
    imgsz = a.imgsz
    if a.untrained:
        imgsz = imgsz or 256
        model, label = untrained_model(imgsz), "untrained yolov8-tiny (random weights)"
    elif a.weights:
        model, label = a.weights, str(a.weights)
    elif a.workspace:
        ws = Workspace.open(a.workspace)
        _, model, run_imgsz = _resolve_model(ws, a.model)
        imgsz, label = imgsz or run_imgsz, f"{a.workspace}:{a.model}"
    else:
        ap.error("give --workspace (+ --model), --weights or --untrained")

    if a.images:
        paths = sorted(p for p in Path(a.images).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
    elif a.workspace:
        ws = Workspace.open(a.workspace)
        man = ws.manifest().set_index("stem")
        paths = [ws.dataset_root / man.at[s, "image"] for s in ws.stems("POOL")]
    else:
        ap.error("give --images or --workspace")
    paths = paths[:a.n_images]
    if not paths:
        sys.exit("no images found")
    kw = dict(imgsz=imgsz, batch=a.batch, conf=a.conf, progress=False)

    def best(**k):
        runs = [U.mc_predict(model, paths, **kw, **k) for _ in range(a.repeats)]
        return min(r.seconds for r in runs), runs[-1]

    U.mc_predict(model, paths[:a.batch], T=2, **kw)  # warm-up
    res = {}
    for _ in range(1):
        res["one"], r_one = best(T=1, p=0.0, method="full", count_passes=False)
        res["cached"], r_c = best(T=a.T)
        res["full"], r_f = best(T=a.T, method="full")
    r_c0 = U.mc_predict(model, paths, T=3, p=0.0, method="cached", **kw)
    r_f0 = U.mc_predict(model, paths, T=3, p=0.0, method="full", **kw)
    out = {
        "model": label, "imgsz": r_c.settings["imgsz"], "T": a.T, "n_images": len(paths), "batch": a.batch,
        "threads": torch.get_num_threads(), "repeats": a.repeats,
        "seconds": {k: round(v, 3) for k, v in res.items()},
        "ms_per_image": {k: round(1000 * v / len(paths), 1) for k, v in res.items()},
        "full_over_cached": round(res["full"] / res["cached"], 2),
        "cached_over_one": round(res["cached"] / res["one"], 2),
        "dropout_off_max_abs_diff": exact_diff(r_c0, r_f0),
        "dropout_on_agreement": agreement(r_c, r_f),
    }
    print(f"model {label}, imgsz {out['imgsz']}, T={a.T}, {len(paths)} images, batch {a.batch}, "
          f"{out['threads']} torch threads, best of {a.repeats}")
    for k, name in [("one", "one deterministic pass"), ("cached", f"cached backbone, T={a.T}"),
                    ("full", f"{a.T} full forward passes")]:
        print(f"  {name:<28s} {res[k]:8.2f} s   {out['ms_per_image'][k]:7.1f} ms/image")
    print(f"  full / cached  = {out['full_over_cached']:.1f}x   (target >= 8)")
    print(f"  cached / one   = {out['cached_over_one']:.2f}x   (target <= 2)")
    print(f"  dropout off: cached vs full mean detections max |diff| = {out['dropout_off_max_abs_diff']:.2e}")
    ag = out["dropout_on_agreement"]
    print(f"  dropout on: {ag['matched']} of {ag['n_a']} / {ag['n_b']} mean detections match (F1 {ag['f1']:.3f}), "
          f"mean |d conf| {ag['mean_abs_dconf']:.4f}")
    if a.out:
        Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
