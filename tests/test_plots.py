"""Figures as a person sees them: one display each (no pyplot state), text >= MIN_FONT points, box labels that do
not overlap, integer count ticks, legends clear of axis labels, difficulty bars on image panels."""

from __future__ import annotations

import itertools

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from alnb import plots

NAMES = ["bite-edge", "crack", "slag-inclusion", "broken-arc", "air-hole", "unfused"]
MODELS = ("CAL1", "CAL2", "Control")


def _table(value_cols):
    rng = np.random.default_rng(0)
    rows = [{"model": m, "class": c, **{v: rng.random() for v in value_cols}} for m in MODELS for c in NAMES]
    rows[2]["precision"] = float("nan")
    return pd.DataFrame(rows)


def _scores(n=60):
    rng = np.random.default_rng(1)
    return pd.DataFrame({"stem": [f"s{i:03d}" for i in range(n)], "score": rng.gamma(2.0, 0.1, n),
                         "failed": rng.random(n) < 0.1})


def _per_class():
    df = pd.DataFrame({"precision": [0.5, np.nan, 0.7, 0.2, 0.9, 0.4], "recall": [0.3, 0.0, 0.6, 0.1, 0.8, 0.2],
                       "instances": [10, 0, 5, 3, 20, 4], "boost": [1.2, np.nan, 2.0, 0.9, 3.1, 1.1]}, index=NAMES)
    df["measurable"] = df["instances"] > 0
    return df


def _dve():
    tiers = {k: {"n": n, "error_rate": r} for k, n, r in [("easy", 10, 0.2), ("medium", 8, 0.5), ("hard", 6, 0.8),
                                                          ("failed", 3, None)]}
    return {"tiers": tiers, "least_conf_tiers": tiers, "error_rate": 0.4, "auroc": {"score": 0.78, "least_conf": 0.4},
            "n": 27, "n_error": 11}


def _image_items(k=4):
    rng = np.random.default_rng(0)
    img = (rng.random((512, 512)) * 80 + 90).astype(np.uint8)
    px = np.array([[200, 200, 8, 8], [210, 212, 8, 8], [190, 225, 8, 8], [204, 190, 8, 8], [400, 100, 40, 20],
                   [60, 480, 100, 10], [256, 256, 300, 26]], float) / 512
    boxes = np.column_stack([[4, 4, 4, 4, 2, 5, 1], px])
    return [{"image": img, "boxes": boxes, "scores": rng.random(len(boxes)), "title": f"weld_{i:05d} | {t} 0.53",
             "tier": t} for i, t in zip(range(k), itertools.cycle(["easy", "medium", "hard", "failed"]))]


FIGURES = {
    "class_distribution": lambda: plots.class_distribution({"GT1": dict.fromkeys(NAMES, 12), "VAL1": dict.fromkeys(NAMES, 3)}),
    "score_histogram": lambda: plots.score_histogram(_scores(), 0.15, 0.3),
    "compare_per_class": lambda: plots.compare_per_class(_table(["precision", "recall"])),
    "compare_map": lambda: plots.compare_map(pd.DataFrame({"model": MODELS, "mAP50": [0.2, 0.4, 0.5],
                                                           "mAP50-95": [0.1, 0.2, 0.25]})),
    "compare_efficiency": lambda: plots.compare_efficiency(_table(["boost"]), {"CAL1": 1.1, "CAL2": 1.3, "Control": 1.4}),
    "selection_overlap": lambda: plots.selection_overlap({"only_a": 40, "both": 12, "only_b": 38, "jaccard": 0.13}),
    "training_curves": lambda: plots.training_curves(pd.DataFrame({
        "epoch": [1, 2, 3], "train/box_loss": [3, 2, 1.5], "train/cls_loss": [4, 3, 2], "train/dfl_loss": [2, 1.8, 1.6],
        "metrics/precision(B)": [0.1, np.nan, 0.3], "metrics/mAP50(B)": [0.05, np.nan, 0.2]})),
    "per_class_pr": lambda: plots.per_class_pr(_per_class()),
    "efficiency_per_class": lambda: plots.efficiency_per_class(_per_class(), overall=1.4),
    "errors_vs_difficulty": lambda: plots.errors_vs_difficulty(_dve()),
    "image_grid": lambda: plots.image_grid(_image_items(), NAMES, title="grid"),
}


def _renderer(fig):
    """Draw ``fig`` on an Agg canvas (figures come without one: no pyplot) and return the renderer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _texts(fig):
    _renderer(fig)
    return [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]


@pytest.mark.parametrize("name", list(FIGURES))
def test_figures_are_legible_and_keep_no_pyplot_state(name):
    before = plt.get_fignums()
    fig = FIGURES[name]()
    assert isinstance(fig, matplotlib.figure.Figure)
    assert plt.get_fignums() == before  # nothing for the inline backend to show a second time
    assert fig.get_size_inches()[0] <= plots.MAX_WIDTH + 1e-9
    small = [(t.get_text(), t.get_fontsize()) for t in _texts(fig) if t.get_fontsize() < plots.MIN_FONT]
    assert not small, f"text below {plots.MIN_FONT} pt: {small[:5]}"


def test_box_labels_do_not_overlap_and_stay_on_the_image():
    fig = plots.image_grid(_image_items(2), NAMES)
    r = _renderer(fig)
    for ax in fig.axes[:2]:
        labels = [t for t in ax.texts if t.get_bbox_patch() is not None and "not labelled here" not in t.get_text()]
        note = [t.get_text() for t in ax.texts if "not labelled here" in t.get_text()]
        n_shown = len(labels) + (int(note[0].split()[0][1:]) if note else 0)
        assert n_shown == 7 and len(labels) >= 4  # every box is either labelled on the image or listed below it
        ext = [t.get_bbox_patch().get_window_extent(r) for t in labels]
        img = ax.get_images()[0].get_window_extent(r)
        for a, b in itertools.combinations(ext, 2):
            assert not a.overlaps(b), (a, b)
        for e in ext:
            assert img.x0 - 1 <= e.x0 and e.x1 <= img.x1 + 1 and img.y0 - 1 <= e.y0 and e.y1 <= img.y1 + 1
        assert all(t.get_fontsize() >= plots.MIN_FONT for t in ax.texts)


def test_image_panels_carry_difficulty_bars():
    fig = plots.image_grid(_image_items(4), NAMES)
    for ax, (tier, lit, colour) in zip(fig.axes, [("easy", 1, "#2ca02c"), ("medium", 2, "#f2c500"),
                                                  ("hard", 3, "#d62728"), ("failed", 3, "#7f3fbf")]):
        bars = [p for p in ax.patches if p.get_gid() == f"tier-bar-{tier}"]
        on = [p for p in bars if matplotlib.colors.to_hex(p.get_facecolor()) == colour]
        assert len(bars) == 3 and len(on) == lit, tier
    # at 100 dpi (the inline backend) a 512-px image is shown at >= 0.55x: a 4-px pore stays >= 2.2 px
    fig.set_dpi(100)
    w = fig.axes[0].get_images()[0].get_window_extent(_renderer(fig)).width
    assert w / 512 >= 0.55


def test_histogram_counts_have_integer_ticks():
    fig = plots.score_histogram(_scores(7), 0.15, 0.3)
    _renderer(fig)
    ticks = fig.axes[0].get_yticks()
    assert len(ticks) >= 2 and np.allclose(ticks, np.round(ticks))


def test_overlap_legend_clear_of_the_axis_label():
    fig = plots.selection_overlap({"only_a": 6, "both": 8, "only_b": 6, "jaccard": 0.4})
    r = _renderer(fig)
    ax = fig.axes[0]
    legend, xlabel = ax.get_legend().get_window_extent(r), ax.xaxis.label.get_window_extent(r)
    assert not legend.overlaps(xlabel)
    assert not legend.overlaps(ax.get_window_extent(r))
    assert np.allclose(ax.get_xticks(), np.round(ax.get_xticks()))  # image counts


def test_report_writes_the_difficulty_bars_as_text():
    from alnb.report import tier_glyphs

    assert [tier_glyphs(t) for t in ("easy", "medium", "hard", "failed")] == [
        "\U0001F7E9\u2B1C\u2B1C", "\U0001F7E8\U0001F7E8\u2B1C", "\U0001F7E5" * 3, "\U0001F7EA" * 3]
