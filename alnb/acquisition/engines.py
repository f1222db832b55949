"""Where MC scoring runs: in this process (``local``) or on a Ray cluster (``ray``), streamed into resumable parts.

Reads and writes the workspace: the POOL goes through :class:`alnb.model.mc.MCScorer` in chunks of ``part_size``
images and each chunk's raw results are written at once as one **part file**::

    <workspace>/scoring/<key>/part-<hash of its stems>.npz     NumPy arrays (MCResult.to_arrays), no pickle
    <workspace>/scoring/<key>/settings.json                    what the key stands for

``key`` hashes the model's weights and every setting that changes a number (not the batch size).  A rerun scores
only the images that have no part yet, and the tables assembled from the parts in pool order equal those of an
uninterrupted run bit for bit.  Engines: ``local`` (:func:`score_local`, one scorer in this process) and ``ray``
(:func:`score_ray`, Ray Data actors holding one model replica each; ``pip install -e ".[ray]"``).

Design notes: docs/design/scoring-engines.md
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from alnb.model.mc import MCResult, MCScorer
from alnb.core.workspace import FILE_MODE, atomic_write_json
from alnb.model.dropout import dropout_modules

ENGINES = ("local", "ray")
PART_SIZE = 256  # images per part file (and per Ray task): ~400 parts for 100k images; an interruption loses < 1 part
SCORING_DIR = "scoring"
STORE_VERSION = 1  # bump when the meaning of a part changes (the mc.py maths): old parts are then never reused


class EngineUnavailable(ValueError):
    """The chosen engine cannot run here (e.g. Ray is not installed); the message says how to get it."""


# ---------------------------------------------------------------------------------------------------------- keys
def model_fingerprint(net) -> str:
    """SHA-256 of a model's state dict (names, shapes, dtypes, bytes) and its dropout probabilities."""
    # heavy, imported where used (not at module import): torch, tqdm, ray
    import torch

    h = hashlib.sha256()
    for name, t in net.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    h.update(json.dumps([float(m.p) for m in dropout_modules(net)]).encode())
    return h.hexdigest()


def scoring_key(scorer: MCScorer) -> tuple:
    """``(key, description)``: what a part's numbers depend on (the batch size is not among them)."""
    desc = {"store": STORE_VERSION, "model_sha256": model_fingerprint(scorer.net),
            **{k: v for k, v in scorer.settings.items() if k != "batch"},
            "max_det": scorer.max_det, "count_passes": scorer.count_passes, "embed": scorer.embed,
            "device": scorer.device.type}
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:20], desc


# ---------------------------------------------------------------------------------------------------- part store
def result_bytes(res: MCResult) -> bytes:
    """An :class:`MCResult` as the bytes of an ``.npz`` file (what a part file holds, and what Ray workers return)."""
    buf = io.BytesIO()
    np.savez(buf, **res.to_arrays())
    return buf.getvalue()


class PartStore:
    """The part files of one scoring key in a workspace (see the module docstring)."""

    def __init__(self, root, key: str, description: dict | None = None):
        self.dir = Path(root) / SCORING_DIR / key
        self.key = key
        self.description = description

    def _ensure(self):
        if not self.dir.is_dir():
            self.dir.mkdir(parents=True, exist_ok=True)
        if self.description is not None and not (self.dir / "settings.json").is_file():
            atomic_write_json(self.dir / "settings.json", self.description)

    def parts(self) -> list:
        return sorted(self.dir.glob("part-*.npz")) if self.dir.is_dir() else []

    def done(self) -> dict:
        """``{stem: image path}`` of every image that has a part (only the small stem/path arrays are read)."""
        out = {}
        for f in self.parts():
            try:
                with np.load(f, allow_pickle=False) as z:
                    stems, paths = z["img_stem"], z["img_path"]
            except Exception as e:  # noqa: BLE001 - a damaged part is scored again, never trusted
                os.replace(f, f.with_suffix(".damaged"))
                print(f"[alnb] {f}: unreadable part ({type(e).__name__}); its images are scored again "
                      f"(kept as {f.with_suffix('.damaged').name})")
                continue
            for s, p in zip(stems.tolist(), paths.tolist()):
                out.setdefault(s, p)
        return out

    def write_bytes(self, data: bytes) -> Path:
        """Write one part atomically (temporary file + rename); its name is a hash of its stems."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            stems = z["img_stem"].tolist()
        self._ensure()
        name = "part-" + hashlib.sha1("\n".join(stems).encode()).hexdigest()[:16] + ".npz"
        fd, tmp = tempfile.mkstemp(prefix=".part-", suffix=".tmp", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, self.dir / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.dir / name

    def write(self, res: MCResult) -> Path:
        return self.write_bytes(result_bytes(res))

    def add_timing(self, seconds: float, n_images: int):
        """Add scoring time to ``timing.json`` (all runs of this key together: the cost of the whole pool)."""
        t = self.timing()
        self._ensure()
        atomic_write_json(self.dir / "timing.json", {"seconds": t["seconds"] + float(seconds),
                                                     "images": t["images"] + int(n_images)})

    def timing(self) -> dict:
        f = self.dir / "timing.json"
        try:
            return {k: v for k, v in json.loads(f.read_text()).items() if k in ("seconds", "images")}
        except (OSError, ValueError):
            return {"seconds": 0.0, "images": 0}

    def load(self, items, settings: dict | None = None) -> MCResult:
        """The results of ``items`` (``(stem, path)`` pairs), rows in that order, detections image by image in their
        ``det`` order.  An image is taken from the first part that holds it with the same path."""
        items = [(str(s), str(p)) for s, p in items]
        arrays, part_of_image, part_of_det = [], [], []
        for i, f in enumerate(self.parts()):
            with np.load(f, allow_pickle=False) as z:
                a = {k: z[k] for k in z.files}
            arrays.append(a)
            part_of_image.append(np.full(len(a["img_stem"]), i))
            part_of_det.append(np.full(len(a["det_stem"]), i))
        if not arrays:
            raise FileNotFoundError(f"no scoring parts in {self.dir}: score the pool first")
        cat = {k: np.concatenate([a[k] for a in arrays]) for k in arrays[0] if all(k in a for a in arrays)}
        img_part, det_part = np.concatenate(part_of_image), np.concatenate(part_of_det)
        stems = pd.Index([s for s, _ in items])
        if not stems.is_unique:
            raise ValueError(f"stems must be unique ({int(stems.duplicated().sum())} repeated)")
        ident = pd.Index([f"{a}\x1f{b}" for a, b in zip(cat["img_stem"].tolist(), cat["img_path"].tolist())])
        first = pd.Series(np.arange(len(ident))).groupby(ident.to_numpy()).first()  # first part holding it
        rows = first.reindex([f"{s}\x1f{p}" for s, p in items]).to_numpy(dtype=float)
        if np.isnan(rows).any():
            missing = [s for (s, _), r in zip(items, rows) if np.isnan(r)]
            raise KeyError(f"{len(missing)} image(s) have no scoring part in {self.dir}, e.g. {missing[:3]}")
        rows = rows.astype(np.int64)
        rank = stems.get_indexer(cat["det_stem"])  # position of each detection's image in the wanted order
        keep = rank >= 0
        keep[keep] = det_part[keep] == img_part[rows][rank[keep]]  # only the rows of the part the image comes from
        order = np.flatnonzero(keep)
        order = order[np.lexsort((cat["det_det"][order], rank[order]))]
        out = {k: v[rows] for k, v in cat.items() if k.startswith("img_")}
        out.update({k: v[order] for k, v in cat.items() if k.startswith("det_")})
        if "emb" in cat:
            out["emb"] = cat["emb"][rows]
        return MCResult.from_arrays(out, settings)


# ------------------------------------------------------------------------------------------------------- engines
def _chunks(items, size):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def score_local(scorer: MCScorer, items, store: PartStore, *, part_size: int = PART_SIZE,
                progress: bool = True) -> float:
    """Score ``items`` (``(stem, path)`` pairs) in this process, one part per ``part_size`` images; returns seconds."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    with tqdm(total=len(items), desc=f"MC scoring (T={scorer.T})", unit="img", disable=not progress) as bar:
        for chunk in _chunks(items, part_size):
            res = scorer.score(chunk)
            store.write(res)
            store.add_timing(res.seconds, len(chunk))
            bar.update(len(chunk))
    return time.perf_counter() - t0


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise EngineUnavailable(
            f"engine 'ray' needs Ray Data, which is not installed here ({e}). Install the optional extra: "
            f"pip install -e \".[ray]\"  (or: pip install \"ray[data]\"), or use --engine local.") from None
    return ray


class RayScorer:
    """A Ray Data actor: one model replica; each call scores one chunk and returns it as one part (npz bytes)."""

    def __init__(self, model_ref: list, scorer_kwargs: dict):
        import ray
        import torch

        import alnb  # noqa: F401  (offline settings before ultralytics; registers the dropout conv class)

        # the weights travel once through Ray's object store (a reference in a list is not resolved by Ray itself)
        net = torch.load(io.BytesIO(ray.get(model_ref[0])), map_location="cpu", weights_only=False)
        self.scorer = MCScorer(net, **scorer_kwargs)

    def __call__(self, batch: dict) -> dict:
        items = list(zip(batch["stem"].tolist(), batch["path"].tolist()))
        return {"part": np.array([result_bytes(self.scorer.score(items))], dtype=object)}


def score_ray(scorer: MCScorer, scorer_kwargs: dict, items, store: PartStore, *, address: str | None = None,
              workers: int | None = None, part_size: int = PART_SIZE, progress: bool = True) -> float:
    """Score ``items`` with Ray Data (one :class:`RayScorer` actor per worker); parts are written as they arrive.

    ``scorer`` is the driver's prepared model (its weights are shipped to the workers); ``workers`` defaults to the
    cluster's GPUs when scoring on a GPU, else its CPUs.  A Ray instance this call starts is shut down at the end;
    one that was already running (``ray.init`` by the caller, a cluster) is left as it is.
    """
    import torch

    ray = _import_ray()
    gpu = scorer.device.type == "cuda"
    own = not ray.is_initialized()
    if own:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline like the rest of alnb: no usage reports
        try:
            ray.init(address=address, include_dashboard=False, logging_level="WARNING", log_to_driver=progress,
                     runtime_env={"env_vars": {"YOLO_OFFLINE": "1"}})
        except ConnectionError as e:
            raise EngineUnavailable(
                f"no Ray cluster found at address {address!r} ({e}). Start one first (`ray start --head` on this "
                f"machine, then `ray start --address HEAD:6379` on the others), or leave --address out to start a "
                f"local instance.") from None
    t0 = time.perf_counter()
    try:
        res = ray.cluster_resources()
        n = int(workers or max(1, int(res.get("GPU" if gpu else "CPU", 1))))
        buf = io.BytesIO()
        torch.save(scorer.net, buf)  # the prepared (fused, float) copy: every replica computes what `local` does
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = bool(progress)
        ds = ray.data.from_items([{"stem": s, "path": str(p)} for s, p in items])
        pool = ray.data.ActorPoolStrategy(size=n)  # n model replicas, each kept for the whole run
        out = ds.map_batches(RayScorer, fn_constructor_kwargs={"model_ref": [ray.put(buf.getvalue())],
                                                               "scorer_kwargs": scorer_kwargs},
                             batch_size=part_size, batch_format="numpy", compute=pool,
                             num_cpus=0 if gpu else 1, num_gpus=1 if gpu else 0)
        n_done = 0
        try:
            for batch in out.iter_batches(batch_size=None, batch_format="numpy"):
                for data in batch["part"]:
                    with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as z:
                        n_done += len(z["img_stem"])
                    store.write_bytes(bytes(data))
        finally:  # wall time of the cluster for the parts it delivered
            store.add_timing(time.perf_counter() - t0, n_done)
    finally:
        if own:
            ray.shutdown()
    return time.perf_counter() - t0
