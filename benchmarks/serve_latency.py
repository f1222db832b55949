"""``/predict`` latency of ``alnb serve`` for a batch of 20 tasks, on CPU, over a real socket.

The workspace: ``--n-images`` generated weld radiographs at ``--image-size`` px (the demo's 512 by default), half of
them unlabelled (real mode), VAL1 = GT1 = 12; CAL1 = the quick profile's model (width-0.125 YOLOv8 from the shipped
``weld-defect-tiny.pt``) trained for one epoch at ``--imgsz`` (the quick profile's 320) -- the model's quality does
not matter here, its size and inference size do -- and the POOL scored with ``--T`` (20) MC-dropout passes.  Then
``alnb serve``'s backend runs on 127.0.0.1 and this script posts what Label Studio posts:

* **scored**: 20 tasks of POOL images (answered from the workspace's auto-label files and ``scores.csv``);
* **on the fly**: 20 tasks of images the workspace does not know (copies of dataset images under new names, below
  the local-files document root), each scored with the served model (T passes) at request time.  The first such
  batch also loads the model; it is reported separately.

Each figure is the median of ``--repeats`` batches (new file names every time for "on the fly", so nothing comes from
the backend's cache).  Usage::

    python benchmarks/serve_latency.py                # ~1-2 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as f:
        out = json.loads(f.read())
    return time.perf_counter() - t0, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-images", type=int, default=64)
    ap.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--T", type=int, default=20)
    ap.add_argument("--batch", type=int, default=20, help="tasks per /predict request")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None,
                    help="PyTorch threads of the backend (sets ALNB_THREADS; default: alnb.core.cpu's policy, every core)")
    ap.add_argument("--out", default=None, help="working folder (default: a temporary one, removed)")
    a = ap.parse_args(argv)

    import os

    from alnb.loop import pipeline
    from alnb.apps import serve
    from alnb.datasets import weld
    from alnb.core.cpu import default_threads
    from alnb.labels.formats import labelstudio as lsf
    from alnb.acquisition.scoring import score_pool

    root = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="alnb-serve-bench-"))
    try:
        ds = weld.generate(root / "docs" / "dataset", weld.WeldConfig(n_images=a.n_images, width=a.image_size,
                                                                       height=a.image_size, seed=2), progress=False)
        for lab in sorted((ds / "labels").glob("*.txt"))[a.n_images // 2:]:
            lab.unlink()
        ws = pipeline.setup(root / "ws", ds, n_val=12, n_gt1=12, log=None)
        pipeline.train_and_evaluate(ws, "CAL1", ["GT1"], "quick", epochs=1, imgsz=a.imgsz, val_every=1)
        score_pool(ws, model="CAL1", T=a.T, progress=False)
        if a.threads:
            os.environ["ALNB_THREADS"] = str(a.threads)  # what the backend's on-the-fly scoring runs with
        backend = serve.Backend(ws, document_root=root / "docs", log=None, auth=None)
        httpd = serve.Server(backend, "127.0.0.1", 0)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        url = httpd.url + "/predict"
        config = lsf.labelstudio_config(ws.names, difficulty=True)
        m = ws.manifest().set_index("stem")
        pool = sorted(backend.snapshot().scores)
        scored_tasks = [{"id": i, "data": {"image": "/data/local-files/?d=dataset/" + m.at[s, "image"]}}
                        for i, s in enumerate((pool * a.batch)[:a.batch])]
        times = {"scored": [], "on the fly": []}
        for _ in range(a.repeats):
            dt, out = post(url, {"tasks": scored_tasks, "label_config": config})
            assert all("result" in r for r in out["results"]), out["results"][:2]
            times["scored"].append(dt)
        new = root / "docs" / "later"
        new.mkdir()
        first_load = None
        for rep in range(a.repeats + 1):
            tasks = []
            for i in range(a.batch):
                name = f"new_{rep}_{i}.png"
                shutil.copy(ds / m.at[pool[i % len(pool)], "image"], new / name)
                tasks.append({"id": i, "data": {"image": f"/data/local-files/?d=later/{name}"}})
            dt, out = post(url, {"tasks": tasks, "label_config": config})
            assert all("result" in r for r in out["results"]), out["results"][:2]
            if rep == 0:
                first_load = dt  # includes loading the model
            else:
                times["on the fly"].append(dt)
        httpd.shutdown()
        httpd.server_close()
        print(f"alnb serve /predict, {a.batch} tasks per request, CPU ({default_threads()} threads), "
              f"model {backend.snapshot().version} at {a.imgsz} px, T={a.T}, {a.image_size} px images, median of "
              f"{a.repeats}:")
        for k, v in times.items():
            med = statistics.median(v)
            print(f"  {k:<11} {med * 1000:8.0f} ms per batch ({med / a.batch * 1000:.1f} ms per task; min "
                  f"{min(v) * 1000:.0f}, max {max(v) * 1000:.0f} ms)")
        print(f"  first on-the-fly batch (model loading included): {first_load * 1000:.0f} ms")
    finally:
        if not a.out:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
