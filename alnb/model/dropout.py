"""Dropout inside the YOLO detection head (the base of MC-dropout uncertainty).

Ultralytics' ``Detect`` head ends every box branch (``cv2[i]``) and class branch (``cv3[i]``) with a plain 1x1
``nn.Conv2d``.  :func:`install_dropout_head` swaps each of those for :class:`MCDropoutConv2d`, a ``Conv2d`` subclass
that applies (channel-wise, i.e. input-feature) dropout before the convolution when the module is training **or**
when MC mode is on.  Weights are reused as they are, so state-dict keys do not change, EMA copies and pickled
checkpoints keep the class (this module must be importable wherever a checkpoint is loaded: ``import alnb``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MCDropoutConv2d(nn.Conv2d):
    """``nn.Conv2d`` with dropout on its input; active when ``self.training`` or ``self.mc`` is True."""

    p: float = 0.1
    mc: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D401
        if self.p > 0 and (self.training or self.mc):
            x = F.dropout(x, self.p, training=True)
        return super().forward(x)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", p={self.p}, mc={self.mc}"

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, p: float) -> "MCDropoutConv2d":
        """Turn an existing Conv2d into an MCDropoutConv2d in place (same parameters, same object identity)."""
        if type(conv) is not nn.Conv2d and not isinstance(conv, cls):
            raise TypeError(f"expected nn.Conv2d, got {type(conv).__name__}")
        conv.__class__ = cls
        conv.p = float(p)
        conv.mc = False
        return conv


def detect_head(model: nn.Module):
    """The ultralytics ``Detect`` module (last layer) of a DetectionModel or YOLO wrapper."""
    # heavy, imported where used (not at module import): ultralytics
    from ultralytics.nn.modules.head import Detect

    net = getattr(model, "model", model)  # YOLO -> DetectionModel
    net = getattr(net, "model", net)  # DetectionModel -> Sequential
    for m in reversed(list(net.modules()) if not isinstance(net, nn.Sequential) else list(net)):
        if isinstance(m, Detect):
            return m
    raise ValueError("no ultralytics Detect head found in this model")


def final_convs(model: nn.Module) -> list:
    """The final 1x1 prediction convs of every box and class branch (one2many and, if present, one2one)."""
    head = detect_head(model)
    convs = []
    for name in ("cv2", "cv3", "one2one_cv2", "one2one_cv3"):
        branches = getattr(head, name, None)
        if branches is not None:
            convs += [seq[-1] for seq in branches]
    return convs


def install_dropout_head(model: nn.Module, p: float = 0.1) -> nn.Module:
    """Swap the final prediction convs of the detection head for :class:`MCDropoutConv2d` (idempotent)."""
    if not 0 <= p < 1:
        raise ValueError(f"dropout p must be in [0, 1), got {p}")
    for conv in final_convs(model):
        MCDropoutConv2d.from_conv(conv, p)
    return model


def dropout_modules(model: nn.Module) -> list:
    return [m for m in getattr(model, "modules", lambda: [])() if isinstance(m, MCDropoutConv2d)]


def set_mc(model: nn.Module, on: bool = True, p: float | None = None) -> int:
    """Switch MC mode on/off for all dropout head convs (optionally change p); returns how many were set."""
    mods = dropout_modules(model)
    for m in mods:
        m.mc = bool(on)
        if p is not None:
            m.p = float(p)
    return len(mods)
