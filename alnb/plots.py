"""Figure functions (each returns a matplotlib ``Figure``) and the one :func:`save_figure`.

Figure functions never call ``plt.show()``; notebooks display the returned figure, scripts save it.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

import matplotlib.pyplot as plt
import numpy as np

DPI = 150
FORMATS = ("png", "pdf", "svg")
TIER_COLOURS = {"easy": "#2ca02c", "medium": "#f2c500", "hard": "#d62728", "failed": "#7f3fbf"}
MODEL_COLOURS = {"CAL1": "#1f77b4", "CAL2": "#ff7f0e", "Control": "#7f7f7f"}


def save_figure(fig, name: str, out_dir, formats=FORMATS) -> dict:
    """Write ``fig`` as ``<out_dir>/<name>.{png,pdf,svg}`` (PNG at a fixed dpi, tight bounding box).

    ``out_dir`` may be a folder or a :class:`~alnb.workspace.Workspace` (its ``figures/`` folder is used).
    Returns ``{format: path}``.
    """
    out = Path(getattr(out_dir, "figures_dir", out_dir))
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for fmt in formats:
        p = out / f"{name}.{fmt}"
        kw = {"dpi": DPI} if fmt == "png" else {}
        if fmt == "svg":
            kw["metadata"] = {"Date": None}  # stable files for the same figure
        elif fmt == "pdf":
            kw["metadata"] = {"CreationDate": None}
        fig.savefig(p, bbox_inches="tight", format=fmt, **kw)
        paths[fmt] = p
    return paths


def class_distribution(counts: "dict[str, dict[str, int]]", title: str = "Instances per class"):
    """Grouped bar chart: ``counts`` maps subset name -> {class name: instances} (seaborn)."""
    import pandas as pd
    import seaborn as sns

    rows = [{"subset": s, "class": c, "instances": int(n)} for s, d in counts.items() for c, n in d.items()]
    df = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    sns.barplot(data=df, x="class", y="instances", hue="subset", ax=ax)
    ax.set_title(title)
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=20)
    for cont in ax.containers:
        ax.bar_label(cont, fontsize=7)
    fig.tight_layout()
    return fig


def draw_boxes(ax, image, boxes, names, colours=None, scores=None, lw=1.2):
    """Show ``image`` on ``ax`` with YOLO boxes (n, 5: cls cx cy w h normalised)."""
    h, w = image.shape[:2]
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    palette = plt.get_cmap("tab10")
    for i, (c, cx, cy, bw, bh) in enumerate(np.asarray(boxes, float).reshape(-1, 5)):
        col = colours[i] if colours is not None else palette(int(c) % 10)
        x0, y0 = (cx - bw / 2) * w, (cy - bh / 2) * h
        ax.add_patch(plt.Rectangle((x0, y0), bw * w, bh * h, fill=False, color=col, lw=lw))
        label = names[int(c)] + (f" {scores[i]:.2f}" if scores is not None else "")
        ax.text(x0, y0 - 2, label, color=col, fontsize=6, va="bottom")
    ax.set_axis_off()


def image_grid(items, names, ncols: int = 4, size: float = 2.6, title: str | None = None):
    """Grid of images with boxes.  ``items``: list of dicts ``{image, boxes, title?, colours?, scores?}``."""
    n = max(1, len(items))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, it in zip(axes.ravel(), items):
        draw_boxes(ax, it["image"], it.get("boxes", np.zeros((0, 5))), names, it.get("colours"), it.get("scores"))
        if it.get("title"):
            ax.set_title(it["title"], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def sample_images(ws, stems, ncols: int = 4, title: str | None = None):
    """Grid of dataset images with their trainable labels (hidden POOL labels are not shown)."""
    from alnb.workspace import load_image

    m = ws.manifest()
    items = []
    for s in stems:
        try:
            boxes = ws.trainable_labels(s, m)
        except Exception:  # noqa: BLE001 - hidden/unlabelled: show the image alone
            boxes = np.zeros((0, 5))
        items.append({"image": load_image(ws, s, m), "boxes": boxes, "title": s})
    return image_grid(items, ws.names, ncols=ncols, title=title)


# ------------------------------------------------------------------------------------- GT2 selection and comparison
def score_histogram(scores, t_medium: float, t_hard: float, bins: int = 40, title: str | None = None, ax=None):
    """Histogram of POOL image scores coloured by tier, with the two threshold lines (labels ``t_medium``/``t_hard``).

    ``scores``: table with ``score`` and ``failed`` (as ``scores.csv``).  Failed images have no place on the score
    axis; their count is given in the legend.  Returns the Figure.
    """
    from matplotlib.patches import Patch

    from alnb.select import categorise, check_scores

    s = check_scores(scores)
    cat = categorise(s, t_medium, t_hard)
    ok = ~s["failed"].to_numpy(bool)
    vals = s["score"].to_numpy(float)[ok]
    fig = ax.figure if ax is not None else plt.figure(figsize=(7, 3.4))
    ax = ax if ax is not None else fig.add_subplot(111)
    lo, hi = (float(vals.min()), float(vals.max())) if len(vals) else (0.0, 1.0)
    lo, hi = min(lo, t_medium), max(hi, t_hard)
    edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
    edges = np.unique(np.r_[edges, [t_medium, t_hard]])  # no bin straddles a threshold
    for tier in ("easy", "medium", "hard"):
        v = s["score"].to_numpy(float)[(cat == tier).to_numpy()]
        ax.hist(v, bins=edges, color=TIER_COLOURS[tier], label=f"{tier} ({len(v)})", alpha=0.9)
    n_failed = int((cat == "failed").sum())
    ax.axvline(t_medium, color="k", ls="--", lw=1, label="t_medium")
    ax.axvline(t_hard, color="k", ls="-", lw=1, label="t_hard")
    handles, _ = ax.get_legend_handles_labels()
    handles.insert(3, Patch(color=TIER_COLOURS["failed"], label=f"failed ({n_failed}, not on the axis)"))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("image difficulty score (higher = harder)")
    ax.set_ylabel("POOL images")
    ax.set_title(title or f"Difficulty of POOL images: t_medium={t_medium:.3g}, t_hard={t_hard:.3g}")
    ax.legend(handles=handles, fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def _grouped_bars(ax, table, value: str, models, colours=None):
    """Bars of ``table[value]`` per class (x) and model (hue); NaN (not measurable) is marked 'n/m'."""
    classes = list(dict.fromkeys(table["class"]))
    width = 0.8 / max(1, len(models))
    x = np.arange(len(classes))
    for i, mdl in enumerate(models):
        sub = table[table["model"] == mdl].set_index("class").reindex(classes)
        v = sub[value].to_numpy(float)
        pos = x - 0.4 + width * (i + 0.5)
        col = (colours or MODEL_COLOURS).get(mdl)
        ax.bar(pos, np.nan_to_num(v, nan=0.0), width, label=mdl, color=col)
        for p, val in zip(pos, v):
            ax.text(p, (0 if not np.isfinite(val) else val) + 0.01, "n/m" if not np.isfinite(val) else f"{val:.2f}",
                    ha="center", va="bottom", fontsize=6, rotation=90)
    ax.set_xticks(x, classes, rotation=20)
    ax.set_ylabel(value)


def compare_per_class(table, models=("CAL1", "CAL2", "Control"), metrics=("precision", "recall")):
    """Grouped bars per class for each model, one panel per metric.  ``table``: long format with columns
    ``model, class`` + the metrics (see :func:`alnb.report.per_class_table`).  n/m = not measurable on VAL1."""
    models = [m for m in models if m in set(table["model"])]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.8), squeeze=False)
    for ax, met in zip(axes[0], metrics):
        _grouped_bars(ax, table, met, models)
        ax.set_ylim(0, 1.15)
        ax.set_title(f"{met} per class on VAL1")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def compare_map(summary, models=("CAL1", "CAL2", "Control")):
    """Bars of mAP50 and mAP50-95 per model.  ``summary``: one row per model with ``model, mAP50, mAP50-95``."""
    s = summary.set_index("model").reindex([m for m in models if m in set(summary["model"])])
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    x = np.arange(2)
    width = 0.8 / max(1, len(s))
    for i, (mdl, row) in enumerate(s.iterrows()):
        v = np.array([row["mAP50"], row["mAP50-95"]], float)
        bars = ax.bar(x - 0.4 + width * (i + 0.5), np.nan_to_num(v), width, label=mdl, color=MODEL_COLOURS.get(mdl))
        ax.bar_label(bars, labels=[f"{t:.3f}" for t in v], fontsize=7)
    ax.set_xticks(x, ["mAP50", "mAP50-95"])
    ax.set_ylabel("mAP on VAL1")
    ax.set_title("mAP on VAL1")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def compare_efficiency(table, overall=None, models=("CAL1", "CAL2", "Control")):
    """Efficiency boost per class (grouped bars) plus, if ``overall`` ({model: boost}) is given, an overall panel.

    A boost of 1 (dotted line) means proposals save nothing; n/m = not measurable."""
    models = [m for m in models if m in set(table["model"])]
    fig, axes = plt.subplots(1, 2 if overall else 1, figsize=(11 if overall else 7, 3.8), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 1]} if overall else None)
    ax = axes[0][0]
    _grouped_bars(ax, table, "boost", models)
    top = np.nanmax(np.r_[1.0, table["boost"].to_numpy(float), list((overall or {}).values())])
    ax.set_ylim(0, 1.25 * top)
    ax.axhline(1, color="k", ls=":", lw=1)
    ax.set_title("Expected labelling-efficiency boost per class (VAL1)")
    ax.set_ylabel("boost (x)")
    ax.legend(fontsize=8)
    if overall:
        ax2 = axes[0][1]
        names = [m for m in models if m in overall]
        v = np.array([overall[m] for m in names], float)
        bars = ax2.bar(names, np.nan_to_num(v), color=[MODEL_COLOURS.get(m) for m in names])
        ax2.bar_label(bars, labels=[f"{t:.2f}x" for t in v], fontsize=8)
        ax2.axhline(1, color="k", ls=":", lw=1)
        ax2.set_ylim(0, 1.25 * top)
        ax2.set_title("overall")
    fig.tight_layout()
    return fig


def selection_overlap(ov: dict, a: str = "GT2", b: str = "Control"):
    """Horizontal stacked bar: images only in ``a``, in both, only in ``b`` (``ov`` from :func:`alnb.select.overlap`)."""
    fig, ax = plt.subplots(figsize=(6.5, 1.8))
    parts = [(f"{a} only", ov["only_a"], MODEL_COLOURS.get("CAL2")), ("both", ov["both"], "#8c564b"),
             (f"{b} only", ov["only_b"], MODEL_COLOURS.get("Control"))]
    left = 0
    for label, n, col in parts:
        ax.barh([0], [n], left=left, color=col, label=f"{label} ({n})")
        if n:
            ax.text(left + n / 2, 0, str(n), ha="center", va="center", color="white", fontsize=9)
        left += n
    ax.set_yticks([])
    ax.set_xlabel("POOL images")
    j = ov.get("jaccard", float("nan"))
    ax.set_title(f"Overlap of {a} and {b} (Jaccard {j:.2f})" if np.isfinite(j) else f"Overlap of {a} and {b}")
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.45))
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------- training and evaluation
def training_curves(results, title: str | None = None):
    """Training losses and validation metrics per epoch from an ultralytics ``results.csv`` (path or DataFrame).

    Left: box / class / DFL training losses.  Right: VAL1 precision, recall, mAP50, mAP50-95 (epochs without
    validation, see ``Profile.val_every``, are skipped, not drawn as 0).
    """
    import pandas as pd

    df = results if isinstance(results, pd.DataFrame) else pd.read_csv(results)
    df = df.rename(columns=lambda c: c.strip())
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for col, lab in (("train/box_loss", "box"), ("train/cls_loss", "class"), ("train/dfl_loss", "DFL")):
        if col in df:
            a1.plot(df["epoch"], df[col], marker=".", label=lab)
    a1.set_xlabel("epoch")
    a1.set_ylabel("training loss")
    a1.legend(fontsize=8)
    for col, lab in (("metrics/precision(B)", "precision"), ("metrics/recall(B)", "recall"),
                     ("metrics/mAP50(B)", "mAP50"), ("metrics/mAP50-95(B)", "mAP50-95")):
        if col in df:
            d = df[["epoch", col]].dropna()
            a2.plot(d["epoch"], d[col], marker=".", label=lab)
    a2.set_xlabel("epoch")
    a2.set_ylabel("VAL1")
    a2.set_ylim(0, 1)
    a2.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def per_class_pr(per_class, title: str | None = None, metrics=("precision", "recall")):
    """Grouped bars of precision and recall per class at the operating point.

    ``per_class``: DataFrame indexed by class name with the ``metrics`` columns, ``instances`` and ``measurable``
    (as :func:`alnb.metrics.per_class_frame` returns).  Classes that are not measurable (no instance in the set)
    get an 'n/m' mark instead of a bar; NaN precision (no prediction) is marked 'no pred'.
    """
    df = per_class
    x = np.arange(len(df))
    width = 0.8 / len(metrics)
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(df)), 3.6))
    for k, met in enumerate(metrics):
        vals = df[met].astype(float).to_numpy()
        pos = x - 0.4 + width * (k + 0.5)
        bars = ax.bar(pos, np.nan_to_num(vals), width, label=met)
        ax.bar_label(bars, labels=[f"{v:.2f}" if np.isfinite(v) else "" for v in vals], fontsize=7)
        for xi, v, meas in zip(pos, vals, df.get("measurable", np.ones(len(df), bool))):
            if not np.isfinite(v):
                ax.text(xi, 0.02, "n/m" if not meas else "no pred", ha="center", va="bottom", rotation=90,
                        fontsize=7, color="0.4")
    labels = [f"{c}\n(n={int(n)})" for c, n in zip(df.index, df["instances"])] if "instances" in df else list(df.index)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("at the operating point")
    ax.legend(fontsize=8, loc="upper right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def efficiency_per_class(per_class, overall: float | None = None, title: str | None = None):
    """Bars of the expected labelling efficiency boost per class (1 = no gain; 'n/m' = not measurable)."""
    df = per_class
    vals = df["boost"].astype(float).to_numpy()
    names = list(df.index) + (["overall"] if overall is not None else [])
    vals_all = np.append(vals, overall) if overall is not None else vals
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(names)), 3.4))
    cols = ["#1f77b4"] * len(vals) + (["#ff7f0e"] if overall is not None else [])
    bars = ax.bar(np.arange(len(names)), np.nan_to_num(vals_all), color=cols)
    ax.bar_label(bars, labels=[f"{v:.2f}x" if np.isfinite(v) else "n/m" for v in vals_all], fontsize=7)
    ax.axhline(1.0, color="0.3", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(names)), names, fontsize=8, rotation=15)
    ax.set_ylabel("manual time / assisted time")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ MC-dropout uncertainty (notebook 02)
def uncertainty_grid(ws, scores, detections, stems, ncols: int = 4, size: float = 2.8, cmap: str = "RdYlGn_r",
                     title: str | None = None):
    """Images with their auto-label boxes coloured by per-detection ``hybrid`` uncertainty (green = sure, red = unsure).

    ``scores``/``detections``: tables as ``scores.csv`` / ``detections.csv``; only detections above the auto-label
    threshold (``above``) are drawn.  Titles give stem, tier and score (``FAILED`` when nothing was found).
    """
    from alnb.metrics import xyxy_to_xywhn
    from alnb.workspace import load_image

    cm = plt.get_cmap(cmap)
    sc = scores.set_index("stem")
    det = detections[detections["above"].astype(str).str.lower().isin(["true", "1"])] if len(detections) else detections
    m = ws.manifest()
    items = []
    for s in stems:
        img = load_image(ws, s, m)
        d = det[det["stem"] == s]
        h, w = img.shape[:2]
        boxes = np.column_stack([d["cls"].to_numpy(), xyxy_to_xywhn(d[["x0", "y0", "x1", "y1"]].to_numpy(float), w, h)]) \
            if len(d) else np.zeros((0, 5))
        r = sc.loc[s]
        tag = "FAILED" if bool(r.get("failed", False)) else r.get("tier", "")
        items.append({"image": img, "boxes": boxes, "colours": [cm(float(u)) for u in d["hybrid"]],
                      "scores": d["hybrid"].to_numpy(float), "title": f"{s} | {tag} {float(r['score']):.2f}"})
    fig = image_grid(items, ws.names, ncols=ncols, size=size, title=title or "Auto-labels coloured by uncertainty")
    sm = plt.cm.ScalarMappable(cmap=cm, norm=matplotlib.colors.Normalize(0, 1))
    fig.colorbar(sm, ax=fig.axes, shrink=0.6, label="detection uncertainty (hybrid)")
    return fig


def errors_vs_difficulty(dve: dict, title: str | None = None):
    """Auto-label error rate per difficulty tier (hybrid score vs least-confidence tiers of equal size) + AUROCs.

    ``dve``: the dict of :func:`alnb.uncertainty.difficulty_vs_errors` (``metrics/difficulty_vs_errors.json``).
    """
    tiers = ["easy", "medium", "hard", "failed"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    xs = np.arange(len(tiers))
    for off, key, lab, hatch in [(-0.2, "tiers", "MC-dropout hybrid score", None),
                                 (0.2, "least_conf_tiers", "least confidence (1 - max score)", "//")]:
        t = dve[key]
        vals = [t[k]["error_rate"] if t[k]["error_rate"] is not None else np.nan for k in tiers]
        cols = [TIER_COLOURS[k] for k in tiers]
        bars = ax.bar(xs + off, vals, width=0.4, color=cols, edgecolor="k", hatch=hatch, label=lab)
        for b, k in zip(bars, tiers):
            hgt = b.get_height() if np.isfinite(b.get_height()) else 0.0
            ax.text(b.get_x() + b.get_width() / 2, hgt + 0.01, f"n={t[k]['n']}", ha="center", fontsize=6)
    if dve.get("error_rate") is not None:
        ax.axhline(dve["error_rate"], color="grey", ls=":", lw=1, label=f"all POOL ({dve['error_rate']:.2f})")
    ax.set_xticks(xs, tiers)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("images with >= 1 auto-label error")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("Error rate per tier (plain: hybrid; hatched: least-conf.)", fontsize=9)
    au = {k: v for k, v in dve["auroc"].items() if v is not None and np.isfinite(v)}
    names = list(au)
    ax2.barh(names, [au[k] for k in names], color=["#d62728" if k == "score" else "#999999" for k in names])
    ax2.axvline(0.5, color="k", ls=":", lw=1)
    for i, k in enumerate(names):
        ax2.text(au[k] + 0.01, i, f"{au[k]:.3f}", va="center", fontsize=7)
    ax2.set_xlim(0, 1.05)
    ax2.invert_yaxis()
    ax2.set_xlabel("AUROC for 'image has an error'")
    ax2.set_title("Which score predicts errors?", fontsize=9)
    fig.suptitle(title or f"Does difficulty predict auto-label errors? ({dve['n']} POOL images, "
                          f"{dve['n_error']} with errors)", fontsize=10)
    fig.tight_layout()
    return fig
