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
SET_COLOURS = {"GT1": "#1f77b4", "GT2": "#ff7f0e", "Control": "#7f7f7f", "POOL": "#bcbd22", "VAL1": "#17becf",
               "EXCLUDED": "#000000", "both": "#8c564b"}
"""The one palette of sets, used by every figure: a set and the model trained on it share a colour (GT1 = CAL1,
GT2 = CAL2, Control = the Control model; ``random`` in the strategy study is Control's colour).  Later rounds
(GT3/CAL3, ...) take :data:`ROUND_COLOURS` in turn (:func:`set_colour`)."""
ROUND_COLOURS = ("#e377c2", "#9edae5", "#c49c94", "#dbdb8d", "#aec7e8")
MODEL_COLOURS = {"CAL1": SET_COLOURS["GT1"], "CAL2": SET_COLOURS["GT2"], "Control": SET_COLOURS["Control"]}
STRATEGY_PALETTE = ("#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#6a3d9a", "#b15928",
                    "#01665e", "#8e0152", "#053061", "#fb9a99", "#4d4d00", "#35978f")
"""Colours of the selection strategies (:func:`strategy_colour`): none of them is a set's colour, so a strategy's
curve never looks like GT1 / GT2 / a later round; ``random`` is the Control arm and takes Control's grey."""
BAR_OFF = "#d9d9d9"  # colour of an unlit difficulty bar
MIN_FONT = 8  # points: the smallest text on any figure (legible at 100 % zoom)
MAX_WIDTH = 9.5  # inches: widest figure (950 px at 100 dpi: JupyterLab's output area at 1400 px, file browser open)


def strategy_colour(name: str) -> str:
    """The colour of strategy ``name`` in every figure: ``random`` = Control's (:data:`SET_COLOURS`), the others
    :data:`STRATEGY_PALETTE` by their place in the registry (:data:`alnb.acquisition.STRATEGIES`), so a strategy
    keeps its colour whatever else a figure shows; a name outside the registry takes the palette's colour after
    the registry's, by its characters (stable from run to run)."""
    from alnb.acquisition import STRATEGIES

    if name == "random":
        return SET_COLOURS["Control"]
    names = [s for s in STRATEGIES if s != "random"]
    i = names.index(name) if name in names else len(names) + sum(map(ord, str(name)))
    return STRATEGY_PALETTE[i % len(STRATEGY_PALETTE)]


def set_colour(name: str) -> str:
    """Colour of a set or of the model trained on it (:data:`SET_COLOURS`): ``GT1``/``CAL1``, ``GT2``/``CAL2``,
    ``Control``/``CONTROL``/``random``, ``POOL``, ``VAL1``; ``GT<k>``/``CAL<k>`` for later rounds."""
    import re

    n = str(name)
    alias = {"CONTROL": "Control", "random": "Control", "CAL1": "GT1", "CAL2": "GT2"}
    n = alias.get(n, n)
    if n in SET_COLOURS:
        return SET_COLOURS[n]
    m = re.fullmatch(r"(?:GT|CAL)(\d+)", n) or re.fullmatch(r"Control_?(\d+)", n)
    if m and n.startswith("Control"):
        return SET_COLOURS["Control"]
    if m:
        return ROUND_COLOURS[(int(m.group(1)) - 3) % len(ROUND_COLOURS)]
    return "#555555"


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
    sns.barplot(data=df, x="class", y="instances", hue="subset", ax=ax,
                palette={sub: set_colour(sub) for sub in counts}, saturation=1)
    ax.set_title(title)
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=20)
    for cont in ax.containers:
        ax.bar_label(cont, fontsize=MIN_FONT)
    fig.tight_layout()
    return fig


SCORE_KINDS = {"conf": "confidence of the auto-label", "unc": "uncertainty of the detection (hybrid, 0-1)"}
"""What the number on a box label is: ``crack conf 0.25`` (a confidence) or ``crack unc 0.80`` (an uncertainty)."""


def draw_boxes(ax, image, boxes, names, colours=None, scores=None, lw=1.2, labels: bool = True,
               score_kind: str = "conf", styles=None):
    """Show ``image`` on ``ax`` with YOLO boxes (n, 5: cls cx cy w h normalised).

    ``score_kind`` names the number on each label (:data:`SCORE_KINDS`: ``crack conf 0.25`` vs ``crack unc 0.80``);
    ``styles``: a line style per box (``"--"`` for a candidate below the operating point).
    Box labels (class name + the kind + ``scores``) are placed outside or beside their box, never over another label, once the
    figure's layout is final (:func:`place_box_labels`; :func:`image_grid` calls it).  Returns the pending labels.
    """
    h, w = image.shape[:2]
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    palette = plt.get_cmap("tab10")
    pending = []
    for i, (c, cx, cy, bw, bh) in enumerate(np.asarray(boxes, float).reshape(-1, 5)):
        col = colours[i] if colours is not None else palette(int(c) % 10)
        x0, y0 = (cx - bw / 2) * w, (cy - bh / 2) * h
        ls = styles[i] if styles is not None else "-"
        ax.add_patch(matplotlib.patches.Rectangle((x0, y0), bw * w, bh * h, fill=False, color=col, lw=lw, ls=ls))
        label = names[int(c)] + (f" {score_kind} {scores[i]:.2f}" if scores is not None else "")
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
    in the image's corner lists them ("+2 labels not shown here: air-hole conf 0.41, ...").
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
    if skipped:  # one label a line, at most 3: the note stays inside its panel
        shown = "\n".join(skipped[:3]) + ("\n..." if len(skipped) > 3 else "")
        ax.text(0.01, 0.01, f"+{len(skipped)} labels not shown here:\n{shown}", transform=ax.transAxes, ha="left",
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


def tier_bars_svg(tier: str, width: int = 26, height: int = 14) -> str:
    """The difficulty bars of :func:`tier_bars` as a small standalone SVG (for markdown, where emoji squares need an
    emoji font): 1 green = easy, 2 yellow = medium, 3 red = hard, 3 purple = failed, unlit bars grey."""
    n, col = n_bars(tier), TIER_COLOURS.get(tier, BAR_OFF)
    w = width / 3 - 2
    rects = "".join(f'<rect x="{i * (w + 2) + 1:.1f}" y="{height - (5 + 4 * i)}" width="{w:.1f}" height="{5 + 4 * i}" '
                    f'fill="{col if i < n else BAR_OFF}"/>' for i in range(3))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
            f'<title>{tier}: {n} of 3 bars</title>{rects}</svg>\n')


BEST_CANDIDATE_COLOUR = "#ff00ff"  # the best candidate below the operating point on a failed image (dashed)


def best_candidates(detections, stems) -> dict:
    """``{stem: row}`` of the highest-confidence candidate detection (any, above the threshold or not) per stem."""
    if detections is None or not len(detections):
        return {}
    d = detections[detections["stem"].isin(list(stems))]
    if not len(d):
        return {}
    top = d.sort_values(["stem", "conf"], ascending=[True, False], kind="mergesort").drop_duplicates("stem")
    return {r["stem"]: r for r in top.to_dict("records")}


def tier_thumbnails(ws, scores, stems, tier: str, *, n_in_tier: int, model: str = "CAL1", ncols: int = 3,
                    detections=None, conf: float | None = None, first: int = 0):
    """Grid of the images ``stems`` of one ``tier`` with ``model``'s auto-labels (``autolabels/<model>/``, labelled
    ``conf``) and the tier's difficulty bars; ``n_in_tier`` (all images of the tier) and the shown range (``first``:
    the index of ``stems[0]`` in the tier) go into the title.

    A failed image has no auto-label: with ``detections`` (``detections.csv``) its best candidate below the
    operating point ``conf`` is drawn dashed in magenta ("best below"), so an empty radiograph (no candidate at
    all) and a missed defect (a candidate just below the threshold) look different.
    """
    from alnb.labelio import read_autolabels
    from alnb.metrics import xyxy_to_xywhn
    from alnb.workspace import load_image

    m = ws.manifest()
    sc = scores.set_index("stem")["score"]
    best = best_candidates(detections, stems) if tier == "failed" else {}
    items = []
    for s in stems:
        img = load_image(ws, s, m)
        p = ws.root / "autolabels" / model / f"{s}.txt"
        arr = read_autolabels(p, len(ws.names)) if p.is_file() else np.zeros((0, 6))
        it = {"image": img, "boxes": arr[:, :5], "scores": arr[:, 5], "tier": tier, "score_kind": "conf",
              "title": f"{s}  score {sc[s]:.3g}" if np.isfinite(sc[s]) else f"{s}  failed"}
        if tier == "failed":
            b = best.get(s)
            if b is None:
                it["title"] = f"{s}  failed: no candidate at all"
            else:
                h, w = img.shape[:2]
                xy = xyxy_to_xywhn(np.array([[b["x0"], b["y0"], b["x1"], b["y1"]]], float), w, h)
                it.update(boxes=np.column_stack([[b["cls"]], xy]), scores=np.array([b["conf"]]), styles=["--"],
                          colours=[BEST_CANDIDATE_COLOUR])
                below = f" < {conf:.3g}" if conf is not None else ""
                it["title"] = f"{s}  failed: best candidate{below}"
        items.append(it)
    shown = f"images {first + 1}-{first + len(items)} of {n_in_tier}" if items else f"0 of {n_in_tier} images"
    title = f"{tier}: {shown}, {model} auto-labels (box label: class conf)" + (
        "; dashed = best candidate below the operating point" if tier == "failed" else "") + (
        "" if items else " (none at these thresholds)")
    return image_grid(items, ws.names, ncols=ncols, title=title)


def image_grid(items, names, ncols: int = 3, size: float = 3.1, title: str | None = None, colorbar=None):
    """Grid of images with boxes.  ``items``: list of dicts ``{image, boxes, title?, colours?, scores?, score_kind?,
    styles?, tier?}`` (``score_kind``: what the box numbers are, see :func:`draw_boxes`).

    Images are about ``size`` inches wide (~300 px at 100 dpi: a 512-px radiograph at ~0.58x, so a 4-px pore stays
    visible); ``tier`` (easy | medium | hard | failed) draws the difficulty bars before the panel title.
    ``colorbar``: ``(ScalarMappable, label)`` for a horizontal colour scale under the grid.
    """
    import textwrap

    n = max(1, len(items))
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    if title:  # wrapped to the figure's width (< 7.5 px per character at 11 pt): a PNG never wider than its grid
        title = textwrap.fill(title, width=max(20, int(ncols * size * DISPLAY_DPI / 7.5)))
    top = 0.4 + 0.2 * title.count("\n") if title else 0.0  # inches for the suptitle
    bottom = 0.75 if colorbar else 0.0  # inches for the colour scale
    height = nrows * (size + 0.35) + top + bottom  # + 0.35: the panel title row, so images keep their full width
    fig, axes = new_figure(nrows, ncols, figsize=(ncols * size, height), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, it in zip(axes.ravel(), items):
        draw_boxes(ax, it["image"], it.get("boxes", np.zeros((0, 5))), names, it.get("colours"), it.get("scores"),
                   score_kind=it.get("score_kind", "conf"), styles=it.get("styles"))
        x = tier_bars(ax, it["tier"]) if it.get("tier") else 0.0
        if it.get("title"):
            ax.text(x, 1.02, it["title"], transform=ax.transAxes, ha="left", va="bottom", fontsize=9,
                    in_layout=False)  # the row of titles has its own room (+ 0.35 in): images keep their width
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
def histogram_edges(scores, bins: int = 40, *, include=()) -> np.ndarray:
    """Fixed bin edges over the non-failed scores (and any value of ``include``, e.g. thresholds): the explorer
    computes them once so the histogram's axis and bins never move while the sliders do."""
    s = scores
    ok = ~s["failed"].to_numpy(bool) if "failed" in s else np.ones(len(s), bool)
    vals = s["score"].to_numpy(float)[ok]
    vals = vals[np.isfinite(vals)]
    lo, hi = (float(vals.min()), float(vals.max())) if len(vals) else (0.0, 1.0)
    for v in include:
        lo, hi = min(lo, float(v)), max(hi, float(v))
    return np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)


def score_histogram(scores, t_medium: float, t_hard: float, bins: int = 40, title: str | None = None, ax=None,
                    edges=None):
    """Histogram of POOL image scores, stacked by tier, with the two threshold lines (``t_medium``/``t_hard``).

    ``scores``: table with ``score`` and ``failed`` (as ``scores.csv``).  Failed images have no place on the score
    axis; their count is given in the legend.  ``edges``: fixed bin edges (:func:`histogram_edges`; default: over
    the non-failed scores and both thresholds), so the x axis and the bins do not depend on the thresholds.
    Returns the Figure.
    """
    from matplotlib.patches import Patch

    from alnb.select import categorise, check_scores

    s = check_scores(scores)
    cat = categorise(s, t_medium, t_hard)
    fig, ax = (ax.figure, ax) if ax is not None else new_figure(figsize=(9, 3.4))
    edges = histogram_edges(s, bins, include=(t_medium, t_hard)) if edges is None else np.asarray(edges, float)
    tiers = ("easy", "medium", "hard")
    vals = [s["score"].to_numpy(float)[(cat == t).to_numpy()] for t in tiers]
    ax.hist(vals, bins=edges, color=[TIER_COLOURS[t] for t in tiers], label=[f"{t} ({len(v)} images)" for t, v in
                                                                                     zip(tiers, vals)],
            stacked=True, alpha=0.9)
    n_failed = int((cat == "failed").sum())
    ax.axvline(t_medium, color="k", ls="--", lw=1, label=f"t_medium = {t_medium:.3g}")
    ax.axvline(t_hard, color="k", ls="-", lw=1, label=f"t_hard = {t_hard:.3g}")
    handles, _ = ax.get_legend_handles_labels()
    handles.insert(3, Patch(color=TIER_COLOURS["failed"], label=f"failed ({n_failed} images, not on the axis)"))
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # image counts: whole numbers
    ax.set_xlabel("image difficulty score (higher = harder)")
    ax.set_ylabel("POOL images")
    ax.set_title(title or f"Difficulty of {len(s)} POOL images (counts per tier in the legend)")
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
        col = (colours or {}).get(mdl, set_colour(mdl))
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
        bars = ax.bar(x - 0.4 + width * (i + 0.5), np.nan_to_num(v), width, label=mdl, color=set_colour(mdl))
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
        bars = ax2.bar(names, np.nan_to_num(v), color=[set_colour(m) for m in names])
        ax2.bar_label(bars, labels=[f"{t:.2f}x" for t in v], fontsize=8)
        ax2.axhline(1, color="k", ls=":", lw=1)
        ax2.set_ylim(0, 1.25 * top)
        ax2.set_title("overall")
    fig.tight_layout()
    return fig


def selection_overlap(ov: dict, a: str = "GT2", b: str = "Control"):
    """Horizontal stacked bar: images only in ``a``, in both, only in ``b`` (``ov`` from :func:`alnb.select.overlap`)."""
    fig, ax = new_figure(figsize=(8, 1.9))
    parts = [(f"{a} only", ov["only_a"], set_colour(a)), ("both", ov["both"], SET_COLOURS["both"]),
             (f"{b} only", ov["only_b"], set_colour(b))]
    left = 0
    for label, n, col in parts:
        ax.barh([0], [n], left=left, color=col, label=f"{label}: {n} images")
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
    a2.set_ylabel("on VAL1 (ultralytics, during training)")
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


def efficiency_per_class(per_class, overall: float | None = None, title: str | None = None, model: str = "CAL1"):
    """Bars of the expected labelling efficiency boost per class (1 = no gain; 'n/m' = not measurable) in the
    ``model``'s colour (:func:`set_colour`); the overall bar hatched."""
    df = per_class
    vals = df["boost"].astype(float).to_numpy()
    names = list(df.index) + (["overall"] if overall is not None else [])
    vals_all = np.append(vals, overall) if overall is not None else vals
    fig, ax = new_figure(figsize=(max(6, 1.2 * len(names)), 3.4))
    bars = ax.bar(np.arange(len(names)), np.nan_to_num(vals_all), color=set_colour(model), edgecolor="k", lw=0.5)
    if overall is not None:
        bars[-1].set_hatch("//")
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
                      "scores": d["hybrid"].to_numpy(float), "score_kind": "unc", "tier": tier,
                      "title": f"{s} | {'failed' if failed else tier}, score {float(r['score']):.2f}"})
    sm = plt.cm.ScalarMappable(cmap=cm, norm=matplotlib.colors.Normalize(0, 1))
    return image_grid(items, ws.names, ncols=ncols, size=size,
                      title=(title or "Auto-labels coloured by uncertainty") + " (box label: class unc)",
                      colorbar=(sm, "box colour and label 'unc': detection uncertainty (hybrid; green = sure, "
                                    "red = unsure)"))


def errors_vs_difficulty(dve: dict, title: str | None = None):
    """Auto-label error rate per difficulty tier (hybrid score vs least-confidence tiers of equal size) + AUROCs.

    ``dve``: the dict of :func:`alnb.difficulty.difficulty_vs_errors` (``metrics/difficulty_vs_errors.json``).
    """
    tiers = ["easy", "medium", "hard", "failed"]
    fig, (ax, ax2) = new_figure(1, 2, figsize=(MAX_WIDTH, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    xs = np.arange(len(tiers))
    for off, key, lab, hatch in [(-0.2, "tiers", "hybrid (the study's score)", None),
                                 (0.2, "least_conf_tiers", "least_confidence (one minus the top probability)", "//")]:
        t = dve[key]
        vals = [t[k]["error_rate"] if t[k]["error_rate"] is not None else np.nan for k in tiers]
        cols = [TIER_COLOURS[k] for k in tiers]
        bars = ax.bar(xs + off, vals, width=0.4, color=cols, edgecolor="k", hatch=hatch, label=lab)
        for b, k in zip(bars, tiers):
            hgt = b.get_height() if np.isfinite(b.get_height()) else 0.0
            ax.text(b.get_x() + b.get_width() / 2, hgt + 0.01, f"n={t[k]['n']}", ha="center", fontsize=MIN_FONT)
    if dve.get("error_rate") is not None:
        ax.axhline(dve["error_rate"], color="grey", ls=":", lw=1, label=f"all POOL images: error rate {dve['error_rate']:.2f}")
    ax.set_xticks(xs, tiers)
    ax.set_ylim(0, 1.45)  # headroom: the legend sits above the bars, never on them
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("images with >= 1 auto-label error")
    ax.legend(fontsize=MIN_FONT, loc="upper left", ncol=2)
    ax.set_title("Error rate per tier (plain: hybrid; hatched: least_confidence)", fontsize=9)
    au = ({k: v["auroc"] for k, v in dve["strategies"].items()} if dve.get("strategies") else dict(dve["auroc"]))
    au = {k: v for k, v in au.items() if v is not None and np.isfinite(v)}  # strategy names (acquisition.STRATEGIES)
    names = list(au)
    if not names:
        ax2.text(0.5, 0.5, "AUROC not defined here:\nevery image (or none) has an error", ha="center", va="center",
                 transform=ax2.transAxes, fontsize=9, bbox={"facecolor": "white", "linewidth": 0})
        ax2.set_yticks([])
    chosen = ("hybrid", "score")  # the study's score: its strategy name (or, in older files, its column)
    ax2.barh(names, [au[k] for k in names], color=["#d62728" if k in chosen else "#999999" for k in names])
    ax2.axvline(0.5, color="k", ls=":", lw=1)
    for i, k in enumerate(names):
        ax2.text(au[k] + 0.01, i, f"{au[k]:.3f}", va="center", fontsize=MIN_FONT)
    ax2.set_xlim(0, 1.05)
    ax2.invert_yaxis()
    ax2.set_xlabel("AUROC for 'image has an error'")
    ax2.set_title("Which score predicts errors?", fontsize=9)
    fig.suptitle(title or f"Does difficulty predict auto-label errors? ({dve['n']} POOL images, "
                          f"{dve['n_error']} images with errors)", fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- training curves of several models
def _loss_total(df):
    cols = [c for c in ("train/box_loss", "train/cls_loss", "train/dfl_loss") if c in df]
    return df[cols].sum(axis=1) if cols else None


def training_curves_compare(runs: dict, title: str | None = None):
    """Training loss (box + class + DFL) and ultralytics' VAL1 mAP50 per epoch for every model of ``runs``
    (``{model: results.csv path or DataFrame}``), one colour per model (:func:`set_colour`).  The best validated
    epoch of each model is ringed, so a fine-tune still improving at its last epoch is visible."""
    import pandas as pd

    fig, (a1, a2) = new_figure(1, 2, figsize=(MAX_WIDTH, 3.4))
    for name, res in runs.items():
        df = res if isinstance(res, pd.DataFrame) else pd.read_csv(res)
        df = df.rename(columns=lambda c: c.strip())
        loss = _loss_total(df)
        if loss is not None:
            a1.plot(df["epoch"], loss, marker=".", color=set_colour(name), label=name)
        col = "metrics/mAP50(B)"
        if col in df:
            d = df[["epoch", col]].dropna()
            a2.plot(d["epoch"], d[col], marker=".", color=set_colour(name), label=name)
            if len(d):
                best = d.loc[d[col].idxmax()]
                a2.plot([best["epoch"]], [best[col]], "o", mfc="none", mec=set_colour(name), ms=9)
    a1.set_xlabel("epoch")
    a1.set_ylabel("training loss (box + class + DFL)")
    a1.legend(fontsize=MIN_FONT)
    a2.set_xlabel("epoch")
    a2.set_ylabel("mAP50 on VAL1 (ultralytics, during training)")
    a2.set_ylim(0, 1)
    a2.legend(fontsize=MIN_FONT, title="ring = best epoch", title_fontsize=MIN_FONT)
    fig.suptitle(title or "Training curves per model", fontsize=10)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ detection diagnostics (alnb.diagnostics)
def pr_curves(diag: dict, title: str | None = None, op_points: dict | None = None):
    """Per-class precision-recall curves at IoU 0.5 (``diag`` from :func:`alnb.diagnostics.diagnostics`), legend
    with each class's AP50; ``op_points`` ``{class: (recall, precision)}`` marks the operating point."""
    fig, ax = new_figure(figsize=(7.5, 4.2))
    cmap = plt.get_cmap("tab10")
    for k, (c, ap) in enumerate(zip(diag["classes"], diag["ap50"])):
        name = diag["names"][c]
        ax.plot(diag["recall"], diag["precision"][k], lw=1.2, color=cmap(c % 10), label=f"{name} (AP50 {ap:.3f})")
        point = (op_points or {}).get(name)
        if point is not None and all(v is not None and np.isfinite(float(v)) for v in point):
            ax.plot(*point, "o", color=cmap(c % 10), ms=6)
    if diag["ap50"]:
        ax.plot([], [], "ko", ms=6, label="dot = the operating point")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall (IoU >= 0.5)")
    ax.set_ylabel("precision")
    ax.legend(fontsize=MIN_FONT, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.set_title(title or f"Precision-recall per class ({diag['n_images']} images, {diag['n_gt']} boxes)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def per_class_ap(diag: dict, title: str | None = None, model: str = "CAL1"):
    """Bars of AP50 and AP50-95 per class (ultralytics' ``ap_per_class`` on the auto-label path's boxes)."""
    names = [diag["names"][c] for c in diag["classes"]]
    x = np.arange(len(names))
    fig, ax = new_figure(figsize=(max(6, 1.3 * len(names)), 3.4))
    for k, (key, lab, hatch) in enumerate((("ap50", "AP50", None), ("ap50_95", "AP50-95", "//"))):
        v = np.asarray(diag[key], float)
        bars = ax.bar(x - 0.2 + 0.4 * k, v, 0.4, color=set_colour(model), hatch=hatch, edgecolor="k", lw=0.5,
                      label=lab)
        ax.bar_label(bars, labels=[f"{t:.2f}" for t in v], fontsize=MIN_FONT)
    ax.set_xticks(x, names, fontsize=8, rotation=15)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("average precision (AP)")
    ax.legend(fontsize=MIN_FONT, loc="upper right")
    ax.set_title(title or "AP per class", fontsize=10)
    fig.tight_layout()
    return fig


def confusion_matrix(diag: dict, title: str | None = None):
    """The confusion matrix at the operating point (counts; rows = predicted class, columns = true class, the last
    row / column = background: a false positive / a missed box)."""
    mat = np.asarray(diag["matrix"], float)
    labels = list(diag["names"]) + ["background"]
    n = len(labels)
    fig, ax = new_figure(figsize=(min(MAX_WIDTH, 1.0 + 0.75 * n), min(MAX_WIDTH, 0.9 + 0.7 * n)))
    im = ax.imshow(mat, cmap="Blues")
    for i in range(n):
        for j in range(n):
            if mat[i, j]:
                ax.text(j, i, f"{int(mat[i, j])}", ha="center", va="center", fontsize=MIN_FONT,
                        color="white" if mat[i, j] > 0.5 * mat.max() else "black")
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=MIN_FONT)
    ax.set_yticks(range(n), labels, fontsize=MIN_FONT)
    ax.set_xlabel("true class (boxes counted in each cell)")
    ax.set_ylabel("predicted class")
    fig.colorbar(im, ax=ax, fraction=0.04, label="boxes")
    ax.set_title(title or f"Confusion matrix at conf > {diag['conf']:.3g}, IoU >= 0.5", fontsize=10)
    fig.tight_layout()
    return fig


def side_by_side(items, names, n_models: int, title: str | None = None):
    """Rows of panels from :func:`alnb.diagnostics.side_by_side_items`: ground truth, then each model on the same
    image (green = true positive, red = false positive; box label: class conf)."""
    return image_grid(items, names, ncols=n_models + 1, size=2.3,
                      title=title or "Where the models disagree most (green = TP, red = FP, box label: class conf)")


def rounds_curves(table, measures=("mAP50", "mAP50-95", "recall", "boost")):
    """Learning curves of the two chains (:func:`alnb.report.rounds_table`): each measure over the chain's
    cumulative labelled images (top row) and over its cumulative assisted labelling hours (bottom row); the CAL
    chain in CAL2's colour, the random control chain in Control's, each point labelled with its round."""
    fig, axes = new_figure(2, len(measures), figsize=(min(MAX_WIDTH, 2.35 * len(measures)), 4.8), squeeze=False)
    for chain, colour, marker in (("CAL", set_colour("CAL2"), "o"), ("Control", set_colour("Control"), "s")):
        t = table[table["chain"] == chain].sort_values("round")
        for row, x, xlabel in ((0, "images", "labelled images"), (1, "labelling h", "assisted labelling h")):
            for ax, m in zip(axes[row], measures):
                ax.plot(t[x], t[m], marker=marker, color=colour, label=f"{chain} chain", lw=1.4, ms=4)
                for _, r in t.iterrows():
                    if np.isfinite(r[x]) and np.isfinite(r[m]):
                        ax.annotate(str(int(r["round"])), (r[x], r[m]), xytext=(3, 3), textcoords="offset points",
                                    fontsize=MIN_FONT, color=colour)
                ax.set_xlabel(xlabel, fontsize=MIN_FONT + 1)
                ax.set_ylabel(m + (" (x)" if m == "boost" else ""), fontsize=MIN_FONT + 1)
                ax.tick_params(labelsize=MIN_FONT)
                ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=MIN_FONT, loc="lower right")
    fig.suptitle("Both chains round by round on VAL1 (point label = round)", fontsize=MIN_FONT + 2)
    fig.tight_layout()
    return fig
