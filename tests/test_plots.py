"""Figures as a person sees them: one display each (no pyplot state), text >= MIN_FONT points, box labels that do
not overlap, integer count ticks, legends clear of axis labels, difficulty bars on image panels."""

from __future__ import annotations

import itertools

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from alnb.figures import plots
from alnb.figures import study_plots

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
    strategies = {k: {"auroc": a, "auroc_all_images": a - 0.05, "spearman_errors": a - 0.3,
                      "abs_spearman_candidates": c} for k, a, c in [("hybrid", 0.72, 0.55), ("count_variance", 0.84, 0.78),
                                                                   ("least_confidence", 0.44, 0.36)]}
    return {"tiers": tiers, "least_conf_tiers": tiers, "error_rate": 0.4, "auroc": {"score": 0.72, "count_var": 0.84,
                                                                                    "least_conf": 0.44},
            "strategies": strategies, "n": 27, "n_error": 11}


def _diag():
    x = np.linspace(0, 1, 1000)
    return {"names": NAMES, "conf": 0.229, "classes": [0, 1, 4], "ap50": [0.8, 0.6, 0.4], "ap50_95": [0.5, 0.3, 0.2],
            "recall": x, "precision": np.vstack([1 - 0.2 * x, 1 - 0.4 * x, 1 - 0.6 * x]),
            "matrix": np.diag([5, 3, 0, 2, 9, 1, 0]) + np.eye(7, k=1) * 2, "n_images": 12, "n_gt": 40}


def _image_items(k=4):
    rng = np.random.default_rng(0)
    img = (rng.random((512, 512)) * 80 + 90).astype(np.uint8)
    px = np.array([[200, 200, 8, 8], [210, 212, 8, 8], [190, 225, 8, 8], [204, 190, 8, 8], [400, 100, 40, 20],
                   [60, 480, 100, 10], [256, 256, 300, 26]], float) / 512
    boxes = np.column_stack([[4, 4, 4, 4, 2, 5, 1], px])
    return [{"image": img, "boxes": boxes, "scores": rng.random(len(boxes)), "title": f"weld_{i:05d} | {t}, score 0.53",
             "tier": t, "score_kind": ("conf", "unc")[i % 2]} for i, t in zip(range(k), itertools.cycle(["easy", "medium", "hard", "failed"]))]


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
    "training_curves_compare": lambda: plots.training_curves_compare({m: pd.DataFrame({
        "epoch": [1, 2, 3], "train/box_loss": [3, 2, 1.5], "train/cls_loss": [4, 3, 2], "train/dfl_loss": [2, 1.8, 1.6],
        "metrics/mAP50(B)": [0.1 * k, np.nan, 0.2 * k]}) for k, m in enumerate(MODELS, 1)}),
    "pr_curves": lambda: plots.pr_curves(_diag(), op_points={"crack": (0.5, 0.7)}),
    "per_class_ap": lambda: plots.per_class_ap(_diag()),
    "confusion_matrix": lambda: plots.confusion_matrix(_diag()),
    "side_by_side": lambda: plots.side_by_side(_image_items(4), NAMES, 3),
    "study_learning_curves": lambda: study_plots.learning_curves(pd.DataFrame({
        "strategy": ["gt1_only", "random", "hybrid"], "images": [0, 100, 100], "mAP50": [0.7, 0.8, 0.79],
        "mAP50-95": [0.4, 0.45, 0.44], "n_seeds": 3})),
    "difficulty_comparison": lambda: study_plots.difficulty_comparison({**_dve(), "n_nonfailed": 24, "n_boxes": 90,
                                                                        "n_fp_boxes": 20,
                                                                        "strategies": _dve()["strategies"],
                                                                        "box_level": {"hybrid": 0.7, "cls_unc": 0.4}}),
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
        labels = [t for t in ax.texts if t.get_bbox_patch() is not None and "labels not shown here" not in t.get_text()]
        note = [t.get_text() for t in ax.texts if "labels not shown here" in t.get_text()]
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


def test_tier_bars_svg_draws_the_bars_without_a_font():
    import xml.etree.ElementTree as ET

    for tier, lit, colour in (("easy", 1, "#2ca02c"), ("medium", 2, "#f2c500"), ("hard", 3, "#d62728"),
                              ("failed", 3, "#7f3fbf")):
        root = ET.fromstring(plots.tier_bars_svg(tier))
        rects = [e for e in root.iter() if e.tag.endswith("rect")]
        assert len(rects) == 3 and [r.get("fill") for r in rects].count(colour) == lit, tier
        assert "".join(root.itertext()).strip() == f"{tier}: {lit} of 3 bars"  # the only text: a <title>


# ------------------------------------------------------------------------------- one meaning per number, one palette
QUANTITIES = {"conf", "unc", "score", "auroc", "ap50", "ap50-95", "map50", "map50-95", "boost", "precision",
              "recall", "jaccard", "t_medium", "t_hard", "f1", "iou", "n", "p", "r", "epoch", "rate", "interval",
              # counts and units: the number says how many of what
              "images", "image", "image(s)", "boxes", "box", "box(es)", "labels", "classes", "instances", "errors",
              "seed(s)", "seeds", "tp", "fp", "fn", "%", "x", "s", "min", "h", "px"}
SKIP = {"of", "with", "=", ":", "vs", "to", "-", "at", "in", "and", ">", "<", "≥", "≤", "a", "the", "non-failed",
        "(", ")", ","}
NUMBER = r"[+-]?\d+(?:\.\d+)?"


def number_problems(text: str, axis_named: bool) -> list:
    """Numbers in ``text`` that do not say what they are: a number needs a quantity name or a unit among the two
    words before or after it (``crack conf 0.80``, ``n=10``, ``40 images``, ``2.00x``), except a bare number on axes
    whose value axis is labelled (a bar's value)."""
    import re

    tokens = re.findall(r"[A-Za-z_][\w\-()@']*|" + NUMBER + r"[x×%]?|[=:<>≥≤(),%]", text.replace("\n", " "))
    if axis_named and re.fullmatch(r"\s*" + NUMBER + r"[x×%]?\s*", text):
        return []
    words = [t.lower().strip("'(),.;:") if not t.endswith("(s)") else t.lower() for t in tokens]
    words = [w.rstrip(",.;:") for w in words]
    bad = []
    for i, t in enumerate(tokens):
        if not re.fullmatch(NUMBER + r"[x×%]?", t):
            continue
        if t[-1] in "x×%":
            continue
        near = [w for w in words[max(0, i - 4):i] if w not in SKIP and not re.fullmatch(NUMBER, w)][-2:] + \
               [w for w in words[i + 1:i + 5] if w not in SKIP and not re.fullmatch(NUMBER, w)][:2]
        if not any(w in QUANTITIES or w.split("-")[0] in QUANTITIES for w in near):
            bad.append(f"{t!r} in {text!r}")
    return bad


def test_number_checker_on_hand_made_labels():
    assert number_problems("crack 0.80", False) and number_problems("easy (168)", False)
    assert not number_problems("crack conf 0.25", False) and not number_problems("crack unc 0.80", False)
    assert not number_problems("n=10", False) and not number_problems("GT2 only: 40 images", False)
    assert not number_problems("0.85", True) and number_problems("0.85", False)
    assert not number_problems("CAL1: 0 TP, 2 FP, 1 FN", False) and not number_problems("boost 1.92x", False)


@pytest.mark.parametrize("name", list(FIGURES))
def test_no_label_prints_a_number_without_saying_what_it_is(name):
    fig = FIGURES[name]()
    _renderer(fig)
    ticks = set()
    for ax in fig.axes:
        ticks |= {id(t) for t in ax.get_xticklabels() + ax.get_yticklabels()}
        ticks |= {id(ax.xaxis.get_offset_text()), id(ax.yaxis.get_offset_text())}
    bad = []
    for ax in fig.axes:
        named = bool(ax.get_xlabel().strip() or ax.get_ylabel().strip())
        for t in ax.findobj(matplotlib.text.Text):
            if id(t) in ticks or not t.get_visible() or t in (ax.xaxis.label, ax.yaxis.label):
                continue
            bad += number_problems(t.get_text(), named)
    for t in fig.texts + ([fig._suptitle] if fig._suptitle else []):
        bad += number_problems(t.get_text(), False)
    assert not bad, bad


def test_box_labels_say_confidence_or_uncertainty():
    fig = plots.image_grid(_image_items(2), NAMES)
    _renderer(fig)
    conf = [t.get_text() for t in fig.axes[0].texts if t.get_bbox_patch() is not None]
    unc = [t.get_text() for t in fig.axes[1].texts if t.get_bbox_patch() is not None]
    assert conf and all(" conf " in t for t in conf if "shown here" not in t)
    assert unc and all(" unc " in t for t in unc if "shown here" not in t)


def test_one_colour_per_set_in_every_figure():
    """GT1/CAL1, GT2/CAL2, Control and POOL keep their colour from figure to figure (plots.SET_COLOURS)."""
    from matplotlib.colors import to_hex

    want = {k: plots.SET_COLOURS[v] for k, v in {"CAL1": "GT1", "GT1": "GT1", "CAL2": "GT2", "GT2": "GT2",
                                                   "Control": "Control", "POOL": "POOL", "VAL1": "VAL1"}.items()}
    fig = plots.class_distribution({s: dict.fromkeys(NAMES, 3) for s in ("GT1", "VAL1", "POOL")})
    fig2 = plots.class_distribution({s: dict.fromkeys(NAMES, 3) for s in ("GT1", "GT2", "Control")})
    fig3 = plots.compare_map(pd.DataFrame({"model": MODELS, "mAP50": [0.2, 0.4, 0.5], "mAP50-95": [0.1, 0.2, 0.2]}))
    fig4 = plots.selection_overlap({"only_a": 4, "both": 2, "only_b": 3, "jaccard": 0.2})
    seen = {}
    for f in (fig, fig2, fig3):
        for h, lab in zip(*f.axes[0].get_legend_handles_labels()):
            seen.setdefault(lab, set()).add(to_hex(h.patches[0].get_facecolor() if hasattr(h, "patches")
                                                   else h.get_facecolor()))
    for lab, cols in seen.items():
        assert cols == {want[lab]}, (lab, cols)
    bars = {to_hex(p.get_facecolor()) for p in fig4.axes[0].patches}
    assert {want["GT2"], want["Control"]} <= bars
    assert plots.set_colour("CONTROL") == plots.set_colour("random") == want["Control"]
    assert plots.set_colour("GT3") == plots.set_colour("CAL3") != plots.set_colour("GT4")


def test_every_strategy_has_one_colour_that_is_no_sets_colour():
    """A strategy's curve never takes GT1's (or any set's) colour; random takes Control's; the study figures draw
    each strategy in its colour, whichever strategies a figure holds."""
    from matplotlib.colors import to_hex

    from alnb.acquisition.strategies import STRATEGIES

    cols = {s: plots.strategy_colour(s) for s in STRATEGIES}
    assert cols["random"] == plots.SET_COLOURS["Control"]
    others = [c for s, c in cols.items() if s != "random"]
    assert len(set(others)) == len(others)  # one colour each
    assert not set(others) & (set(plots.SET_COLOURS.values()) | set(plots.ROUND_COLOURS))
    for names in (["random", "hybrid"], ["random", "class_balanced", "hybrid"]):
        df = pd.DataFrame({"strategy": ["gt1_only", *names], "images": [0] + [100] * len(names),
                           "mAP50": np.linspace(0.7, 0.8, len(names) + 1), "mAP50-95": 0.4, "n_seeds": 3})
        fig = study_plots.learning_curves(df)
        got = {lab: to_hex(h.lines[0].get_color() if hasattr(h, "lines") else h.get_color())
               for h, lab in zip(*fig.axes[0].get_legend_handles_labels()) if lab in names}
        assert got == {n: cols[n] for n in names}, got
        plt.close(fig)


def test_histogram_keeps_its_axis_and_bins_when_thresholds_move():
    """The fixed edges stay whatever the thresholds; the only other edges are the thresholds themselves (a bin a
    threshold cuts is split there, so no bar mixes two tiers)."""
    s = _scores()
    edges = plots.histogram_edges(s, 20)
    for tm, th in ((0.1, 0.2), (0.25, 0.4)):
        fig = plots.score_histogram(s, tm, th, edges=edges)
        assert fig.axes[0].get_xlim() == (edges[0], edges[-1])
        drawn = sorted({round(p.get_x(), 9) for p in fig.axes[0].patches if p.get_width() > 0}
                       | {round(p.get_x() + p.get_width(), 9) for p in fig.axes[0].patches if p.get_width() > 0})
        want = sorted({round(e, 9) for e in edges} | {round(t, 9) for t in (tm, th) if edges[0] < t < edges[-1]})
        assert drawn == want


def test_strategy_names_are_the_registry_names_in_every_figure():
    from alnb.acquisition.strategies import STRATEGIES

    d = _dve()
    for fig in (plots.errors_vs_difficulty(d), study_plots.difficulty_comparison({**d, "n_nonfailed": 24})):
        _renderer(fig)
        labels = {t.get_text() for ax in fig.axes for t in ax.get_yticklabels()
                  if t.get_text() and not t.get_text().replace(".", "").replace("\u2212", "").isdigit()}
        assert labels and labels <= set(STRATEGIES), labels


def test_grid_png_is_no_wider_than_its_panels():
    """Long titles wrap and the "labels not shown" note stays in its panel: the PNG a notebook shows is the grid's
    width (else JupyterLab scales it down, and text shrinks below MIN_FONT)."""
    import io

    from PIL import Image

    items = _image_items(1)
    items[0]["boxes"] = np.tile(items[0]["boxes"], (3, 1))  # crowded: several labels cannot be placed
    items[0]["scores"] = np.tile(items[0]["scores"], 3)
    fig = plots.image_grid(items, NAMES, title="failed: 0 of 0 images, CAL1 auto-labels (box label: class conf); "
                                               "dashed = best candidate below the operating point")
    width = Image.open(io.BytesIO(fig._repr_png_())).size[0]
    assert width <= fig.get_size_inches()[0] * plots.DISPLAY_DPI + 2, width
