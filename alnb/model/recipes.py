"""The round recipes: how a round model (CAL_k, Control_k, a study's models) is trained -- kept light (no torch) so the
command line can list them without importing the trainer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    """How a round model is trained (:attr:`Profile.round_recipe`; measured side by side by
    ``benchmarks/round_recipe.py``).

    ``warm``: start from the previous round's model (the chain's own, :func:`alnb.loop.pipeline.warm_start_run`)
    for the profile's ``finetune_epochs``; else from the profile's ``start`` for its full ``epochs``, as CAL1.
    ``lr_scale``: a warm start's ``lr0`` is the profile's times this.  ``shrink`` / ``perturb``: shrink and perturb
    (Ash & Adams, NeurIPS 2020) -- every weight tensor of the start is scaled by ``shrink`` and gets Gaussian noise
    of ``perturb`` times its own standard deviation (:func:`shrink_perturb_checkpoint`) before training.
    """

    name: str
    warm: bool
    lr_scale: float = 1.0
    shrink: float | None = None
    perturb: float = 0.0


RECIPES = {r.name: r for r in (
    Recipe("finetune", warm=True),
    Recipe("finetune-lowlr", warm=True, lr_scale=0.25),
    Recipe("shrink-perturb", warm=True, shrink=0.5, perturb=0.01),
    Recipe("fresh", warm=False),
)}
