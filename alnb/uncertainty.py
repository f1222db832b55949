"""Auto-labelling and MC-dropout uncertainty: cached backbone, T head passes, per-anchor statistics, tiers.

How a batch is scored (:func:`mc_predict`)
-----------------------------------------
1. Images are read and letterboxed exactly as ultralytics' predictor does (``LetterBox`` with the model stride,
   BGR -> RGB, ``/255``), so that with ``T=1`` and dropout off the detections equal ``YOLO.predict``.
2. The backbone and neck run **once** per batch (ultralytics' ``_predict_once`` routing up to the ``Detect`` input);
   so do all layers of every head branch except the last 1x1 conv.
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
  by the mean box's size ``sqrt(w h)`` (scale-free; ``box_std`` keeps it in original-image pixels);
* ``hybrid`` (per detection) ``1 - (1 - cls_unc) (1 - loc_unc)`` with ``loc_unc = 1 - exp(-box_spread / box_ref)``:
  a noisy-OR of "the class call is uncertain" and "the box is uncertain", both in [0, 1].

The image ``score`` (:func:`image_scores`) is the noisy-OR of the image's *candidate* detections, i.e. every
mean-prediction detection with confidence above ``cand_conf`` (default ``conf / 2``), in log space:
``score = -ln prod_i (1 - hybrid_i)`` (``hybrid`` clipped at ``1 - 1e-6``).  Read ``hybrid_i`` as "detection i is
wrong": ``1 - exp(-score)`` is then "at least one is wrong", the event the error analysis tests; the log keeps
images with many uncertain candidates apart instead of tying them at 1.0.  Candidates just below the auto-label
threshold (likely misses) count too.  Images without any candidate score 0.
The image columns ``cls_unc``, ``entropy``, ``mutual_info``, ``box_spread`` are the same maximum taken per component;
``least_conf`` is the plain baseline ``1 - max`` mean class probability over all anchors.

Tiers (:func:`assign_tiers`): ``easy`` below ``t_medium``, ``medium`` up to ``t_hard``, ``hard`` at or above it.  Images
with no detection above the auto-label threshold are ``failed`` (their own colour); they still get a tier from their
score, and selection treats them separately.
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

TIERS = ("easy", "medium", "hard")
TIER_BARS = {"easy": 1, "medium": 2, "hard": 3}
EPS = 1e-7
LN2 = math.log(2.0)


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


def localisation_unc(box_spread, box_ref: float = 0.05):
    """Map the relative box spread (>= 0) to [0, 1): ``1 - exp(-box_spread / box_ref)``."""
    return 1.0 - np.exp(-np.asarray(box_spread, dtype=np.float64) / box_ref)


def hybrid_unc(cls_unc, box_spread, box_ref: float = 0.05):
    """Per-detection hybrid uncertainty: noisy-OR of class uncertainty and localisation uncertainty, in [0, 1]."""
    cu = np.clip(np.asarray(cls_unc, dtype=np.float64), 0, 1)
    return 1.0 - (1.0 - cu) * (1.0 - localisation_unc(box_spread, box_ref))


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
               "mutual_info", "conf_std", "box_std", "box_spread", "hybrid"]


@dataclass
class MCResult:
    """Output of :func:`mc_predict`.

    ``detections``: one row per candidate detection (see ``DET_COLUMNS``; boxes ``x0 y0 x1 y1`` in original image
    pixels, ``above`` = confidence above the auto-label threshold).  ``images``: one row per image (``stem, path,
    width, height, n_det, n_cand, max_prob, count_mean, count_var``).  ``seconds``: wall time of the scoring.
    """

    detections: pd.DataFrame
    images: pd.DataFrame
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0


def _resolve_imgsz(net, imgsz):
    from ultralytics.utils.checks import check_imgsz

    stride = int(max(net.stride.max().item(), 32)) if hasattr(net, "stride") else 32
    if imgsz is None:
        imgsz = int((getattr(net, "args", None) or {}).get("imgsz", 640)) if isinstance(getattr(net, "args", None),
                                                                                          dict) else 640
    return int(check_imgsz(int(imgsz), stride=stride, min_dim=1, floor=stride)), stride


def mc_predict(model, images, T: int = 20, conf: float = 0.25, iou: float = 0.7, imgsz: int | None = None,
               batch: int = 8, p: float | None = None, device=None, progress: bool = True, cand_conf: float | None = None,
               seed: int = 0, method: str = "cached", max_det: int = 300, box_ref: float = 0.05,
               count_passes: bool = True) -> MCResult:
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
    box_ref : float
        Relative box spread that maps to localisation uncertainty ``1 - 1/e`` (see :func:`hybrid_unc`).
    count_passes : bool
        Also NMS each pass to get the mean and variance of the detection count.

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

    det_rows, img_rows = [], []
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(seed)
        bar = tqdm(range(0, len(items), batch), desc=f"MC scoring (T={T})", disable=not progress,
                   total=math.ceil(len(items) / batch), unit="batch")
        for b0 in bar:
            chunk = items[b0:b0 + batch]
            ims = [read_image(path) for _, path in chunk]
            x = letterbox(ims, imgsz, stride).to(device)
            if method == "cached":
                samples = sparse_head_samples(head, backbone_features(net, x), T, cand_conf)
            elif method == "dense":
                samples = head_samples(head, backbone_features(net, x), T)
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
                hyb = hybrid_unc(st["cls_unc"], st["box_spread"], box_ref)
                for j in range(len(d)):
                    det_rows.append({
                        "stem": stem, "det": j, "cls": int(cls[j]),
                        "x0": float(boxes[j, 0]), "y0": float(boxes[j, 1]), "x1": float(boxes[j, 2]),
                        "y1": float(boxes[j, 3]), "conf": float(confs[j]), "above": bool(confs[j] > conf),
                        "cls_unc": float(st["cls_unc"][j]), "entropy": float(st["entropy"][j]),
                        "exp_entropy": float(st["exp_entropy"][j]), "mutual_info": float(st["mutual_info"][j]),
                        "conf_std": float(st["conf_std"][j]), "box_std": float(st["corner_std"][j] / gain),
                        "box_spread": float(st["box_spread"][j]), "hybrid": float(hyb[j]),
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
                "box_ref": box_ref, "nc": nc}
    return MCResult(pd.DataFrame(det_rows, columns=DET_COLUMNS), pd.DataFrame(img_rows), settings, seconds)


# ----------------------------------------------------------------------------------------------------- image scores
IMAGE_COMPONENTS = ["cls_unc", "entropy", "mutual_info", "box_spread"]


def image_scores(result: MCResult) -> pd.DataFrame:
    """One row per image: ``stem, n_det, failed, score`` + components (see the module docstring for definitions).

    ``score`` = ``-ln prod(1 - hybrid)`` over the image's candidates (log noisy-OR, 0 without any); the component
    columns are the per-component maxima over the candidates; ``least_conf = 1 - max_prob``; ``failed`` = no detection above the
    auto-label threshold.
    """
    img = result.images.copy()
    det = result.detections
    if len(det):
        agg = det.groupby("stem")[IMAGE_COMPONENTS].max()
        # -ln prod(1 - hybrid): the noisy-OR 1 - prod(1 - hybrid) in log space (same order, no ties at 1.0)
        agg["hybrid"] = -det.assign(q=np.log1p(-det["hybrid"].clip(0, 1 - 1e-6))).groupby("stem")["q"].sum()
    else:
        agg = pd.DataFrame(columns=["hybrid", *IMAGE_COMPONENTS])
    img = img.merge(agg, left_on="stem", right_index=True, how="left")
    for c in ["hybrid", *IMAGE_COMPONENTS]:
        img[c] = img[c].astype(float).fillna(0.0)
    img = img.rename(columns={"hybrid": "score"})
    img["failed"] = img["n_det"] == 0
    img["least_conf"] = 1.0 - img["max_prob"]
    cols = ["stem", "n_det", "n_cand", "failed", "score", *IMAGE_COMPONENTS, "least_conf", "max_prob", "count_mean",
            "count_var", "width", "height", "path"]
    return img[cols].reset_index(drop=True)


# -------------------------------------------------------------------------------------------------- thresholds/tiers
def default_thresholds(scores: pd.DataFrame, target_fraction: float = 0.6, hard_share: float = 0.4,
                       column: str = "score") -> dict:
    """Thresholds so that about ``target_fraction`` of the images are medium, hard or failed.

    Failed images count toward the target whatever their score; ``t_medium`` flags the top-scored non-failed images
    that make up the rest (``round(target_fraction * n) - n_failed``), and ``t_hard`` marks the top ``hard_share`` of
    those flagged non-failed images as hard.  Thresholds sit half-way between neighbouring scores.  The study flagged
    251 of 419 POOL images (60%).

    Returns ``{"t_medium", "t_hard", "target_fraction", "hard_share", "column"}``.
    """
    if not 0 < target_fraction <= 1 or not 0 <= hard_share <= 1:
        raise ValueError(f"need 0 < target_fraction <= 1 and 0 <= hard_share <= 1, got {target_fraction}, {hard_share}")
    n = len(scores)
    if n == 0:
        raise ValueError("no scores: score the pool first (score_pool).")
    failed = scores["failed"].to_numpy(bool) if "failed" in scores else np.zeros(n, bool)
    s = np.sort(scores.loc[~failed, column].to_numpy(float))[::-1]  # descending, non-failed only

    def top_k_threshold(k):
        if len(s) == 0:
            return 1.0
        if k <= 0:
            return float(s[0] + 1e-9)  # above every score: nobody flagged
        if k >= len(s):
            return float(s[-1])
        return float((s[k - 1] + s[k]) / 2) if s[k - 1] > s[k] else float(s[k - 1])

    k_flag = max(0, int(round(target_fraction * n)) - int(failed.sum()))
    t_medium = top_k_threshold(k_flag)
    t_hard = max(t_medium, top_k_threshold(int(round(hard_share * min(k_flag, len(s))))))
    return {"t_medium": t_medium, "t_hard": t_hard, "target_fraction": target_fraction, "hard_share": hard_share,
            "column": column}


def assign_tiers(scores: pd.DataFrame, t_medium: float, t_hard: float, column: str = "score") -> pd.DataFrame:
    """Copy of ``scores`` with ``tier`` (easy < t_medium <= medium < t_hard <= hard) and ``bars`` (1/2/3).

    ``failed`` (added from ``n_det == 0`` if missing) is kept as its own flag; failed images still get a tier.
    """
    if t_hard < t_medium:
        raise ValueError(f"t_hard ({t_hard}) must be >= t_medium ({t_medium})")
    from alnb.select import tier_of

    out = scores.copy()
    out["tier"] = tier_of(out[column], t_medium, t_hard).astype(str)
    out["bars"] = out["tier"].map(TIER_BARS).astype(int)
    if "failed" not in out:
        out["failed"] = out["n_det"] == 0
    return out


# --------------------------------------------------------------------------------------------- errors vs difficulty
def auroc(score, label) -> float:
    """Area under the ROC curve of ``score`` for binary ``label`` (rank-based Mann-Whitney U, ties averaged).

    NaN when only one class is present.
    """
    score = np.asarray(score, dtype=np.float64)
    label = np.asarray(label, dtype=bool)
    n1, n0 = int(label.sum()), int((~label).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = pd.Series(score).rank(method="average").to_numpy()
    return float((ranks[label].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def image_errors(ws, detections: pd.DataFrame, stems, iou_thr: float = 0.5) -> pd.DataFrame:
    """Per-image auto-label errors at the operating point against the dataset ground truth (simulation only).

    Uses the detections with ``above=True`` and :func:`alnb.metrics.match_image`; returns ``stem, n_gt, n_tp, n_fp,
    n_fn, has_error``.
    """
    from alnb.metrics import match_image, xywhn_to_xyxy

    m = ws.manifest().set_index("stem")
    det = detections[detections["above"]] if len(detections) else detections
    groups = {s: g for s, g in det.groupby("stem")} if len(det) else {}
    rows = []
    for stem in stems:
        w, h = float(m.at[stem, "width"]), float(m.at[stem, "height"])
        gt = np.asarray(ws.true_labels(stem), dtype=np.float64).reshape(-1, 5)
        gtb = np.column_stack([gt[:, 0], xywhn_to_xyxy(gt[:, 1:5], w, h)]) if len(gt) else np.zeros((0, 5))
        g = groups.get(stem)
        pred = g[["cls", "x0", "y0", "x1", "y1", "conf"]].to_numpy(float) if g is not None else np.zeros((0, 6))
        r = match_image(pred, gtb, iou_thr=iou_thr)
        rows.append({"stem": stem, "n_gt": len(gt), "n_tp": r["tp_n"], "n_fp": r["fp_n"], "n_fn": r["fn_n"],
                     "has_error": bool(r["fp_n"] + r["fn_n"] > 0)})
    return pd.DataFrame(rows, columns=["stem", "n_gt", "n_tp", "n_fp", "n_fn", "has_error"])


def _tier_table(tiers, failed, err) -> dict:
    """Error counts per category; each image is counted once: failed images only under ``failed`` (the same
    categories as :func:`alnb.select.categorise` and the GT2 rule)."""
    out = {}
    for t in TIERS:
        sel = (tiers == t) & ~failed
        out[t] = {"n": int(sel.sum()), "n_error": int(err[sel].sum()),
                  "error_rate": float(err[sel].mean()) if sel.any() else float("nan")}
    out["failed"] = {"n": int(failed.sum()), "n_error": int(err[failed].sum()),
                     "error_rate": float(err[failed].mean()) if failed.any() else float("nan")}
    return out


def difficulty_vs_errors(scores: pd.DataFrame, thresholds: dict | None = None,
                         components=("score", "least_conf", *IMAGE_COMPONENTS, "count_var")) -> dict:
    """Does difficulty predict auto-label errors?  AUROC and error rate per tier, next to least-confidence.

    Parameters
    ----------
    scores : DataFrame
        Output of :func:`score_pool` with ``has_error`` (simulation mode), ``score``, ``tier``, ``failed``,
        ``least_conf``.
    thresholds : dict, optional
        ``{"target_fraction", "hard_share"}`` used to cut least-confidence into tiers the same way as the score's
        default tiers (default 0.6 / 0.4).

    Returns
    -------
    dict
        ``n``, ``n_error``, ``error_rate``; ``auroc`` {column: AUROC for has_error}; ``tiers`` {easy/medium/hard/failed:
        {n, n_error, error_rate}} for the hybrid score; ``least_conf_tiers`` the same for least-confidence tiers of
        equal sizes; ``hard_minus_easy`` (error-rate gap) for both.
    """
    if "has_error" not in scores:
        raise ValueError("scores have no 'has_error' column: errors can only be measured in simulation mode "
                         "(every POOL image has dataset labels).")
    err = scores["has_error"].to_numpy(bool)
    failed = scores["failed"].to_numpy(bool)
    th = thresholds or {}
    tf, hf = th.get("target_fraction", 0.6), th.get("hard_share", 0.4)
    lc_th = default_thresholds(scores, tf, hf, column="least_conf")
    lc_tiers = assign_tiers(scores, lc_th["t_medium"], lc_th["t_hard"], column="least_conf")["tier"].to_numpy()
    tiers = scores["tier"].to_numpy()
    res = {"n": int(len(scores)), "n_error": int(err.sum()), "error_rate": float(err.mean()) if len(err) else None,
           "auroc": {c: auroc(scores[c], err) for c in components if c in scores},
           "tiers": _tier_table(tiers, failed, err), "least_conf_tiers": _tier_table(lc_tiers, failed, err),
           "least_conf_thresholds": lc_th}
    for key in ("tiers", "least_conf_tiers"):
        t = res[key]
        res[f"{key}_hard_minus_easy"] = t["hard"]["error_rate"] - t["easy"]["error_rate"]
    return res


# ------------------------------------------------------------------------------------------------------- score pool
def write_autolabels(ws, model_name: str, detections: pd.DataFrame, images: pd.DataFrame) -> Path:
    """Write ``autolabels/<model_name>/<stem>.txt`` (YOLO ``cls cx cy w h conf``, normalised; empty = nothing found)."""
    from alnb.metrics import xyxy_to_xywhn
    from alnb.workspace import atomic_write_text

    out = ws.root / "autolabels" / model_name
    out.mkdir(parents=True, exist_ok=True)
    det = detections[detections["above"]] if len(detections) else detections
    groups = {s: g for s, g in det.groupby("stem")} if len(det) else {}
    for row in images.itertuples():
        g = groups.get(row.stem)
        lines = []
        if g is not None:
            g = g.sort_values("conf", ascending=False)
            xywhn = xyxy_to_xywhn(g[["x0", "y0", "x1", "y1"]].to_numpy(float), row.width, row.height)
            for c, b, cf in zip(g["cls"], xywhn, g["conf"]):
                lines.append(f"{int(c)} {b[0]:.6f} {b[1]:.6f} {b[2]:.6f} {b[3]:.6f} {cf:.5f}")
        atomic_write_text(out / f"{row.stem}.txt", "\n".join(lines) + ("\n" if lines else ""))
    return out


def _resolve_model(ws, model):
    """(name, model object, imgsz or None) for a run name, a weights path or a model object."""
    if isinstance(model, str) and not model.endswith((".pt", ".yaml")):
        try:
            from alnb import train
        except ImportError as e:  # pragma: no cover - train module missing
            raise ImportError("alnb.train is needed to load a run by name; pass weights= instead.") from e
        run = train.load_run(ws, model)
        imgsz = (getattr(run, "info", None) or {}).get("args", {}).get("imgsz")
        if imgsz is None:
            try:
                imgsz = train.get_profile(run.profile).imgsz
            except Exception:  # an unknown profile: fall back to the checkpoint's own training size
                imgsz = None
        return model, train.load_model(run.weights), imgsz
    name = Path(str(model)).stem if isinstance(model, (str, Path)) else type(model).__name__
    return name, model, None


def score_pool(ws, model="CAL1", T: int = 20, conf: float | None = None, iou: float | None = None, imgsz: int | None = None,
               batch: int = 8, p: float | None = None, cand_conf: float | None = None, seed: int = 0,
               target_fraction: float = 0.6, hard_share: float = 0.4, t_medium: float | None = None,
               t_hard: float | None = None, model_name: str | None = None, progress: bool = True,
               device=None) -> pd.DataFrame:
    """Auto-label and MC-score every POOL image of the workspace; write all outputs; return the score table.

    Parameters
    ----------
    ws : Workspace
    model : str | path | YOLO
        A run name in the workspace (``"CAL1"``, loaded with :func:`alnb.train.load_run`), a ``.pt`` path or a model.
    T, conf, iou, imgsz, batch, p, cand_conf, seed
        See :func:`mc_predict` (``imgsz`` defaults to the run's training size).  ``conf=None`` (default) uses the
        model's operating point chosen on VAL1 (:func:`alnb.metrics.operating_point`; 0.25 for a bare .pt / model).
    target_fraction, hard_share
        Default thresholds (:func:`default_thresholds`); ``t_medium``/``t_hard`` override them.
    model_name : str, optional
        Name under which auto-labels are recorded (default: the run name / file stem).

    Writes
    ------
    ``autolabels/<MODEL>/<stem>.txt``, ``scores.csv`` (one row per POOL image), ``detections.csv`` (per candidate
    detection), ``metrics/thresholds.json``, ``metrics/mc_scoring.json`` (settings + time), in simulation mode
    ``metrics/difficulty_vs_errors.json``; manifest: ``auto_model`` for the scored images and ``label_source='auto'``
    where it was ``none`` (human/oracle labels are never touched).
    """
    from alnb.workspace import atomic_write_text

    name, mdl, run_imgsz = _resolve_model(ws, model)
    if conf is None:  # the model's operating point, chosen on VAL1 (alnb.metrics.evaluate)
        from alnb.metrics import FIXED_CONF, operating_point

        conf = operating_point(ws, name) if isinstance(model, str) and not model.endswith(".pt") else FIXED_CONF
    if iou is None:  # the same NMS as evaluation (alnb.metrics.NMS_IOU)
        from alnb.metrics import NMS_IOU

        iou = NMS_IOU
    name = model_name or name
    man = ws.manifest()
    stems = ws.stems("POOL", manifest=man)
    held = set(ws.stems("VAL1", "GT1", manifest=man))
    stems = [s for s in stems if s not in held]
    if not stems:
        raise ValueError(f"{ws.root}: no POOL images to score.")
    mi = man.set_index("stem")
    items = [(s, ws.dataset_root / mi.at[s, "image"]) for s in stems]
    res = mc_predict(mdl, items, T=T, conf=conf, iou=iou, imgsz=imgsz or run_imgsz, batch=batch, p=p,
                     device=device, progress=progress, cand_conf=cand_conf, seed=seed)
    scores = image_scores(res)
    th = default_thresholds(scores, target_fraction, hard_share)
    if t_medium is not None:
        th["t_medium"] = float(t_medium)
    if t_hard is not None:
        th["t_hard"] = float(t_hard)
    th["t_hard"] = max(th["t_hard"], th["t_medium"])
    scores = assign_tiers(scores, th["t_medium"], th["t_hard"])
    truth = ws.mode == "simulation" and (mi.loc[stems, "label_state"] != "unlabelled").all()
    if truth:
        errs = image_errors(ws, res.detections, stems)
        scores = scores.merge(errs, on="stem", how="left")
    scores.insert(1, "model", name)

    write_autolabels(ws, name, res.detections, res.images)
    atomic_write_text(ws.root / "scores.csv", scores.to_csv(index=False))
    dets = res.detections.copy()
    dets.insert(0, "model", name)
    atomic_write_text(ws.root / "detections.csv", dets.to_csv(index=False))
    ws.save_json("thresholds", th)
    ws.save_json("mc_scoring", {**res.settings, "model": name, "n_images": len(stems),
                                "seconds": round(res.seconds, 3),
                                "seconds_per_image": round(res.seconds / len(stems), 4)})
    if truth:
        ws.save_json("difficulty_vs_errors", difficulty_vs_errors(scores, th))

    man = ws.manifest()
    sel = man["stem"].isin(stems)
    man.loc[sel, "auto_model"] = name
    man.loc[sel & (man["label_source"] == "none"), "label_source"] = "auto"
    ws.write_manifest(man)
    return scores


def retier(ws, t_medium: float, t_hard: float) -> pd.DataFrame:
    """Re-cut the tiers of ``scores.csv`` with new thresholds, save them and the thresholds; return the table."""
    from alnb.workspace import atomic_write_text

    from alnb.select import load_scores

    scores = assign_tiers(load_scores(ws), t_medium, t_hard)
    atomic_write_text(ws.root / "scores.csv", scores.to_csv(index=False))
    try:
        th = ws.load_json("thresholds")
    except Exception:
        th = {}
    th.update({"t_medium": float(t_medium), "t_hard": float(t_hard)})
    ws.save_json("thresholds", th)
    if "has_error" in scores:
        ws.save_json("difficulty_vs_errors", difficulty_vs_errors(scores, th))
    return scores


# ----------------------------------------------------------------------------------------------------------- display
def difficulty_bars_html(scores: pd.DataFrame, columns=("stem", "score", "n_det", "cls_unc", "mutual_info",
                                                        "box_spread", "least_conf"), max_rows: int | None = None,
                         sort_by: str = "score") -> str:
    """HTML table with difficulty bars (1 green / 2 yellow / 3 red; failed images purple), sortable by clicking a
    column header (a few lines of inline JavaScript; works in JupyterLab and in exported HTML)."""
    import html as _html

    from alnb.plots import TIER_COLOURS

    df = scores.sort_values(sort_by, ascending=False) if sort_by in scores else scores
    if max_rows:
        df = df.head(max_rows)
    cols = [c for c in columns if c in df.columns]
    tid = f"alnb-tiers-{abs(hash(tuple(df['stem']))) % 10**8}"

    def bars(tier, failed):
        n = TIER_BARS.get(tier, 0)
        col = TIER_COLOURS["failed"] if failed else TIER_COLOURS.get(tier, "#999")
        cells = "".join(f'<span style="display:inline-block;width:7px;height:{6 + 4 * i}px;margin-right:2px;'
                        f'vertical-align:bottom;background:{col if i < n else "#ddd"}"></span>' for i in range(3))
        label = f"{tier}{' (failed)' if failed else ''}"
        return f'<td data-v="{n + (10 if failed else 0)}" title="{label}">{cells} {label}</td>'

    head = "".join(f'<th style="cursor:pointer" onclick="alnbSort(\'{tid}\',{i})">{_html.escape(c)} &#x21C5;</th>'
                   for i, c in enumerate(["difficulty", *cols]))
    rows = []
    for r in df.to_dict("records"):
        tds = [bars(r.get("tier", ""), bool(r.get("failed", False)))]
        for c in cols:
            v = r[c]
            txt = f"{v:.3f}" if isinstance(v, float) else _html.escape(str(v))
            dv = f"{float(v):.6g}" if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) else txt
            tds.append(f'<td data-v="{dv}">{txt}</td>')
        rows.append("<tr>" + "".join(tds) + "</tr>")
    script = ("<script>function alnbSort(id,c){var t=document.getElementById(id),b=t.tBodies[0],"
              "r=Array.from(b.rows),d=t.getAttribute('data-d'+c)==='1';t.setAttribute('data-d'+c,d?'0':'1');"
              "r.sort(function(x,y){var a=x.cells[c].getAttribute('data-v'),z=y.cells[c].getAttribute('data-v'),"
              "fa=parseFloat(a),fz=parseFloat(z);var v=(isNaN(fa)||isNaN(fz))?a.localeCompare(z):fa-fz;"
              "return d?v:-v;});r.forEach(function(e){b.appendChild(e);});}</script>")
    return (f'{script}<table id="{tid}" style="font-size:12px"><thead><tr>{head}</tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")


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
