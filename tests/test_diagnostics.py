"""alnb.evaluation.diagnostics on hand-made boxes whose AP, confusion matrix and disagreement ranking are known in advance."""

from __future__ import annotations

import numpy as np
import pytest

from alnb.evaluation import diagnostics as D

NAMES = ["crack", "air-hole"]


def pred(*rows):
    """(n, 6) cls x0 y0 x1 y1 conf, sorted by descending confidence (as :func:`diagnostics.predictions` gives)."""
    a = np.asarray(rows, float).reshape(-1, 6)
    return a[np.argsort(-a[:, 5], kind="stable")]


def gt(*rows):
    return np.asarray(rows, float).reshape(-1, 5)


def test_perfect_boxes_give_the_maximum_ap_and_a_diagonal_matrix():
    preds = [("a", pred([0, 0, 0, 10, 10, 0.9]), gt([0, 0, 0, 10, 10]), (64, 64)),
             ("b", pred([1, 20, 20, 40, 30, 0.8]), gt([1, 20, 20, 40, 30]), (64, 64))]
    d = D.diagnostics(preds, NAMES, conf=0.5)
    assert d["classes"] == [0, 1] and d["n_images"] == 2 and d["n_gt"] == 2
    # the evaluation's COCO-style AP (101 recall points, the mean of the precision envelope): a perfect class reads 1
    np.testing.assert_allclose(d["ap50"], [1.0, 1.0], atol=1e-9)
    np.testing.assert_allclose(d["ap50_95"], [1.0, 1.0], atol=1e-9)
    assert d["mAP50"] == pytest.approx(1.0)
    np.testing.assert_array_equal(d["matrix"], [[1, 0, 0], [0, 1, 0], [0, 0, 0]])
    assert d["precision"].shape == (2, len(d["recall"]))


def test_iou_below_the_strict_thresholds_counts_at_three_of_ten():
    """A box with IoU 0.62 with its ground truth is a true positive at IoU 0.50, 0.55 and 0.60 only: AP50-95 is
    3/10 of AP50."""
    p = pred([0, 0, 0, 10, 6.2, 0.9])  # inside the 10 x 10 truth: IoU = 62 / 100
    d = D.diagnostics([("a", p, gt([0, 0, 0, 10, 10]), (64, 64))], NAMES, conf=0.5)
    np.testing.assert_allclose(d["ap50"], [1.0], atol=1e-9)
    np.testing.assert_allclose(d["ap50_95"], [3 / 10], atol=1e-9)


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
    from alnb.figures import plots
    preds = [("a", pred([0, 0, 0, 10, 10, 0.9]), gt([0, 0, 0, 10, 10], [1, 20, 20, 30, 30]), (64, 64))]
    d = D.diagnostics(preds, NAMES, conf=0.5)
    fig = plots.pr_curves(d, op_points={"crack": (1.0, 1.0), "air-hole": (0.0, None)})
    dots = [ln for ln in fig.axes[0].lines if ln.get_marker() == "o" and len(ln.get_xdata())]
    assert len(dots) == 1 and tuple(dots[0].get_xydata()[0]) == (1.0, 1.0)


# --------------------------------------------- the confusion matrix counts the per-class table's matches (issue 36)
def table_counts(preds, nc: int, conf: float, iou_thr: float = 0.5) -> dict:
    """The per-class counts of the evaluation's table on these boxes, by the path :func:`alnb.evaluation.step.evaluate`
    takes: match every prediction down to the sweep floor, then count those above the operating point."""
    from alnb.evaluation.metrics import counts_at, match_image

    rows, gts = [], []
    for _, p, g, _ in preds:
        r = match_image(p, g, iou_thr=iou_thr, nc=nc)
        rows.append((p[:, 0].astype(int), p[:, 5], r["tp"]))
        gts.append(g[:, 0].astype(int))
    return counts_at(rows, gts, nc, conf)


def matrix_vs_table(matrix, tot) -> dict:
    """``{class id: (what the matrix says, what the table says)}`` where they differ: TP (diagonal), predictions
    (row sum) or instances (column sum)."""
    m = np.asarray(matrix)
    nc = len(tot["tp_c"])
    out = {}
    for c in range(nc):
        got = (int(m[c, c]), int(m[c, :].sum()), int(m[:, c].sum()))
        want = (int(tot["tp_c"][c]), int(tot["n_pred_c"][c]), int(tot["n_gt_c"][c]))
        if got != want:
            out[c] = (got, want)
    return out


def test_confusion_matrix_and_per_class_table_count_the_same_matches():
    """On demo-like boxes (the generator's truth, jittered hits, bite-edge / unfused confusions on the same defect,
    low-confidence false positives): the matrix's diagonal is the table's TP per class, its rows the predictions and
    its columns the instances, at two operating points and two IoUs."""
    from test_figures import weld_boxes

    preds = weld_boxes(n=60)
    nc = 6
    for conf in (0.229, 0.5):
        for iou in (0.5, 0.6):
            d = D.diagnostics(preds, list(range(nc)), conf=conf, iou_thr=iou)
            tot = table_counts(preds, nc, conf, iou)
            assert matrix_vs_table(d["matrix"], tot) == {}, (conf, iou)
            assert d["matrix"][:nc, :nc].trace() == tot["tp_c"].sum() > 100
            assert d["matrix"][:nc, :nc].sum() > d["matrix"][:nc, :nc].trace()  # some class confusions counted


def test_the_comparison_fails_on_a_planted_mismatch():
    """The check above is not vacuous: a matrix counted by other rules (another IoU, another cut, one box moved)
    differs from the table, and says for which class."""
    from test_figures import weld_boxes

    preds = weld_boxes(n=60)
    nc = 6
    tot = table_counts(preds, nc, 0.229)
    assert matrix_vs_table(D.diagnostics(preds, list(range(nc)), conf=0.229, iou_thr=0.7)["matrix"], tot)
    assert matrix_vs_table(D.diagnostics(preds, list(range(nc)), conf=0.3)["matrix"], tot)
    planted = D.diagnostics(preds, list(range(nc)), conf=0.229)["matrix"].copy()
    planted[1, 1] -= 1
    planted[nc, 1] += 1  # one crack TP turned into a miss
    assert set(matrix_vs_table(planted, tot)) == {1}


def test_why_ultralytics_confusion_matrix_disagreed_with_the_table():
    """The diagnosis behind notebook 01's "bite-edge 66 vs 68": ultralytics' ``ConfusionMatrix`` matches
    class-agnostically, so a more confident unfused box over a bite-edge takes the truth the bite-edge box matches in
    the evaluation; :func:`alnb.evaluation.metrics.confusion_counts` counts the evaluation's match and the unfused box as a false
    positive."""
    import torch
    from ultralytics.utils.metrics import ConfusionMatrix

    truth = gt([0, 0, 0, 100, 20])  # bite-edge
    p = pred([0, 0, 2, 100, 24, 0.6],  # bite-edge, IoU 0.75
             [5, 0, 1, 100, 21, 0.8])  # unfused over the same defect, IoU 0.90, more confident
    names = ["bite-edge", "crack", "slag-inclusion", "broken-arc", "air-hole", "unfused"]
    cm = ConfusionMatrix(names=dict(enumerate(names)))
    cm.process_batch({"cls": torch.tensor(p[:, 0]), "conf": torch.tensor(p[:, 5]), "bboxes": torch.tensor(p[:, 1:5])},
                     {"cls": torch.tensor(truth[:, 0]), "bboxes": torch.tensor(truth[:, 1:5])}, conf=0.5, iou_thres=0.5)
    tot = table_counts([("a", p, truth, (64, 128))], 6, 0.5)
    assert tot["tp_c"][0] == 1  # the evaluation: the bite-edge box is right
    assert cm.matrix[0, 0] == 0 and cm.matrix[5, 0] == 1  # ultralytics: a confusion, bite-edge TP lost
    assert matrix_vs_table(np.asarray(cm.matrix)[:7, :7], tot)  # the old figure disagreed with the table
    ours = D.diagnostics([("a", p, truth, (64, 128))], names, conf=0.5)["matrix"]
    assert ours[0, 0] == 1 and ours[5, 6] == 1 and matrix_vs_table(ours, tot) == {}


def test_confusion_pairs_leftovers_across_classes_once():
    """A box of the wrong class on a truth nobody matched is a confusion (one FP of its class, one FN of the truth's),
    not a false positive and a miss in the background cells; each leftover truth pairs with one box only."""
    from alnb.evaluation.metrics import confusion_counts

    truth = gt([1, 0, 0, 10, 10], [0, 50, 50, 60, 60])
    p = pred([0, 0, 0, 10, 10, 0.9], [4, 0, 0, 10, 9, 0.8], [0, 50, 50, 60, 60, 0.7])
    m = confusion_counts([p], [truth], 6, conf=0.5)
    assert m[0, 0] == 1  # the bite-edge found
    assert m[0, 1] == 1  # a bite-edge box on the crack: a confusion
    assert m[4, 6] == 1  # the air-hole box on the same crack: the crack is taken, a false positive
    assert m.sum() == 3 and m[6].sum() == 0


def test_pr_curves_average_to_the_evaluations_ap():
    """The PR curve drawn per class is the envelope whose mean over COCO's 101 recall points is the class's AP,
    and the diagnostics' mAP50 / mAP50-95 are :func:`alnb.evaluation.metrics.coco_map`'s (the evaluation's) on the same boxes."""
    from alnb.evaluation.metrics import coco_map
    from test_figures import weld_boxes

    preds = weld_boxes(n=40)
    d = D.diagnostics(preds, list(range(6)), conf=0.229)
    ref = coco_map([p for _, p, _, _ in preds], [g for _, _, g, _ in preds], 6)
    assert d["mAP50"] == ref["mAP50"] and d["mAP50-95"] == ref["mAP50-95"]
    for k, c in enumerate(d["classes"]):
        assert np.nan_to_num(d["precision"][k]).mean() == pytest.approx(ref["per_class"][c]["AP50"], abs=1e-12)
        assert d["ap50"][k] == ref["per_class"][c]["AP50"]


def test_disagreement_panels_draw_every_counted_box():
    """Each model's panel draws its TPs (green), FPs (red) and the truth boxes it missed (dashed, no label): the
    title's counts are the boxes on the panel."""
    truth = gt([0, 0, 0, 100, 20], [4, 200, 200, 210, 210], [1, 300, 100, 380, 110])
    preds = {"CAL1": pred([0, 0, 1, 100, 21, 0.8], [2, 40, 40, 60, 60, 0.7], [4, 200, 200, 210, 210, 0.1]),
             "CAL2": pred([0, 0, 1, 100, 21, 0.8], [4, 200, 200, 210, 210, 0.6], [1, 300, 100, 380, 110, 0.4])}
    img = np.zeros((512, 512), np.uint8)
    items = D.disagreement_panels(img, "weld_00001", truth, preds, {"CAL1": 0.25, "CAL2": 0.25}, NAMES * 3)
    assert [it.get("model") for it in items] == [None, "CAL1", "CAL2"]
    assert items[0]["title"] == "weld_00001\nground truth: 3 boxes" and len(items[0]["boxes"]) == 3
    c1 = items[1]
    assert c1["title"] == "CAL1: 1 TP, 1 FP, 2 FN (dashed)"
    assert len(c1["boxes"]) == 4 and c1["styles"] == ["-", "-", "--", "--"]
    assert c1["colours"][:2] == [D.TP_COLOUR, D.FP_COLOUR] and c1["texts"][2:] == [None, None]
    assert items[2]["title"] == "CAL2: 3 TP, 0 FP, 0 FN (dashed)" and len(items[2]["boxes"]) == 3
