"""MC-dropout sampling: cached backbone, ``T`` head passes, per-anchor / per-detection statistics, pooled features.

This module only *measures* (images and a model in, :class:`MCResult` arrays out; it writes no file): what the
scores mean lives in :mod:`alnb.acquisition.strategies`, file writing in :mod:`alnb.acquisition.scoring`.
:func:`mc_predict` runs the backbone and neck once per batch, repeats the head's last 1x1 convs ``T`` times with
dropout on, takes per-anchor statistics before NMS (mean class probabilities, ``entropy``, ``exp_entropy``,
``mutual_info`` (BALD), ``box_spread``) and gathers them per detection after NMS on the mean prediction; the same
pass gives each image's pooled features.

Per-image determinism: an image's result depends only on the model, the settings, the ``seed`` and the image itself,
not on its batch, the order, the thread count or the worker (dropout masks from a counter-based hash,
:func:`dropout_keep`; one letterbox per image; batch-invariant convolutions on CPU, :func:`batch_invariant`).

Design notes: docs/design/mc-dropout.md
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

import alnb  # noqa: F401  (offline settings before ultralytics)
from alnb.core import offline as _offline
from alnb.model.dropout import dropout_modules, install_dropout_head, set_mc
from alnb.core.cpu import current_threads
from alnb.core.offline import yolo

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
    if hasattr(model, "weights") and not isinstance(model, torch.nn.Module):  # alnb.model.train.TrainResult
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
    # heavy, imported where used (not at module import): ultralytics, torchvision, tqdm, torch
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
    :class:`MCScorer` letterboxes each image on its own (:func:`letterbox_one`) so that an image's tensor does not
    depend on its batch.
    """
    from ultralytics.data.augment import LetterBox

    same = len({im.shape for im in images}) == 1
    lb = LetterBox((imgsz, imgsz), auto=same, stride=stride)
    arr = np.stack([lb(image=im) for im in images])
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous().flip(1)  # BGR -> RGB
    return x.float().div_(255)


def letterbox_one(image, imgsz: int, stride: int) -> np.ndarray:
    """One BGR image letterboxed as ultralytics' predictor does with ``batch=1`` (minimal padding), HWC uint8."""
    from ultralytics.data.augment import LetterBox

    return LetterBox((imgsz, imgsz), auto=True, stride=stride)(image=image)


def to_tensor(arrays) -> torch.Tensor:
    """Stack letterboxed HWC BGR uint8 arrays of one shape into a float (B, 3, H, W) RGB tensor in 0-1."""
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous().flip(1)  # BGR -> RGB
    return x.float().div_(255)


_INVARIANT = {"depth": 0, "saved": None}
_INVARIANT_LOCK = threading.Lock()


@contextlib.contextmanager
def batch_invariant(device):
    """Numerics that do not depend on batch size or thread count while scoring (see "Per-image determinism").

    On CPU, inside the block: PyTorch's oneDNN (mkldnn) and NNPACK convolutions are off (NNPACK takes over from
    batch 16 on), leaving PyTorch's own convolution, and PyTorch computes on **one intra-op thread**: its
    convolution runs one GEMM per image, and a multi-threaded GEMM splits the sums of a small late layer (e.g. 256
    channels at 4 x 4) differently from a single-threaded one, so at 2 threads an image's features changed with the
    batch it came in (measured: up to 5e-5 in the head inputs, 1.6e-3 in the sampled logits).  The cores are used by
    scoring several parts at once instead (:func:`alnb.acquisition.engines.score_local`), which never changes a number.  The
    settings are process-wide, so concurrent blocks (one per scoring thread) share them: the first one in sets them,
    the last one out restores them.  On other devices nothing changes (cuDNN picks its algorithms by shape too: GPU
    results agree to float rounding, not bit for bit).
    """
    if torch.device(device).type != "cpu":
        yield
        return
    with _INVARIANT_LOCK:
        if _INVARIANT["depth"] == 0:
            _INVARIANT["saved"] = (torch.backends.mkldnn.enabled, torch._C._get_nnpack_enabled(),
                                   torch.get_num_threads())
            torch.backends.mkldnn.enabled = False
            torch._C._set_nnpack_enabled(False)
            torch.set_num_threads(1)
        _INVARIANT["depth"] += 1
    try:
        yield
    finally:
        with _INVARIANT_LOCK:
            _INVARIANT["depth"] -= 1
            if _INVARIANT["depth"] == 0:
                mk, nn, nt = _INVARIANT["saved"]
                torch.backends.mkldnn.enabled = mk
                torch._C._set_nnpack_enabled(nn)
                torch.set_num_threads(nt)


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


# ------------------------------------------------------------------------------------- per-image dropout masks
PAIR_BITS, ANCHOR_BITS = 12, 20  # counter layout: channel pair < 4096 (8192 channels), anchor < 1,048,576 (~3,500 px)
BOX, CLS = 0, 1  # branch ids in the counter
_U32 = np.uint32


def image_keys(stems, seed: int = 0, device=None) -> torch.Tensor:
    """Two 32-bit keys per image, ``(B, 2)`` int64: BLAKE2b of ``"<seed>:<stem>"`` (the identity of its masks)."""
    keys = []
    for s in stems:
        d = hashlib.blake2b(f"{int(seed)}:{s}".encode(), digest_size=8).digest()
        keys.append((int.from_bytes(d[:4], "little"), int.from_bytes(d[4:], "little")))
    return torch.tensor(keys, dtype=torch.int64, device=device).view(-1, 2)


def mix32(x: np.ndarray) -> np.ndarray:
    """A 32-bit integer hash with full avalanche ("lowbias32", C. Wellons), in place on a ``uint32`` array.

    NumPy's unsigned arithmetic wraps modulo 2**32 by definition (and is ~40x faster here than torch's integer ops).
    """
    x ^= x >> _U32(16)
    x *= _U32(0x7FEB352D)
    x ^= x >> _U32(15)
    x *= _U32(0x846CA68B)
    x ^= x >> _U32(16)
    return x


def dropout_keep(keys, passes, branch: int, channels: int, anchors, p: float) -> torch.Tensor:
    """Dropout masks that depend only on (image key, pass, branch, channel, anchor): True = kept.

    One 32-bit hash per (image, pass, branch, channel pair, anchor) of the counter
    ``(pair << 20 | anchor) ^ key0``, mixed, then ``^ (2 pass + branch) ^ key1``, mixed again (:func:`mix32`); its
    low and high 16 bits are the uniforms of the pair's two channels, and a channel is dropped when its uniform is
    below ``p`` (``p`` is realised to 1/65536).

    Parameters
    ----------
    keys : (N, 2) int tensor or array
        :func:`image_keys` of the images, or one row per selected anchor (the sparse sampler).
    passes : sequence of int
        The MC passes ``t`` (e.g. ``range(T)``).
    branch : int
        :data:`BOX` or :data:`CLS`.
    channels : int
        Input channels ``C`` of the final conv.
    anchors : (A,) or (N, A) int tensor or array
        Global anchor indices (level offset + position in the level's map), shared or one row per key.
    p : float
        Drop probability.

    Returns
    -------
    bool tensor on the device of ``keys``, shape ``(N, len(passes), C, A)``.
    """
    pairs = (int(channels) + 1) // 2
    if pairs > 1 << PAIR_BITS:
        raise ValueError(f"{channels} input channels: per-image dropout masks support at most {2 << PAIR_BITS}")
    dev = keys.device if isinstance(keys, torch.Tensor) else None
    k = np.asarray(keys.cpu() if isinstance(keys, torch.Tensor) else keys, dtype=np.int64).astype(_U32).reshape(-1, 2)
    a = np.asarray(anchors.cpu() if isinstance(anchors, torch.Tensor) else anchors, dtype=np.int64)
    if a.size and int(a.max()) >= 1 << ANCHOR_BITS:
        raise ValueError(f"{int(a.max()) + 1} anchors: per-image dropout masks support at most {1 << ANCHOR_BITS} "
                         f"(about {int(8 * (1 << ANCHOR_BITS) ** 0.5)} px images)")
    a = a.astype(_U32).reshape((1 if a.ndim == 1 else a.shape[0], 1, 1, -1))
    pair = (np.arange(pairs, dtype=_U32) << _U32(ANCHOR_BITS)).reshape(1, 1, -1, 1)
    h = mix32((pair | a) ^ k[:, 0].reshape(-1, 1, 1, 1))  # (N, 1, pairs, A): per anchor and channel pair
    salt = (np.asarray(list(passes), dtype=_U32) * _U32(2) + _U32(branch)).reshape(1, -1, 1, 1)
    h = mix32(h ^ (salt ^ k[:, 1].reshape(-1, 1, 1, 1)))  # (N, T, pairs, A)
    thr = _U32(int(round(float(p) * 65536)))
    keep = np.empty((*h.shape[:3], 2, h.shape[3]), dtype=bool)
    np.greater_equal(h & _U32(0xFFFF), thr, out=keep[:, :, :, 0])
    np.greater_equal(h >> _U32(16), thr, out=keep[:, :, :, 1])
    out = torch.from_numpy(keep.reshape(h.shape[0], h.shape[1], 2 * pairs, h.shape[3])[:, :, :channels])
    return out if dev is None or dev.type == "cpu" else out.to(dev)


def _dropout_p(conv) -> float:
    """The dropout probability a final conv applies now (0 unless it is training or in MC mode)."""
    return float(getattr(conv, "p", 0.0)) if (getattr(conv, "mc", False) or conv.training) else 0.0


def _plain_conv(conv, x: torch.Tensor) -> torch.Tensor:
    """The conv itself, without its own (random-stream) dropout."""
    return F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _apply_keep(x: torch.Tensor, keep: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout with a given mask (kept inputs scaled by ``1 / (1 - p)``, as ``F.dropout`` does)."""
    return x * keep.to(x.dtype).div_(1 - p)


def _level_offsets(feats) -> list:
    sizes = [f.shape[2] * f.shape[3] for f in feats]
    return np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()


def head_samples(head, feats: list, T: int, max_rows: int | None = None, keys: torch.Tensor | None = None
                 ) -> torch.Tensor:
    """T stochastic passes of the head's final convs on cached features: returns (B, T, 4 + nc, A).

    Everything in each head branch except its last 1x1 conv runs once; the inputs of the last conv are repeated
    ``T`` times along the batch (image-major) and go through the conv (with dropout if MC mode is on) in one call,
    in chunks of at most ``max_rows`` rows if given.  Decoding is ultralytics' own ``Detect._inference``.  With
    ``keys`` (:func:`image_keys`, one row per image) the masks are the per-image ones of :func:`dropout_keep`;
    without, the convs draw their own from torch's global random stream.
    """
    box_head, cls_head = _head_branches(head)
    B = feats[0].shape[0]
    offsets = _level_offsets(feats)
    pre_box = [box_head[i][:-1](f) for i, f in enumerate(feats)]
    pre_cls = [cls_head[i][:-1](f) for i, f in enumerate(feats)]
    rows = B * T if not max_rows else max(1, min(B * T, int(max_rows)))
    tc = max(1, rows // B)

    def final(conv, pre, i, branch, t0, n):
        x = pre.repeat_interleave(n, 0)
        p = _dropout_p(conv)
        if keys is None or p <= 0:
            return conv(x).flatten(2)
        h, w = pre.shape[2:]
        anchors = torch.arange(offsets[i], offsets[i] + h * w, device=pre.device)
        keep = dropout_keep(keys, range(t0, t0 + n), branch, pre.shape[1], anchors, p)  # (B, n, C, hw)
        return _plain_conv(conv, _apply_keep(x, keep.view(B * n, -1, h, w), p)).flatten(2)

    outs = []
    for t0 in range(0, T, tc):
        n = min(tc, T - t0)
        boxes = torch.cat([final(box_head[i][-1], p, i, BOX, t0, n) for i, p in enumerate(pre_box)], -1)
        scores = torch.cat([final(cls_head[i][-1], p, i, CLS, t0, n) for i, p in enumerate(pre_cls)], -1)
        y = head._inference({"boxes": boxes, "scores": scores, "feats": feats})
        outs.append(y.view(B, n, *y.shape[1:]))
    return torch.cat(outs, 1)


def _max_dropout_logit(conv, x: torch.Tensor) -> torch.Tensor:
    """Upper bound of ``conv(dropout(x))`` over every dropout mask, for a 1x1 conv.

    Inverted dropout keeps input ``c`` as ``x_c / (1 - p)`` or drops it, so each output is at most
    ``b + sum_c relu(w_c x_c) / (1 - p)``, and ``relu(w x) = relu(w) relu(x) + relu(-w) relu(-x)``: two ordinary
    convolutions.  With ``p = 0`` (or MC mode off) the bound is the output itself.
    """
    p = _dropout_p(conv)
    if p <= 0:
        return F.conv2d(x, conv.weight, conv.bias)
    w = conv.weight
    pos = F.conv2d(x.clamp_min(0), w.clamp_min(0)) + F.conv2d((-x).clamp_min(0), (-w).clamp_min(0))
    return pos / (1 - p) + (0 if conv.bias is None else conv.bias.view(1, -1, 1, 1))


def sparse_head_samples(head, feats: list, T: int, thr: float, keys: torch.Tensor | None = None) -> torch.Tensor:
    """Like :func:`head_samples`, but the T passes run only at anchors that some pass could lift above ``thr``.

    NMS only ever looks at anchors whose best class probability exceeds its threshold.  For every anchor an upper
    bound of its class logits over *all possible dropout masks* is computed (:func:`_max_dropout_logit`, two
    deterministic convs); anchors whose bound stays below ``logit(thr)`` can never pass NMS at ``thr`` (nor at any
    higher threshold) in any pass, so neither their class nor their box branch is sampled: their class probabilities
    are the deterministic ones (all below ``thr``) and their boxes are 0 (never read).  The selected anchors go
    through the head's own final convs (as 1x1 images, ``T`` copies each, one call per level and branch), so dropout
    and decoding are exactly those of the dense call.  Exact for the mean detections and for every pass's NMS at any
    threshold ``>= thr``.  With ``keys`` the masks are the per-image ones of :func:`dropout_keep` (the same mask for
    the same anchor as :func:`head_samples` and :func:`full_samples`).  Returns (B, T, 4 + nc, A).
    """
    from ultralytics.utils.tal import make_anchors

    box_head, cls_head = _head_branches(head)
    B = feats[0].shape[0]
    offsets = _level_offsets(feats)
    A = offsets[-1]
    nc = int(head.nc)
    lthr = math.log(thr / (1 - thr)) if 0 < thr < 1 else (-math.inf if thr <= 0 else math.inf)
    out = feats[0].new_zeros(B, T, 4 + nc, A)

    def final(conv, rows, kb, g, branch):  # rows (n, C) at global anchors g (keys kb, one per row) -> (n * T, out)
        x = rows.repeat_interleave(T, 0)[:, :, None, None]
        p = _dropout_p(conv)
        if kb is None or p <= 0:
            return conv(x).flatten(1)
        keep = dropout_keep(kb, range(T), branch, rows.shape[1], g.view(-1, 1), p)  # (n, T, C, 1)
        return _plain_conv(conv, _apply_keep(x, keep.reshape(x.shape), p)).flatten(1)

    pcs = [cls_head[i][:-1](f) for i, f in enumerate(feats)]  # (B, C, h, w): convs over whole maps, batched
    pbs = [box_head[i][:-1](f).flatten(2) for i, f in enumerate(feats)]
    sel = []
    for i, pc in enumerate(pcs):
        conv = cls_head[i][-1]
        det = F.conv2d(pc, conv.weight, conv.bias).flatten(2)  # deterministic logits (B, nc, a_i)
        out[:, :, 4:, offsets[i]:offsets[i + 1]] = det.sigmoid().unsqueeze(1)
        sel.append(_max_dropout_logit(conv, pc).flatten(2).amax(1) > lthr)  # (B, a_i): anchors worth sampling
    anchors, strides = (a.transpose(0, 1) for a in make_anchors(feats, head.stride, 0.5))  # (2, A), (1, A)
    for b in range(B):  # the selected rows of one image at a time: matrix sizes never depend on the other images
        probs, raw, gidx = [], [], []
        for i in range(len(feats)):
            a = sel[i][b].nonzero()[:, 0]
            if not len(a):
                continue
            g = a + offsets[i]
            kb = None if keys is None else keys[b:b + 1].expand(len(a), -1)
            probs.append(final(cls_head[i][-1], pcs[i][b].flatten(1)[:, a].T, kb, g, CLS))  # (n*T, nc)
            raw.append(final(box_head[i][-1], pbs[i][b][:, a].T, kb, g, BOX))  # (n*T, 4*reg_max)
            gidx.append(g)
        if not gidx:
            continue
        g = torch.cat(gidx)
        n = len(g)
        dist = head.dfl(torch.cat(raw).T.unsqueeze(0))  # (1, 4, n*T), anchor-major
        box = head.decode_bboxes(dist, anchors[:, g].repeat_interleave(T, 1).unsqueeze(0))
        box = box * strides[:, g].repeat_interleave(T, 1)  # (1, 4, n*T) xywh in input pixels
        out[b, :, :4, g] = box[0].view(4, n, T).permute(2, 0, 1)
        out[b, :, 4:, g] = torch.cat(probs).sigmoid().view(n, T, nc).permute(1, 2, 0)
    return out


def full_samples(net, x: torch.Tensor, T: int, keys: torch.Tensor | None = None) -> torch.Tensor:
    """Reference sampler: ``T`` complete forward passes of the model (B, T, 4 + nc, A).  Slow; for benchmarks.

    With ``keys`` the final convs use the per-image masks of :func:`dropout_keep` (forward pre-hooks; their own
    dropout is off meanwhile), so the result equals the cached samplers' up to float rounding.
    """
    head = net.model[-1]
    box_head, cls_head = _head_branches(head)
    convs = [(box_head[i][-1], i, BOX) for i in range(len(box_head))] + \
            [(cls_head[i][-1], i, CLS) for i in range(len(cls_head))]
    H, W = x.shape[2:]
    sizes = [int(H // s) * int(W // s) for s in head.stride.tolist()]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()
    outs, hooks, saved = [], [], []
    t_now = [0]
    if keys is not None:
        for conv, i, branch in convs:
            p = _dropout_p(conv)
            if p <= 0:
                continue

            def pre(mod, args, i=i, branch=branch, p=p):
                z = args[0]
                anchors = torch.arange(offsets[i], offsets[i] + z.shape[2] * z.shape[3], device=z.device)
                keep = dropout_keep(keys, [t_now[0]], branch, z.shape[1], anchors, p)  # (B, 1, C, hw)
                return (_apply_keep(z, keep.view(z.shape), p),)

            saved.append((conv, conv.mc, conv.training))
            conv.mc = False
            conv.train(False)
            hooks.append(conv.register_forward_pre_hook(pre))
    try:
        for t in range(T):
            t_now[0] = t
            y = net(x)
            outs.append(y[0] if isinstance(y, (tuple, list)) else y)
    finally:
        for h in hooks:
            h.remove()
        for conv, mc, training in saved:
            conv.mc = mc
            conv.train(training)
    return torch.stack(outs, 1)


# ------------------------------------------------------------------------------------------------ per-anchor stats
def _pstd(x: torch.Tensor) -> torch.Tensor:
    """Population standard deviation over dim 0 as two plain means (``torch.std``'s kernel rounds differently
    with the number of threads; means over the leading dim add the passes in order)."""
    return (x - x.mean(0)).square().mean(0).sqrt()


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
    corner_std = _pstd(xyxy).mean(0) if T > 1 else torch.zeros_like(conf)
    conf_std = _pstd(probs[:, cls, ar]) if T > 1 else torch.zeros_like(conf)
    size = (mean[2].clamp_min(EPS) * mean[3].clamp_min(EPS)).sqrt()
    return {"conf": conf, "entropy": pe[0], "exp_entropy": ee[0], "mutual_info": mi[0],
            "cls_unc": (binary_entropy(conf) / LN2).clamp(0, 1), "conf_std": conf_std, "corner_std": corner_std,
            "box_spread": corner_std / size}


# ------------------------------------------------------------------------------------------------------ mc_predict
METHODS = ("cached", "dense", "full")
DET_COLUMNS = ["stem", "det", "cls", "x0", "y0", "x1", "y1", "conf", "above", "cls_unc", "entropy", "exp_entropy",
               "mutual_info", "conf_std", "box_std", "box_spread"]
IMG_COLUMNS = ["stem", "path", "width", "height", "n_det", "n_cand", "max_prob", "count_mean", "count_var"]
_DTYPES = {"stem": str, "path": str, "det": np.int64, "cls": np.int64, "above": bool, "width": np.int64,
           "height": np.int64, "n_det": np.int64, "n_cand": np.int64}  # every other column: float64


def _column(name, values) -> np.ndarray:
    return np.asarray(values, dtype=_DTYPES.get(name, np.float64))


@dataclass
class MCResult:
    """Output of :func:`mc_predict` / :meth:`MCScorer.score`.

    ``detections``: one row per candidate detection (see ``DET_COLUMNS``; boxes ``x0 y0 x1 y1`` in original image
    pixels, ``above`` = confidence above the auto-label threshold).  ``images``: one row per image (``IMG_COLUMNS``:
    ``stem, path, width, height, n_det, n_cand, max_prob, count_mean, count_var``).  ``embeddings``: (n_images, C)
    pooled features, rows in the order of ``images`` (None when not asked for).  ``seconds``: wall time of the
    scoring.
    """

    detections: pd.DataFrame
    images: pd.DataFrame
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0
    embeddings: np.ndarray | None = None

    # ---- one representation for memory, part files and Ray: plain NumPy arrays (no pickle)
    def to_arrays(self) -> dict:
        """``{"img_<col>": array, "det_<col>": array, "emb": (n, C) float32}`` (``emb`` only with embeddings)."""
        out = {f"img_{c}": _column(c, self.images[c]) for c in IMG_COLUMNS}
        out.update({f"det_{c}": _column(c, self.detections[c]) for c in DET_COLUMNS})
        if self.embeddings is not None:
            out["emb"] = np.asarray(self.embeddings, dtype=np.float32)
        return out

    @classmethod
    def from_arrays(cls, arrays, settings: dict | None = None, seconds: float = 0.0) -> "MCResult":
        """Inverse of :meth:`to_arrays` (a dict or an open ``.npz``); dtypes are always those of ``_DTYPES``."""
        img = pd.DataFrame({c: _column(c, arrays[f"img_{c}"]) for c in IMG_COLUMNS}, columns=IMG_COLUMNS)
        det = pd.DataFrame({c: _column(c, arrays[f"det_{c}"]) for c in DET_COLUMNS}, columns=DET_COLUMNS)
        emb = np.asarray(arrays["emb"], dtype=np.float32) if "emb" in arrays else None
        return cls(det, img, dict(settings or {}), seconds, emb)

    @classmethod
    def concat(cls, results, settings: dict | None = None, seconds: float = 0.0) -> "MCResult":
        """Results of several batches (MCResults or :meth:`to_arrays` dicts), in the order given, as one."""
        return cls.from_arrays(_concat_arrays([r.to_arrays() if isinstance(r, MCResult) else r for r in results]),
                               settings, seconds)


def _concat_arrays(arrs: list) -> dict:
    """Concatenate :meth:`MCResult.to_arrays` dicts (``emb`` only when every one has it)."""
    if not arrs:
        return {**{f"img_{c}": [] for c in IMG_COLUMNS}, **{f"det_{c}": [] for c in DET_COLUMNS}}
    out = {k: np.concatenate([np.asarray(a[k]) for a in arrs]) for k in arrs[0] if k != "emb"}
    if all("emb" in a for a in arrs):
        out["emb"] = np.concatenate([a["emb"] for a in arrs])
    return out


def _resolve_imgsz(net, imgsz):
    from ultralytics.utils.checks import check_imgsz

    stride = int(max(net.stride.max().item(), 32)) if hasattr(net, "stride") else 32
    if imgsz is None:
        imgsz = int((getattr(net, "args", None) or {}).get("imgsz", 640)) if isinstance(getattr(net, "args", None),
                                                                                          dict) else 640
    return int(check_imgsz(int(imgsz), stride=stride, min_dim=1, floor=stride)), stride


def torch_device(device=None) -> torch.device:
    """A torch device from what ultralytics accepts too: None/"cpu", "0" or 0 (first GPU), "cuda:1", "mps"."""
    if device is None or device == "":
        return torch.device("cpu")
    if isinstance(device, int) or (isinstance(device, str) and device.strip().isdigit()):
        return torch.device(f"cuda:{int(device)}")
    return torch.device(str(device))


def nms_counts(prediction: torch.Tensor, conf: float, iou: float, max_det: int = 300, max_wh: int = 7680,
               max_nms: int = 30000) -> np.ndarray:
    """Detections per row that ultralytics' ``non_max_suppression(prediction, conf, iou, max_det=max_det)`` keeps.

    ``prediction`` is ``(R, 4 + nc, A)`` (boxes xywh, class probabilities), e.g. the ``B * T`` MC passes.  The same
    rules (best class per anchor above ``conf``, at most ``max_nms`` by confidence, class-aware NMS by a ``max_wh``
    offset, ``max_det``), with the per-row work reduced to the rows' candidates: counting the detections of every
    pass was a third of the scoring time through the general function.  Each row is computed on its own.
    """
    import torchvision
    from ultralytics.utils.ops import xywh2xyxy

    scores, cls = prediction[:, 4:].max(1)  # (R, A): best class per anchor
    cand = scores > conf
    n = cand.sum(1).cpu().numpy()
    out = np.minimum(n, 1)  # 0 or 1 candidate: nothing to suppress
    for r in np.flatnonzero(n > 1):
        idx = cand[r].nonzero()[:, 0]
        sc = scores[r, idx]
        if len(idx) > max_nms:
            keep = sc.argsort(descending=True)[:max_nms]
            idx, sc = idx[keep], sc[keep]
        boxes = xywh2xyxy(prediction[r, :4, idx].T) + cls[r, idx, None].to(prediction.dtype) * max_wh
        out[r] = min(len(torchvision.ops.nms(boxes, sc, iou)), max_det)
    return out


def _items(images) -> list:
    """``(stem, path)`` pairs from paths or pairs (the stem defaults to the file stem)."""
    return [(str(it[0]), it[1]) if isinstance(it, (tuple, list)) else (Path(it).stem, it) for it in images]


class MCScorer:
    """A model prepared once for MC-dropout scoring: :meth:`score` turns any list of images into an :class:`MCResult`.

    One scorer per process or worker (a Ray actor holds one: :mod:`alnb.acquisition.scoring`).  Parameters are those of
    :func:`mc_predict`; ``settings`` records them.  Every image's result is independent of the others (see
    "Per-image determinism" above), so any split of a pool into calls gives the same rows.
    """

    def __init__(self, model, *, T: int = 20, conf: float = 0.25, iou: float = 0.7, imgsz: int | None = None,
                 batch: int = 8, p: float | None = None, device=None, cand_conf: float | None = None, seed: int = 0,
                 method: str = "cached", max_det: int = 300, count_passes: bool = True, embed: bool = True):
        if T < 1:
            raise ValueError(f"T must be >= 1, got {T}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if int(batch) < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        cand_conf = conf / 2 if cand_conf is None else float(cand_conf)
        if cand_conf > conf:
            raise ValueError(f"cand_conf={cand_conf} must not exceed conf={conf}")
        import torchvision  # noqa: F401  (ultralytics' NMS uses torchvision's C++ kernel only once it is imported;
        # otherwise a slow Python loop: docs/design/mc-dropout.md)

        self.device = torch_device(device)
        net = _prepare_net(model, self.device)
        if not dropout_modules(net):
            raise ValueError("this model has no dropout head: train it with alnb.model.train (or call "
                             "alnb.model.dropout.install_dropout_head(model, p)) before MC scoring.")
        set_mc(net, on=True, p=p)
        self.net = net
        self.imgsz, self.stride = _resolve_imgsz(net, imgsz)
        self.head = net.model[-1]
        if getattr(self.head, "end2end", False):
            raise NotImplementedError("MC scoring needs an NMS-based detection head (YOLOv8/v9/11 style); this model "
                                      "is end-to-end (one-to-one head).")
        self.T, self.conf, self.iou, self.batch, self.cand_conf = int(T), float(conf), float(iou), int(batch), cand_conf
        self.seed, self.method, self.max_det = int(seed), method, int(max_det)
        self.count_passes, self.embed = bool(count_passes), bool(embed)
        self.settings = {"T": self.T, "conf": conf, "cand_conf": cand_conf, "iou": iou, "imgsz": self.imgsz,
                         "batch": self.batch, "p": float(dropout_modules(net)[0].p), "seed": self.seed,
                         "method": method, "nc": int(self.head.nc)}

    def score(self, images, progress: bool = False, workers: int | None = None) -> MCResult:
        """Score ``images`` (paths or ``(stem, path)`` pairs) in batches of ``batch``; rows in the order given.

        ``workers`` batches are scored at once in threads of this process (default on CPU: the thread count of the
        enclosing :func:`alnb.core.cpu.cpu_threads` block, else 1), each on one intra-op thread (:func:`batch_invariant`),
        so the numbers never depend on it.
        """
        from tqdm.auto import tqdm

        items = _items(images)
        if workers is None:
            workers = (current_threads() or 1) if self.device.type == "cpu" else 1
        starts = range(0, len(items), self.batch)
        t0 = time.perf_counter()

        def one(b0):
            with torch.inference_mode():  # grad modes are per thread
                return self._score_batch(items[b0:b0 + self.batch])

        with batch_invariant(self.device), tqdm(total=len(starts), desc=f"MC scoring (T={self.T})",
                                                 disable=not progress, unit="batch") as bar:
            if workers <= 1 or len(starts) <= 1:
                parts = []
                for b0 in starts:
                    parts.append(one(b0))
                    bar.update(1)
            else:
                with ThreadPoolExecutor(max_workers=int(workers)) as pool:
                    parts = []
                    for part in pool.map(one, starts):  # in order
                        parts.append(part)
                        bar.update(1)
        return MCResult.from_arrays(_concat_arrays(parts), self.settings, time.perf_counter() - t0)

    def _score_batch(self, chunk) -> dict:
        ims = [read_image(path) for _, path in chunk]
        boxed = [letterbox_one(im, self.imgsz, self.stride) for im in ims]
        groups = {}
        for i, b in enumerate(boxed):  # one network call per letterboxed shape
            groups.setdefault(b.shape, []).append(i)
        rows = [None] * len(chunk)
        for idx in groups.values():
            for i, r in zip(idx, self._score_group([chunk[i] for i in idx], [ims[i] for i in idx],
                                                   [boxed[i] for i in idx])):
                rows[i] = r
        return _concat_arrays(rows)

    def _score_group(self, chunk, ims, boxed) -> list:
        """Results (one :meth:`MCResult.to_arrays` dict per image) of images that share one letterboxed shape."""
        from ultralytics.utils import ops
        from ultralytics.utils.nms import non_max_suppression

        T, conf, iou, net, head = self.T, self.conf, self.iou, self.net, self.head
        x = to_tensor(boxed).to(self.device)
        keys = image_keys([s for s, _ in chunk], self.seed, self.device)
        feats = backbone_features(net, x) if (self.method != "full" or self.embed) else None
        emb = pooled_features(feats).cpu().numpy() if self.embed else None
        if self.method == "cached":
            samples = sparse_head_samples(head, feats, T, self.cand_conf, keys)
        elif self.method == "dense":
            samples = head_samples(head, feats, T, keys=keys)
        else:
            samples = full_samples(net, x, T, keys)
        mean = samples.mean(1)
        dets, keep = non_max_suppression(mean, self.cand_conf, iou, max_det=self.max_det, return_idxs=True)
        max_prob = mean[:, 4:].amax((1, 2)).cpu().numpy()
        if self.count_passes:
            counts = nms_counts(samples.reshape(-1, *samples.shape[2:]), conf, iou, self.max_det)
            counts = counts.astype(np.float64).reshape(len(chunk), T)
        else:
            counts = np.full((len(chunk), T), np.nan)
        out = []
        for bi, ((stem, path), im) in enumerate(zip(chunk, ims)):
            d, k = dets[bi], keep[bi].long().view(-1)
            h0, w0 = im.shape[:2]
            gain = min(x.shape[2] / h0, x.shape[3] / w0)
            boxes = ops.scale_boxes(x.shape[2:], d[:, :4].clone(), im.shape).cpu().numpy().astype(np.float64)
            cls = d[:, 5].long()
            st = {kk: v.cpu().numpy().astype(np.float64) for kk, v in anchor_stats(samples[bi][..., k], cls).items()}
            confs = d[:, 4].cpu().numpy().astype(np.float64)
            n = len(d)
            det = {"stem": [stem] * n, "det": np.arange(n), "cls": cls.cpu().numpy(), "x0": boxes[:, 0],
                   "y0": boxes[:, 1], "x1": boxes[:, 2], "y1": boxes[:, 3], "conf": confs, "above": confs > conf,
                   "cls_unc": st["cls_unc"], "entropy": st["entropy"], "exp_entropy": st["exp_entropy"],
                   "mutual_info": st["mutual_info"], "conf_std": st["conf_std"], "box_std": st["corner_std"] / gain,
                   "box_spread": st["box_spread"]}
            c = counts[bi]
            img = {"stem": [stem], "path": [str(path)], "width": [w0], "height": [h0],
                   "n_det": [int((confs > conf).sum())], "n_cand": [n], "max_prob": [float(max_prob[bi])],
                   "count_mean": [c.mean()], "count_var": [c.var() if T > 1 else 0.0]}
            arrays = {**{f"det_{kk}": _column(kk, v) for kk, v in det.items()},
                      **{f"img_{kk}": _column(kk, v) for kk, v in img.items()}}
            if emb is not None:
                arrays["emb"] = emb[bi:bi + 1]
            out.append(arrays)
        return out


def mc_predict(model, images, *, T: int = 20, conf: float = 0.25, iou: float = 0.7, imgsz: int | None = None,
               batch: int = 8, p: float | None = None, device=None, progress: bool = True,
               cand_conf: float | None = None, seed: int = 0, method: str = "cached", max_det: int = 300,
               count_passes: bool = True, embed: bool = True) -> MCResult:
    """Monte-Carlo-dropout detection with per-detection uncertainty.

    Parameters
    ----------
    model : YOLO | DetectionModel | path | TrainResult
        A detection model whose head carries :class:`~alnb.model.dropout.MCDropoutConv2d` (see
        :func:`alnb.model.dropout.install_dropout_head`).  It is copied; the caller's model is not modified.
    images : list of paths (or ``(stem, path)`` pairs)
        Images to score; the stem defaults to the file stem.  The stem is the image's identity for its dropout
        masks: stems must be unique.
    T : int
        Number of MC passes (``T=1`` with ``p=0`` is ordinary deterministic prediction).
    conf, iou : float
        Auto-label confidence threshold and NMS IoU (ultralytics' ``conf``/``iou``; a detection is kept when its
        confidence is strictly above ``conf``).
    imgsz : int, optional
        Inference size (default: the size the model was trained at, else 640); rounded up to the stride.
    batch : int
        Images per backbone pass (speed only: results do not depend on it).
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
        Seed of the dropout masks: with the stem it decides every mask of an image (:func:`dropout_keep`); torch's
        global random state is neither used nor changed.
    method : {"cached", "dense", "full"}
        ``cached`` (default) runs the backbone once and only the final head convs ``T`` times, the box conv only at
        anchors that can pass NMS (:func:`sparse_head_samples`); ``dense`` the same at every anchor
        (:func:`head_samples`); ``full`` runs ``T`` complete forward passes (the slow reference, for
        ``benchmarks/mc_speed.py``).  All three use the same masks.
    count_passes : bool
        Also NMS each pass to get the mean and variance of the detection count.
    embed : bool
        Also return each image's pooled features (:func:`pooled_features`) in ``MCResult.embeddings``.

    Returns
    -------
    MCResult
    """
    scorer = MCScorer(model, T=T, conf=conf, iou=iou, imgsz=imgsz, batch=batch, p=p, device=device,
                      cand_conf=cand_conf, seed=seed, method=method, max_det=max_det, count_passes=count_passes,
                      embed=embed)
    return scorer.score(images, progress=progress)


# ------------------------------------------------------------------------------------------------- untrained models
def untrained_dropout_model(model: str = "yolov8n.yaml", imgsz: int = 64, p: float = 0.1, seed: int = 0,
                            cls_bias: float | None = None):
    """A YOLO with random weights and a dropout head whose outputs are not degenerate (tests and speed benchmarks).

    An untrained YOLO's activations vanish (every anchor gets the same score), so BatchNorm statistics are
    re-estimated on random images; ``cls_bias`` (e.g. -2.0) raises the class biases so that some anchors pass the
    usual confidence thresholds.  Never use it to score real data.
    """
    import torch

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

