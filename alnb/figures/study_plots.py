"""Figures of the strategy study (:mod:`alnb.loop.study`) and of the score evaluation (:mod:`alnb.acquisition.difficulty`).

Every function returns a matplotlib ``Figure`` (save it with :func:`alnb.figures.plots.save_figure`); text is >= 8 pt.
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

try:  # figures outside pyplot that show once in a notebook (alnb.figures.plots), else plain pyplot figures
    from alnb.figures.plots import new_figure as _new_figure
except ImportError:  # pragma: no cover - older alnb.figures.plots
    def _new_figure(nrows=1, ncols=1, *, figsize, **kw):
        return plt.subplots(nrows, ncols, figsize=figsize, **kw)

from alnb.figures.plots import strategy_colour  # noqa: E402  (one colour per strategy; random = Control)

FONT = 8  # smallest text size on these figures (legible at 100 % zoom)
X_LABELS = {"images": "images labelled (on top of GT1)",
            "labelling_s": "labelling time (s, cost model:\ncorrecting the chain's previous model's auto-labels)"}
TEXT_OFFSET = 0.005  # verdict label height above the highest point (metric units)


def _colours(names) -> dict:
    """``{strategy: colour}``: each strategy's one colour (:func:`alnb.figures.plots.strategy_colour`)."""
    return {n: strategy_colour(n) for n in names}


def learning_curves(summary: pd.DataFrame, *, x: str = "images", metrics=("mAP50", "mAP50-95"),
                    baseline: str = "gt1_only"):
    """mAP vs ``x`` per strategy: mean over seeds with 95 % interval bars; every curve starts at GT1 alone."""
    fig, axes = _new_figure(1, len(metrics), figsize=(min(9.5, 4.75 * len(metrics)), 3.8), squeeze=False)
    base = summary[summary["strategy"] == baseline]
    names = [s for s in summary["strategy"].unique() if s != baseline]
    col = _colours(names)
    for ax, m in zip(axes[0], metrics):
        for s in names:
            g = summary[summary["strategy"] == s]
            g = pd.concat([base, g]).sort_values(x)
            y = g[m].to_numpy(float)
            lo, hi = g.get(f"{m}_lo", pd.Series(np.nan, index=g.index)), g.get(f"{m}_hi",
                                                                             pd.Series(np.nan, index=g.index))
            err = np.vstack([y - lo.to_numpy(float), hi.to_numpy(float) - y])
            err = np.where(np.isfinite(err), err, 0.0)
            ax.errorbar(g[x].to_numpy(float), y, yerr=err, marker="o", ms=4, capsize=3, lw=1.5, color=col[s],
                        label=s, ls="--" if s == "random" else "-")
        ax.set_xlabel(X_LABELS.get(x, x), fontsize=FONT + 1)
        ax.set_ylabel(f"{m} on VAL1", fontsize=FONT + 1)
        ax.tick_params(labelsize=FONT)
        ax.grid(alpha=0.3)
    n = int(summary["n_seeds"].max()) if len(summary) else 0
    axes[0][0].legend(fontsize=FONT, loc="lower right")
    fig.suptitle(f"Learning curves: mean over {n} seed(s), bars = 95 % interval (leftmost point: GT1 alone)",
                 fontsize=FONT + 2)
    fig.tight_layout()
    return fig


def paired_difference(diffs: pd.DataFrame, verdicts: pd.DataFrame, *, metric: str = "mAP50"):
    """Per strategy and budget: each seed's difference to random (dots) and the mean with its 95 % interval."""
    keys = list(dict.fromkeys(zip(verdicts["strategy"], verdicts["budget"].astype(str))))
    # one column per (strategy, budget), wide enough that neighbouring labels never overlap (14 columns: 16 in)
    fig, ax = _new_figure(figsize=(min(16.0, max(5.0, 1.05 * len(keys) + 1.5)), 3.8))
    col = _colours([k[0] for k in keys])
    texts = []
    for i, (s, b) in enumerate(keys):
        d = diffs[(diffs["strategy"] == s) & (diffs["budget"].astype(str) == b)]["diff"].to_numpy(float)
        ax.scatter(np.full(len(d), i) + np.linspace(-0.12, 0.12, len(d)) if len(d) > 1 else np.full(len(d), i), d,
                   color=col[s], alpha=0.6, s=18)
        v = verdicts[(verdicts["strategy"] == s) & (verdicts["budget"].astype(str) == b)].iloc[0]
        if np.isfinite(v["lo"]):
            ax.errorbar([i + 0.3], [v["mean_diff"]], yerr=[[v["mean_diff"] - v["lo"]], [v["hi"] - v["mean_diff"]]],
                        fmt="D", color=col[s], capsize=4)
        top = np.nanmax(np.r_[d, float(v["hi"]), 0.0])  # label above the highest dot / interval end
        label = str(v["verdict"]).replace("detectable ", "detectable\n").replace("few ", "few\n")
        texts.append(ax.text(i, top + TEXT_OFFSET, label, ha="center", va="bottom", fontsize=FONT))
    ax.set_xlim(-0.6, len(keys) - 0.4)
    for _ in range(4):  # headroom for the labels, measured (a label's height in data units grows with the range)
        fig.canvas.draw()
        lo, hi = ax.get_ylim()
        inv = ax.transData.inverted()
        need = max(inv.transform((0, t.get_window_extent().y1))[1] for t in texts) if texts else hi
        if need <= hi:
            break
        ax.set_ylim(lo, need + 0.04 * (need - lo))
    ax.axhline(0, color="k", lw=1, ls=":")
    ax.set_xticks(range(len(keys)), [f"{s}\n@{b}" for s, b in keys], fontsize=FONT)
    ax.set_ylabel(f"{metric}: strategy - random (same seed)", fontsize=FONT + 1)
    ax.tick_params(labelsize=FONT)
    ax.set_title("Paired difference to random: dots = seeds, diamond = mean with 95 % interval", fontsize=FONT + 1)
    fig.tight_layout()
    return fig


def difficulty_comparison(dve: dict):
    """Every strategy's score against auto-label errors (``metrics/difficulty_vs_errors.json``): image AUROC and
    Spearman(errors) on non-failed images, |Spearman(candidate count)|, and the box-level AUROCs.

    Each panel names its measure on its x axis, its title is wrapped to the panel and its legend sits under it (never
    on the longest, best bars)."""
    st = pd.DataFrame(dve.get("strategies", {})).T
    n_panels = 3 if dve.get("box_level") else 2
    fig, axes = _new_figure(1, n_panels, figsize=(9.5, 4.6), squeeze=False)
    axes = axes[0]

    def title(ax, text):
        ax.set_title(textwrap.fill(text, 34), fontsize=FONT + 1)

    def legend(ax):
        ax.legend(fontsize=FONT, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)

    if len(st):
        names = list(st.index)
        y = np.arange(len(names))
        ax = axes[0]
        ax.barh(y - 0.2, st["auroc"].astype(float), height=0.4, color="#d62728", label="non-failed images")
        if "auroc_all_images" in st:
            ax.barh(y + 0.2, st["auroc_all_images"].astype(float), height=0.4, color="#bbbbbb",
                    label="all images (failed included)")
        ax.axvline(0.5, color="k", ls=":", lw=1)
        ax.set_yticks(y, names, fontsize=FONT)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("AUROC (0.5 = chance)", fontsize=FONT + 1)
        legend(ax)
        title(ax, f"Does the score rank images with an error first? ({dve.get('n_nonfailed')} non-failed images)")
        ax = axes[1]
        ax.barh(y - 0.2, st["spearman_errors"].astype(float), height=0.4, color="#1f77b4",
                label="with the number of errors (FP + FN)")
        if "abs_spearman_candidates" in st:
            ax.barh(y + 0.2, st["abs_spearman_candidates"].astype(float), height=0.4, color="#ff7f0e",
                    label="|with the number of candidates|")
        ax.axvline(0, color="k", lw=1)
        ax.set_yticks(y, names, fontsize=FONT)
        ax.invert_yaxis()
        ax.set_xlim(-1, 1)
        ax.set_xlabel("Spearman rank correlation", fontsize=FONT + 1)
        legend(ax)
        title(ax, "How many errors? Or just how many boxes?")
    if dve.get("box_level"):
        bl = {k: v for k, v in dve["box_level"].items() if v is not None and np.isfinite(v)}
        ax = axes[2]
        ax.barh(list(bl), list(bl.values()), color="#9467bd")
        ax.axvline(0.5, color="k", ls=":", lw=1)
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.set_xlabel("AUROC (0.5 = chance)", fontsize=FONT + 1)
        title(ax, f"Box level: does the box's uncertainty flag a false positive? ({dve.get('n_fp_boxes')} "
                  f"FP of {dve.get('n_boxes')} boxes)")
    for ax in axes:
        ax.tick_params(labelsize=FONT)
    fig.tight_layout()
    return fig
