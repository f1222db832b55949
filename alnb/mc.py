"""MC-dropout sampling: cached backbone, ``T`` head passes, per-anchor / per-detection statistics, pooled features.

This module only *measures*: what the scores mean and how images are ranked lives in :mod:`alnb.acquisition`,
tiers and thresholds in :mod:`alnb.select`, error analysis in :mod:`alnb.difficulty`, file writing in
:mod:`alnb.scoring`.

How a batch is scored (:func:`mc_predict`)
-----------------------------------------
1. Images are read and letterboxed exactly as ultralytics' predictor does (``LetterBox`` with the model stride,
   BGR -> RGB, ``/255``), so that with ``T=1`` and dropout off the detections equal ``YOLO.predict``.
2. The backbone and neck run **once** per batch (ultralytics' ``_predict_once`` routing up to the ``Detect`` input);
   so do all layers of every head branch except the last 1x1 conv.  The same pass gives each image's **pooled
   features** (global average of every ``Detect`` input level, concatenated): the embedding that diversity
   strategies (:mod:`alnb.acquisition`) compare images with.
3. Those features are repeated ``T`` times along the batch axis and only the final convs (the
   :class:`~alnb.dropout.MCDropoutConv2d` of :mod:`alnb.dropout`, dropout on) run again, in one batched call, followed
   by ultralytics' own decoding (DFL, anchors, strides, sigmoid): ``(B, T, 4 + nc, A)``.
4. The anchor grid is the same in every pass, so statistics are taken **per anchor before NMS**: mean class
   probabilities, predictive / expected entropy, mutual information (BALD) and the spread of the box corners.
5. NMS (ultralytics' ``non_max_suppression``) runs on the mean prediction; the kept anchor indices gather each
   detection's uncertainty columns.  Each pass is also NMS'd on its own to count detections (``count_var``).

Uncertainty definitions (natural log, nats)
-------------------------------------------
YOLO's class outputs are independent sigmoids trained with binary cross-entropy, so each class is a Bernoulli
variable.  With ``p_t`` the class probabilities of pass ``t`` and ``p̄`` their mean over the ``T`` passes:

* ``entropy`` (predictive entropy) ``H[p̄] = Σ_k h(p̄_k)`` with ``h(q) = -q ln q - (1-q) ln(1-q)``;
* ``exp_entropy`` (expected entropy, aleatoric part) ``E_t[Σ_k h(p_t,k)]``;
* ``mutual_info`` (BALD, epistemic part) ``H[p̄] - E_t[H[p_t]] >= 0`` (Jensen: ``h`` is concave);
* ``cls_unc`` = ``h(p̄_c) / ln 2`` for the detected class ``c``: 0 for a certain call, 1 for a coin flip;
* ``box_spread``: standard deviation of the four box corners over the passes, averaged over the corners and divided
  by the mean box's size ``sqrt(w h)`` (scale-free; ``box_std`` keeps it in original-image pixels).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

import alnb  # noqa: F401  (offline settings before ultralytics)
from alnb import _offline
from alnb.dropout import dropout_modules, set_mc

EPS = 1e-7  # probability clamp of the entropies and the box-size floor (pixels) of box_spread
LN2 = math.log(2.0)  # entropy of a coin flip: the scale of cls_unc


# ----------------------------------------------------------------------------------------------- uncertainty maths
def binary_entropy(p):
    """Entropy of a Bernoulli(p) variable in nats, elementwise (0 at p = 0 or 1, ln 2 at p = 0.5).

    Works on torch tensors and NumPy arrays (probabilities are clamped to ``[EPS, 1 - EPS]``).
    """
    if isinstance(p, torch.Tensor):
        q = p.clamp(EPS, 1 - EPS)
        return -(q * q.log() + (1 - q) * (1 - q).log())
    q = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return -(q * np.log(q) + (1 - q) * np.log(1 - q))


def bald(probs, sample_dim: int = 1, class_dim: int = 2):
    """Predictive entropy, expected entropy and mutual information of MC samples of Bernoulli class outputs.

    Parameters
    ----------
    probs : torch.Tensor
        Class probabilities in [0, 1] with the MC samples along ``sample_dim`` and the classes along ``class_dim``
        (e.g. ``(B, T, nc, A)``).
    sample_dim, class_dim : int
        Axes of the samples and of the classes (classes are independent Bernoulli variables, summed).

    Returns
    -------
    tuple of torch.Tensor
        ``(predictive_entropy, expected_entropy, mutual_info)``, each with the sample and class axes removed.
        ``mutual_info = predictive - expected`` is clamped at 0 (it is >= 0 up to rounding).
    """
    mean = probs.mean(sample_dim, keepdim=True)
    cd = class_dim if class_dim < sample_dim else class_dim - 1  # class axis once the sample axis is gone
    pred = binary_entropy(mean.squeeze(sample_dim)).sum(cd)
    exp = binary_entropy(probs).sum(class_dim).mean(sample_dim if sample_dim < class_dim else sample_dim - 1)
    return pred, exp, (pred - exp).clamp_min(0)



# ----------------------------------------------------------------------------------------------------- model access
def detection_model(model):
    """The ultralytics ``DetectionModel`` inside a ``YOLO`` wrapper, a ``TrainResult``, a path or the model itself."""
    if hasattr(model, "weights") and not isinstance(model, torch.nn.Module):  # alnb.train.TrainResult
        model = model.weights
    if isinstance(model, (str, Path)):
        model = _offline.yolo(model)
    net = getattr(model, "model", None)
    if isinstance(net, torch.nn.Module) and hasattr(net, "model"):  # YOLO wrapper -> DetectionModel
        model = net
    if not hasattr(model, "model") or not hasattr(model, "stride"):
        raise TypeError(f"expected an ultralytics YOLO / DetectionModel or a .pt path, got {type(model).__name__}")
    return model


def _prepare_net(model, device, fuse: bool = True):
    """Eval-mode copy of the detection model on ``device`` (Conv+BN fused, as ultralytics' predictor does)."""
    net = copy.deepcopy(detection_model(model)).to(device).float().eval()
    if fuse and hasattr(net, "fuse"):
        net = net.fuse(verbose=False)
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def read_image(path) -> np.ndarray:
    """Read an image as ultralytics' predictor does (BGR uint8, 3 channels); clear error if unreadable."""
    _offline.ensure_offline()
    from ultralytics.utils.patches import imread

    im = imread(str(path))
    if im is None:
        raise FileNotFoundError(f"could not read image {path}: check the file exists and is a valid image.")
    if im.shape[2] == 1:
        im = np.repeat(im, 3, axis=2)
    return im


def letterbox(images, imgsz: int, stride: int) -> torch.Tensor:
    """Letterbox BGR images exactly like ultralytics' predictor and return a float (B, 3, H, W) RGB tensor in 0-1.

    ``auto`` (minimal padding to a stride multiple) is used when all images share one shape, as in ultralytics.
    """
    from ultralytics.data.augment import LetterBox

    same = len({im.shape for im in images}) == 1
    lb = LetterBox((imgsz, imgsz), auto=same, stride=stride)
    arr = np.stack([lb(image=im) for im in images])
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous().flip(1)  # BGR -> RGB
    return x.float().div_(255)


def backbone_features(net, x: torch.Tensor) -> list:
    """Run every layer before the ``Detect`` head once (ultralytics' ``_predict_once`` routing); return its inputs."""
    y = []
    layers = list(net.model)
    for m in layers[:-1]:
        if m.f != -1:
            x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
        x = m(x)
        y.append(x if m.i in net.save else None)
    head = layers[-1]
    return y[head.f] if isinstance(head.f, int) else [x if j == -1 else y[j] for j in head.f]


def pooled_features(feats: list) -> torch.Tensor:
    """Image embeddings from the ``Detect`` inputs: global average pooling of each level, concatenated, (B, C).

    The levels (P3/P4/P5 of the neck) are what the detection head sees, so images the head treats alike lie close
    together.  Computed from the cached backbone pass: no extra forward pass.
    """
    return torch.cat([f.float().mean((2, 3)) for f in feats], 1)


def _head_branches(head):
    box, cls = head.cv2, head.cv3
    if box is None or getattr(head, "end2end", False):  # end-to-end heads (YOLO26/v10): use the one-to-one branch
        box, cls = head.one2one_cv2, head.one2one_cv3
    return box, cls


def head_samples(head, feats: list, T: int, max_rows: int | None = None) -> torch.Tensor:
    """T stochastic passes of the head's final convs on cached features: returns (B, T, 4 + nc, A).

    Everything in each head branch except its last 1x1 conv runs once; the inputs of the last conv are repeated
    ``T`` times along the batch (image-major) and go through the conv (with dropout if MC mode is on) in one call,
    in chunks of at most ``max_rows`` rows if given.  Decoding is ultralytics' own ``Detect._inference``.
    """
    box_head, cls_head = _head_branches(head)
    B = feats[0].shape[0]
    pre_box = [box_head[i][:-1](f) for i, f in enumerate(feats)]
    pre_cls = [cls_head[i][:-1](f) for i, f in enumerate(feats)]
    rows = B * T if not max_rows else max(1, min(B * T, int(max_rows)))
    tc = max(1, rows // B)
    outs = []
    for t0 in range(0, T, tc):
        n = min(tc, T - t0)
        boxes = torch.cat([box_head[i][-1](p.repeat_interleave(n, 0)).flatten(2) for i, p in enumerate(pre_box)], -1)
        scores = torch.cat([cls_head[i][-1](p.repeat_interleave(n, 0)).flatten(2) for i, p in enumerate(pre_cls)], -1)
        y = head._inference({"boxes": boxes, "scores": scores, "feats": feats})
        outs.append(y.view(B, n, *y.shape[1:]))
    return torch.cat(outs, 1)


def _max_dropout_logit(conv, x: torch.Tensor) -> torch.Tensor:
    """Upper bound of ``conv(dropout(x))`` over every dropout mask, for a 1x1 conv.

    Inverted dropout keeps input ``c`` as ``x_c / (1 - p)`` or drops it, so each output is at most
    ``b + sum_c relu(w_c x_c) / (1 - p)``, and ``relu(w x) = relu(w) relu(x) + relu(-w) relu(-x)``: two ordinary
    convolutions.  With ``p = 0`` (or MC mode off) the bound is the output itself.
    """
    p = float(getattr(conv, "p", 0.0)) if (getattr(conv, "mc", False) or conv.training) else 0.0
    if p <= 0:
        return F.conv2d(x, conv.weight, conv.bias)
    w = conv.weight
    pos = F.conv2d(x.clamp_min(0), w.clamp_min(0)) + F.conv2d((-x).clamp_min(0), (-w).clamp_min(0))
    return pos / (1 - p) + (0 if conv.bias is None else conv.bias.view(1, -1, 1, 1))


def sparse_head_samples(head, feats: list, T: int, thr: float) -> torch.Tensor:
    """Like :func:`head_samples`, but the T passes run only at anchors that some pass could lift above ``thr``.

    NMS only ever looks at anchors whose best class probability exceeds its threshold.  For every anchor an upper
    bound of its class logits over *all possible dropout masks* is computed (:func:`_max_dropout_logit`, two
    deterministic convs); anchors whose bound stays below ``logit(thr)`` can never pass NMS at ``thr`` (nor at any
    higher threshold) in any pass, so neither their class nor their box branch is sampled: their class probabilities
    are the deterministic ones (all below ``thr``) and their boxes are 0 (never read).  The selected anchors go
    through the head's own final convs (as 1x1 images, ``T`` copies each, one call per level and branch), so dropout
    and decoding are exactly those of the dense call.  Exact for the mean detections and for every pass's NMS at any
    threshold ``>= thr``.  Returns (B, T, 4 + nc, A) like :func:`head_samples`.
    """
    from ultralytics.utils.tal import make_anchors

    box_head, cls_head = _head_branches(head)
    B = feats[0].shape[0]
    sizes = [f.shape[2] * f.shape[3] for f in feats]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    A = offsets[-1]
    nc = int(head.nc)
    lthr = math.log(thr / (1 - thr)) if 0 < thr < 1 else (-math.inf if thr <= 0 else math.inf)
    out = feats[0].new_zeros(B, T, 4 + nc, A)
    sel_cls, sel_box, bidx, gidx = [], [], [], []
    for i, f in enumerate(feats):
        pc = cls_head[i][:-1](f)  # (B, C, h, w)
        conv = cls_head[i][-1]
        det = F.conv2d(pc, conv.weight, conv.bias).flatten(2)  # deterministic logits (B, nc, a_i)
        out[:, :, 4:, offsets[i]:offsets[i + 1]] = det.sigmoid().unsqueeze(1)
        idx = (_max_dropout_logit(conv, pc).flatten(2).amax(1) > lthr).nonzero()  # (n, 2): image, anchor
        if not len(idx):
            continue
        rows_c = pc.flatten(2)[idx[:, 0], :, idx[:, 1]]  # (n, C)
        sel_cls.append(conv(rows_c.repeat_interleave(T, 0)[:, :, None, None]).flatten(1))  # (n*T, nc)
        pb = box_head[i][:-1](f).flatten(2)
        rows_b = pb[idx[:, 0], :, idx[:, 1]]
        sel_box.append(box_head[i][-1](rows_b.repeat_interleave(T, 0)[:, :, None, None]).flatten(1))
        bidx.append(idx[:, 0])
        gidx.append(idx[:, 1] + offsets[i])
    if not sel_cls:
        return out
    b, g = torch.cat(bidx), torch.cat(gidx)
    n = len(g)
    probs = torch.cat(sel_cls).sigmoid().view(n, T, nc)
    raw = torch.cat(sel_box)  # (n*T, 4*reg_max), anchor-major
    anchors, strides = (a.transpose(0, 1) for a in make_anchors(feats, head.stride, 0.5))  # (2, A), (1, A)
    dist = head.dfl(raw.T.unsqueeze(0))  # (1, 4, n*T)
    box = head.decode_bboxes(dist, anchors[:, g].repeat_interleave(T, 1).unsqueeze(0))
    box = box * strides[:, g].repeat_interleave(T, 1)  # (1, 4, n*T) xywh in input pixels
    out[b, :, :4, g] = box[0].view(4, n, T).permute(1, 2, 0)
    out[b, :, 4:, g] = probs
    return out


def full_samples(net, x: torch.Tensor, T: int) -> torch.Tensor:
    """Reference sampler: ``T`` complete forward passes of the model (B, T, 4 + nc, A).  Slow; for benchmarks."""
    outs = []
    for _ in range(T):
        y = net(x)
        outs.append(y[0] if isinstance(y, (tuple, list)) else y)
    return torch.stack(outs, 1)


# ------------------------------------------------------------------------------------------------ per-anchor stats
def anchor_stats(samples: torch.Tensor, cls=None) -> dict:
    """Statistics over the T passes of anchors: ``samples`` is (T, 4 + nc, n) (boxes xywh, class probabilities).

    Parameters
    ----------
    samples : torch.Tensor, shape (T, 4 + nc, n)
        The passes of ``n`` anchors (e.g. the anchors NMS kept on the mean prediction).
    cls : tensor of int, shape (n,), optional
        The detected class of each anchor (default: argmax of the mean probabilities).

    Returns
    -------
    dict of (n,) tensors
        ``conf`` mean probability of ``cls``; ``entropy``, ``exp_entropy``, ``mutual_info`` over all classes
        (:func:`bald`); ``cls_unc`` = ``h(conf) / ln 2``; ``conf_std`` std of the ``cls`` probability over passes;
        ``corner_std`` mean std of the 4 box corners (input pixels); ``box_spread`` = ``corner_std / sqrt(w h)`` of
        the mean box.
    """
    T, _, n = samples.shape
    if n == 0:
        z = samples.new_zeros(0)
        return {k: z for k in ("conf", "entropy", "exp_entropy", "mutual_info", "cls_unc", "conf_std", "corner_std",
                               "box_spread")}
    xywh, probs = samples[:, :4], samples[:, 4:]
    xyxy = torch.cat([xywh[:, :2] - xywh[:, 2:4] / 2, xywh[:, :2] + xywh[:, 2:4] / 2], 1)
    mean = samples.mean(0)
    if cls is None:
        cls = mean[4:].argmax(0)
    cls = torch.as_tensor(cls, dtype=torch.long, device=samples.device).view(-1)
    ar = torch.arange(n, device=samples.device)
    pe, ee, mi = bald(probs.unsqueeze(0), sample_dim=1, class_dim=2)
    conf = mean[4:][cls, ar]
    corner_std = xyxy.std(0, unbiased=False).mean(0) if T > 1 else torch.zeros_like(conf)
    conf_std = probs[:, cls, ar].std(0, unbiased=False) if T > 1 else torch.zeros_like(conf)
    size = (mean[2].clamp_min(EPS) * mean[3].clamp_min(EPS)).sqrt()
    return {"conf": conf, "entropy": pe[0], "exp_entropy": ee[0], "mutual_info": mi[0],
            "cls_unc": (binary_entropy(conf) / LN2).clamp(0, 1), "conf_std": conf_std, "corner_std": corner_std,
            "box_spread": corner_std / size}


# ------------------------------------------------------------------------------------------------------ mc_predict
METHODS = ("cached", "dense", "full")
DET_COLUMNS = ["stem", "det", "cls", "x0", "y0", "x1", "y1", "conf", "above", "cls_unc", "entropy", "exp_entropy",
               "mutual_info", "conf_std", "box_std", "box_spread"]


@dataclass
class MCResult:
    """Output of :func:`mc_predict`.

    ``detections``: one row per candidate detection (see ``DET_COLUMNS``; boxes ``x0 y0 x1 y1`` in original image
    pixels, ``above`` = confidence above the auto-label threshold).  ``images``: one row per image (``stem, path,
    width, height, n_det, n_cand, max_prob, count_mean, count_var``).  ``embeddings``: (n_images, C) pooled
    features, rows in the order of ``images`` (None when not asked for).  ``seconds``: wall time of the scoring.
    """

    detections: pd.DataFrame
    images: pd.DataFrame
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0
    embeddings: np.ndarray | None = None


def _resolve_imgsz(net, imgsz):
    from ultralytics.utils.checks import check_imgsz

    stride = int(max(net.stride.max().item(), 32)) if hasattr(net, "stride") else 32
    if imgsz is None:
        imgsz = int((getattr(net, "args", None) or {}).get("imgsz", 640)) if isinstance(getattr(net, "args", None),
                                                                                          dict) else 640
    return int(check_imgsz(int(imgsz), stride=stride, min_dim=1, floor=stride)), stride


def mc_predict(model, images, *, T: int = 20, conf: float = 0.25, iou: float = 0.7, imgsz: int | None = None,
               batch: int = 8, p: float | None = None, device=None, progress: bool = True,
               cand_conf: float | None = None, seed: int = 0, method: str = "cached", max_det: int = 300,
               count_passes: bool = True, embed: bool = True) -> MCResult:
    """Monte-Carlo-dropout detection with per-detection uncertainty.

    Parameters
    ----------
    model : YOLO | DetectionModel | path | TrainResult
        A detection model whose head carries :class:`~alnb.dropout.MCDropoutConv2d` (see
        :func:`alnb.dropout.install_dropout_head`).  It is copied; the caller's model is not modified.
    images : list of paths (or ``(stem, path)`` pairs)
        Images to score; the stem defaults to the file stem.
    T : int
        Number of MC passes (``T=1`` with ``p=0`` is ordinary deterministic prediction).
    conf, iou : float
        Auto-label confidence threshold and NMS IoU (ultralytics' ``conf``/``iou``; a detection is kept when its
        confidence is strictly above ``conf``).
    imgsz : int, optional
        Inference size (default: the size the model was trained at, else 640); rounded up to the stride.
    batch : int
        Images per backbone pass.
    p : float, optional
        Dropout probability during sampling (default: the one the head was trained with).  ``p=0`` turns it off.
    device : str or torch.device, optional
        Default CPU.
    progress : bool
        Show a progress bar.
    cand_conf : float, optional
        Lower threshold for *candidate* detections (rows with ``above=False``); default ``conf / 2``.  Detections above
        ``conf`` are exactly those NMS at ``conf`` would keep (greedy NMS visits higher scores first).
    seed : int
        Seed of the dropout masks (the global torch RNG is left as it was).
    method : {"cached", "dense", "full"}
        ``cached`` (default) runs the backbone once and only the final head convs ``T`` times, the box conv only at
        anchors that can pass NMS (:func:`sparse_head_samples`); ``dense`` the same at every anchor
        (:func:`head_samples`); ``full`` runs ``T`` complete forward passes (the slow reference, for
        ``benchmarks/mc_speed.py``).
    count_passes : bool
        Also NMS each pass to get the mean and variance of the detection count.
    embed : bool
        Also return each image's pooled features (:func:`pooled_features`) in ``MCResult.embeddings``.

    Returns
    -------
    MCResult
    """
    from tqdm.auto import tqdm
    from ultralytics.utils import ops
    from ultralytics.utils.nms import non_max_suppression

    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    cand_conf = conf / 2 if cand_conf is None else float(cand_conf)
    if cand_conf > conf:
        raise ValueError(f"cand_conf={cand_conf} must not exceed conf={conf}")
    device = torch.device(device or "cpu")
    items = [(it if isinstance(it, (tuple, list)) else (Path(it).stem, it)) for it in images]
    net = _prepare_net(model, device)
    if not dropout_modules(net):
        raise ValueError("this model has no dropout head: train it with alnb.train (or call "
                         "alnb.dropout.install_dropout_head(model, p)) before MC scoring.")
    set_mc(net, on=True, p=p)
    imgsz, stride = _resolve_imgsz(net, imgsz)
    head = net.model[-1]
    if getattr(head, "end2end", False):
        raise NotImplementedError("MC scoring needs an NMS-based detection head (YOLOv8/v9/11 style); this model is "
                                  "end-to-end (one-to-one head).")
    nc = int(head.nc)

    det_rows, img_rows, embs = [], [], []
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(seed)
        bar = tqdm(range(0, len(items), batch), desc=f"MC scoring (T={T})", disable=not progress,
                   total=math.ceil(len(items) / batch), unit="batch")
        for b0 in bar:
            chunk = items[b0:b0 + batch]
            ims = [read_image(path) for _, path in chunk]
            x = letterbox(ims, imgsz, stride).to(device)
            feats = backbone_features(net, x) if (method != "full" or embed) else None
            if embed:
                embs.append(pooled_features(feats).cpu().numpy())
            if method == "cached":
                samples = sparse_head_samples(head, feats, T, cand_conf)
            elif method == "dense":
                samples = head_samples(head, feats, T)
            else:
                samples = full_samples(net, x, T)
            mean = samples.mean(1)
            dets, keep = non_max_suppression(mean, cand_conf, iou, max_det=max_det, return_idxs=True)
            max_prob = mean[:, 4:].amax((1, 2))
            if count_passes:
                flat = samples.reshape(-1, *samples.shape[2:])
                counts = torch.tensor([len(d) for d in non_max_suppression(flat, conf, iou, max_det=max_det)],
                                      dtype=torch.float64).view(len(chunk), T)
            for bi, ((stem, path), im) in enumerate(zip(chunk, ims)):
                d, k = dets[bi], keep[bi].long().view(-1)
                h0, w0 = im.shape[:2]
                gain = min(x.shape[2] / h0, x.shape[3] / w0)
                boxes = ops.scale_boxes(x.shape[2:], d[:, :4].clone(), im.shape).cpu().numpy()
                cls = d[:, 5].long()
                st = {kk: v.cpu().numpy() for kk, v in anchor_stats(samples[bi][..., k], cls).items()}
                confs = d[:, 4].cpu().numpy()
                for j in range(len(d)):
                    det_rows.append({
                        "stem": stem, "det": j, "cls": int(cls[j]),
                        "x0": float(boxes[j, 0]), "y0": float(boxes[j, 1]), "x1": float(boxes[j, 2]),
                        "y1": float(boxes[j, 3]), "conf": float(confs[j]), "above": bool(confs[j] > conf),
                        "cls_unc": float(st["cls_unc"][j]), "entropy": float(st["entropy"][j]),
                        "exp_entropy": float(st["exp_entropy"][j]), "mutual_info": float(st["mutual_info"][j]),
                        "conf_std": float(st["conf_std"][j]), "box_std": float(st["corner_std"][j] / gain),
                        "box_spread": float(st["box_spread"][j]),
                    })
                c = counts[bi] if count_passes else torch.full((T,), float("nan"), dtype=torch.float64)
                img_rows.append({"stem": stem, "path": str(path), "width": w0, "height": h0,
                                 "n_det": int((confs > conf).sum()), "n_cand": int(len(d)),
                                 "max_prob": float(max_prob[bi]), "count_mean": float(c.mean()),
                                 "count_var": float(c.var(unbiased=False)) if T > 1 else 0.0})
    seconds = time.perf_counter() - t0
    set_mc(net, on=False)
    settings = {"T": T, "conf": conf, "cand_conf": cand_conf, "iou": iou, "imgsz": imgsz, "batch": batch,
                "p": float(dropout_modules(net)[0].p) if p is None else float(p), "seed": seed, "method": method,
                "nc": nc}
    emb = np.concatenate(embs).astype(np.float32) if embs else None
    det = pd.DataFrame(det_rows, columns=DET_COLUMNS)
    det["above"] = det["above"].astype(bool)  # also when empty (a boolean mask, never a column selection)
    return MCResult(det, pd.DataFrame(img_rows), settings, seconds, emb)


# ------------------------------------------------------------------------------------------------- untrained models
def untrained_dropout_model(model: str = "yolov8n.yaml", imgsz: int = 64, p: float = 0.1, seed: int = 0,
                            cls_bias: float | None = None):
    """A YOLO with random weights and a dropout head whose outputs are not degenerate (tests and speed benchmarks).

    An untrained YOLO's activations vanish (every anchor gets the same score), so BatchNorm statistics are
    re-estimated on random images; ``cls_bias`` (e.g. -2.0) raises the class biases so that some anchors pass the
    usual confidence thresholds.  Never use it to score real data.
    """
    import torch

    from alnb._offline import yolo
    from alnb.dropout import install_dropout_head

    torch.manual_seed(seed)
    y = yolo(model)
    install_dropout_head(y.model, p)
    for m in y.model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batch
    y.model.train()
    with torch.no_grad():
        y.model(torch.rand(4, 3, imgsz, imgsz))
    y.model.eval()
    if cls_bias is not None:
        for s in y.model.model[-1].cv3:
            s[-1].bias.data.fill_(cls_bias)
    return y

