"""Figure functions (each returns a matplotlib ``Figure``) and the one :func:`save_figure`.

Figure functions never call ``plt.show()`` and keep no pyplot state (they build a :class:`NotebookFigure`, a
bare :class:`matplotlib.figure.Figure` that renders itself as PNG for IPython): a notebook cell that ends with the
figure, or ``display(fig)``, shows it exactly once whatever the matplotlib backend (the inline backend has nothing of
its own to show), scripts save it, and nothing needs ``plt.close``.  Text is at least
:data:`MIN_FONT` points: figures are at most :data:`MAX_WIDTH` inches wide, so a notebook shows them at 100 %.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

DPI = 150
DISPLAY_DPI = 100  # dpi of the PNG a notebook shows (the inline backend's default): 1 figure inch = 100 px
FORMATS = ("png", "pdf", "svg")
TIER_COLOURS = {"easy": "#2ca02c", "medium": "#f2c500", "hard": "#d62728", "failed": "#7f3fbf"}
MODEL_COLOURS = {"CAL1": "#1f77b4", "CAL2": "#ff7f0e", "Control": "#7f7f7f"}
BAR_OFF = "#d9d9d9"  # colour of an unlit difficulty bar
MIN_FONT = 8  # points: the smallest text on any figure (legible at 100 % zoom)
MAX_WIDTH = 9.5  # inches: widest figure (950 px at 100 dpi: JupyterLab's output area at 1400 px, file browser open)


class NotebookFigure(Figure):
    """A :class:`~matplotlib.figure.Figure` outside pyplot that IPython displays as one PNG (``_repr_png_``)."""

    def _repr_png_(self) -> bytes:
        import io

        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=DISPLAY_DPI, bbox_inches="tight")
        return buf.getvalue()


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize, **kw):
    """``(fig, axes)`` like ``plt.subplots`` but without pyplot state (see the module docstring)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = NotebookFigure(figsize=figsize, dpi=DISPLAY_DPI)
    FigureCanvasAgg(fig)  # a renderer for measuring text (layout, label placement); pyplot never sees the figure
    return fig, fig.subplots(nrows, ncols, **kw)


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
    fig, ax = new_figure(figsize=(8, 3.6))
    sns.barplot(data=df, x="class", y="instances", hue="subset", ax=ax)
    ax.set_title(title)
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=20)
    for cont in ax.containers:
        ax.bar_label(cont, fontsize=MIN_FONT)
    fig.tight_layout()
    return fig


def draw_boxes(ax, image, boxes, names, colours=None, scores=None, lw=1.2, labels: bool = True):
    """Show ``image`` on ``ax`` with YOLO boxes (n, 5: cls cx cy w h normalised).

    Box labels (class name + ``scores``) are placed outside or beside their box, never over another label, once the
    figure's layout is final (:func:`place_box_labels`; :func:`image_grid` calls it).  Returns the pending labels.
    """
    h, w = image.shape[:2]
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    palette = plt.get_cmap("tab10")
    pending = []
    for i, (c, cx, cy, bw, bh) in enumerate(np.asarray(boxes, float).reshape(-1, 5)):
        col = colours[i] if colours is not None else palette(int(c) % 10)
        x0, y0 = (cx - bw / 2) * w, (cy - bh / 2) * h
        ax.add_patch(matplotlib.patches.Rectangle((x0, y0), bw * w, bh * h, fill=False, color=col, lw=lw))
        label = names[int(c)] + (f" {scores[i]:.2f}" if scores is not None else "")
        pending.append({"text": label, "box": (x0, y0, x0 + bw * w, y0 + bh * h), "colour": col})
    ax.set_axis_off()
    ax._alnb_labels = pending if labels else []  # placed by place_box_labels after layout
    return pending


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_box_labels(ax, fontsize: float = MIN_FONT) -> list:
    """Place the labels :func:`draw_boxes` left pending on ``ax``: outside the box (above, below, right, left),
    inside the image, clear of every other label (and, where possible, of other boxes).

    A box that fills the image gets its label inside its corner.  Works in display units of the figure's final
    layout, so call it after ``tight_layout``.  Labels that find no free place are not drawn at their box; a note
    in the image's corner lists them ("+2 not labelled here: air-hole 0.41, ...").
    Returns the drawn :class:`~matplotlib.text.Text` objects.
    """
    pending = getattr(ax, "_alnb_labels", [])
    if not pending:
        return []
    ax._alnb_labels = []
    ax.apply_aspect()  # the final place of the image (as drawn), not the pre-aspect axes box
    img = ax.get_images()[0].get_array()
    ih, iw = img.shape[:2]
    to_px = ax.transData
    (ax0, ay1), (ax1, ay0) = to_px.transform([(0, 0), (iw, ih)])  # y up in display units
    img_rect = (ax0, ay0, ax1, ay1)
    renderer = ax.figure.canvas.get_renderer()
    pad = 0.15 * fontsize * ax.figure.dpi / 72.0  # the label box's padding (boxstyle pad, in units of fontsize)
    style = {"boxstyle": "square,pad=0.15", "facecolor": "white", "alpha": 0.85, "linewidth": 1.0}
    boxes = []
    for lab in pending:
        (bx0, by1), (bx1, by0) = to_px.transform([lab["box"][:2], lab["box"][2:]])
        boxes.append((bx0, by0, bx1, by1))
    placed, texts, skipped = [], [], []
    order = sorted(range(len(pending)), key=lambda i: (boxes[i][1], boxes[i][0]), reverse=True)  # top first
    for i in order:
        lab, (bx0, by0, bx1, by1) = pending[i], boxes[i]
        t = ax.text(0, 0, lab["text"], fontsize=fontsize, color="black", ha="left", va="bottom", zorder=5,
                    bbox={**style, "edgecolor": lab["colour"]})
        ext = t.get_window_extent(renderer)
        tw, th = ext.width + 2 * pad + 1, ext.height + 2 * pad + 1  # + 1 px: neighbours never touch
        cands = [(bx0, by1, bx0 + tw, by1 + th), (bx0, by0 - th, bx0 + tw, by0),  # above / below, left-aligned
                 (bx1 - tw, by1, bx1, by1 + th), (bx1 - tw, by0 - th, bx1, by0),  # above / below, right-aligned
                 (bx1, by1 - th, bx1 + tw, by1), (bx0 - tw, by1 - th, bx0, by1),  # right / left of the top edge
                 (bx1, by0, bx1 + tw, by0 + th), (bx0 - tw, by0, bx0, by0 + th),  # right / left of the bottom edge
                 (bx0, by1 - th, bx0 + tw, by1), (bx0, by0, bx0 + tw, by0 + th)]  # inside (a box filling the image)
        ok = [r for r in cands if r[0] >= img_rect[0] - 0.5 and r[2] <= img_rect[2] + 0.5 and r[1] >= img_rect[1]
              - 0.5 and r[3] <= img_rect[3] + 0.5 and not any(_overlaps(r, q) for q in placed)]
        clear = [r for r in ok if not any(_overlaps(r, b) for j, b in enumerate(boxes) if j != i)]
        best = (clear or ok or [None])[0]
        if best is None:
            skipped.append(lab["text"])
            t.remove()
            continue
        placed.append(best)
        t.set_position(ax.transData.inverted().transform((best[0] + pad + 0.5, best[1] + pad + 0.5)))
        texts.append(t)
    if skipped:
        shown = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        ax.text(0.01, 0.01, f"+{len(skipped)} not labelled here: {shown}", transform=ax.transAxes, ha="left",
                va="bottom", fontsize=fontsize, color="0.15", zorder=6,
                bbox={"boxstyle": "square,pad=0.15", "facecolor": "white", "alpha": 0.85, "linewidth": 0})
    return texts


def n_bars(tier: str) -> int:
    """Lit difficulty bars of a category: the tier's (:data:`alnb.select.TIER_BARS`); failed lights all three."""
    from alnb.select import TIER_BARS

    return 3 if tier == "failed" else TIER_BARS.get(tier, 0)


def tier_bars(ax, tier: str, x: float = 0.0, y: float = 1.02, width: float = 0.025, gap: float = 0.012):
    """The difficulty bars above an image panel (axes coordinates): 1 green = easy, 2 yellow = medium, 3 red =
    hard, 3 purple = failed (nothing auto-labelled); unlit bars grey.  Returns the x where a title may start."""
    n = n_bars(tier)
    col = TIER_COLOURS.get(tier, BAR_OFF)
    for i in range(3):
        ax.add_patch(matplotlib.patches.Rectangle((x + i * (width + gap), y), width, 0.03 + 0.025 * i,
                                                  transform=ax.transAxes, clip_on=False, lw=0, gid=f"tier-bar-{tier}",
                                                  color=col if i < n else BAR_OFF))
    return x + 3 * (width + gap) + 0.01


def tier_thumbnails(ws, scores, stems, tier: str, *, n_in_tier: int, model: str = "CAL1", ncols: int = 3):
    """Grid of the images ``stems`` of one ``tier`` with ``model``'s auto-labels (``autolabels/<model>/``) and the
    tier's difficulty bars; ``n_in_tier`` (all images of the tier) goes into the title."""
    from alnb.labelio import read_autolabels
    from alnb.workspace import load_image

    m = ws.manifest()
    sc = scores.set_index("stem")["score"]
    items = []
    for s in stems:
        p = ws.root / "autolabels" / model / f"{s}.txt"
        arr = read_autolabels(p, len(ws.names)) if p.is_file() else np.zeros((0, 6))
        items.append({"image": load_image(ws, s, m), "boxes": arr[:, :5], "scores": arr[:, 5], "tier": tier,
                      "title": f"{s}  score {sc[s]:.3g}" if np.isfinite(sc[s]) else f"{s}  failed"})
    title = f"{tier}: {n_in_tier} image(s), {model} auto-labels" + ("" if items else " (none at these thresholds)")
    return image_grid(items, ws.names, ncols=ncols, title=title)


def image_grid(items, names, ncols: int = 3, size: float = 3.1, title: str | None = None, colorbar=None):
    """Grid of images with boxes.  ``items``: list of dicts ``{image, boxes, title?, colours?, scores?, tier?}``.

    Images are about ``size`` inches wide (~300 px at 100 dpi: a 512-px radiograph at ~0.58x, so a 4-px pore stays
    visible); ``tier`` (easy | medium | hard | failed) draws the difficulty bars before the panel title.
    ``colorbar``: ``(ScalarMappable, label)`` for a horizontal colour scale under the grid.
    """
    n = max(1, len(items))
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    top, bottom = (0.4 if title else 0.0), (0.75 if colorbar else 0.0)  # inches for the suptitle / colour scale
    height = nrows * (size + 0.35) + top + bottom  # + 0.35: the panel title row, so images keep their full width
    fig, axes = new_figure(nrows, ncols, figsize=(ncols * size, height), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, it in zip(axes.ravel(), items):
        draw_boxes(ax, it["image"], it.get("boxes", np.zeros((0, 5))), names, it.get("colours"), it.get("scores"))
        x = tier_bars(ax, it["tier"]) if it.get("tier") else 0.0
        if it.get("title"):
            ax.text(x, 1.02, it["title"], transform=ax.transAxes, ha="left", va="bottom", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, bottom / height, 1, 1))
    if colorbar:
        cax = fig.add_axes((0.3, 0.3 / height, 0.4, 0.12 / height))
        fig.colorbar(colorbar[0], cax=cax, orientation="horizontal", label=colorbar[1])
    for ax in axes.ravel():
        place_box_labels(ax)
    return fig


def sample_images(ws, stems, ncols: int = 3, title: str | None = None):
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
    fig, ax = (ax.figure, ax) if ax is not None else new_figure(figsize=(9, 3.4))
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
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # image counts: whole numbers
    ax.set_xlabel("image difficulty score (higher = harder)")
    ax.set_ylabel("POOL images")
    ax.set_title(title or f"Difficulty of POOL images: t_medium={t_medium:.3g}, t_hard={t_hard:.3g}")
    ax.legend(handles=handles, fontsize=MIN_FONT, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
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
                    ha="center", va="bottom", fontsize=MIN_FONT, rotation=90)
    ax.set_xticks(x, classes)
    ax.set_ylabel(value)


def compare_per_class(table, models=("CAL1", "CAL2", "Control"), metrics=("precision", "recall")):
    """Grouped bars per class for each model, one panel per metric.  ``table``: long format with columns
    ``model, class`` + the metrics (see :func:`alnb.report.per_class_table`).  n/m = not measurable on VAL1."""
    models = [m for m in models if m in set(table["model"])]
    fig, axes = new_figure(len(metrics), 1, figsize=(MAX_WIDTH, 3.4 * len(metrics)), squeeze=False)
    for ax, met in zip(axes[:, 0], metrics):
        _grouped_bars(ax, table, met, models)
        ax.set_ylim(0, 1.25)
        ax.set_title(f"{met} per class on VAL1")
    axes[0][0].legend(fontsize=MIN_FONT, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


def compare_map(summary, models=("CAL1", "CAL2", "Control")):
    """Bars of mAP50 and mAP50-95 per model.  ``summary``: one row per model with ``model, mAP50, mAP50-95``."""
    s = summary.set_index("model").reindex([m for m in models if m in set(summary["model"])])
    fig, ax = new_figure(figsize=(5.5, 3.4))
    x = np.arange(2)
    width = 0.8 / max(1, len(s))
    for i, (mdl, row) in enumerate(s.iterrows()):
        v = np.array([row["mAP50"], row["mAP50-95"]], float)
        bars = ax.bar(x - 0.4 + width * (i + 0.5), np.nan_to_num(v), width, label=mdl, color=MODEL_COLOURS.get(mdl))
        ax.bar_label(bars, labels=[f"{t:.3f}" for t in v], fontsize=MIN_FONT)
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
    fig, axes = new_figure(1, 2 if overall else 1, figsize=(MAX_WIDTH if overall else 7, 3.8), squeeze=False,
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
    fig, ax = new_figure(figsize=(8, 1.9))
    parts = [(f"{a} only", ov["only_a"], MODEL_COLOURS.get("CAL2")), ("both", ov["both"], "#8c564b"),
             (f"{b} only", ov["only_b"], MODEL_COLOURS.get("Control"))]
    left = 0
    for label, n, col in parts:
        ax.barh([0], [n], left=left, color=col, label=f"{label} ({n})")
        if n:
            ax.text(left + n / 2, 0, str(n), ha="center", va="center", color="white", fontsize=9)
        left += n
    ax.set_yticks([])
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # image counts: whole numbers
    ax.set_xlabel("POOL images")
    j = ov.get("jaccard", float("nan"))
    ax.set_title(f"Overlap of {a} and {b} (Jaccard {j:.2f})" if np.isfinite(j) else f"Overlap of {a} and {b}")
    ax.legend(fontsize=MIN_FONT, loc="center left", bbox_to_anchor=(1.01, 0.5), borderaxespad=0)
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
    fig, (a1, a2) = new_figure(1, 2, figsize=(MAX_WIDTH, 3.6))
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
    (as :func:`alnb.evaluation.per_class_frame` returns).  Classes that are not measurable (no instance in the set)
    get an 'n/m' mark instead of a bar; NaN precision (no prediction) is marked 'no pred'.
    """
    df = per_class
    x = np.arange(len(df))
    width = 0.8 / len(metrics)
    fig, ax = new_figure(figsize=(max(6, 1.3 * len(df)), 3.6))
    for k, met in enumerate(metrics):
        vals = df[met].astype(float).to_numpy()
        pos = x - 0.4 + width * (k + 0.5)
        bars = ax.bar(pos, np.nan_to_num(vals), width, label=met)
        ax.bar_label(bars, labels=[f"{v:.2f}" if np.isfinite(v) else "" for v in vals], fontsize=MIN_FONT)
        for xi, v, meas in zip(pos, vals, df.get("measurable", np.ones(len(df), bool))):
            if not np.isfinite(v):
                ax.text(xi, 0.02, "n/m" if not meas else "no pred", ha="center", va="bottom", rotation=90,
                        fontsize=MIN_FONT, color="0.4")
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
    fig, ax = new_figure(figsize=(max(6, 1.2 * len(names)), 3.4))
    cols = ["#1f77b4"] * len(vals) + (["#ff7f0e"] if overall is not None else [])
    bars = ax.bar(np.arange(len(names)), np.nan_to_num(vals_all), color=cols)
    ax.bar_label(bars, labels=[f"{v:.2f}x" if np.isfinite(v) else "n/m" for v in vals_all], fontsize=MIN_FONT)
    ax.axhline(1.0, color="0.3", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(names)), names, fontsize=8, rotation=15)
    ax.set_ylabel("manual time / assisted time")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ MC-dropout uncertainty (notebook 02)
def uncertainty_grid(ws, scores, detections, stems, ncols: int = 3, size: float = 3.1, cmap: str = "RdYlGn_r",
                     title: str | None = None):
    """Images with their auto-label boxes coloured by per-detection ``hybrid`` uncertainty (green = sure, red = unsure).

    ``scores``/``detections``: tables as ``scores.csv`` / ``detections.csv``; only detections above the auto-label
    threshold (``above``) are drawn.  Titles give the difficulty bars, stem, tier and score (``FAILED`` when nothing
    was found).
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
        failed = bool(r.get("failed", False))
        tier = "failed" if failed else str(r.get("tier", ""))
        items.append({"image": img, "boxes": boxes, "colours": [cm(float(u)) for u in d["hybrid"]],
                      "scores": d["hybrid"].to_numpy(float), "tier": tier,
                      "title": f"{s} | {'FAILED' if failed else tier} {float(r['score']):.2f}"})
    sm = plt.cm.ScalarMappable(cmap=cm, norm=matplotlib.colors.Normalize(0, 1))
    return image_grid(items, ws.names, ncols=ncols, size=size, title=title or "Auto-labels coloured by uncertainty",
                      colorbar=(sm, "box colour: detection uncertainty (hybrid; green = sure, red = unsure)"))


def errors_vs_difficulty(dve: dict, title: str | None = None):
    """Auto-label error rate per difficulty tier (hybrid score vs least-confidence tiers of equal size) + AUROCs.

    ``dve``: the dict of :func:`alnb.difficulty.difficulty_vs_errors` (``metrics/difficulty_vs_errors.json``).
    """
    tiers = ["easy", "medium", "hard", "failed"]
    fig, (ax, ax2) = new_figure(1, 2, figsize=(MAX_WIDTH, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    xs = np.arange(len(tiers))
    for off, key, lab, hatch in [(-0.2, "tiers", "MC-dropout hybrid score", None),
                                 (0.2, "least_conf_tiers", "least confidence (1 - max score)", "//")]:
        t = dve[key]
        vals = [t[k]["error_rate"] if t[k]["error_rate"] is not None else np.nan for k in tiers]
        cols = [TIER_COLOURS[k] for k in tiers]
        bars = ax.bar(xs + off, vals, width=0.4, color=cols, edgecolor="k", hatch=hatch, label=lab)
        for b, k in zip(bars, tiers):
            hgt = b.get_height() if np.isfinite(b.get_height()) else 0.0
            ax.text(b.get_x() + b.get_width() / 2, hgt + 0.01, f"n={t[k]['n']}", ha="center", fontsize=MIN_FONT)
    if dve.get("error_rate") is not None:
        ax.axhline(dve["error_rate"], color="grey", ls=":", lw=1, label=f"all POOL ({dve['error_rate']:.2f})")
    ax.set_xticks(xs, tiers)
    ax.set_ylim(0, 1.45)  # headroom: the legend sits above the bars, never on them
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("images with >= 1 auto-label error")
    ax.legend(fontsize=MIN_FONT, loc="upper left", ncol=2)
    ax.set_title("Error rate per tier (plain: hybrid; hatched: least-conf.)", fontsize=9)
    au = {k: v for k, v in dve["auroc"].items() if v is not None and np.isfinite(v)}
    names = list(au)
    if not names:
        ax2.text(0.5, 0.5, "AUROC not defined here:\nevery image (or none) has an error", ha="center", va="center",
                 transform=ax2.transAxes, fontsize=9, bbox={"facecolor": "white", "linewidth": 0})
        ax2.set_yticks([])
    ax2.barh(names, [au[k] for k in names], color=["#d62728" if k == "score" else "#999999" for k in names])
    ax2.axvline(0.5, color="k", ls=":", lw=1)
    for i, k in enumerate(names):
        ax2.text(au[k] + 0.01, i, f"{au[k]:.3f}", va="center", fontsize=MIN_FONT)
    ax2.set_xlim(0, 1.05)
    ax2.invert_yaxis()
    ax2.set_xlabel("AUROC for 'image has an error'")
    ax2.set_title("Which score predicts errors?", fontsize=9)
    fig.suptitle(title or f"Does difficulty predict auto-label errors? ({dve['n']} POOL images, "
                          f"{dve['n_error']} with errors)", fontsize=10)
    fig.tight_layout()
    return fig
