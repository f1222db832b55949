"""Display layer for notebooks: tables that survive saving (itables, offline), the difficulty bars as HTML, training
logs folded into a file with a short summary.  Figures are in :mod:`alnb.figures.plots`, widgets in :mod:`alnb.ui.widgets`;
nothing here computes a score."""

from __future__ import annotations

import math
import os

import pandas as pd


# ------------------------------------------------------------------------------------------ tables that survive saving
def init_tables():
    """Load itables' JavaScript into the notebook once, offline (no CDN): sortable, paged, searchable tables in a
    live or trusted notebook; a saved notebook that is not trusted shows itables' static preview (the first rows and
    "(N more rows not shown)")."""
    # heavy, imported where used (not at module import): itables, alnb.figures.plots (matplotlib)
    import itables

    itables.init_notebook_mode(all_interactive=False, connected=False)  # only the tables we ask for


def interactive_table(df: pd.DataFrame, caption: str | None = None, page: int = 10, html_columns=()):
    """``df`` as an itables DataTable (:func:`init_tables` first): every row, sortable by any column, paged with
    "Showing 1 to 10 of N entries"; ``html_columns`` hold HTML (the difficulty bars)."""
    import itables

    return itables.show(df, caption=caption, pageLength=page, allow_html=bool(html_columns), maxBytes=0,
                        classes="display compact", text_in_header_can_be_selected=False)  # a click sorts


def bars_cell(tier: str, failed: bool) -> str:
    """The difficulty bars of one row as inline HTML with the tier's name (failed: 3 purple bars)."""
    from alnb.figures.plots import BAR_OFF, TIER_COLOURS, n_bars

    cat = "failed" if failed else tier
    n, col = n_bars(cat), TIER_COLOURS.get(cat, BAR_OFF)
    cells = "".join(f'<span style="display:inline-block;width:7px;height:{6 + 4 * i}px;margin-right:2px;'
                    f'vertical-align:bottom;background:{col if i < n else BAR_OFF}"></span>' for i in range(3))
    return f'{cells} {cat}'


def difficulty_frame(scores: pd.DataFrame, columns=("stem", "score", "n_det", "cls_unc", "mutual_info",
                                                    "box_spread", "least_conf")) -> pd.DataFrame:
    """The score table for people: hardest first, a ``difficulty`` column with the bars and the category (failed
    counted apart), the score columns rounded to 3 digits."""
    df = scores.sort_values("score", ascending=False, kind="mergesort") if "score" in scores else scores
    out = pd.DataFrame({"difficulty": [bars_cell(str(t), bool(f)) for t, f in
                                       zip(df.get("tier", ""), df.get("failed", False))]}, index=df.index)
    for c in columns:
        if c in df:
            out[c] = df[c].round(3) if pd.api.types.is_float_dtype(df[c]) else df[c]
    return out.reset_index(drop=True)


# ------------------------------------------------------------------------------------------------- quiet training
from alnb.core.logs import FoldedLog, folded_log  # noqa: E402,F401  (the notebooks' import; the class lives in alnb.core.logs)


def training_summary(res, log: FoldedLog | None = None, root=None) -> str:
    """A few lines on a training run (:class:`alnb.model.train.TrainResult`): trained or reused, epochs, images, seconds,
    and, from ``results.csv``, ultralytics' VAL1 mAP50 at the best and at the last validated epoch (saying so when
    the last is the best: still improving when training stopped).  ``root``: paths are shown relative to it."""
    info = res.info
    lines = [f"{res.name}: {'reused (same data and settings)' if res.reused else 'trained'}, "
             f"{info.get('epochs_run', '?')} epoch(s) on {info.get('n_train', '?')} images in {res.seconds:.0f} s"]
    try:
        df = pd.read_csv(res.results_csv).rename(columns=lambda c: c.strip())
    except (OSError, ValueError):
        df = None
    col = "metrics/mAP50(B)"
    if df is not None and col in df and df[col].notna().any():
        d = df[["epoch", col]].dropna()
        best, last = d.loc[d[col].idxmax()], d.iloc[-1]
        rising = int(best["epoch"]) == int(last["epoch"]) and len(d) > 1 and last[col] > d[col].iloc[-2]
        lines.append(f"  ultralytics' VAL1 mAP50 during training: best {best[col]:.3f} at epoch {int(best['epoch'])}, "
                     f"last validated {last[col]:.3f} at epoch {int(last['epoch'])}"
                     + (" (still rising at the last epoch: more epochs may help)" if rising else ""))
    if log is not None:
        shown = os.path.relpath(log.path, root) if root is not None else str(log.path)
        lines.append(f"  full log: {shown} ({log.lines} lines)")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ durations
def format_hours(hours: float) -> str:
    """A labelling time for people: ``1.4 h`` from one hour on, ``25 min`` below it (so a small selection never
    reads ``0.0 h``), ``< 1 min`` below a minute, ``n/a`` when unknown."""
    try:
        h = float(hours)
    except (TypeError, ValueError):
        return "n/a"
    if not math.isfinite(h):
        return "n/a"
    minutes = h * 60
    if round(minutes) >= 60:
        return f"{h:.1f} h"
    return f"{minutes:.0f} min" if minutes >= 0.5 else "< 1 min"
