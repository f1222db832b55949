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
