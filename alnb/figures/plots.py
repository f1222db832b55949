"""Figure functions (each returns a matplotlib ``Figure``) and the one :func:`save_figure`.

Figure functions never call ``plt.show()`` and keep no pyplot state (they build a :class:`NotebookFigure`, a
bare :class:`matplotlib.figure.Figure` that renders itself as PNG for IPython): a notebook cell that ends with the
figure, or ``display(fig)``, shows it exactly once whatever the matplotlib backend (the inline backend has nothing of
its own to show), scripts save it, and nothing needs ``plt.close``.  Text is at least
:data:`MIN_FONT` points: figures are at most :data:`MAX_WIDTH` inches wide, so a notebook shows them at 100 %.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.text import Text

from alnb.acquisition.tiers import TIER_BARS, categorise, check_scores
from alnb.core.workspace import load_image
from alnb.evaluation.diagnostics import MATCH_IOU, model_diagnostics
from alnb.evaluation.metrics import xyxy_to_xywhn
from alnb.labels.labelio import read_autolabels

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
    :data:`STRATEGY_PALETTE` by their place in the registry (:data:`alnb.acquisition.strategies.STRATEGIES`), so a strategy
    keeps its colour whatever else a figure shows; a name outside the registry takes the palette's colour after
    the registry's, by its characters (stable from run to run)."""
    from alnb.acquisition.strategies import STRATEGIES

    if name == "random":
        return SET_COLOURS["Control"]
    names = [s for s in STRATEGIES if s != "random"]
    i = names.index(name) if name in names else len(names) + sum(map(ord, str(name)))
    return STRATEGY_PALETTE[i % len(STRATEGY_PALETTE)]


def set_colour(name: str) -> str:
    """Colour of a set or of the model trained on it (:data:`SET_COLOURS`): ``GT1``/``CAL1``, ``GT2``/``CAL2``,
    ``Control``/``CONTROL``/``random``, ``POOL``, ``VAL1``; ``GT<k>``/``CAL<k>`` for later rounds."""
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
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=DISPLAY_DPI, bbox_inches="tight")
        return buf.getvalue()


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize, **kw):
    """``(fig, axes)`` like ``plt.subplots`` but without pyplot state (see the module docstring)."""
    # heavy, imported where used (not at module import): matplotlib, seaborn
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = NotebookFigure(figsize=figsize, dpi=DISPLAY_DPI)
    FigureCanvasAgg(fig)  # a renderer for measuring text (layout, label placement); pyplot never sees the figure
    return fig, fig.subplots(nrows, ncols, **kw)


def save_figure(fig, name: str, out_dir, formats=FORMATS) -> dict:
    """Write ``fig`` as ``<out_dir>/<name>.{png,pdf,svg}`` (PNG at a fixed dpi, tight bounding box).

    ``out_dir`` may be a folder or a :class:`~alnb.core.workspace.Workspace` (its ``figures/`` folder is used).
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
               score_kind: str = "conf", styles=None, texts=None):
    """Show ``image`` on ``ax`` with YOLO boxes (n, 5: cls cx cy w h normalised).

    ``score_kind`` names the number on each label (:data:`SCORE_KINDS`: ``crack conf 0.25`` vs ``crack unc 0.80``);
    ``styles``: a line style per box (``"--"`` for a candidate below the operating point); ``texts``: a label per box
    instead of the default one (``None`` in it: that box gets no label, e.g. a missed box on a model's panel).
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
        if texts is not None:
            label = texts[i]
        if label is not None:
            pending.append({"text": label, "box": (x0, y0, x0 + bw * w, y0 + bh * h), "colour": col})
    ax.set_axis_off()
    ax._alnb_labels = pending if labels else []  # placed by place_box_labels after layout
    return pending


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_box_labels(ax, fontsize: float = MIN_FONT) -> list:
    """Place the labels :func:`draw_boxes` left pending on ``ax``: outside the box (above, below, right, left),
    inside the image, clear of every other label (and, where possible, of other boxes).

    A box that fills the image gets its label inside its corner.  Works in display units of the figure's layout
    (only the image's size in pixels matters: moving the axes afterwards moves the labels with it).  Labels that find
    no free place are not drawn at their box; one line *under* the image (never over it) lists as many of them as
    fit its width ("+2 labels not shown here: air-hole conf 0.41, ..."): :func:`image_grid` keeps a row free for it.
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
    if skipped:  # one line under the image, as many of the labels as fit its width
        width = img_rect[2] - img_rect[0]
        head = f"+{len(skipped)} labels not shown here"
        note = head
        for k in range(len(skipped), 0, -1):
            cand = head + ": " + ", ".join(skipped[:k]) + (", ..." if k < len(skipped) else "")
            if _text_px(ax.figure, cand, fontsize)[0] <= width:
                note = cand
                break
        ax.annotate(note, xy=(0, 0), xycoords="axes fraction", xytext=(0, -2), textcoords="offset points",
                    ha="left", va="top", fontsize=fontsize, color="0.15", annotation_clip=False, gid="labels-note")
        ax._alnb_note = True
    return texts


def n_bars(tier: str) -> int:
    """Lit difficulty bars of a category: the tier's (:data:`alnb.acquisition.tiers.TIER_BARS`); failed lights all three."""
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
                it["title"] = f"{s}\nfailed: no candidate at all"
            else:
                h, w = img.shape[:2]
                xy = xyxy_to_xywhn(np.array([[b["x0"], b["y0"], b["x1"], b["y1"]]], float), w, h)
                it.update(boxes=np.column_stack([[b["cls"]], xy]), scores=np.array([b["conf"]]), styles=["--"],
                          colours=[BEST_CANDIDATE_COLOUR])
                below = f" < {conf:.3g}" if conf is not None else ""
                it["title"] = f"{s}\nfailed: best candidate{below}"
        items.append(it)
    shown = f"images {first + 1}-{first + len(items)} of {n_in_tier}" if items else f"0 of {n_in_tier} images"
    title = f"{tier}: {shown}, {model} auto-labels (box label: class conf)" + (
        "; dashed = best candidate below the operating point" if tier == "failed" else "") + (
        "" if items else " (none at these thresholds)")
    return image_grid(items, ws.names, ncols=ncols, title=title)


PANEL_TITLE_FONT = 9  # points: the title above each image of a grid
LINE = 1.25  # line height in units of the font size (matplotlib's linespacing 1.2, plus the descent)


def _text_px(fig, text: str, fontsize: float) -> tuple:
    """(width, height) in display pixels of ``text`` drawn at ``fontsize`` on ``fig`` (its renderer, its dpi)."""
    t = Text(0, 0, text, fontsize=fontsize)
    t.set_figure(fig)
    ext = t.get_window_extent(fig.canvas.get_renderer())
    return ext.width, ext.height


def wrap_to_width(fig, text: str, fontsize: float, width_px: float) -> str:
    """``text`` wrapped at spaces (a word longer than a line: anywhere) so that no line is wider than ``width_px``
    display pixels at ``fontsize`` on ``fig``, measured with its renderer (not guessed from a character count)."""
    out = []
    for para in str(text).split("\n"):
        line = ""
        for word in para.split(" "):
            cand = f"{line} {word}" if line else word
            if _text_px(fig, cand, fontsize)[0] <= width_px:
                line = cand
                continue
            if line:
                out.append(line)
            line = word
            while len(line) > 1 and _text_px(fig, line, fontsize)[0] > width_px:  # one word wider than a line
                k = len(line) - 1
                while k > 1 and _text_px(fig, line[:k], fontsize)[0] > width_px:
                    k -= 1
                out.append(line[:k])
                line = line[k:]
        out.append(line)
    return "\n".join(out)


def image_grid(items, names, ncols: int = 3, size: float = 3.1, title: str | None = None, colorbar=None):
    """Grid of images with boxes.  ``items``: list of dicts ``{image, boxes, title?, colours?, scores?, score_kind?,
    styles?, texts?, tier?}`` (``score_kind``: what the box numbers are; ``texts``: the box labels; see
    :func:`draw_boxes`).

    Images are about ``size`` inches wide (~300 px at 100 dpi: a 512-px radiograph at ~0.58x, so a 4-px pore stays
    visible); ``tier`` (easy | medium | hard | failed) draws the difficulty bars before the panel title.
    ``colorbar``: ``(ScalarMappable, label)`` for a horizontal colour scale under the grid.

    The layout is explicit (inches, not ``tight_layout``): each row has a title band as tall as its longest title,
    wrapped to the image's width (measured), so a title never runs into its neighbour or off the figure; a row whose
    images have labels that found no place gets a line under the images for the note (:func:`place_box_labels`).
    """
    n = max(1, len(items))
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    width = ncols * size
    outer, gap = 0.1, 0.1  # inches: the figure's side margins (a tight PNG adds 0.1 in: never wider than width)
    side = (width - 2 * outer - (ncols - 1) * gap) / ncols  # of an image
    dpi = DISPLAY_DPI
    fig, axes = new_figure(nrows, ncols, figsize=(width, nrows * size), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    line_in = PANEL_TITLE_FONT * LINE / 72
    bands = [0.0] * nrows  # title band of each row (inches)
    for k, (ax, it) in enumerate(zip(axes.ravel(), items)):
        draw_boxes(ax, it["image"], it.get("boxes", np.zeros((0, 5))), names, it.get("colours"), it.get("scores"),
                   score_kind=it.get("score_kind", "conf"), styles=it.get("styles"), texts=it.get("texts"))
        x = tier_bars(ax, it["tier"]) if it.get("tier") else 0.0
        bars = 0.02 + 0.03 + 0.025 * 2 if it.get("tier") else 0.0  # tallest bar, in image heights
        text = ""
        if it.get("title"):
            text = wrap_to_width(fig, it["title"], PANEL_TITLE_FONT, (1 - x) * side * dpi - 2)
            ax.text(x, 1.02, text, transform=ax.transAxes, ha="left", va="bottom", fontsize=PANEL_TITLE_FONT,
                    in_layout=False)
        lines = text.count("\n") + 1 if text else 0
        bands[k // ncols] = max(bands[k // ncols], 0.02 * side + lines * line_in, bars * side)
    sup = None
    if title:  # wrapped to the figure's width: a PNG never wider than its grid
        sup = fig.suptitle(wrap_to_width(fig, title, 11, (width - 2 * outer) * dpi - 4), fontsize=11, va="top")
    top = (_text_px(fig, sup.get_text(), 11)[1] / dpi + 0.12) if sup is not None else 0.0
    bottom = 0.85 if colorbar else 0.0  # inches for the colour scale: the bar, its ticks and its label below
    note_in = MIN_FONT * LINE / 72 + 0.04

    def layout(notes):
        heights = [bands[r] + 0.08 + side + (note_in if notes[r] else 0.0) for r in range(nrows)]
        total = top + sum(heights) + bottom + 0.05
        fig.set_size_inches(width, total)
        y = total - top
        for r in range(nrows):
            y -= bands[r] + 0.08 + side
            for c in range(ncols):
                axes[r][c].set_position(((outer + c * (side + gap)) / width, y / total, side / width, side / total))
            y -= note_in if notes[r] else 0.0
        if sup is not None:
            sup.set_y(1 - 0.06 / total)
        return total

    layout([False] * nrows)
    for ax in axes.ravel():
        place_box_labels(ax)
    notes = [any(getattr(ax, "_alnb_note", False) for ax in axes[r]) for r in range(nrows)]
    total = layout(notes) if any(notes) else fig.get_size_inches()[1]
    if colorbar:
        cax = fig.add_axes((0.3, 0.5 / total, 0.4, 0.12 / total))
        fig.colorbar(colorbar[0], cax=cax, orientation="horizontal", label=colorbar[1])
    return fig


def sample_images(ws, stems, ncols: int = 3, title: str | None = None):
    """Grid of dataset images with their trainable labels (hidden POOL labels are not shown)."""
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


def split_edges(edges, thresholds) -> np.ndarray:
    """``edges`` with every threshold inside their range added as an edge: no bin straddles a threshold, so a
    histogram bar never mixes two tiers (bins are ``[a, b)`` and a tier starts *at* its threshold, as
    :func:`alnb.acquisition.tiers.tier_of`).  The fixed edges all stay: the axis and the other bins do not move."""
    e = np.asarray(edges, float)
    inside = [float(t) for t in thresholds if np.isfinite(t) and e[0] < t < e[-1]]
    return np.union1d(e, inside) if inside else e


def score_histogram(scores, t_medium: float, t_hard: float, bins: int = 40, title: str | None = None, ax=None,
                    edges=None):
    """Histogram of POOL image scores, stacked by tier, with the two threshold lines (``t_medium``/``t_hard``).

    ``scores``: table with ``score`` and ``failed`` (as ``scores.csv``).  Failed images have no place on the score
    axis; their count is given in the legend.  ``edges``: fixed bin edges (:func:`histogram_edges`; default: over
    the non-failed scores and both thresholds), so the x axis and the bins do not depend on the thresholds; a bin
    that a threshold cuts is split there (:func:`split_edges`), so every bar holds one tier only.
    Returns the Figure.
    """
    s = check_scores(scores)
    cat = categorise(s, t_medium, t_hard)
    fig, ax = (ax.figure, ax) if ax is not None else new_figure(figsize=(9, 3.4))
    edges = histogram_edges(s, bins, include=(t_medium, t_hard)) if edges is None else np.asarray(edges, float)
    edges = split_edges(edges, (t_medium, t_hard))
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
    ``model, class`` + the metrics (see :func:`alnb.ui.report.per_class_table`).  n/m = not measurable on VAL1."""
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
    ax.set_title("mAP on VAL1: the evaluation's (COCO-style,\non the auto-label boxes; the report's number)",
                 fontsize=10)
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
    """Horizontal stacked bar: images only in ``a``, in both, only in ``b`` (``ov`` from :func:`alnb.acquisition.tiers.overlap`)."""
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
TRAINING_MAP = "ultralytics' validator mAP50 on VAL1, during training"
"""What the training curves' mAP is: ultralytics' own validation of each epoch (multi-label NMS, confidence floor
0.001), which steers training; not the evaluation's mAP50 (:mod:`alnb.evaluation.step`), the study's number."""
TRAINING_TITLE = "ultralytics' validator on VAL1, during training\n(steers training; not the evaluation's numbers)"


def training_curves(results, title: str | None = None):
    """Training losses and validation metrics per epoch from an ultralytics ``results.csv`` (path or DataFrame).

    Left: box / class / DFL training losses.  Right: ultralytics' own validation on VAL1 during training (precision,
    recall, mAP50, mAP50-95; :data:`TRAINING_MAP`: it steers training and is not the evaluation's mAP); epochs
    without validation (``Profile.val_every``) are skipped, not drawn as 0.  Each panel's title says what it shows,
    the axis labels stay short and the legends sit under the panels (never on a curve or the title).
    """
    df = results if isinstance(results, pd.DataFrame) else pd.read_csv(results)
    df = df.rename(columns=lambda c: c.strip())
    fig, (a1, a2) = new_figure(1, 2, figsize=(MAX_WIDTH, 4.0))
    for col, lab in (("train/box_loss", "box"), ("train/cls_loss", "class"), ("train/dfl_loss", "DFL")):
        if col in df:
            a1.plot(df["epoch"], df[col], marker=".", label=lab)
    a1.set_xlabel("epoch")
    a1.set_ylabel("loss")
    a1.set_title("training losses", fontsize=9)
    for col, lab in (("metrics/precision(B)", "precision"), ("metrics/recall(B)", "recall"),
                     ("metrics/mAP50(B)", "mAP50"), ("metrics/mAP50-95(B)", "mAP50-95")):
        if col in df:
            d = df[["epoch", col]].dropna()
            a2.plot(d["epoch"], d[col], marker=".", label=lab)
    a2.set_xlabel("epoch")
    a2.set_ylabel("value")
    a2.set_ylim(0, 1)
    a2.set_title(TRAINING_TITLE, fontsize=9)
    for ax in (a1, a2):
        if ax.lines:
            ax.legend(fontsize=MIN_FONT, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def per_class_pr(per_class, title: str | None = None, metrics=("precision", "recall")):
    """Grouped bars of precision and recall per class at the operating point.

    ``per_class``: DataFrame indexed by class name with the ``metrics`` columns, ``instances`` and ``measurable``
    (as :func:`alnb.evaluation.step.per_class_frame` returns).  Classes that are not measurable (no instance in the set)
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

    ``dve``: the dict of :func:`alnb.acquisition.difficulty.difficulty_vs_errors` (``metrics/difficulty_vs_errors.json``).
    The images per tier are in the tick labels (one number when both scores' tiers hold the same count), the legend
    sits under the panel (never on a bar or beside its neighbour).
    """
    tiers = ["easy", "medium", "hard", "failed"]
    fig, (ax, ax2) = new_figure(1, 2, figsize=(MAX_WIDTH, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    xs = np.arange(len(tiers))
    for off, key, hatch in [(-0.2, "tiers", None), (0.2, "least_conf_tiers", "//")]:
        t = dve[key]
        vals = [t[k]["error_rate"] if t[k]["error_rate"] is not None else np.nan for k in tiers]
        ax.bar(xs + off, vals, width=0.4, color=[TIER_COLOURS[k] for k in tiers], edgecolor="k", hatch=hatch)
    handles = [Patch(facecolor="white", edgecolor="k", label="hybrid tiers (the study's score)"),
               Patch(facecolor="white", edgecolor="k", hatch="//",
                     label="least_confidence tiers (one minus the top class probability), same sizes")]
    if dve.get("error_rate") is not None:
        handles.append(ax.axhline(dve["error_rate"], color="grey", ls=":", lw=1,
                                  label=f"all POOL images: error rate {dve['error_rate']:.2f}"))

    def n_text(k):
        a, b = dve["tiers"][k]["n"], dve["least_conf_tiers"][k]["n"]
        return f"n={a}" if a == b else f"n={a} / {b}"

    ax.set_xticks(xs, [f"{k}\n{n_text(k)}" for k in tiers])
    ax.set_ylim(0, 1.0)
    ax.set_ylabel("images with >= 1 auto-label error")
    ax.legend(handles=handles, fontsize=MIN_FONT, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1,
              frameon=False)
    ax.set_title("Error rate per tier", fontsize=9)
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
    ax2.set_xlim(0, 1.12)
    ax2.set_xticks(np.linspace(0, 1, 5))
    ax2.invert_yaxis()
    ax2.tick_params(axis="y", labelsize=9)
    ax2.set_xlabel("AUROC for 'image has an error'\n(0.5 = chance; red = the study's score)")
    ax2.set_title("Which score predicts errors?", fontsize=9)
    fig.suptitle(title or f"Does difficulty predict auto-label errors? ({dve['n']} POOL images, "
                          f"{dve['n_error']} images with errors)", fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- training curves of several models
def _loss_total(df):
    cols = [c for c in ("train/box_loss", "train/cls_loss", "train/dfl_loss") if c in df]
    return df[cols].sum(axis=1) if cols else None


def run_starts(runs: dict) -> dict:
    """``{model: the run it was fine-tuned from}`` for the runs of ``runs`` (``{model: results.csv path}``) that
    started from another run's weights (``runs/<parent>/weights/*.pt`` in ``alnb_run.json``'s ``model``)."""
    out = {}
    for name, res in runs.items():
        if not isinstance(res, (str, Path)):
            continue
        info = Path(res).parent / "alnb_run.json"
        try:
            model = Path(str(json.loads(info.read_text()).get("model", "")))
        except (OSError, ValueError):
            continue
        if model.suffix == ".pt" and model.parent.name == "weights" and model.parent.parent.parent.name == "runs":
            out[name] = model.parent.parent.name
    return out


def training_curves_compare(runs: dict, title: str | None = None, starts: dict | None = None):
    """Training loss (box + class + DFL) and ultralytics' validator mAP50 on VAL1 per epoch (:data:`TRAINING_MAP`:
    not the evaluation's mAP) for every model of ``runs`` (``{model: results.csv path or DataFrame}``), one colour
    per model (:func:`set_colour`).  The best validated epoch of each model is ringed, so a fine-tune still improving
    at its last epoch is visible.

    A model fine-tuned from another run of the figure (``starts`` ``{model: parent}``; default read from the runs'
    ``alnb_run.json``, :func:`run_starts`) is drawn after its parent's last epoch, not from epoch 1: CAL2 and Control
    start from CAL1's weights, and the x axis counts the epochs behind each point."""
    starts = {**run_starts(runs), **(starts or {})}
    frames = {}
    for name, res in runs.items():
        df = res if isinstance(res, pd.DataFrame) else pd.read_csv(res)
        frames[name] = df.rename(columns=lambda c: c.strip())
    offset = {}

    def epochs_before(name, seen=()):
        parent = starts.get(name)
        if parent not in frames or parent in seen:
            return 0
        return epochs_before(parent, (*seen, name)) + int(frames[parent]["epoch"].max())

    fig, (a1, a2) = new_figure(1, 2, figsize=(MAX_WIDTH, 3.9))
    for name, df in frames.items():
        offset[name] = epochs_before(name)
        label = name + (f" (fine-tuned from {starts[name]})" if name in starts else "")
        ep = df["epoch"] + offset[name]
        loss = _loss_total(df)
        if loss is not None:
            a1.plot(ep, loss, marker=".", color=set_colour(name), label=label)
        col = "metrics/mAP50(B)"
        if col in df:
            d = df[["epoch", col]].dropna()
            a2.plot(d["epoch"] + offset[name], d[col], marker=".", color=set_colour(name), label=label)
            if len(d):
                best = d.loc[d[col].idxmax()]
                a2.plot([best["epoch"] + offset[name]], [best[col]], "o", mfc="none", mec=set_colour(name), ms=9)
    for ax in (a1, a2):
        for o in sorted({v for v in offset.values() if v}):
            ax.axvline(o + 0.5, color="0.5", ls=":", lw=1)
        ax.set_xlabel("epoch (fine-tunes after their start's last epoch)" if any(offset.values()) else "epoch")
    a1.set_ylabel("training loss")
    a1.set_title("training loss (box + class + DFL)", fontsize=9)
    a2.set_ylabel("mAP50")
    a2.set_ylim(0, 1)
    a2.set_title(TRAINING_MAP + "\n(steers training; not the evaluation's mAP50)", fontsize=9)
    handles, labels = a2.get_legend_handles_labels() if a2.lines else a1.get_legend_handles_labels()
    if any(offset.values()):
        handles = [*handles, matplotlib.lines.Line2D([], [], color="0.5", ls=":", lw=1)]
        labels = [*labels, "a fine-tune starts"]
    handles = [*handles, matplotlib.lines.Line2D([], [], ls="none", marker="o", mfc="none", mec="0.3", ms=9)]
    labels = [*labels, "ring = best validated epoch"]
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=MIN_FONT, frameon=False)
    fig.suptitle(title or "Training curves per model", fontsize=10)
    rows = -(-len(labels) // 3)
    fig.tight_layout(rect=(0, (0.08 + 0.17 * rows) / 3.9, 1, 1))
    return fig


# ------------------------------------------------------------------ detection diagnostics (alnb.evaluation.diagnostics)
EVAL_AP = "the evaluation's COCO-style AP"
"""The AP the diagnostic figures show (:func:`alnb.evaluation.diagnostics.diagnostics`): the evaluation step's, whose mean over
the classes is the mAP of the report and the per-class table, on the same boxes."""


def pr_curves(diag: dict, title: str | None = None, op_points: dict | None = None):
    """Per-class precision-recall curves at IoU 0.5 (``diag`` from :func:`alnb.evaluation.diagnostics.diagnostics`: the
    precision envelope whose mean over 101 recall points is the class's AP, :data:`EVAL_AP`), legend with each
    class's AP50 (outside the axes); ``op_points`` ``{class: (recall, precision)}`` marks the operating point."""
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
    mean = f"\n(mean over the classes: mAP50 {diag['mAP50']:.3f})" if np.isfinite(diag.get("mAP50", np.nan)) else ""
    ax.legend(fontsize=MIN_FONT, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0,
              title=f"AP50: {EVAL_AP.replace(' AP', '')}{mean}", title_fontsize=MIN_FONT)
    ax.set_title(title or f"Precision-recall per class ({diag['n_images']} images, {diag['n_gt']} boxes)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def per_class_ap(diag: dict, title: str | None = None, model: str = "CAL1"):
    """Bars of AP50 and AP50-95 per class: :data:`EVAL_AP` (the per-class mAP of the evaluation's table, on the
    auto-label path's boxes); the legend, outside the axes, gives their means (the model's mAP50 / mAP50-95)."""
    names = [diag["names"][c] for c in diag["classes"]]
    x = np.arange(len(names))
    fig, ax = new_figure(figsize=(max(6, 1.3 * len(names)) + 1.6, 3.6))
    for k, (key, lab, hatch) in enumerate((("ap50", "AP50", None), ("ap50_95", "AP50-95", "//"))):
        v = np.asarray(diag[key], float)
        mean = diag.get("mAP50" if key == "ap50" else "mAP50-95", np.nan)
        bars = ax.bar(x - 0.2 + 0.4 * k, v, 0.4, color=set_colour(model), hatch=hatch, edgecolor="k", lw=0.5,
                      label=f"{lab} (mean {mean:.3f})" if np.isfinite(mean) else lab)
        ax.bar_label(bars, labels=[f"{t:.2f}" for t in v], fontsize=MIN_FONT)
    ax.set_xticks(x, names, fontsize=8, rotation=15)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("AP per class")
    ax.legend(fontsize=MIN_FONT, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0,
              title=EVAL_AP.replace("the ", "", 1), title_fontsize=MIN_FONT)
    ax.set_title(title or "AP per class", fontsize=10)
    fig.tight_layout()
    return fig


def confusion_matrix(diag: dict, title: str | None = None):
    """The confusion matrix at the operating point (counts; rows = predicted class, columns = true class, the last
    row / column = background: a missed box / a false positive), counted with the evaluation's matches
    (:func:`alnb.evaluation.metrics.confusion_counts`): the diagonal is the TP column of the per-class table."""
    mat = np.asarray(diag["matrix"], float)
    labels = list(diag["names"]) + ["background"]
    n = len(labels)
    fig, ax = new_figure(figsize=(min(MAX_WIDTH, 1.6 + 0.75 * n), min(MAX_WIDTH, 1.2 + 0.7 * n)))
    im = ax.imshow(mat, cmap="Blues")
    for i in range(n):
        for j in range(n):
            if mat[i, j]:
                ax.text(j, i, f"{int(mat[i, j])}", ha="center", va="center", fontsize=MIN_FONT,
                        color="white" if mat[i, j] > 0.5 * mat.max() else "black")
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=MIN_FONT)
    ax.set_yticks(range(n), labels, fontsize=MIN_FONT)
    ax.set_xlabel("true class (background column: false positives)")
    ax.set_ylabel("predicted class (background row: missed boxes)")
    fig.colorbar(im, ax=ax, fraction=0.04, label="boxes")
    head = title or f"Confusion matrix at conf > {diag['conf']:.3g}, IoU >= {diag.get('iou_thr', 0.5):g}"
    ax.set_title(head + "\ndiagonal = TP of the per-class table (the evaluation's matches)", fontsize=10)
    fig.tight_layout()
    return fig


def side_by_side(items, names, n_models: int, title: str | None = None):
    """Rows of panels from :func:`alnb.evaluation.diagnostics.side_by_side_items`: ground truth, then each model on the same
    image (green = true positive, red = false positive, dashed = a truth box the model missed; box label: class
    conf)."""
    return image_grid(items, names, ncols=n_models + 1, size=2.3,
                      title=title or "Where the models disagree most (green = TP, red = FP, dashed blue = missed "
                                     "truth box, FN; box label: class conf)")


def rounds_curves(table, measures=("mAP50", "mAP50-95", "recall", "boost")):
    """Learning curves of the two chains (:func:`alnb.ui.report.rounds_table`): each measure over the chain's
    cumulative labelled images (top row) and over its cumulative assisted labelling hours (bottom row); the CAL
    chain in CAL2's colour, the random control chain in Control's, each point labelled with its round (the CAL
    chain's labels above-left of its points, the control chain's below-right, so two chains' points never share a
    label place; round 1, the same CAL1 for both, once).  mAP is the evaluation's on VAL1; the legend is under the
    panels."""
    fig, axes = new_figure(2, len(measures), figsize=(min(MAX_WIDTH, 2.35 * len(measures)), 5.2), squeeze=False)
    place = {"CAL": ((-3, 3), "right", "bottom"), "Control": ((3, -3), "left", "top")}
    for chain, colour, marker in (("CAL", set_colour("CAL2"), "o"), ("Control", set_colour("Control"), "s")):
        t = table[table["chain"] == chain].sort_values("round")
        offset, ha, va = place[chain]
        for row, x, xlabel in ((0, "images", "labelled images"), (1, "labelling h", "assisted labelling h")):
            for ax, m in zip(axes[row], measures):
                ax.plot(t[x], t[m], marker=marker, color=colour, label=f"{chain} chain", lw=1.4, ms=4)
                for _, r in t.iterrows():
                    if chain != "CAL" and int(r["round"]) == 1:
                        continue  # CAL1 starts both chains: its point is labelled once
                    if np.isfinite(r[x]) and np.isfinite(r[m]):
                        ax.annotate(str(int(r["round"])), (r[x], r[m]), xytext=offset, textcoords="offset points",
                                    ha=ha, va=va, fontsize=MIN_FONT, color=colour)
                ax.set_xlabel(xlabel, fontsize=MIN_FONT + 1)
                ax.set_ylabel(m + (" (x)" if m == "boost" else ""), fontsize=MIN_FONT + 1)
                ax.tick_params(labelsize=MIN_FONT)
                ax.margins(x=0.12, y=0.15)  # room for the round labels at the ends
                ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=MIN_FONT, frameon=False)
    fig.suptitle("Both chains round by round on VAL1 (the evaluation's mAP; point label = round)",
                 fontsize=MIN_FONT + 2)
    fig.tight_layout(rect=(0, 0.3 / 5.2, 1, 1))
    return fig


# ------------------------------------------------------------------------------------------------------ review plan
def review_curve(curve, cut: dict | None = None, title: str | None = None):
    """The review plan's curve (:func:`alnb.loop.review.curve`): review hours (x) against the predicted residual errors
    in the accepted images (wrong boxes and images with an error, with their 95 % bands), the actual residuals
    beside them when the truth is known (simulation, dashed), the chosen ``cut`` marked."""
    fig, ax = new_figure(figsize=(7.5, 4.4))
    x = np.asarray(curve["review_h"], float)
    for key, colour, what in (("wrong_boxes", "#d62728", "wrong boxes"), ("err_images", "#1f77b4",
                                                                           "images with an error")):
        ax.plot(x, curve[key], color=colour, lw=1.6, label=f"predicted {what} left")
        if f"{key}_lo" in curve:
            ax.fill_between(x, curve[f"{key}_lo"], curve[f"{key}_hi"], color=colour, alpha=0.18, lw=0)
        if f"actual_{key}" in curve:
            ax.plot(x, curve[f"actual_{key}"], color=colour, lw=1.2, ls="--", label=f"actual {what} left (same cut)")
    if cut is not None:
        ax.axvline(cut["review_h"], color="k", ls=":", lw=1)
        ax.plot([cut["review_h"]], [cut["wrong_boxes"]], "o", color="k", ms=5,
                label=f"chosen cut: review {cut['reviewed']} images, {cut['review_h']:.2f} h")
    ax.set_xlabel("review hours (cost model on the auto-labels, plan order)")
    ax.set_ylabel("errors left in the accepted images")
    ax.set_xlim(0, 1.03 * max(float(x[-1]), 1e-6))
    ax.set_ylim(bottom=0)
    ax.tick_params(labelsize=MIN_FONT + 1)
    ax.legend(fontsize=MIN_FONT, loc="upper right", frameon=False)
    manual = float(np.asarray(curve["manual_h"], float)[0]) if len(curve) else float("nan")
    ax.set_title(title or f"Review plan: {int(curve['reviewed'].iloc[-1])} images; drawing all by hand "
                          f"{manual:.2f} h", fontsize=10)
    fig.tight_layout()
    return fig


def diagnostic_figures(ws, model: str = "CAL1", tag: str = "VAL1", save: bool = True) -> dict:
    """``model``'s precision-recall curve per class (its operating point as a dot on each), AP per class and the
    confusion matrix at its operating point on ``tag``: ``{"<model>_pr_curves" | "_ap_per_class" |
    "_confusion_matrix": figure}`` (lower-case model name), written to ``figures/`` when ``save``.  Notebook 01 and the
    headless ``alnb run`` draw the same three figures, and ``report.md`` embeds them."""
    ev_path = ws.root / "metrics" / f"eval_{model}.json"
    ev = json.loads(ev_path.read_text()) if ev_path.is_file() else {}
    iou = float(ev.get("iou_thr", MATCH_IOU))
    diag = model_diagnostics(ws, model, tag, iou_thr=iou)
    ops = {r["class"]: (r["recall"], r["precision"]) for r in ev.get("per_class", [])}
    prefix = model.lower()
    figs = {f"{prefix}_pr_curves": pr_curves(diag, op_points=ops,
                                                   title=f"{model} on {tag}: precision-recall per class"),
            f"{prefix}_ap_per_class": per_class_ap(diag, model=model, title=f"{model} on {tag}: AP per class"),
            f"{prefix}_confusion_matrix": confusion_matrix(diag, title=f"{model} on {tag} at conf > "
                                                                             f"{diag['conf']:.3g}, IoU ≥ {iou:g}")}
    if save:
        for name, fig in figs.items():
            save_figure(fig, name, ws)
    return figs
