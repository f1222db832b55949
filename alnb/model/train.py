"""CAL training with ultralytics: a dropout-enabled detection head, training profiles and a run cache.

A *CAL* (computer-assisted labelling) model is trained on the images of some workspace tags (e.g. ``GT1``) and
validated on ``VAL1``.  The run lives in ``<workspace>/runs/<name>/`` (ultralytics' own output: ``weights/best.pt``,
``weights/last.pt``, ``results.csv``, ``args.yaml``) plus ``alnb_run.json`` (the cache key, duration, final metrics).

Cache: the key hashes the training configuration (profile, overrides, dropout, seed, model yaml / start weights),
the training and validation image lists, the image bytes and the label contents.  :func:`train_cal` returns a
finished run with the same key instead of training again; ``force=True`` retrains.

Dropout: :class:`DropoutDetectionTrainer` builds ultralytics' model and then swaps the final 1x1 convs of the
detection head for :class:`alnb.model.dropout.MCDropoutConv2d` (see :mod:`alnb.model.dropout`), so the dropout is *trained in*,
copied into the EMA model and pickled into ``best.pt``/``last.pt``.  It is active only while training or in MC mode.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import numbers
import os
import pickle
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import yaml

from alnb.core.offline import ensure_offline, yolo
from alnb.model.dropout import install_dropout_head
from alnb.core.cpu import cpu_threads, default_threads
from alnb.core.data import read_labels
from alnb.core.workspace import atomic_write_json, atomic_write_text

ensure_offline()

from ultralytics.models.yolo.detect import DetectionTrainer  # noqa: E402

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"  # alnb/models: the yaml and the shipped checkpoint
RUN_FILE = "alnb_run.json"
from alnb.model.recipes import RECIPES, Recipe  # noqa: E402,F401  (re-exported: the profile field's names)

KEY_VERSION = 2  # 2: the thread count and device kind joined the key (alnb.core.cpu); torch's version is in it too


# ----------------------------------------------------------------------------------------------------------- profiles
@dataclass(frozen=True)
class Profile:
    """A training recipe.

    Attributes
    ----------
    name : str
        Profile name (``smoke``, ``quick``, ``paper`` or a custom one).
    model : str
        Model yaml: an ultralytics name (``yolov8n.yaml``), a file in ``alnb/models/`` (``yolov8-tiny.yaml``) or a
        path.  Ignored when :func:`train_cal` gets ``weights``.
    imgsz : int
        Training/inference image size (pixels, square letterbox).
    epochs : int
    batch : int
    dropout : float
        Dropout probability in the detection head (trained in, used for MC-dropout scoring).
    patience : int
        Early stopping patience (epochs without fitness improvement).
    close_mosaic : int
        Last epochs trained without mosaic augmentation.
    val_every : int
        Validate on VAL1 every ``val_every`` epochs (and always in the last epoch).  Validation of 178 images costs
        about as much as a training epoch on 177 on CPU; skipped epochs get NaN metrics in ``results.csv`` and
        cannot become ``best.pt``.
    start : str, optional
        Starting checkpoint when :func:`train_cal` gets no ``weights``: a ``.pt`` file in ``alnb/models/`` (e.g. the
        shipped class-agnostic ``weld-defect-tiny.pt``, see :mod:`alnb.model.pretrain`) or a path; None = from scratch.
    finetune_epochs : int, optional
        Epochs of a warm-started round model (a warm ``round_recipe``: CAL2 and Control start from CAL1,
        :func:`alnb.loop.pipeline.train_and_evaluate` with ``warm_start``); None = never warm-start (``fresh``).
    round_recipe : str
        How every round model (CAL_k, Control_k, the study's models: GT1 + selections) is trained: a name of
        :data:`RECIPES` (``fresh``, the default: from the profile's ``start`` for ``epochs``; ``finetune``,
        ``finetune-lowlr``, ``shrink-perturb``: from the previous round's model for ``finetune_epochs``); CAL1 always
        trains from the profile's ``start``.
    repeat_thresh : float, optional
        Repeat-factor sampling of rare classes (LVIS, Gupta et al. 2019): an image whose rarest class appears in a
        fraction ``f < repeat_thresh`` of the training images is listed ``sqrt(repeat_thresh / f)`` times per epoch
        (:func:`repeat_factors`, :func:`oversample_list`); computed from the training labels only.  None = off.
    threads : int, optional
        PyTorch threads of a CPU training; None = the policy of :mod:`alnb.core.cpu` (``ALNB_THREADS``, the user's
        ``OMP_NUM_THREADS``, else every usable core).  Part of the cache key (it changes a CPU model's numbers).
    channels_last : bool
        Train on the CPU with the model (and its EMA copy, which validation uses) in channels-last (NHWC) memory
        layout.  Ultralytics does this on CUDA only ("no benefit on CPU"); on the 2-core x86 CPU with oneDNN here it
        made a quick epoch 1.3x faster (``benchmarks/train_speed.py``).  Checkpoints are saved in the usual layout.
        It changes the floating-point sums (other conv kernels), so it is part of the cache key; ignored on a GPU.
    extra : dict
        Any other ultralytics training arguments (e.g. ``{"lr0": 0.01, "cache": "ram"}``).
    """

    name: str
    model: str
    imgsz: int
    epochs: int
    batch: int = 16
    dropout: float = 0.1
    patience: int = 100
    close_mosaic: int = 10
    val_every: int = 1
    start: str | None = None
    finetune_epochs: int | None = None
    round_recipe: str = "fresh"
    repeat_thresh: float | None = None
    threads: int | None = None
    channels_last: bool = False
    extra: dict = field(default_factory=dict)

    def train_args(self) -> dict:
        """Ultralytics ``train`` arguments of this profile (without data/project/name/device/seed)."""
        return {"imgsz": self.imgsz, "epochs": self.epochs, "batch": self.batch, "patience": self.patience,
                "close_mosaic": self.close_mosaic, **self.extra}


# Data loading of the CPU profiles (measured in benchmarks/train_speed.py): decoded, resized images cached in RAM (no
# PNG decode per epoch) and loaded in the training process (workers=0: on 2 cores, loader processes only compete with
# the training threads for the same cores).  Ultralytics refuses the RAM cache itself when memory is short.
CPU_LOADER = {"cache": "ram", "workers": 0}

PROFILES = {
    # Tests: seconds on a 64 px tiny dataset (nbs = batch: one optimizer step per batch, so it really trains).
    # Starting from the shipped class-agnostic checkpoint, one epoch already gives real (non-empty) predictions, so
    # the tests exercise real scores, tiers and thresholds; CAL2 / Control fine-tune CAL1 for one epoch (the same cost
    # as training fresh at one epoch, and it keeps the warm-start code path under test; `quick` trains them fresh).
    "smoke": Profile("smoke", "yolov8-tiny.yaml", imgsz=64, epochs=1, batch=8, close_mosaic=0, patience=100,
                     start="weld-defect-tiny.pt", finetune_epochs=1, round_recipe="finetune", channels_last=True,
                     extra={"warmup_epochs": 0, "nbs": 8, **CPU_LOADER}),
    # CPU demo default, chosen from measurements on 2 CPU cores (benchmarks/recipe_sweep.py; the numbers and the
    # reasons are in docs/design/training.md and docs/results/2026-11-25-cal1-recipe.md): the width-0.125 YOLOv8 at
    # 320 px from the shipped class-agnostic checkpoint (alnb.model.pretrain), square-root inverse-frequency class
    # weights (cls_pw) and repeat-factor sampling of rare classes (repeat_thresh); nbs = batch (one optimizer step per
    # batch); VAL1 every 3rd epoch; every core, CPU_LOADER and channels-last for speed (docs/guide/training.md).
    # Round models (CAL2, Control, CAL3, ...) train fresh from `start` for 25 epochs, as CAL1: measured over three
    # split seeds, the 10-epoch fine-tune (`round_recipe="finetune"`, `finetune_epochs`) wastes part of the new labels
    # (docs/results/2026-12-07-round-recipe.md); it is one field away for a faster, weaker round.
    "quick": Profile("quick", "yolov8-tiny.yaml", imgsz=320, epochs=25, batch=8, close_mosaic=5, patience=100,
                     val_every=3, start="weld-defect-tiny.pt", finetune_epochs=10, repeat_thresh=0.2,
                     channels_last=True,
                     extra={"optimizer": "AdamW", "lr0": 0.002, "nbs": 8, "cls_pw": 0.5, **CPU_LOADER}),
    # The study setting, for a GPU: ultralytics' defaults (SGD/AdamW auto, nbs 64) at 640 px.
    "paper": Profile("paper", "yolov8n.yaml", imgsz=640, epochs=100, batch=16, close_mosaic=10, patience=50,
                     extra={}),
}


def _ultralytics_arg_names() -> set:
    # heavy, imported where used (not at module import): ultralytics, torch
    from ultralytics.cfg import DEFAULT_CFG_DICT

    return set(DEFAULT_CFG_DICT)


# Arguments alnb sets itself: overriding them would break the workspace layout, the cache or determinism.
_RESERVED = {"data", "project", "name", "exist_ok", "seed", "deterministic", "plots", "model", "resume", "mode",
             "task", "pretrained"}


#: the largest stride of every model alnb trains (P3-P5 heads: 8, 16, 32); ultralytics rounds an image size up to it
MODEL_STRIDE = 32


def check_imgsz(imgsz, flag: str = "imgsz"):
    """Refuse an image size the network cannot use as given: ultralytics rounds it up to a multiple of
    :data:`MODEL_STRIDE` and says so only in its training log (``--imgsz 33`` trained at 64 while ``alnb_run.json``
    recorded 33).  Raises ValueError naming ``flag`` and the sizes to use instead."""
    ok = isinstance(imgsz, numbers.Real) and not isinstance(imgsz, bool) and float(imgsz).is_integer() \
        and imgsz >= MODEL_STRIDE and int(imgsz) % MODEL_STRIDE == 0
    if not ok:
        try:
            up = max(MODEL_STRIDE, -(-int(imgsz) // MODEL_STRIDE) * MODEL_STRIDE)
            down = max(MODEL_STRIDE, int(imgsz) // MODEL_STRIDE * MODEL_STRIDE)
            hint = f": use {down}" + (f" or {up}" if up != down else "") + f" (ultralytics would train {imgsz} as {up})"
        except (TypeError, ValueError, OverflowError):
            hint = ""
        raise ValueError(f"{flag} must be a whole number of pixels that is a multiple of {MODEL_STRIDE} (the network's "
                         f"largest stride), got {imgsz}{hint}. Nothing was done.")


def recipe_of(profile) -> Recipe:
    """The :class:`Recipe` of a profile (a name or a :class:`Profile`); a profile without ``finetune_epochs`` never
    warm-starts (``fresh``)."""
    prof = get_profile(profile)
    return RECIPES["fresh"] if prof.finetune_epochs is None else RECIPES[prof.round_recipe]


def round_epochs(profile) -> int:
    """Epochs a round model (CAL2, Control, CAL3, ...) trains under the profile's recipe (:func:`recipe_of`): the
    profile's ``finetune_epochs`` from a warm start, else its full ``epochs`` from the start, as CAL1."""
    prof = get_profile(profile)
    return prof.finetune_epochs if recipe_of(prof).warm else prof.epochs


def shrink_perturb_checkpoint(weights, out_dir, shrink: float, perturb: float, seed: int = 0) -> Path:
    """A copy of checkpoint ``weights`` whose floating-point parameters are ``shrink * w + perturb * std(w) * N(0, 1)``
    (seeded: the same inputs give the same file, cached in ``out_dir``).  BatchNorm running statistics are kept, and
    so is the detection head's fixed DFL projection (a constant 0..15 ramp that decodes the box distribution, never
    trained: shrinking it would break every box for good)."""
    import torch

    weights = Path(weights)
    out_dir = Path(out_dir)
    out = out_dir / f"{_file_sha(weights)[:16]}-shrink{shrink:g}-perturb{perturb:g}-seed{int(seed)}-v2.pt"
    if out.is_file():
        return out
    ckpt = torch.load(weights, map_location="cpu", weights_only=False)
    model = (ckpt.get("ema") or ckpt["model"]).float()
    gen = torch.Generator().manual_seed(int(seed))
    fixed = {id(p) for m in model.modules() if type(m).__name__ == "DFL" for p in m.parameters()}
    with torch.no_grad():
        for p in model.parameters():
            if not p.is_floating_point() or id(p) in fixed:
                continue
            sd = float(p.std()) if p.numel() > 1 else 0.0
            p.mul_(shrink).add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * (perturb * sd))
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save({**ckpt, "model": model, "ema": None, "optimizer": None}, tmp)
    tmp.replace(out)
    return out


def get_profile(name: str | Profile = "quick", **overrides) -> Profile:
    """Return profile ``name`` with ``overrides`` applied.

    Overrides that name a :class:`Profile` field (``epochs``, ``imgsz``, ``model``, ``dropout``...) replace it; any
    other key must be an ultralytics training argument (``lr0``, ``mosaic``, ``cache``...) and goes to ``extra``.
    """
    prof = name if isinstance(name, Profile) else PROFILES.get(name)
    if prof is None:
        raise KeyError(f"unknown training profile {name!r}; choose one of {sorted(PROFILES)} or pass a Profile.")
    fields = {f.name for f in dataclasses.fields(Profile)} - {"name", "extra"}
    own = {k: v for k, v in overrides.items() if k in fields}
    rest = {k: v for k, v in overrides.items() if k not in fields}
    bad = sorted(set(rest) & _RESERVED)
    if bad:
        raise ValueError(f"training argument(s) {bad} are set by alnb.train_cal itself and cannot be overridden.")
    unknown = sorted(set(rest) - _ultralytics_arg_names())
    if unknown:
        raise ValueError(f"unknown training argument(s) {unknown}: neither a Profile field "
                         f"({sorted(fields)}) nor an ultralytics training argument.")
    if "imgsz" in own:
        check_imgsz(own["imgsz"])
    if "round_recipe" in own and own["round_recipe"] not in RECIPES:
        raise ValueError(f"unknown round_recipe {own['round_recipe']!r}; choose one of {sorted(RECIPES)}.")
    if "dropout" in own and not 0 <= own["dropout"] < 1:
        raise ValueError(f"dropout must be in [0, 1), got {own['dropout']}")
    if own.get("threads") is not None:
        own["threads"] = default_threads(own["threads"])  # a whole number >= 1, or a clear error
    return dataclasses.replace(prof, **own, extra={**prof.extra, **rest})


# ----------------------------------------------------------------------------------------------------------- models
def auto_device() -> str:
    """``"0"`` (first CUDA GPU) when CUDA is available, else ``"cpu"``."""
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def start_weights(start) -> Path | None:
    """The local ``.pt`` file of a profile's ``start`` (a file name in ``alnb/models/`` or a path); None = scratch."""
    if start in (None, "", False):
        return None
    p = Path(start).expanduser()
    if not p.is_file() and len(p.parts) == 1 and (MODELS_DIR / p.name).is_file():
        p = MODELS_DIR / p.name
    if not p.is_file() or p.suffix != ".pt":
        raise FileNotFoundError(f"start checkpoint {start!r} not found (a local .pt file or a file in {MODELS_DIR}; "
                                f"alnb never downloads weights). Rebuild the shipped one with "
                                f"`python -m alnb.model.pretrain`, or pass start=None to train from scratch.")
    return p.resolve()


class CheckpointError(ValueError):
    """A ``.pt`` file that is not a usable ultralytics checkpoint (truncated, another kind of file, a bare state dict);
    the message names the file and what to do (the CLI: exit 2)."""


def _checkpoint_advice(path: Path) -> str:
    run_dir = path.parent.parent if path.parent.name == "weights" else None
    if run_dir is not None and (run_dir / RUN_FILE).is_file():
        return (f"It is the model of the training run {run_dir}: delete that folder (rm -r '{run_dir}') and run the "
                f"same command again to retrain {run_dir.name} (the other steps are kept).")
    return ("Pass a checkpoint saved by ultralytics (a YOLO .pt such as yolov8n.pt, or a run's weights/best.pt), or "
            "--start none (start=None) to train from random weights.")


def checkpoint_problem(path) -> str | None:
    """Why ``path`` is not a usable ultralytics checkpoint (one phrase), or None when it loads and holds a model.

    Loads the file (a few tens of ms for the models used here): a truncated file, a text or image file renamed
    ``.pt`` and a bare ``state_dict`` all fail here, with their reason, instead of deep inside ultralytics."""
    import torch

    path = Path(path)
    if not path.is_file():
        return "the file does not exist"
    size = path.stat().st_size
    if size == 0:
        return "the file is empty"
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK" and not zipfile.is_zipfile(path):
        return (f"the file is cut short ({size:,} bytes; a torch zip archive without its end): truncated, e.g. by a "
                f"full disk or an interrupted copy")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, KeyError,
            AttributeError, ImportError, IndexError, TypeError, OSError) as e:
        return f"torch cannot load it ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})"
    model = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, dict) else None
    if not isinstance(model, torch.nn.Module):
        what = f"a dict with keys {sorted(map(str, ckpt))[:6]}" if isinstance(ckpt, dict) else \
            f"a {type(ckpt).__name__}"
        return f"it holds {what}, not an ultralytics checkpoint with a 'model'"
    return None


def check_checkpoint(path) -> Path:
    """``path`` when it is a usable checkpoint (:func:`checkpoint_problem`), else :class:`CheckpointError` with
    advice: a run's ``best.pt`` -> delete the run folder to retrain; a ``--start`` file -> pass a real one."""
    path = Path(path).expanduser()
    why = checkpoint_problem(path)
    if why is not None:
        raise CheckpointError(f"{path} is not a usable model checkpoint: {why}. {_checkpoint_advice(path)}")
    return path


def model_yaml_path(model: str | os.PathLike) -> Path | None:
    """The local yaml file for ``model`` (a path, or a file name in ``alnb/models/``); None for ultralytics names."""
    p = Path(model)
    if p.suffix not in (".yaml", ".yml"):
        return None
    if p.is_file():
        return p.resolve()
    if (MODELS_DIR / p.name).is_file() and len(p.parts) == 1:
        return MODELS_DIR / p.name
    return None


def model_cfg(model: str | os.PathLike | dict):
    """Model definition for ``DetectionModel``: a dict for local yaml files (honouring their ``scale`` key).

    Ultralytics guesses the scale from names such as ``yolov8n.yaml`` only; a local yaml with an explicit
    ``scale: t`` entry keeps it.  Ultralytics' own names are returned unchanged.
    """
    if isinstance(model, dict):
        return model
    path = model_yaml_path(model)
    if path is None:
        return str(model)
    from ultralytics.nn.tasks import yaml_model_load

    d = yaml_model_load(path)
    raw = yaml.safe_load(path.read_text()) or {}
    if raw.get("scale"):
        d["scale"] = raw["scale"]
    return d


def load_model(weights):
    """Load a trained model (``best.pt`` path or :class:`TrainResult`) offline as ``ultralytics.YOLO``.

    Dropout head convs come back as :class:`alnb.model.dropout.MCDropoutConv2d` (off unless MC mode is switched on).
    """
    w = getattr(weights, "weights", weights)
    if not Path(w).is_file():
        raise FileNotFoundError(f"weights file {w} does not exist: train the model first (alnb.model.train.train_cal / "
                                f"notebook 01) or give the path of a local .pt file.")
    try:
        return yolo(str(w))
    except Exception as e:  # noqa: BLE001 - a truncated / foreign file: say which and what to do
        why = checkpoint_problem(w)
        if why is None:
            raise
        raise CheckpointError(f"{w} is not a usable model checkpoint: {why}. {_checkpoint_advice(Path(w))}") from e


class DropoutDetectionTrainer(DetectionTrainer):
    """Ultralytics ``DetectionTrainer`` whose model has dropout in the detection head.

    The dropout probability is the class attribute :attr:`dropout_p` (ultralytics rejects unknown config keys, so it
    cannot travel in the training arguments); :func:`dropout_trainer` makes a subclass with another value.
    """

    dropout_p: float = 0.1
    val_every: int = 1
    channels_last: bool = False

    def _setup_train(self):
        """Ultralytics' setup, then (CPU, :attr:`channels_last`) the model and its EMA copy in channels-last layout:
        the optimizer keeps the same parameter objects, and ``save_model`` writes checkpoints in the usual layout."""
        super()._setup_train()
        if self.channels_last and self.device.type == "cpu":
            import torch

            self.model.to(memory_format=torch.channels_last)
            if self.ema is not None:
                self.ema.ema.to(memory_format=torch.channels_last)

    def validate(self):
        """Ultralytics' validation, skipped (NaN metrics, no fitness) except every ``val_every`` epochs and the last."""
        last = self.epoch + 1 >= self.epochs or self.stop or self.stopper.possible_stop
        if self.val_every > 1 and not last and (self.epoch + 1) % self.val_every:
            return {k: float("nan") for k in self.metrics}, None
        before = self.best_fitness
        metrics, fitness = super().validate()
        if metrics is not None and self.best_fitness is not None and self.best_fitness != before:
            self.best_metrics = {**metrics, "fitness": float(fitness)}  # the epoch that became best.pt
        return metrics, fitness

    def final_eval(self):
        """Strip the optimizer from ``last.pt`` / ``best.pt`` as ultralytics does, without its re-validation of
        ``best.pt``: alnb evaluates every model itself (:func:`alnb.evaluation.step.evaluate`), so that pass over VAL1
        was pure overhead.  ``self.metrics`` becomes the validation metrics of the epoch that is ``best.pt``."""
        from ultralytics.utils import RANK
        from ultralytics.utils.torch_utils import strip_optimizer

        if RANK in {-1, 0}:
            ckpt = strip_optimizer(self.last) if self.last.exists() else {}
            if self.best.exists():
                strip_optimizer(self.best, updates={"train_results": ckpt.get("train_results")})
        if getattr(self, "best_metrics", None):
            self.metrics = dict(self.best_metrics)

    def get_model(self, cfg=None, weights=None, verbose: bool = True):
        model = super().get_model(cfg=model_cfg(cfg) if cfg is not None else cfg, weights=weights, verbose=verbose)
        install_dropout_head(model, self.dropout_p)
        return model


def dropout_trainer(p: float = 0.1, val_every: int = 1, channels_last: bool = False) -> type:
    """A :class:`DropoutDetectionTrainer` subclass with head dropout ``p`` (validating every ``val_every`` epochs;
    ``channels_last``: see :attr:`Profile.channels_last`)."""
    if not 0 <= p < 1:
        raise ValueError(f"dropout p must be in [0, 1), got {p}")
    if int(val_every) < 1:
        raise ValueError(f"val_every must be >= 1, got {val_every}")
    return type(f"DropoutDetectionTrainer_p{p:g}", (DropoutDetectionTrainer,),
                {"dropout_p": float(p), "val_every": int(val_every), "channels_last": bool(channels_last)})


# -------------------------------------------------------------------------------------------------------- the cache
def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _list_digest(list_file: Path) -> dict:
    """Hash of an image list: image names, image bytes and the label file each image has in ``view/labels``."""
    h = hashlib.sha256()
    paths = [Path(p) for p in list_file.read_text().splitlines() if p.strip()]  # one path per line (spaces ok)
    for p in paths:
        lab = p.parent.parent / "labels" / (p.stem + ".txt")
        h.update(p.name.encode())
        h.update(_file_sha(p).encode())
        h.update(lab.read_bytes() if lab.is_file() else b"<no label>")
    return {"n": len(paths), "sha256": h.hexdigest()}


def run_key(data_yaml: Path, config: dict) -> str:
    """Cache key of a run: configuration + train/val image lists + image bytes + label contents."""
    data = yaml.safe_load(Path(data_yaml).read_text())
    content = {"config": config, "names": data["names"],
               "train": _list_digest(Path(data["train"])), "val": _list_digest(Path(data["val"]))}
    return _sha(json.dumps(content, sort_keys=True, default=str).encode())[:20]


def repeat_factors(labels, thresh: float) -> "np.ndarray":
    """Per-image repeat factors of LVIS repeat-factor sampling (Gupta et al., 2019).

    ``labels``: one integer array of class ids per training image.  With ``f_c`` the fraction of images that contain
    class ``c``, ``r_c = max(1, sqrt(thresh / f_c))`` and an image's factor is the largest ``r_c`` of its classes
    (1 for an image without boxes).
    """
    sets = [np.unique(np.asarray(c, dtype=int)) for c in labels]
    if not sets:
        return np.zeros(0)
    nc = 1 + max((int(c.max()) for c in sets if c.size), default=0)
    freq = np.zeros(nc)
    for c in sets:
        freq[c] += 1
    freq /= len(sets)
    r_c = np.maximum(1.0, np.sqrt(thresh / np.where(freq > 0, freq, np.inf)))
    return np.array([r_c[c].max() if c.size else 1.0 for c in sets])


def oversample_list(list_file: Path, thresh: float, n_classes: int, seed: int = 0) -> dict:
    """Rewrite an image list with each image repeated by its :func:`repeat_factors` (rounded stochastically, seeded).

    Labels are read from ``view/labels`` next to each image (the training labels); returns counts for the run info.
    """
    paths = [p for p in Path(list_file).read_text().splitlines() if p.strip()]
    labels = []
    for p in paths:
        lab = Path(p).parent.parent / "labels" / (Path(p).stem + ".txt")
        labels.append(read_labels(lab, n_classes)[:, 0] if lab.is_file() else np.zeros(0))
    r = repeat_factors(labels, thresh)
    rng = np.random.default_rng(seed)
    n = np.floor(r).astype(int) + (rng.random(len(r)) < r - np.floor(r))
    lines = [p for p, k in zip(paths, n) for _ in range(int(k))]

    atomic_write_text(Path(list_file), "\n".join(lines) + ("\n" if lines else ""))
    return {"n_images": len(paths), "n_samples": len(lines), "max_repeat": int(n.max()) if len(n) else 0}


# ----------------------------------------------------------------------------------------------------------- results
@dataclass
class TrainResult:
    """A finished training run.

    Attributes
    ----------
    name : str
    run_dir : Path
        ``<workspace>/runs/<name>``.
    weights : Path
        ``run_dir/weights/best.pt``.
    reused : bool
        True when the cache returned an earlier run instead of training.
    seconds : float
        Training time of the run (of the original run when reused).
    key : str
        Cache key.
    profile : str
    info : dict
        Contents of ``alnb_run.json`` (arguments, metrics summary, sizes).
    """

    name: str
    run_dir: Path
    weights: Path
    reused: bool
    seconds: float
    key: str
    profile: str
    info: dict = field(default_factory=dict, repr=False)

    @property
    def results_csv(self) -> Path:
        return self.run_dir / "results.csv"

    @property
    def metrics(self) -> dict:
        return dict(self.info.get("metrics", {}))


def _result_from_info(run_dir: Path, info: dict, reused: bool) -> TrainResult:
    # the folder names the run: a finished run copied or renamed (e.g. a sweep's model reused as a study's CAL1)
    # is that name everywhere (metrics/operating_point_<name>.json...), whatever name it was trained under
    return TrainResult(name=run_dir.name, run_dir=run_dir, weights=run_dir / "weights" / "best.pt", reused=reused,
                       seconds=float(info["seconds"]), key=info["key"], profile=info["profile"], info=info)


def _finished_info(run_dir: Path) -> dict | None:
    f = run_dir / RUN_FILE
    if not f.is_file() or not (run_dir / "weights" / "best.pt").is_file():
        return None
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError:
        return None


def load_run(ws, name: str) -> TrainResult:
    """The finished run ``name`` of workspace ``ws`` (raises ``FileNotFoundError`` naming what to run if missing)."""
    run_dir = Path(ws.root) / "runs" / name
    info = _finished_info(run_dir)
    if info is None:
        raise FileNotFoundError(f"no finished training run {name!r} in {run_dir} (needs {RUN_FILE} and "
                                f"weights/best.pt). Train it first: alnb.model.train.train_cal(ws, {name!r}, tags) "
                                f"or the notebook that trains it.")
    return _result_from_info(run_dir, info, reused=True)


def _summary(metrics: dict) -> dict:
    names = {"metrics/precision(B)": "precision", "metrics/recall(B)": "recall", "metrics/mAP50(B)": "mAP50",
             "metrics/mAP50-95(B)": "mAP50-95", "fitness": "fitness"}
    return {v: float(metrics[k]) for k, v in names.items() if k in (metrics or {})}


def train_cal(ws, name: str, tags, profile: str | Profile = "quick", *, force: bool = False, weights=None,
              seed: int = 0, device: str | None = None, verbose: bool = True, callbacks: dict | None = None,
              recipe: str | None = None, **overrides) -> TrainResult:
    """Train (or reuse) the CAL model ``name`` on the workspace images tagged ``tags``, validated on VAL1.

    Parameters
    ----------
    ws : alnb.core.workspace.Workspace
    name : str
        Run name (``CAL1``, ``CAL2``, ``Control``...); the run goes to ``ws.root/runs/<name>``.
    tags : str or list of str
        Training tags (e.g. ``"GT1"`` or ``["GT1", "GT2"]``); VAL1 is refused.
    profile : str or Profile
        ``smoke``, ``quick`` (CPU default) or ``paper`` (GPU); see :data:`PROFILES`.
    force : bool
        Retrain even if a finished run with the same cache key exists.
    weights : path, optional
        A local ``.pt`` to start from (never downloaded), e.g. CAL1's ``best.pt`` to warm-start CAL2; default: the
        profile's ``start`` checkpoint, or from scratch (the profile's yaml) when it has none.
    seed : int
        Training seed (``deterministic=True``; on CPU the same seed gives the same weights).
    device : str, optional
        ``"cpu"``, ``"0"``...; default :func:`auto_device`.
    verbose : bool
        Ultralytics' per-epoch log.
    callbacks : dict, optional
        ``{ultralytics event: function(trainer)}`` added to the trainer (e.g. ``on_fit_epoch_end``); not part of the
        cache key.
    recipe : str, optional
        The round recipe that chose ``weights`` and the epochs (:data:`RECIPES`), recorded in ``alnb_run.json``.
    **overrides
        Profile fields (``epochs=5``, ``dropout=0.2``) or ultralytics training arguments (``lr0=0.005``).

    Returns
    -------
    TrainResult
    """
    prof = get_profile(profile, **overrides)
    device = auto_device() if device is None else str(device)
    if weights is None:
        weights = start_weights(prof.start)
    if weights is not None:
        weights = Path(weights).expanduser().resolve()
        if not weights.is_file() or weights.suffix != ".pt":
            raise FileNotFoundError(f"start weights {weights} not found (must be a local .pt file; alnb never "
                                    f"downloads weights). Leave weights=None to train from the profile's yaml.")
        check_checkpoint(weights)  # before training starts, not deep inside ultralytics' trainer
    yaml_file = model_yaml_path(prof.model)
    model_id = ({"weights_sha256": _file_sha(weights)} if weights is not None else
                {"yaml": prof.model, "yaml_sha256": _file_sha(yaml_file) if yaml_file else None})
    import ultralytics

    args = {**prof.train_args(), "seed": int(seed), "deterministic": True}
    on_cpu = device.lower() == "cpu"
    threads = default_threads(prof.threads) if on_cpu else None  # changes a CPU model's numbers: in the key
    import torch

    config = {"v": KEY_VERSION, "ultralytics": ultralytics.__version__, "torch": torch.__version__, "args": args,
              "dropout": prof.dropout,
              "val_every": prof.val_every, "model": model_id, "device": "cpu" if on_cpu else "cuda",
              "threads": threads}
    if on_cpu and prof.channels_last:  # other conv kernels, other sums: part of the key (absent = the old layout)
        config["channels_last"] = True
    data_yaml = ws.write_data_yaml(name, tags)
    resampled = None
    if prof.repeat_thresh:  # rare-class oversampling: the repeated list is part of the cache key
        config["repeat_thresh"] = prof.repeat_thresh
        resampled = oversample_list(Path(yaml.safe_load(Path(data_yaml).read_text())["train"]), prof.repeat_thresh,
                                    len(ws.names), seed=seed)
    key = run_key(data_yaml, config)
    project = Path(ws.root) / "runs"
    run_dir = project / name
    info = _finished_info(run_dir)
    if info is not None and info.get("key") == key and not force:
        if verbose:
            print(f"[alnb] {name}: reusing finished run {run_dir} (same data and configuration; force=True retrains)")
        return _result_from_info(run_dir, info, reused=True)
    if run_dir.exists():  # stale or different run: start clean (ultralytics appends to an existing results.csv)
        if verbose:
            why = "force=True" if info is not None and info.get("key") == key else (
                "unfinished run" if info is None else "data or settings changed")
            print(f"[alnb] {name}: training again ({why}); replacing {run_dir}")
        shutil.rmtree(run_dir)

    model_arg = str(weights) if weights is not None else (str(yaml_file) if yaml_file else prof.model)
    full = {**args, "model": model_arg, "data": str(data_yaml), "project": str(project), "name": name,
            "exist_ok": True, "plots": False, "device": device, "verbose": verbose}
    trainer_cls = dropout_trainer(prof.dropout, prof.val_every, prof.channels_last)
    with cpu_threads(threads, device=device, what=f"training {name} in {ws.root}"):
        t0 = time.perf_counter()
        trainer = trainer_cls(overrides=full)
        for event, fn in (callbacks or {}).items():
            trainer.add_callback(event, fn)
        trainer.train()
        seconds = time.perf_counter() - t0
    save_dir = Path(trainer.save_dir)
    if save_dir.resolve() != run_dir.resolve():  # pragma: no cover - ultralytics changed its layout
        raise RuntimeError(f"ultralytics wrote the run to {save_dir}, expected {run_dir}")
    if not (run_dir / "weights" / "best.pt").is_file():
        raise RuntimeError(f"training {name} finished without {run_dir / 'weights' / 'best.pt'}; see the log above.")
    data = yaml.safe_load(Path(data_yaml).read_text())
    train_lines = Path(data["train"]).read_text().splitlines()
    n_train = len(set(train_lines))  # images (repeat-factor sampling lists some several times)
    info = {"name": name, "key": key, "profile": prof.name, "tags": [tags] if isinstance(tags, str) else list(tags),
            "seconds": round(seconds, 2), "device": device, "threads": threads, "dropout": prof.dropout,
            "channels_last": bool(on_cpu and prof.channels_last),
            "seed": int(seed),
            "val_every": prof.val_every, "model": model_arg, "args": args, "data": str(data_yaml),
            "recipe": recipe,
            "n_train": n_train,
            "n_val": len(Path(data["val"]).read_text().splitlines()),
            "epochs_run": int(trainer.epoch + 1), "metrics": _summary(trainer.metrics),
            "images_per_s": round(len(train_lines) * (trainer.epoch + 1) / seconds, 2),
            "resampling": resampled,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "ultralytics": ultralytics.__version__, "torch": torch.__version__}

    atomic_write_json(run_dir / RUN_FILE, info)
    return _result_from_info(run_dir, info, reused=False)
