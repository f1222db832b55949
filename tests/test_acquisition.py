"""Acquisition strategies and scores (alnb.acquisition.strategies) and the error statistics (alnb.acquisition.difficulty) on hand-made
arrays; GT2 and Control through the one strategy interface (alnb.loop.pipeline)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from alnb.acquisition import strategies as A
from alnb.acquisition import difficulty as D


# ------------------------------------------------------------------------------------------------- hand-made tables
def pool_table():
    """8 images: a..f scored, g and h empty (no candidate); e is failed but has candidates below the threshold."""
    return pd.DataFrame({
        "stem": list("abcdefgh"),
        "n_cand": [2, 1, 3, 1, 2, 5, 0, 0],
        "n_det": [1, 1, 2, 1, 0, 4, 0, 0],
        "failed": [False, False, False, False, True, False, True, True],
        "score": [0.1, 0.9, 0.5, 0.3, 0.7, 0.2, 0.0, 0.0],
        "score_sum": [0.2, 0.9, 1.5, 0.3, 1.4, 1.0, 0.0, 0.0],
        "least_conf": [0.2, 0.6, 0.1, 0.8, 0.9, 0.3, 0.95, 0.97],
        "entropy": [0.3, 0.1, 0.9, 0.2, 0.4, 0.5, 0.0, 0.0],
        "mutual_info": [0.01, 0.02, 0.03, 0.09, 0.05, 0.04, 0.0, 0.0],
        "box_spread": [0.5, 0.4, 0.3, 0.2, 0.1, 0.6, 0.0, 0.0],
        "count_var": [0.0, 1.0, 0.5, 0.25, 2.0, 0.1, 0.0, 0.0],
    })


def embeddings():
    """Two tight clusters {a, b, c} near 0 and {d, e, f} near 10, the empty images elsewhere."""
    return np.array([[0, 0], [0.1, 0], [0, 0.1], [10, 10], [10.1, 10], [10, 10.1], [5, -5], [-5, 5]], float)


def pool(**kw):
    return A.Pool(pool_table(), embeddings(), **kw)


# ---------------------------------------------------------------------------------------- per-detection uncertainty
def test_localisation_and_hybrid_have_a_data_scale():
    assert A.localisation_unc(0.0, 0.07) == pytest.approx(0.0)
    assert A.localisation_unc(0.07, 0.07) == pytest.approx(0.5)  # a typical box (median spread) -> 0.5
    assert A.localisation_unc(0.14, 0.07) == pytest.approx(0.75)
    assert A.hybrid_unc(0.0, 0.0, 0.05) == pytest.approx(0.0)
    assert A.hybrid_unc(1.0, 0.05, 0.05) == pytest.approx(0.75)  # mean of 1 and 0.5
    assert A.hybrid_unc(0.5, 0.05, 0.05) == pytest.approx(0.5)  # the old noisy-OR gave 0.75 here
    assert A.hybrid_unc(1.0, 1e9, 0.05) == pytest.approx(1.0)
    assert A.box_ref_from([0.0, 0.02, 0.04, 0.1, np.nan]) == pytest.approx(0.04)  # median of positive, finite
    assert A.box_ref_from([0.0, 0.0]) == A.BOX_REF_FALLBACK
    with pytest.raises(ValueError):
        A.localisation_unc(0.1, 0.0)


def test_decision_uncertainty_peaks_at_the_operating_point():
    op = 0.08
    assert A.decision_unc(op, op) == pytest.approx(1.0)
    assert A.decision_unc(1.0, op) == pytest.approx(0.0, abs=1e-5)
    assert A.decision_unc(1e-6, op) < 0.2  # (q = conf ** 0.27: far below the threshold is still fairly sure)
    above = A.decision_unc([0.1, 0.2, 0.4, 0.8], op)
    below = A.decision_unc([0.02, 0.04, 0.06], op)
    assert (np.diff(above) < 0).all() and (np.diff(below) > 0).all()  # falls away from the threshold on both sides
    # the plain class entropy rises from 0.08 to 0.4 instead (the box-level inversion seen on the demo)
    assert D.auroc(A.decision_unc([0.1, 0.12, 0.6, 0.9], op), [1, 1, 0, 0]) == 1.0
    h = lambda q: -(q * np.log2(q) + (1 - q) * np.log2(1 - q))  # noqa: E731
    assert D.auroc(h(np.array([0.1, 0.12, 0.6, 0.9])), [1, 1, 0, 0]) == 0.5
    with pytest.raises(ValueError):
        A.decision_unc(0.5, 1.0)
    det = pd.DataFrame({"stem": "x", "conf": [0.08, 0.9], "cls_unc": [0.4, 0.47], "box_spread": [0.05, 0.05]})
    out, _ = A.detection_uncertainty(det, box_ref=0.05, conf_op=op)
    assert out["hybrid"].tolist() == pytest.approx([0.75, (A.decision_unc(0.9, op) + 0.5) / 2])


def test_detection_uncertainty_median_half_on_skewed_spreads():
    rng = np.random.default_rng(0)
    spread = rng.lognormal(np.log(0.07), 0.8, 500)  # like the demo: median 0.07, long tail
    det = pd.DataFrame({"stem": "x", "cls_unc": rng.uniform(0, 1, 500), "box_spread": spread})
    out, ref = A.detection_uncertainty(det)
    assert ref == pytest.approx(np.median(spread))
    assert np.median(out["loc_unc"]) == pytest.approx(0.5, abs=1e-3)  # (even n: median of two middle values)
    assert np.median(out["hybrid"]) < 0.8 and out["hybrid"].max() < 1


def test_aggregations_on_hand_made_detections():
    det = pd.DataFrame({"stem": ["a"] * 5 + ["b"], "hybrid": [0.9, 0.1, 0.8, 0.2, 0.7, 0.4]})
    assert A.aggregate(det, "hybrid", how="topk", k=3)["a"] == pytest.approx(0.8)
    assert A.aggregate(det, "hybrid", how="topk", k=3)["b"] == pytest.approx(0.4)  # fewer than k: mean of all
    assert A.aggregate(det, "hybrid", how="mean")["a"] == pytest.approx(0.54)
    assert A.aggregate(det, "hybrid", how="max")["a"] == pytest.approx(0.9)
    assert A.aggregate(det, "hybrid", how="sum")["a"] == pytest.approx(2.7)
    with pytest.raises(ValueError):
        A.aggregate(det, "hybrid", how="median")


def test_topk_score_does_not_grow_with_the_box_count():
    # image "many": 20 identical middling boxes; image "few": 2 boxes, one of them doubtful
    det = pd.DataFrame({"stem": ["many"] * 20 + ["few"] * 2, "cls_unc": [0.5] * 20 + [0.9, 0.1],
                        "box_spread": [0.05] * 22})
    images = pd.DataFrame({"stem": ["many", "few", "none"], "n_det": [20, 1, 0], "n_cand": [20, 2, 0],
                           "max_prob": [0.8, 0.9, 0.05], "count_mean": [20, 1, 0], "count_var": [0, 0, 0]})
    s = A.image_scores(det, images, box_ref=0.05, k=1).set_index("stem")
    assert s.at["few", "score"] > s.at["many", "score"]  # one doubtful box beats a crowd of middling ones
    assert s.at["many", "score_sum"] > s.at["few", "score_sum"]  # ... where the sum would say the opposite
    assert s.at["none", "score"] == 0 and bool(s.at["none", "empty"]) and bool(s.at["none", "failed"])
    assert s.at["few", "least_conf"] == pytest.approx(0.1)


# ----------------------------------------------------------------------------------------------------- statistics
def test_auroc_rank_based():
    assert D.auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert D.auroc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert D.auroc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5
    # hand count: positives {0.4, 0.9}, negatives {0.1, 0.5, 0.9}: pairs won 1 + (1 + 1 + 0.5) = 3.5 of 6
    assert D.auroc([0.4, 0.9, 0.1, 0.5, 0.9], [1, 1, 0, 0, 0]) == pytest.approx(3.5 / 6)
    assert math.isnan(D.auroc([0.1, 0.2], [1, 1]))


def test_spearman():
    assert D.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert D.spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1.0)  # monotone, not linear
    assert D.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert D.spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert math.isnan(D.spearman([1, 2, 3], [5, 5, 5]))


def test_box_level_auroc_in_difficulty_vs_errors():
    sc = pd.DataFrame({"stem": list("abcd"), "failed": [False] * 4, "has_error": [True, False, True, False],
                       "n_err": [1, 0, 2, 0], "score": [0.9, 0.1, 0.8, 0.2], "least_conf": [0.1, 0.2, 0.3, 0.4]})
    boxes = pd.DataFrame({"hybrid": [0.9, 0.2, 0.7, 0.1], "cls_unc": [0.1, 0.2, 0.3, 0.4], "conf": [0.3, 0.9, 0.4, 0.8],
                          "is_fp": [True, False, True, False]})
    res = D.difficulty_vs_errors(sc, boxes)
    assert res["box_level"]["hybrid"] == 1.0 and res["box_level"]["low_conf"] == 1.0
    assert res["box_level"]["cls_unc"] == pytest.approx(0.25)
    assert res["n_boxes"] == 4 and res["n_fp_boxes"] == 2
    assert res["strategies"]["hybrid"]["auroc"] == 1.0 and "tiers" not in res


# ----------------------------------------------------------------------------------------------------- strategies
def test_registry_has_every_family_and_describes_them():
    need = {"random", "least_confidence", "entropy", "bald", "localisation", "count_variance", "hybrid", "study_rule",
            "coreset", "uncertain_diverse"}
    assert need <= set(A.STRATEGIES) and len(A.STRATEGIES) >= 10
    d = A.describe()
    assert list(d["strategy"]) == list(A.STRATEGIES) and (d["description"].str.len() > 10).all()
    with pytest.raises(KeyError, match="unknown strategy"):
        A.select("oracle", pool(), 2)


@pytest.mark.parametrize("name,column", [("least_confidence", "least_conf"), ("entropy", "entropy"),
                                         ("bald", "mutual_info"), ("localisation", "box_spread"),
                                         ("count_variance", "count_var"), ("hybrid", "score"),
                                         ("hybrid_sum", "score_sum")])
def test_score_strategies_take_the_highest_scored(name, column):
    # k = 3 of 8 with 2 empty images: round(3 * 2 / 8) = 1 empty image, 2 by the strategy among a..f
    got = A.select(name, pool(), 3, seed=0)
    t = pool_table()
    scored = t[t["n_cand"] > 0].sort_values(column, ascending=False)
    assert got[:2] == list(scored["stem"][:2])
    assert got[2] in {"g", "h"}
    assert A.SCORE_COLUMNS[name] == column


def test_expected_orders_by_hand():
    p = pool()
    # k = 6: round(6 * 2 / 8) = 2 empty images (g, h), 4 by least confidence among a..f
    got = A.select("least_confidence", p, 6, seed=0)
    assert got[:4] == ["e", "d", "b", "f"] and set(got[4:]) == {"g", "h"}
    assert A.select("bald", p, 2, seed=0) == ["d", "e"]  # round(2 * 2 / 8) = 0 empty images
    assert A.select("count_variance", p, 4, seed=0)[:3] == ["e", "b", "c"]


def test_empty_images_get_the_same_share_in_every_strategy():
    p = pool()
    for name in ["random", "least_confidence", "entropy", "bald", "localisation", "count_variance", "hybrid",
                 "coreset", "uncertain_diverse"]:
        for k in range(0, 9):
            got = A.select(name, p, k, seed=3)
            assert len(got) == len(set(got)) == k, (name, k)
            n_empty = sum(s in {"g", "h"} for s in got)
            expect = min(2, max(int(round(k * 2 / 8)), k - 6))
            assert n_empty == expect, (name, k, got)
    with pytest.raises(ValueError, match="larger"):
        A.select("hybrid", p, 9)


def test_ties_are_broken_by_the_seed_and_reproducible():
    t = pool_table().assign(score=0.5)  # all tied
    p = A.Pool(t)
    picks = {tuple(A.select("hybrid", p, 2, seed=s)) for s in range(20)}
    assert len(picks) > 3  # ties really are broken at random
    assert A.select("hybrid", p, 3, seed=7) == A.select("hybrid", p, 3, seed=7)


def test_random_strategy_uniform_and_seeded():
    p = pool()
    a = A.select("random", p, 4, seed=1)
    assert a == A.select("random", p, 4, seed=1)
    counts = pd.Series([s for seed in range(600) for s in A.select("random", p, 3, seed=seed)]).value_counts()
    scored = counts[list("abcdef")]
    assert scored.min() > 0.7 * scored.mean()  # uniform over the scored images (each ~ 200 of 1200 picks)


def test_study_rule_own_size_and_budget():
    p = pool(thresholds=(0.45, 0.8))
    # failed first (e 0.7, then g and h tied at 0: by stem), then medium + hard by score (b 0.9, c 0.5); a, d, f easy
    got = A.select("study_rule", p, None, seed=0)
    assert got == ["e", "g", "h", "b", "c"]
    assert got == A.select("study_rule", p, None, seed=1)  # one definition with the widget (alnb.loop.selection): no draw
    # budget: the first k of the same order, whatever the thresholds
    assert A.select("study_rule", p, 4, seed=0) == got[:4]
    assert A.select("study_rule", A.Pool(pool_table()), 6, seed=0)[3:] == ["b", "c", "d"]
    assert A.STRATEGY_INFO["study_rule"].whole_pool
    with pytest.raises(ValueError, match="thresholds"):
        A.select("study_rule", A.Pool(pool_table()), None)


def test_strategy_metadata_is_declared_where_it_is_registered(monkeypatch):
    monkeypatch.setattr(A, "STRATEGIES", dict(A.STRATEGIES))
    monkeypatch.setattr(A, "STRATEGY_INFO", dict(A.STRATEGY_INFO))

    @A.strategy("last_two", whole_pool=True, needs=("thresholds",))
    def last_two(pool, k, rng):
        """The last two stems."""
        return list(pool.scores["stem"])[-2:]

    assert A.STRATEGY_INFO["last_two"] == A.StrategyInfo("last_two", last_two, True, False, ("thresholds",))
    assert A.select("last_two", A.Pool(pool_table()), None) == list(pool_table()["stem"])[-2:]  # whole pool: no k
    assert A.describe().set_index("strategy").loc["last_two", "whole_pool"]
    with pytest.raises(ValueError, match="registered twice"):
        A.strategy("last_two")(last_two)
    assert list(A.STRATEGIES)[:3] == ["random", "least_confidence", "entropy"]  # registration order = CLI order
    assert A.STRATEGY_INFO["study_rule_capped"].failed_share and A.STRATEGY_INFO["coreset"].needs == ("embeddings",)


def test_k_center_greedy_covers_clusters():
    x = embeddings()
    rng = np.random.default_rng(0)
    pick = A.k_center_greedy(x, 4, rng, first=0)
    assert pick[0] == 0 and len(set(pick)) == 4
    # from a (cluster near 0) the farthest point is the cluster near 10, then the two outliers
    assert pick[1] in {3, 4, 5} and set(pick[2:]) == {6, 7}
    assert A.k_center_greedy(x, 0, rng) == [] and len(A.k_center_greedy(x, 20, rng)) == 8


def test_kmeans_pp_spreads_and_is_seeded():
    x = np.r_[np.zeros((50, 2)), np.full((50, 2), 100.0)]
    for s in range(10):
        pick = A.kmeans_pp(x, 2, np.random.default_rng(s), first=0)
        assert pick[0] == 0 and pick[1] >= 50  # the second draw lands in the far cluster (prob. ~1)
    assert A.kmeans_pp(x, 5, np.random.default_rng(1)) == A.kmeans_pp(x, 5, np.random.default_rng(1))


def test_coreset_picks_one_per_cluster():
    t = pool_table().iloc[:6].assign(n_cand=1)
    p = A.Pool(t, embeddings()[:6])
    for seed in range(5):
        got = A.select("coreset", p, 2, seed=seed)
        assert {s in "abc" for s in got} == {True, False}  # one from each cluster
    with pytest.raises(ValueError, match="embeddings"):
        A.select("coreset", A.Pool(pool_table()), 2)


def test_uncertain_diverse_shortlists_then_diversifies():
    # shortlist = top 3 * 2 = 6 of the scored images, k-means++ from the most uncertain (b): the second pick comes
    # from the other cluster (d, e or f) because the same-cluster points are ~100x closer
    t = pool_table().iloc[:6].assign(n_cand=1)
    p = A.Pool(t, embeddings()[:6])
    for seed in range(5):
        got = A.select("uncertain_diverse", p, 2, seed=seed)
        assert got[0] == "b" and got[1] in {"d", "e", "f"}
    # pure uncertainty would take b and e (0.9, 0.7); a shortlist of 1 x k reduces to it
    assert A.select("hybrid", p, 2) == ["b", "e"]


def test_adding_a_strategy_is_one_function_and_one_line(monkeypatch):
    def lowest_score(pool, k, rng):
        """Lowest score first (an anti-strategy, for this test)."""
        return A.top_k(pool, -pool.column("score"), k, rng)

    monkeypatch.setitem(A.STRATEGIES, "lowest_score", lowest_score)
    assert A.select("lowest_score", pool(), 2, seed=0) == ["a", "f"]  # 0.1, 0.2: the lowest scored non-empty
    assert "lowest_score" in set(A.describe()["strategy"])


# ------------------------------------------------------------------------------------- GT2 / Control, one code path
def _scored_workspace(ws):
    from alnb.core.workspace import atomic_write_text

    pool_stems = ws.stems("POOL")
    n = len(pool_stems)
    rng = np.random.default_rng(0)
    t = pd.DataFrame({"stem": pool_stems, "n_cand": [0, 0] + [2] * (n - 2), "n_det": [0] * 4 + [1] * (n - 4),
                      "score": np.r_[[0, 0], rng.uniform(0, 1, n - 2)]})
    t["failed"] = t["n_det"] == 0
    atomic_write_text(ws.root / "scores.csv", t.to_csv(index=False))
    ws.save_json("thresholds", {"t_medium": 0.5, "t_hard": 0.8})
    return t


def test_select_gt2_and_control_go_through_the_registry(tiny_workspace, monkeypatch):
    from alnb.acquisition import strategies as acquisition
    from alnb.loop import pipeline

    ws = tiny_workspace
    t = _scored_workspace(ws)
    calls = []
    real = acquisition.select
    monkeypatch.setattr(acquisition, "select", lambda name, *a, **k: calls.append(name) or real(name, *a, **k))
    gt2 = pipeline.select_gt2(ws)
    expect = set(t.loc[t["failed"] | (t["score"] >= 0.5), "stem"])
    assert set(gt2) == expect == set(ws.stems("GT2"))
    ctl = pipeline.make_control(ws, seed=0)
    assert len(ctl) == len(gt2) and set(ctl) <= set(ws.stems("POOL")) and set(ctl) == set(ws.stems("CONTROL"))
    assert calls == ["study_rule", "random"]
    assert pipeline.make_control(ws, seed=0) == ctl  # seeded
    b = pipeline.select_gt2(ws, rule="budget", budget=5, strategy="study_rule")
    assert set(b[:4]) == set(t.loc[t["failed"], "stem"])  # the study rule's order: failed first
    assert calls[-1] == "study_rule" and ws.load_json("selection")["rule"].startswith("budget: 5 images, the study")
    d = pipeline.select_gt2(ws, rule="budget", budget=5)  # the default budget strategy: random, seeded
    assert calls[-1] == acquisition.DEFAULT_BUDGET_STRATEGY == "random"
    assert d == real("random", pipeline.selection_pool(ws), 5, seed=0) and set(d) == set(ws.stems("GT2"))
    h = pipeline.select_gt2(ws, rule="hybrid", budget=5)
    assert len(h) == 5 and sum(s in set(t.loc[t["n_cand"] == 0, "stem"]) for s in h) == round(5 * 2 / len(t))
    with pytest.raises(ValueError, match="strategy"):
        pipeline.select_gt2(ws, rule="nonsense", budget=3)
    with pytest.raises(ValueError, match="larger"):
        pipeline.select_gt2(ws, rule="budget", budget=len(t) + 1)


# ------------------------------------------------------------------------------ new strategies and seconds budgets
def test_class_balanced_prefers_doubtful_boxes_of_weak_classes():
    # b's box is the most uncertain but of class 0 (AP50 0.9: weight 0.1); d's is less uncertain, class 1 (AP50 0.2)
    det = pd.DataFrame({"stem": list("abcdef"), "cls": [0, 0, 0, 1, 1, 0],
                        "hybrid": [0.2, 0.9, 0.5, 0.4, 0.3, 0.1]})
    w = A.class_weights_from_eval({"per_class": [{"class_id": 0, "mAP50": 0.9}, {"class_id": 1, "mAP50": 0.2},
                                                 {"class_id": 2, "mAP50": None}]})
    assert w == pytest.approx({0: 0.1, 1: 0.8, 2: 0.8})  # the unmeasurable class gets the largest other weight
    p = pool(detections=det, class_weights=w)
    # weighted: a .02, b .09, c .05, d .32, e .24, f .01 -> d, e first, then b; g, h (empty) at their share
    assert A.select("class_balanced", p, 4, seed=0)[:3] == ["d", "e", "b"]  # + one empty image (its share)
    assert A.select("hybrid", p, 4, seed=0)[:3] == ["b", "e", "c"]  # plain uncertainty: b first
    with pytest.raises(ValueError, match="class weights"):
        A.select("class_balanced", pool(), 2)


def test_study_rule_capped_takes_failed_images_only_at_their_share():
    t = pool_table()
    # study rule: failed first (e, g, h), then hardest; capped: failed only at their share 3/8 of 4 -> 2 (round 1.5)
    assert A.select("study_rule", A.Pool(t), 4)[:3] == ["e", "g", "h"]
    got = A.select("study_rule_capped", A.Pool(t), 4, seed=0)
    assert got[:2] == ["b", "c"] and len(set(got[2:]) & {"e", "g", "h"}) == 2
    assert sum(s in {"e", "g", "h"} for s in A.select("study_rule_capped", A.Pool(t), 8, seed=0)) == 3


def test_cost_normalised_ranks_uncertainty_per_predicted_second():
    t = pool_table().assign(pred_s=[1.0, 9.0, 1.0, 1.0, 70.0, 1.0, 3.0, 3.0])
    # score / seconds: a .1, b .1, c .5, d .3, e .01, f .2 -> c, d, f
    assert A.select("cost_normalised", A.Pool(t), 4, seed=0)[:3] == ["c", "d", "f"]
    with pytest.raises(ValueError, match="pred_s"):
        A.select("cost_normalised", A.Pool(pool_table()), 2)


@pytest.mark.parametrize("strategy", ["random", "hybrid", "study_rule", "study_rule_capped", "cost_normalised",
                                      "coreset", "uncertain_diverse"])
def test_seconds_budget_is_never_exceeded_and_follows_the_strategy_order(strategy):
    t = pool_table().assign(pred_s=[5.0, 12.0, 7.0, 3.0, 20.0, 9.0, 3.0, 3.0])
    p = A.Pool(t, embeddings())
    order = A.ranking(strategy, p, seed=1)
    assert sorted(order) == sorted(t["stem"])  # a ranking holds every image once
    for budget in (0.0, 10.0, 25.0, 40.0, 1000.0):
        got = A.select(strategy, p, None, seed=1, budget_s=budget)
        cost = t.set_index("stem").loc[got, "pred_s"].sum() if got else 0.0
        assert cost <= budget + 1e-9
        assert got == order[:len(got)]  # a prefix of the strategy's own order
        if len(got) < len(order):  # stopped because the next one would not fit
            assert cost + t.set_index("stem").at[order[len(got)], "pred_s"] > budget
    with pytest.raises(ValueError, match="predicted seconds"):
        A.select(strategy, A.Pool(pool_table(), embeddings()), None, budget_s=10.0)


def test_ranking_spreads_empty_images_evenly():
    order = A.ranking("hybrid", A.Pool(pool_table()), seed=0)
    # 6 scored images by score (b .9, e .7, c .5, d .3, f .2, a .1); the empty g, h at about positions 2 and 6 of 8
    assert [s for s in order if s not in "gh"] == list("becdfa")
    pos = sorted(order.index(s) for s in "gh")
    assert pos == [2, 6]
