"""Matching, P/R/F1 and the efficiency-boost cost model on hand-made boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alnb.evaluation import metrics as M
from alnb.evaluation.metrics import CostModel, box_iou, efficiency_boost, match_image, prf, xywhn_to_xyxy, xyxy_to_xywhn


def test_box_conversion_round_trip():
    xywhn = np.array([[0.5, 0.5, 0.2, 0.4], [0.1, 0.2, 0.1, 0.1]])
    xyxy = xywhn_to_xyxy(xywhn, w=100, h=50)
    np.testing.assert_allclose(xyxy, [[40, 15, 60, 35], [5, 7.5, 15, 12.5]])
    np.testing.assert_allclose(xyxy_to_xywhn(xyxy, w=100, h=50), xywhn)
    assert xywhn_to_xyxy(np.zeros((0, 4))).shape == (0, 4)


def test_box_iou_hand_computed():
    a = np.array([[0, 0, 10, 10], [0, 0, 2, 2]])
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]])
    iou = box_iou(a, b)
    assert iou.shape == (2, 3)
    assert iou[0, 0] == pytest.approx(50 / 150)
    assert iou[0, 1] == pytest.approx(1.0)
    assert iou[0, 2] == 0.0
    assert iou[1, 1] == pytest.approx(4 / 100)
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 3)
    assert box_iou(np.array([[1, 1, 1, 1]]), np.array([[1, 1, 1, 1]]))[0, 0] == 0.0  # degenerate: no 0/0


def test_match_image_greedy_class_aware():
    gt = np.array([[0, 0, 0, 10, 10],
                   [1, 20, 20, 30, 30],
                   [0, 50, 50, 60, 60]])
    pred = np.array([[0, 0, 0, 10, 10, 0.6],    # TP for gt0 (but a higher-conf pred claims it first)
                     [0, 1, 0, 11, 10, 0.9],    # highest conf, IoU 9/11 with gt0 -> TP
                     [0, 20, 20, 30, 30, 0.8],  # right place, wrong class -> FP
                     [1, 20, 21, 30, 31, 0.7],  # class 1, IoU 81/119 -> TP
                     [2, 70, 70, 80, 80, 0.5]]) # nothing there -> FP
    r = match_image(pred, gt, iou_thr=0.5, nc=3)
    assert r["tp"].tolist() == [False, True, False, True, False]
    assert r["matched_gt"].tolist() == [True, True, False]
    assert (r["tp_n"], r["fp_n"], r["fn_n"]) == (2, 3, 1)
    assert r["gt_index"].tolist() == [-1, 0, -1, 1, -1]
    assert r["iou"][1] == pytest.approx(90 / 110)
    assert r["per_class"][0] == {"tp": 1, "fp": 2, "fn": 1, "n_gt": 2, "n_pred": 3}
    assert r["per_class"][2] == {"tp": 0, "fp": 1, "fn": 0, "n_gt": 0, "n_pred": 1}
    assert r["tp_c"].tolist() == [1, 1, 0]
    assert r["fp_c"].tolist() == [2, 0, 1]
    assert r["fn_c"].tolist() == [1, 0, 0]
    assert r["n_gt_c"].tolist() == [2, 1, 0]


def test_match_image_threshold_and_empty():
    gt = np.array([[0, 0, 0, 10, 10]])
    pred = np.array([[0, 5, 0, 15, 10, 0.9]])  # IoU 1/3
    assert match_image(pred, gt, iou_thr=0.5)["tp_n"] == 0
    assert match_image(pred, gt, iou_thr=0.3)["tp_n"] == 1
    r = match_image(np.zeros((0, 6)), gt, nc=1)
    assert (r["tp_n"], r["fp_n"], r["fn_n"]) == (0, 0, 1) and r["tp"].shape == (0,)
    r = match_image(pred, np.zeros((0, 5)))
    assert (r["tp_n"], r["fp_n"], r["fn_n"]) == (0, 1, 0)
    with pytest.raises(ValueError, match="class ids"):
        match_image(pred, gt, nc=0)


def test_each_gt_matched_once():
    gt = np.array([[0, 0, 0, 10, 10]])
    pred = np.array([[0, 0, 0, 10, 10, 0.9], [0, 0, 0, 10, 10, 0.8]])  # duplicate detection
    r = match_image(pred, gt)
    assert r["tp"].tolist() == [True, False] and r["fp_n"] == 1 and r["fn_n"] == 0


def test_prf_not_measurable_is_nan_not_zero():
    assert prf(3, 1, 1) == pytest.approx((0.75, 0.75, 0.75))
    p, r, f = prf(0, 0, 0)
    assert math.isnan(p) and math.isnan(r) and math.isnan(f)
    p, r, f = prf(0, 2, 0)  # only false positives, no instance: precision 0, recall not measurable
    assert p == 0 and math.isnan(r) and f == 0
    p, r, f = prf(0, 0, 3)  # no predictions: precision not measurable, recall 0
    assert math.isnan(p) and r == 0 and f == 0
    assert prf(0, 1, 1) == (0.0, 0.0, 0.0)


def test_boost_perfect_predictions():
    c = CostModel(t_draw=10, t_verify=1.6, t_delete=1.6, t_image=0)
    b = efficiency_boost(n_gt=20, n_pred=20, fp=0, fn=0, costs=c)
    assert b["manual_s"] == 200 and b["assisted_s"] == pytest.approx(32)
    assert b["boost"] == pytest.approx(10 / 1.6)
    b = efficiency_boost(20, 20, 0, 0, n_images=10, costs=CostModel(t_image=3))
    assert b["boost"] == pytest.approx((200 + 30) / (32 + 30))


def test_boost_no_predictions_is_exactly_one():
    for costs in (CostModel(), CostModel(t_image=0), CostModel(t_draw=7, t_image=5)):
        b = efficiency_boost(n_gt=13, n_pred=0, fp=0, fn=13, n_images=4, costs=costs)
        assert b["boost"] == 1.0 and b["saved_s"] == 0


def test_boost_only_false_positives():
    c = CostModel(t_draw=10, t_verify=1.6, t_delete=1.6, t_image=0)
    b = efficiency_boost(n_gt=5, n_pred=4, fp=4, fn=5, costs=c)
    assert b["assisted_s"] == pytest.approx(50 + 4 * 3.2)
    assert b["boost"] == pytest.approx(50 / 62.8) and b["boost"] < 1
    b = efficiency_boost(n_gt=0, n_pred=3, fp=3, fn=0, costs=c)  # nothing to label: proposals only cost time
    assert b["boost"] == 0.0


def test_boost_per_class_arrays():
    c = CostModel(t_image=0)
    b = efficiency_boost(n_gt=[10, 0, 4], n_pred=[10, 0, 0], fp=[0, 0, 0], fn=[0, 0, 4], costs=c)
    assert b["boost"][0] == pytest.approx(10 / 1.6)
    assert math.isnan(b["boost"][1])  # class absent: not measurable
    assert b["boost"][2] == 1.0


# ------------------------------------------------------------------------------------------------ operating point
def test_threshold_curve_counts_and_cuts():
    from alnb.evaluation.metrics import threshold_curve

    conf = np.array([0.2, 0.9, 0.5, 0.7])
    tp = np.array([False, True, True, False])
    c = threshold_curve(conf, tp, n_gt=3)
    np.testing.assert_allclose(c["conf"], [0.9, 0.7, 0.5, 0.2])
    np.testing.assert_array_equal(c["tp"], [1, 1, 2, 2])
    np.testing.assert_array_equal(c["fp"], [0, 1, 1, 2])
    np.testing.assert_allclose(c["precision"], [1, 0.5, 2 / 3, 0.5])
    np.testing.assert_allclose(c["recall"], [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(c["f1"], [2 / 4, 2 / 5, 4 / 6, 4 / 7])
    # "> threshold" keeps exactly the top k+1 predictions
    for k, t in enumerate(c["threshold"]):
        assert (conf > t).sum() == k + 1


def test_choose_conf_rules():
    from alnb.evaluation.metrics import FIXED_CONF, choose_conf, threshold_curve

    c = threshold_curve([0.9, 0.7, 0.5, 0.2], [True, False, True, False], n_gt=3)
    op = choose_conf(c, "f1")
    assert op["rule"] == "f1" and op["conf"] == pytest.approx(0.35) and op["f1"] == pytest.approx(4 / 6)
    # the lowest cut with precision >= 0.6 keeps three predictions (P = 2/3)
    op = choose_conf(c, "precision", target_precision=0.6)
    assert op["rule"] == "precision" and op["conf"] == pytest.approx(0.35) and op["precision"] == pytest.approx(2 / 3)
    op = choose_conf(c, "precision", target_precision=0.99)
    assert op["rule"] == "precision" and op["conf"] == pytest.approx(0.8)
    # unreachable precision falls back to the F1 rule; no prediction at all keeps the fixed confidence
    assert choose_conf(threshold_curve([0.5], [False], 2), "precision", target_precision=0.5)["rule"] == "f1"
    assert choose_conf(threshold_curve([], [], 2))["conf"] == FIXED_CONF
    with pytest.raises(ValueError, match="rule"):
        choose_conf(c, "magic")


def test_duplicate_share_counts_same_class_overlaps_only():
    from alnb.evaluation.metrics import duplicate_share

    img1 = np.array([[0, 0, 0, 10, 10], [0, 1, 0, 11, 10], [1, 0, 0, 10, 10], [0, 50, 50, 60, 60]])
    img2 = np.array([[2, 0, 0, 10, 2]])
    d = duplicate_share([img1, img2, np.zeros((0, 5))])
    # same-class pairs: (0,1) IoU 0.82, (0,3) 0, (1,3) 0 -> 1 duplicate pair of 3; boxes 0 and 1 have a duplicate
    assert d["n_boxes"] == 5 and d["n_pairs"] == 3 and d["dup_pairs"] == 1
    assert d["pair_share"] == pytest.approx(1 / 3) and d["box_share"] == pytest.approx(2 / 5)
    assert d["cross_pairs"] == 2  # the class-1 box over both class-0 boxes (IoU 1 and 0.82)
    assert duplicate_share([])["box_share"] == 0.0


def _coco_eval(preds, gts, nc):
    """pycocotools' COCOeval (bbox) on the same boxes: (mAP50-95, mAP50, per-class AP50-95)."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    for i, (p, g) in enumerate(zip(preds, gts)):
        images.append({"id": i + 1, "width": 640, "height": 640})
        for c, x0, y0, x1, y1 in g:
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(c) + 1, "iscrowd": 0,
                         "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0)})
        for c, x0, y0, x1, y1, s in p:
            dets.append({"image_id": i + 1, "category_id": int(c) + 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
                         "score": float(s)})
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": c + 1} for c in range(nc)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(dets) if dets else COCO()
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    prec = ev.eval["precision"][:, :, :, 0, -1]  # T x R x K, area all, maxDets 100
    per_class = {k: float(prec[:, :, k][prec[:, :, k] > -1].mean()) for k in range(nc) if (prec[:, :, k] > -1).any()}
    return float(ev.stats[0]), float(ev.stats[1]), per_class


def _random_detections(rng, n_images, nc):
    preds, gts = [], []
    for _ in range(n_images):
        m = rng.integers(0, 6)
        xy = rng.uniform(0, 500, (m, 2))
        wh = rng.uniform(8, 120, (m, 2))
        g = np.column_stack([rng.integers(0, nc, m), xy, xy + wh])
        rows = []
        for c, x0, y0, x1, y1 in g:  # noisy copies of the truth (some with the wrong class) + clutter
            for _ in range(rng.integers(0, 3)):
                j = rng.normal(0, 6, 4)
                nx0, ny0 = x0 + j[0], y0 + j[1]  # a detector's boxes are never degenerate: x1 > x0, y1 > y0
                rows.append([c if rng.random() > 0.15 else rng.integers(0, nc), nx0, ny0,
                             max(x1 + j[2], nx0 + 1), max(y1 + j[3], ny0 + 1), rng.random()])
        for _ in range(rng.integers(0, 4)):
            a = rng.uniform(0, 500, 2)
            rows.append([rng.integers(0, nc), *a, *(a + rng.uniform(8, 100, 2)), rng.random() * 0.6])
        p = np.array(rows, float).reshape(-1, 6)
        p[:, 5] = np.round(p[:, 5], 2)  # ties in score, as real confidences have
        preds.append(p)
        gts.append(g.astype(float).reshape(-1, 5))
    return preds, gts


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_coco_map_equals_pycocotools(seed):
    """alnb.evaluation.metrics.coco_map is COCOeval's bbox AP on the same boxes (overall and per class, to 1e-6)."""
    from alnb.evaluation.metrics import coco_map

    rng = np.random.default_rng(seed)
    nc = 4
    preds, gts = _random_detections(rng, 30, nc)
    ours = coco_map(preds, gts, nc)
    m5095, m50, per = _coco_eval(preds, gts, nc)
    assert ours["mAP50-95"] == pytest.approx(m5095, abs=1e-6)
    assert ours["mAP50"] == pytest.approx(m50, abs=1e-6)
    assert set(ours["per_class"]) == set(per)
    for c, v in per.items():
        assert ours["per_class"][c]["AP50-95"] == pytest.approx(v, abs=1e-6)


def test_coco_map_hand_made():
    """One image, one box: a perfect detection is AP 1; a class with truth but no detection is 0; without truth a
    class is left out of the mean (not 0)."""
    from alnb.evaluation.metrics import coco_map

    gt = [np.array([[0, 10, 10, 50, 50], [1, 60, 60, 90, 90]], float)]
    pred = [np.array([[0, 10, 10, 50, 50, 0.9], [2, 0, 0, 5, 5, 0.8]], float)]
    r = coco_map(pred, gt, 3)
    assert r["per_class"][0]["AP50"] == pytest.approx(1.0) and r["per_class"][1]["AP50"] == 0.0
    assert 2 not in r["per_class"] and r["mAP50"] == pytest.approx(0.5)


# ------------------------------------------------------------------------------------ predicted labelling seconds
def test_cost_calibration_and_predicted_seconds_on_hand_made_predictions():
    import pandas as pd

    thr = 0.4
    # image 1: two kept proposals (0.9 TP, 0.5 FP), one weak (0.3), 3 true boxes -> 2 misses
    # image 2: one kept TP 0.8, no weak, 1 true box -> 0 misses;  image 3: nothing, 1 true box -> 1 miss
    preds = [(np.array([0, 0, 1]), np.array([0.9, 0.5, 0.3]), np.array([True, False, False])),
             (np.array([1]), np.array([0.8]), np.array([True])),
             (np.array([], int), np.array([]), np.array([], bool))]
    gts = [np.array([0, 1, 1]), np.array([1]), np.array([0])]
    cal = M.cost_calibration(preds, gts, thr, bins=1)
    assert cal["edges"] == [] and cal["p_tp"] == pytest.approx([(2 + 1) / (3 + 2)])  # 2 TP of 3 kept, smoothed
    assert cal["fit"]["fp"] == 1 and cal["fit"]["fn"] == 3
    # misses 2, 0, 1 on [1, n_weak, n_kept] = [1,1,2], [1,0,1], [1,0,0]: solved exactly (a=1, b=... c=-1 not allowed)
    X = np.array([[1, 1, 2], [1, 0, 1], [1, 0, 0]], float)
    assert np.all(np.asarray(cal["miss"]) >= 0)
    assert cal["fit"]["fn_predicted"] == pytest.approx(float((X @ cal["miss"]).sum()), abs=1e-3)
    scores = pd.DataFrame({"stem": ["u", "v"]})
    dets = pd.DataFrame({"stem": ["u", "u", "u"], "conf": [0.9, 0.6, 0.3], "above": [True, True, False]})
    costs = M.CostModel()
    sec = M.predicted_seconds(scores, dets, cal, costs)
    a, b, c = cal["miss"]
    p = cal["p_tp"][0]
    want_u = 2 * costs.t_verify + 2 * (1 - p) * costs.t_delete + (a + b * 1 + c * 2) * costs.t_draw + costs.t_image
    want_v = a * costs.t_draw + costs.t_image  # no candidate at all: only the expected misses and the image time
    assert sec == pytest.approx([want_u, want_v])
    cal5 = M.cost_calibration(preds * 10, gts * 10, thr, bins=2)
    assert len(cal5["p_tp"]) == len(cal5["edges"]) + 1
    # a proposal in the lower bin (0.5, an FP) is less likely a TP than one in the upper bin
    assert cal5["p_tp"][0] < cal5["p_tp"][-1]


def test_predicted_seconds_ceiling_matches_candidates_to_the_true_labels(tiny_workspace):
    """benchmarks/predicted_seconds.py's ceiling: every candidate (kept or weak) matched to the image's true boxes;
    a true box a weak candidate finds is a miss of the auto-labels but not an invisible one."""
    import importlib.util
    from pathlib import Path

    import pandas as pd

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "predicted_seconds.py"
    spec = importlib.util.spec_from_file_location("predicted_seconds_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    ws = tiny_workspace
    man = ws.manifest().set_index("stem")
    pool = ws.stems("POOL")
    n_true = {s: len(ws.true_labels(s)) for s in pool}
    a = next(s for s in pool if n_true[s] >= 2)
    b = next(s for s in pool if s != a and n_true[s] >= 1)
    w, h = float(man.at[a, "width"]), float(man.at[a, "height"])
    gt = np.asarray(ws.true_labels(a), float).reshape(-1, 5)
    box = M.xywhn_to_xyxy(gt[:, 1:], w, h)
    thr = 0.4
    rows = [(a, int(gt[0, 0]), *box[0], 0.9, True),  # finds true box 0
            (a, int(gt[1, 0]), *box[1], 0.3, False),  # a weak candidate on true box 1
            (a, (int(gt[0, 0]) + 1) % 6, 0.0, 0.0, 1.0, 1.0, 0.5, True)]  # a kept false positive
    dets = pd.DataFrame(rows, columns=["stem", "cls", "x0", "y0", "x1", "y1", "conf", "above"])
    cal, invisible = bench.pool_truth(ws, pd.DataFrame({"stem": [a, b]}), dets, thr)
    assert invisible == (n_true[a] - 2) + n_true[b]
    assert cal["fit"]["fp"] == 1 and cal["fit"]["fn"] == (n_true[a] - 1) + n_true[b]
    assert cal["n_images"] == 2
