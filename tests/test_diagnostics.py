"""alnb.diagnostics on hand-made boxes whose AP, confusion matrix and disagreement ranking are known in advance."""

from __future__ import annotations

import numpy as np
import pytest

from alnb import diagnostics as D

NAMES = ["crack", "air-hole"]


def pred(*rows):
    """(n, 6) cls x0 y0 x1 y1 conf, sorted by descending confidence (as :func:`diagnostics.predictions` gives)."""
    a = np.asarray(rows, float).reshape(-1, 6)
    return a[np.argsort(-a[:, 5], kind="stable")]


def gt(*rows):
    return np.asarray(rows, float).reshape(-1, 5)


def test_perfect_boxes_give_ultralytics_maximum_ap_and_a_diagonal_matrix():
    preds = [("a", pred([0, 0, 0, 10, 10, 0.9]), gt([0, 0, 0, 10, 10]), (64, 64)),
             ("b", pred([1, 20, 20, 40, 30, 0.8]), gt([1, 20, 20, 40, 30]), (64, 64))]
    d = D.diagnostics(preds, NAMES, conf=0.5)
    assert d["classes"] == [0, 1] and d["n_images"] == 2 and d["n_gt"] == 2
    # ultralytics integrates the 101-point interpolated curve with the trapezoid rule: a perfect class reads 0.995
    np.testing.assert_allclose(d["ap50"], [0.995, 0.995], atol=1e-9)
    np.testing.assert_allclose(d["ap50_95"], [0.995, 0.995], atol=1e-9)
    np.testing.assert_array_equal(d["matrix"], [[1, 0, 0], [0, 1, 0], [0, 0, 0]])
    assert d["precision"].shape == (2, len(d["recall"]))


def test_iou_below_the_strict_thresholds_counts_at_three_of_ten():
    """A box with IoU 0.62 with its ground truth is a true positive at IoU 0.50, 0.55 and 0.60 only: AP50-95 is
    3/10 of AP50."""
    p = pred([0, 0, 0, 10, 6.2, 0.9])  # inside the 10 x 10 truth: IoU = 62 / 100
    d = D.diagnostics([("a", p, gt([0, 0, 0, 10, 10]), (64, 64))], NAMES, conf=0.5)
    np.testing.assert_allclose(d["ap50"], [0.995], atol=1e-9)
    np.testing.assert_allclose(d["ap50_95"], [0.995 * 3 / 10], atol=1e-9)


def test_confusion_matrix_rows_are_predictions_columns_truth_background_last():
    """Image a: a right crack and a false air-hole; image b: an air-hole found, a crack missed, and a crack guess
    below the operating point (not in the matrix, but in the PR curve)."""
    preds = [("a", pred([0, 0, 0, 10, 10, 0.9], [1, 40, 40, 50, 50, 0.8]), gt([0, 0, 0, 10, 10]), (64, 64)),
             ("b", pred([1, 0, 0, 10, 10, 0.7], [0, 30, 0, 40, 10, 0.2]), gt([1, 0, 0, 10, 10], [0, 50, 50, 60, 60]),
              (64, 64))]
    d = D.diagnostics(preds, NAMES, conf=0.5)
    nc = len(NAMES)
    m = d["matrix"]
    assert m.shape == (nc + 1, nc + 1)
    assert m[0, 0] == 1 and m[1, 1] == 1  # the two right boxes
    assert m[1, nc] == 1  # predicted air-hole on background: a false positive
    assert m[nc, 0] == 1  # a crack nobody found (at the operating point): missed
    assert m.sum() == 4  # the 0.2 guess is below conf 0.5
    assert d["n_gt"] == 3
    # crack: 2 truths, the 0.9 box right, the 0.2 box wrong -> precision 1 up to recall 1/2, then nothing: AP ~ 1/2;
    # air-hole: the false 0.8 box ranks above the right 0.7 one -> precision 1/2 over the whole recall axis: AP ~ 1/2
    np.testing.assert_allclose(d["ap50"], [0.5, 0.5], atol=0.006)


def test_no_ground_truth_at_all_is_empty_not_an_error():
    d = D.diagnostics([("a", pred([0, 0, 0, 5, 5, 0.9]), gt(), (64, 64))], NAMES, conf=0.5)
    assert d["classes"] == [] and d["ap50"] == [] and d["n_gt"] == 0
    assert d["matrix"][0, len(NAMES)] == 1  # the box is still a false positive in the matrix


def evals(**per_model):
    return {m: {"per_image": [{"stem": s, "fp": fp, "fn": fn} for s, (fp, fn) in rows.items()]}
            for m, rows in per_model.items()}


def test_disagreement_ranks_by_spread_then_total_errors_then_stem():
    ev = evals(CAL1={"a": (0, 0), "b": (3, 1), "c": (2, 2), "d": (1, 0), "e": (5, 5)},
               CAL2={"a": (0, 0), "b": (0, 0), "c": (0, 0), "d": (0, 0), "e": (5, 5)},
               Control={"a": (0, 0), "b": (1, 0), "c": (0, 1), "d": (0, 0), "e": (5, 5), "only_here": (9, 9)})
    rows = D.disagreement(ev, k=3)
    assert [r["stem"] for r in rows] == ["b", "c", "d"]  # spread 4, 4 (b has more errors in total), then 1
    assert rows[0]["errors"] == {"CAL1": 4, "CAL2": 0, "Control": 1} and rows[0]["spread"] == 4
    assert all(r["stem"] != "only_here" for r in D.disagreement(ev, k=10))  # only images every model saw
    # a model without an evaluation is left out, not counted as zero errors
    two = D.disagreement({k: v for k, v in ev.items() if k != "CAL2"}, k=1)
    assert two[0]["stem"] == "b" and set(two[0]["errors"]) == {"CAL1", "Control"} and two[0]["spread"] == 3


def test_pr_curves_skip_an_operating_point_without_a_value():
    """A class with no predictions has precision None in eval_*.json: its curve is drawn, its dot is not (a None
    once crashed notebook 01 and the headless run)."""
    import matplotlib
    matplotlib.use("Agg")
    from alnb import plots
    preds = [("a", pred([0, 0, 0, 10, 10, 0.9]), gt([0, 0, 0, 10, 10], [1, 20, 20, 30, 30]), (64, 64))]
    d = D.diagnostics(preds, NAMES, conf=0.5)
    fig = plots.pr_curves(d, op_points={"crack": (1.0, 1.0), "air-hole": (0.0, None)})
    dots = [ln for ln in fig.axes[0].lines if ln.get_marker() == "o" and len(ln.get_xdata())]
    assert len(dots) == 1 and tuple(dots[0].get_xydata()[0]) == (1.0, 1.0)
