"""The score table (``scores.csv``, one row per POOL image): reading and validating it.

Kept below :mod:`alnb.loop.selection` and :mod:`alnb.labels.labelio`, which both read it, so neither has to import the other for it
(``alnb.loop.selection`` re-exports these names).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alnb.core.workspace import Workspace, WorkspaceError


class SelectionError(ValueError):
    """A selection that breaks a rule (thresholds out of order, budget too large, forbidden images...)."""


# -------------------------------------------------------------------------------------------------------- score table
SCORES_DIR = "scores"  # <workspace>/scores/<MODEL>/: each model's scoring outputs (the top-level files: the latest)


def scores_file(ws: Workspace, name: str = "scores.csv", model: str | None = None):
    """Where a scoring output lives: ``<workspace>/<name>`` (the latest scoring) or, for ``model``, that model's copy
    ``<workspace>/scores/<model>/<name>`` -- falling back to the latest one when it was scored by ``model`` (a
    workspace scored before per-model copies existed)."""
    top = ws.root / name
    if model is None:
        return top
    own = ws.root / SCORES_DIR / model / name
    if own.is_file():
        return own
    if (ws.root / "scores.csv").is_file():
        try:
            latest = pd.read_csv(ws.root / "scores.csv", usecols=["model"], nrows=1)["model"]
        except (ValueError, KeyError):
            latest = pd.Series(dtype=str)
        if len(latest) and str(latest.iloc[0]) == str(model):
            return top
    return own


def load_scores(ws: Workspace, model: str | None = None) -> pd.DataFrame:
    """Read ``<workspace>/scores.csv`` (written by the scoring step, notebook 02; ``model``: that model's scores,
    :func:`scores_file`) and check its columns."""
    p = scores_file(ws, "scores.csv", model)
    if not p.is_file():
        what = f"score the POOL with {model} (alnb score --model {model})" if model else (
            "run notebook 02 (auto-label + MC-dropout scoring)")
        raise WorkspaceError(f"{p} missing: {what} first.")
    return check_scores(pd.read_csv(p, dtype={"stem": str}, keep_default_na=False), source=str(p))


def check_scores(scores: pd.DataFrame, source: str = "score table") -> pd.DataFrame:
    """Validate and normalise a score table: ``stem`` unique, ``score`` numeric, ``failed`` boolean (default False)."""
    missing = [c for c in ("stem", "score") if c not in scores.columns]
    if missing:
        raise SelectionError(f"{source} lacks column(s) {missing}; it needs at least 'stem' and 'score'.")
    s = scores.copy()
    s["stem"] = s["stem"].astype(str)
    if s["stem"].duplicated().any():
        raise SelectionError(f"{source} has duplicate stems, e.g. {s.loc[s['stem'].duplicated(), 'stem'].iloc[0]!r}.")
    s["score"] = pd.to_numeric(s["score"], errors="coerce").astype(float)
    if "failed" not in s.columns:
        s["failed"] = False
    s["failed"] = s["failed"].map(lambda v: str(v).strip().lower() in ("1", "true", "yes", "1.0")).astype(bool)
    # An image without a finite score can only be handled as failed (it has no place on the score axis).
    s.loc[~np.isfinite(s["score"]), "failed"] = True
    return s.reset_index(drop=True)
