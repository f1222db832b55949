"""Every figure the package draws, with data shaped like the demo's (the weld classes, a 600-image POOL with 41
failed images, 25 + 10 epochs, 7 strategies, 512-px radiographs with their real boxes), at the size the notebooks and
the report use, passes the figure check (:mod:`figcheck`): no text on another text or off the figure, no legend on
data, nothing under 8 pt, no note hiding an image.  The checker itself is shown to catch planted defects."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from alnb.figures import plots
from alnb.figures import study_plots
from alnb.datasets import weld
from figcheck import assert_clean, figure_problems

NAMES = list(weld.CLASS_NAMES)
MODELS = ("CAL1", "CAL2", "Control")
VAL1_INSTANCES = {"bite-edge": 83, "crack": 71, "slag-inclusion": 6, "broken-arc": 48, "air-hole": 260, "unfused": 77}


# ------------------------------------------------------------------------------------------------ realistic inputs
def class_counts(sets=("GT1", "GT2", "Control")) -> dict:
    base = {"GT1": [58, 61, 9, 41, 211, 63], "GT2": [96, 88, 12, 60, 429, 101], "Control": [71, 69, 8, 52, 333, 74],
            "VAL1": list(VAL1_INSTANCES.values()), "POOL": [402, 380, 41, 271, 1270, 395]}
    return {s: dict(zip(NAMES, base[s])) for s in sets}


def pool_scores(n: int = 600, n_failed: int = 41, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    score = np.clip(rng.beta(2.2, 4.0, n), 0, 1)
    failed = np.zeros(n, bool)
    failed[rng.choice(n, n_failed, replace=False)] = True
    return pd.DataFrame({"stem": [f"weld_{i:05d}" for i in range(n)], "score": score, "failed": failed})


def dve() -> dict:
    """``metrics/difficulty_vs_errors.json`` of a demo-sized POOL (419 images, 41 failed)."""
    def tiers(rates):
        return {k: {"n": n, "n_error": round(n * r), "error_rate": r}
                for (k, n), r in zip({"easy": 168, "medium": 126, "hard": 84, "failed": 41}.items(), rates)}

    from alnb.acquisition.strategies import SCORE_COLUMNS

    values = {"least_confidence": (0.64, 0.61, 0.41, 0.52), "entropy": (0.70, 0.66, 0.47, 0.58),
              "bald": (0.74, 0.70, 0.52, 0.66), "localisation": (0.69, 0.65, 0.44, 0.71),
              "count_variance": (0.837, 0.80, 0.58, 0.785), "hybrid": (0.820, 0.78, 0.55, 0.663),
              "hybrid_sum": (0.879, 0.85, 0.63, 0.981)}
    strategies = {k: {"column": SCORE_COLUMNS[k], "auroc": a, "auroc_all_images": b, "spearman_errors": c,
                      "abs_spearman_candidates": d} for k, (a, b, c, d) in values.items()}
    box = dict(zip(("hybrid", "decision_unc", "cls_unc", "loc_unc", "entropy", "mutual_info", "box_spread",
                    "conf_std", "low_conf"), (0.71, 0.69, 0.66, 0.58, 0.67, 0.62, 0.57, 0.64, 0.74)))
    return {"n": 419, "n_nonfailed": 378, "n_error": 151, "error_rate": 0.36, "error_rate_nonfailed": 0.38,
            "tiers": tiers((0.25, 0.397, 0.607, 0.195)), "least_conf_tiers": tiers((0.30, 0.38, 0.55, 0.195)),
            "strategies": strategies, "auroc": {d["column"]: d["auroc"] for d in strategies.values()},
            "box_level": box, "n_boxes": 1130, "n_fp_boxes": 287}


def results_csv(epochs: int, top: float, *, start: float = 0.05, val_every: int = 3, seed: int = 0) -> pd.DataFrame:
    """An ultralytics ``results.csv`` (validated every ``val_every`` epochs and at the last one)."""
    rng = np.random.default_rng(seed)
    e = np.arange(1, epochs + 1)
    rise = 1 - np.exp(-3 * e / epochs)
    val = (e % val_every == 0) | (e == epochs)

    def metric(lo, hi):
        return np.where(val, lo + (hi - lo) * rise + rng.normal(0, 0.01, epochs), np.nan)

    return pd.DataFrame({"epoch": e, "train/box_loss": 2.2 - 0.9 * rise, "train/cls_loss": 3.5 - 2.3 * rise,
                         "train/dfl_loss": 1.6 - 0.4 * rise, "metrics/precision(B)": metric(start, 0.78),
                         "metrics/recall(B)": metric(start, 0.69), "metrics/mAP50(B)": metric(start, top),
                         "metrics/mAP50-95(B)": metric(start / 2, top * 0.56)})


def per_class_frame() -> pd.DataFrame:
    """:func:`alnb.evaluation.step.per_class_frame` of a demo CAL1."""
    df = pd.DataFrame({"instances": list(VAL1_INSTANCES.values()),
                       "precision": [0.81, 0.74, np.nan, 0.86, 0.92, 0.77],
                       "recall": [0.80, 0.73, 0.0, 0.81, 0.88, 0.71],
                       "boost": [2.41, 1.87, np.nan, 2.65, 3.12, 1.95]}, index=NAMES)
    df["measurable"] = df["instances"] > 0
    return df


def long_table() -> pd.DataFrame:
    """:func:`alnb.ui.report.per_class_table`: one row per (model, class)."""
    rng = np.random.default_rng(2)
    rows = []
    for m in MODELS:
        for c in NAMES:
            p, r = (np.nan, 0.0) if (c == "slag-inclusion" and m == "CAL1") else rng.uniform(0.62, 0.97, 2)
            rows.append({"model": m, "class": c, "precision": p, "recall": r,
                         "boost": np.nan if np.isnan(p) else rng.uniform(1.4, 3.4)})
    return pd.DataFrame(rows)


def summary() -> pd.DataFrame:
    return pd.DataFrame({"model": list(MODELS), "mAP50": [0.765, 0.758, 0.771], "mAP50-95": [0.428, 0.431, 0.437],
                         "boost": [2.31, 2.28, 2.40]})


def pred_boxes(gt: np.ndarray, rng, *, recall: float = 0.85, n_fp: int = 2, confuse: float = 0.1) -> np.ndarray:
    """Predictions for one image's truth ``gt`` (m, 5 pixels): jittered hits, class confusions on the bead edges
    (bite-edge <-> unfused, a box of the other class over the same defect), low-confidence false positives."""
    out = []
    for c, x0, y0, x1, y1 in gt:
        w, h = x1 - x0, y1 - y0
        if rng.random() < recall:
            j = rng.normal(0, 0.06, 4) * [w, h, w, h]
            out.append([c, x0 + j[0], y0 + j[1], x1 + j[2], y1 + j[3], rng.uniform(0.35, 0.97)])
        if int(c) in (0, 5) and rng.random() < confuse:  # the other bead-edge class on the same defect
            j = rng.normal(0, 0.03, 4) * [w, h, w, h]
            out.append([5 - int(c), x0 + j[0], y0 + j[1], x1 + j[2], y1 + j[3], rng.uniform(0.3, 0.99)])
    for _ in range(n_fp):
        x, y = rng.uniform(0, 480, 2)
        out.append([rng.integers(0, 6), x, y, x + rng.uniform(8, 60), y + rng.uniform(6, 30), rng.uniform(0.01, 0.6)])
    p = np.asarray(out, float).reshape(-1, 6)
    p[:, 1:5] = np.clip(p[:, 1:5], 0, 511)  # inside the 512-px image, as a detector's boxes are
    return p[np.argsort(-p[:, 5], kind="stable")]


def weld_boxes(n: int = 60, seed: int = 5, size: int = 512) -> list:
    """``[(stem, pred, gt, (h, w))]`` (:func:`alnb.evaluation.diagnostics.predictions`' shape) on the generator's true boxes."""
    cfg = weld.WeldConfig(width=size, height=size, seed=seed)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        _, labels, _ = weld.render(i, cfg)
        gt = np.asarray(labels, float).reshape(-1, 5)
        out.append((f"weld_{i:05d}", pred_boxes(gt, rng), gt, (size, size)))
    return out


@functools.lru_cache(maxsize=1)
def diag():
    from alnb.evaluation.diagnostics import diagnostics

    return diagnostics(weld_boxes(), NAMES, conf=0.229)


def crowded_renders(k: int, seed: int = 0) -> list:
    """``k`` generated radiographs (512 px) with the most boxes among the first 40: the hardest to label."""
    cfg = weld.WeldConfig(seed=seed)
    renders = [weld.render(i, cfg) for i in range(40)]
    order = sorted(range(40), key=lambda i: -len(renders[i][1]))[:k]
    return [(f"weld_{i:05d}", renders[i][0], np.asarray(renders[i][1], float).reshape(-1, 5)) for i in order]


def disagreement_items():
    from alnb.evaluation.diagnostics import disagreement_panels

    rng = np.random.default_rng(3)
    items = []
    for stem, img, gt in crowded_renders(3):
        preds = {m: pred_boxes(gt, rng, recall=r, n_fp=f) for m, r, f in zip(MODELS, (0.7, 0.85, 0.8), (3, 1, 2))}
        items += disagreement_panels(img, stem, gt, preds, {"CAL1": 0.229, "CAL2": 0.241, "Control": 0.236}, NAMES)
    return items


def grid_items(tiers=("hard", "medium", "easy", "failed", "hard", "hard", "medium", "failed")):
    """Items as :func:`alnb.figures.plots.uncertainty_grid` / :func:`alnb.figures.plots.tier_thumbnails` build them."""
    from alnb.evaluation.metrics import xyxy_to_xywhn

    rng = np.random.default_rng(4)
    items = []
    for (stem, img, gt), tier in zip(crowded_renders(len(tiers), seed=1), tiers):
        p = pred_boxes(gt, rng)
        p = p[p[:, 5] > 0.229]
        if tier == "failed":
            items.append({"image": img, "boxes": np.column_stack([p[:1, 0], xyxy_to_xywhn(p[:1, 1:5], 512, 512)]),
                          "scores": p[:1, 5], "tier": tier, "styles": ["--"], "colours": [plots.BEST_CANDIDATE_COLOUR],
                          "title": f"{stem}  failed: best candidate < 0.229"})
        else:
            items.append({"image": img, "boxes": np.column_stack([p[:, 0], xyxy_to_xywhn(p[:, 1:5], 512, 512)]),
                          "scores": p[:, 5], "tier": tier, "score_kind": "conf",
                          "title": f"{stem} | {tier}, score {rng.uniform(0.2, 0.9):.2f}"})
    return items


def rounds_table() -> pd.DataFrame:
    rows = []
    for chain, lift in (("CAL", 0.012), ("Control", 0.009)):
        for k in range(1, 5):
            rows.append({"chain": chain, "round": k, "model": f"{chain}{k}", "images": 177 + 251 * (k - 1),
                         "labelling h": 1.4 * (k - 1) if chain == "CAL" else 1.2 * (k - 1),
                         "mAP50": 0.765 + lift * (k - 1), "mAP50-95": 0.428 + lift * (k - 1) * 0.8,
                         "recall": 0.79 + lift * (k - 1), "boost": 2.3 + 0.1 * (k - 1)})
    return pd.DataFrame(rows)


def study_summary() -> pd.DataFrame:
    rows = [{"strategy": "gt1_only", "budget": "0", "images": 0, "labelling_s": 0, "mAP50": 0.712, "mAP50_lo": 0.69,
             "mAP50_hi": 0.73, "mAP50-95": 0.39, "mAP50-95_lo": 0.375, "mAP50-95_hi": 0.405, "n_seeds": 3}]
    for s, off in (("random", 0.0), ("hybrid", 0.004), ("least_confidence", -0.006), ("study_rule", 0.002),
                   ("coreset", -0.002)):
        for b in (50, 100, 200):
            m = 0.712 + 0.05 * np.log1p(b / 50) + off
            rows.append({"strategy": s, "budget": str(b), "images": b, "labelling_s": b * (38 + 10 * (s != "random")),
                         "mAP50": m, "mAP50_lo": m - 0.02, "mAP50_hi": m + 0.02, "mAP50-95": m * 0.56,
                         "mAP50-95_lo": m * 0.56 - 0.015, "mAP50-95_hi": m * 0.56 + 0.015, "n_seeds": 3})
    return pd.DataFrame(rows)


def study_diffs():
    rng = np.random.default_rng(6)
    rows, ver = [], []
    for s in ("hybrid", "least_confidence", "study_rule"):
        for b in ("50", "100", "200"):
            d = rng.normal(0.002, 0.012, 3)
            rows += [{"strategy": s, "budget": b, "seed": k, "diff": v} for k, v in enumerate(d)]
            lo, hi = d.mean() - 0.03, d.mean() + 0.03
            ver.append({"strategy": s, "budget": b, "mean_diff": d.mean(), "lo": lo, "hi": hi,
                        "verdict": "better" if lo > 0 else "worse" if hi < 0 else "no detectable difference"})
    return pd.DataFrame(rows), pd.DataFrame(ver)


FIGURES = {
    "class_distribution": lambda: plots.class_distribution(
        class_counts(), title="Instances per class: GT1, GT2 (active) and Control (random)"),
    "class_distribution_setup": lambda: plots.class_distribution(class_counts(("GT1", "VAL1", "POOL")),
                                                                 title="Instances per class and subset"),
    "score_histogram": lambda: plots.score_histogram(pool_scores(), 0.31, 0.47),
    "compare_per_class": lambda: plots.compare_per_class(long_table()),
    "compare_map": lambda: plots.compare_map(summary()),
    "compare_efficiency": lambda: plots.compare_efficiency(long_table(), dict(zip(MODELS, (2.31, 2.28, 2.40)))),
    "selection_overlap": lambda: plots.selection_overlap({"only_a": 208, "both": 43, "only_b": 208, "jaccard": 0.094}),
    "training_curves": lambda: plots.training_curves(results_csv(25, 0.73), title="CAL1 training (quick profile)"),
    "training_curves_compare": lambda: plots.training_curves_compare(
        {"CAL1": results_csv(25, 0.731), "CAL2": results_csv(10, 0.773, start=0.70, val_every=2, seed=1),
         "Control": results_csv(10, 0.773, start=0.70, val_every=2, seed=2)},
        starts={"CAL2": "CAL1", "Control": "CAL1"}),
    "training_curves_cal2": lambda: plots.training_curves_compare(
        {"CAL1": results_csv(25, 0.731), "CAL2": results_csv(10, 0.773, start=0.70, val_every=2, seed=1)},
        title="CAL1 and CAL2: loss and ultralytics' VAL1 mAP50 per epoch", starts={"CAL2": "CAL1"}),
    "per_class_pr": lambda: plots.per_class_pr(per_class_frame(), title="CAL1 on VAL1 (conf > 0.229, IoU ≥ 0.5)"),
    "efficiency_per_class": lambda: plots.efficiency_per_class(per_class_frame(), overall=2.31,
                                                               title="CAL1: expected labelling efficiency boost"),
    "errors_vs_difficulty": lambda: plots.errors_vs_difficulty(dve()),
    "difficulty_vs_strategies": lambda: study_plots.difficulty_comparison(dve()),
    "pr_curves": lambda: plots.pr_curves(diag(), op_points={"crack": (0.73, 0.74), "air-hole": (0.88, 0.92)},
                                         title="CAL1 on VAL1: precision-recall per class"),
    "per_class_ap": lambda: plots.per_class_ap(diag(), title="CAL1 on VAL1: AP per class"),
    "confusion_matrix": lambda: plots.confusion_matrix(diag(), title="CAL1 on VAL1 at conf > 0.229, IoU ≥ 0.5"),
    "compare_disagreement": lambda: plots.side_by_side(disagreement_items(), NAMES, 3),
    "worst_images": lambda: plots.side_by_side([it for it in disagreement_items() if it.get("model") in (None, "CAL1")],
                                               NAMES, 1, title="CAL1: VAL1 images with the most errors (ground "
                                                               "truth, then auto-labels)"),
    "uncertainty_grid": lambda: plots.image_grid(grid_items(), NAMES, title="Hardest POOL images (auto-labels by "
                                                 "uncertainty) (box label: class unc)"),
    "tier_thumbnails_failed": lambda: plots.image_grid(
        grid_items(("failed",) * 6), NAMES, title="failed: images 1-6 of 41, CAL1 auto-labels (box label: class "
                                                  "conf); dashed = best candidate below the operating point"),
    "rounds_curves": lambda: plots.rounds_curves(rounds_table()),
    "study_curves_images": lambda: study_plots.learning_curves(study_summary(), x="images"),
    "study_curves_seconds": lambda: study_plots.learning_curves(study_summary(), x="labelling_s"),
    "study_paired_diff": lambda: study_plots.paired_difference(*study_diffs()),
}


@pytest.mark.parametrize("name", list(FIGURES))
def test_every_figure_passes_the_figure_check(name):
    fig = FIGURES[name]()
    assert fig.get_size_inches()[0] <= plots.MAX_WIDTH + 1e-9 or name == "study_paired_diff"
    assert_clean(fig)


# ---------------------------------------------------------------- the image figures, drawn from a real workspace
@pytest.fixture(scope="module")
def weld_ws(tmp_path_factory):
    """24 generated 512-px radiographs, 12 in the POOL, with auto-label files, ``scores.csv``-like scores and
    ``detections.csv``-like candidates made from their true boxes."""
    from alnb.evaluation.metrics import autolabel_lines, xywhn_to_xyxy
    from alnb.core.workspace import Workspace

    root = tmp_path_factory.mktemp("figs")
    ds = weld.generate(root / "weld", weld.WeldConfig(n_images=24, seed=0), progress=False)
    ws = Workspace.create(root / "ws", ds, n_val=6, n_gt1=6, seed=0, progress=False)
    rng = np.random.default_rng(0)
    pool = ws.stems("POOL")
    det_rows, out = [], ws.root / "autolabels" / "CAL1"
    out.mkdir(parents=True)
    for i, s in enumerate(pool):
        lab = np.asarray(ws.true_labels(s), float).reshape(-1, 5)
        gt = np.column_stack([lab[:, 0], xywhn_to_xyxy(lab[:, 1:], 512, 512)])
        p = pred_boxes(gt, rng)
        if i < 3:  # failed: every candidate below the operating point
            p[:, 5] = np.minimum(p[:, 5], rng.uniform(0.05, 0.22, len(p)))
        above = p[:, 5] > 0.229
        (out / f"{s}.txt").write_text("\n".join(autolabel_lines(p[above, 0], p[above, 1:5], p[above, 5], 512, 512))
                                      + "\n")
        det_rows += [{"stem": s, "det": k, "cls": int(r[0]), "x0": r[1], "y0": r[2], "x1": r[3], "y1": r[4],
                      "conf": r[5], "above": bool(a), "hybrid": rng.uniform(0, 1)}
                     for k, (r, a) in enumerate(zip(p, above))]
    scores = pd.DataFrame({"stem": pool, "score": np.r_[[np.nan] * 3, rng.uniform(0.1, 0.9, len(pool) - 3)],
                           "failed": [True] * 3 + [False] * (len(pool) - 3), "tier": ["failed"] * 3
                           + list(rng.choice(["easy", "medium", "hard"], len(pool) - 3))})
    return ws, scores, pd.DataFrame(det_rows)


def test_tier_thumbnails_pass_the_figure_check(weld_ws):
    ws, scores, det = weld_ws
    ok = scores[~scores["failed"]]["stem"].tolist()
    assert_clean(plots.tier_thumbnails(ws, scores, ok[:6], "hard", n_in_tier=84, model="CAL1"))
    failed = scores[scores["failed"]]["stem"].tolist()
    fig = plots.tier_thumbnails(ws, scores, failed, "failed", n_in_tier=41, model="CAL1", detections=det, conf=0.229)
    assert_clean(fig)
    titles = [t.get_text() for ax in fig.axes for t in ax.texts if t.get_fontsize() == plots.PANEL_TITLE_FONT]
    assert len(titles) == 3 and all(t.endswith("failed: best candidate < 0.229") for t in titles)


def test_uncertainty_grid_and_samples_pass_the_figure_check(weld_ws):
    ws, scores, det = weld_ws
    ok = scores[~scores["failed"]]["stem"].tolist()
    assert_clean(plots.uncertainty_grid(ws, scores, det, ok[:8], title="Hardest POOL images (auto-labels by "
                                                                       "uncertainty)"))
    assert_clean(plots.sample_images(ws, ws.stems("GT1")[:6], title="GT1 samples"))


# ------------------------------------------------------------------------------- the defects of issue 36, fixed
def test_histogram_bars_hold_one_tier_each():
    """A bin a threshold cuts is split there: no bar is drawn in two tiers' colours (nor in one tier's colour over
    images of another)."""
    s = pool_scores()
    edges = plots.histogram_edges(s, 40)
    tm, th = (edges[10] + edges[11]) / 2, (edges[20] + edges[21]) / 2  # mid-bin thresholds
    fig = plots.score_histogram(s, tm, th, edges=edges)
    containers = fig.axes[0].containers[:3]  # easy, medium, hard (stacked)
    heights = np.array([[p.get_height() for p in c.patches] for c in containers])
    assert heights.shape[1] == 42  # 40 bins + 2 split
    assert ((heights > 0).sum(axis=0) <= 1).all()
    left = np.array([p.get_x() for p in containers[0].patches])
    for k, tier in enumerate(("easy", "medium", "hard")):
        lo, hi = {"easy": (-np.inf, tm), "medium": (tm, th), "hard": (th, np.inf)}[tier]
        lit = left[heights[k] > 0]
        assert ((lit >= lo - 1e-12) & (lit < hi)).all(), tier


def test_training_curves_draw_fine_tunes_after_their_start(tmp_path):
    """CAL2 / Control start from CAL1's weights: drawn after CAL1's last epoch, named as fine-tunes; the start is read
    from each run's ``alnb_run.json`` when the runs are given as files."""
    import json

    runs = {}
    for name, df, model in (("CAL1", results_csv(25, 0.73), "alnb/models/weld-defect-tiny.pt"),
                            ("CAL2", results_csv(10, 0.77, start=0.7), str(tmp_path / "runs/CAL1/weights/best.pt"))):
        d = tmp_path / "runs" / name
        d.mkdir(parents=True)
        df.to_csv(d / "results.csv", index=False)
        (d / "alnb_run.json").write_text(json.dumps({"model": model}))
        runs[name] = d / "results.csv"
    assert plots.run_starts(runs) == {"CAL2": "CAL1"}
    fig = plots.training_curves_compare(runs)
    lines = {ln.get_label(): ln for ln in fig.axes[0].lines}
    assert lines["CAL1"].get_xdata()[0] == 1 and lines["CAL1"].get_xdata()[-1] == 25
    assert lines["CAL2 (fine-tuned from CAL1)"].get_xdata()[0] == 26
    assert "not the evaluation's mAP50" in fig.axes[1].get_title()
    assert "ultralytics' validator mAP50 on VAL1" in fig.axes[1].get_title()
    assert_clean(fig)


# --------------------------------------------------------------------- the checker catches what it should
def _bare(figsize=(6, 3.5), n=1):
    return plots.new_figure(1, n, figsize=figsize)


def test_checker_passes_a_clean_figure():
    fig, ax = _bare()
    x = np.linspace(0, 1, 50)
    ax.plot(x, x ** 2, label="data")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(loc="upper left", fontsize=9)
    fig.tight_layout()
    assert figure_problems(fig) == []


def test_checker_reports_planted_text_overlap():
    fig, ax = _bare()
    ax.bar([0, 1], [0.5, 0.6])
    ax.text(0, 0.52, "n=41", ha="center", fontsize=9)
    ax.text(0.05, 0.52, "n=41", ha="center", fontsize=9)  # the "n=41n=41"
    fig.tight_layout()
    assert any(p.startswith("texts overlap: 'n=41' and 'n=41'") for p in figure_problems(fig))


def test_checker_reports_a_planted_legend_over_data():
    fig, ax = _bare()
    ax.bar(np.arange(5), [0.2, 0.4, 0.6, 0.8, 0.95], label="AUROC")
    ax.plot([0, 4], [0.9, 0.9], label="a line")
    ax.legend(loc="upper right", fontsize=9)
    fig.tight_layout()
    probs = figure_problems(fig)
    assert any("covers patch" in p for p in probs) and any("covers line" in p for p in probs), probs


def test_checker_reports_text_off_the_figure_small_text_and_a_legend_in_the_next_panel():
    fig, (a, b) = _bare(n=2)
    a.plot([0, 1], [0, 1], label="a label long enough to reach the next panel when it is placed at the right")
    a.legend(loc="upper left", bbox_to_anchor=(0.6, 0.2), fontsize=9)
    b.set_title("a panel title that runs off the right edge of the figure for sure", loc="left")
    b.text(0.5, 0.5, "tiny", fontsize=6)
    probs = figure_problems(fig)
    assert any("leaves the figure" in p for p in probs)
    assert any("6.0 pt" in p for p in probs)
    assert any("reaches into another panel" in p for p in probs)


def test_checker_reports_a_note_hiding_an_image_and_ignores_rotated_neighbours():
    fig, ax = _bare(figsize=(3, 3))
    ax.imshow(np.zeros((64, 64)))
    ax.set_axis_off()
    ax.text(2, 60, "+9 labels not shown here:\nair-hole conf 0.41\ncrack conf 0.33\nunfused conf 0.30",
            fontsize=9, bbox={"facecolor": "white"})
    assert any("% of an image" in p for p in figure_problems(fig))
    fig, ax = _bare(figsize=(4, 3))
    ax.set_xticks(range(7), ["bite-edge", "crack", "slag-inclusion", "broken-arc", "air-hole", "unfused",
                             "background"], rotation=45, ha="right")
    fig.tight_layout()
    assert figure_problems(fig) == []  # 45-degree labels whose boxes overlap but whose glyphs do not
    ax.set_xticks(range(7), ["slag-inclusion"] * 7, rotation=10, ha="right")
    assert any("texts overlap" in p for p in figure_problems(fig))
