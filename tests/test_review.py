"""The review plan: the pure calibration / order / curve / cuts (alnb.loop.review) on hand-made data with known answers,
the step on a tiny simulated workspace (alnb.loop.reviewstep), ``alnb review`` and the final label set's provenance."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alnb.loop import review as rv
from alnb.evaluation.metrics import CostModel


# ------------------------------------------------------------------------------------------------------ pure: data
def _table(n, seed=0):
    rng = np.random.default_rng(seed)
    n_det = rng.poisson(3, n)
    score = rng.random(n)
    fp = rng.poisson(0.1 + 0.4 * score * n_det / 3)
    fn = rng.poisson(0.2 + 0.6 * score)
    return pd.DataFrame({"stem": [f"s{i:04d}" for i in range(n)], "n_det": n_det, "n_cand": n_det + rng.poisson(1, n),
                         "score": score, "score_sum": score * n_det, "count_var": rng.random(n), "failed": n_det == 0,
                         "least_conf": rng.random(n), "n_fp": fp, "n_fn": fn, "has_error": (fp + fn) > 0,
                         "n_gt": n_det - fp + fn})


def _pred(p, fp, fn):
    return pd.DataFrame({"p_error": p, "e_fp": fp, "e_fn": fn}, dtype=float)


# ---------------------------------------------------------------------------------------------------- pure: seconds
def test_review_and_manual_seconds_follow_the_cost_model():
    c = CostModel(t_draw=10, t_verify=2, t_delete=1, t_image=3)
    # 4 proposals verified (8 s), 1.5 expected false deleted (1.5 s), 0.5 expected misses drawn (5 s), image 3 s
    assert rv.review_seconds([4], [1.5], [0.5], c)[0] == pytest.approx(17.5)
    assert rv.manual_seconds([3], c)[0] == pytest.approx(33.0)


def test_plan_orders_by_expected_errors_fixed_per_review_second():
    c = CostModel(t_draw=10, t_verify=1, t_delete=1, t_image=2)
    scores = pd.DataFrame({"stem": ["a", "b", "c"], "n_det": [10, 0, 2], "score": [0.9, 0.1, 0.5]})
    # a: 2 wrong boxes / (10 + 1 + 10 + 2 = 23 s) = 0.087; b: 1 / (0 + 0 + 10 + 2) = 0.083; c: 1 / (2 + 1 + 0 + 2) = 0.2
    plan = rv.make_plan(scores, _pred([0.9, 0.6, 0.5], [1, 0, 1], [1, 1, 0]), costs=c)
    assert list(plan["stem"]) == ["c", "a", "b"]
    assert plan["value"].tolist() == pytest.approx([1 / 5, 2 / 23, 1 / 12])
    assert plan["review_s"].tolist() == pytest.approx([5, 23, 12])
    assert list(plan["rank"]) == [1, 2, 3]
    # the most difficult image (a) is not first: the order is cost-aware
    assert plan["score"].iloc[0] < plan["score"].max()


def test_plan_order_ties_broken_by_stem_and_deterministic():
    idx = rv.plan_order(["b", "a", "c"], [1.0, 1.0, np.nan])
    assert list(idx) == [1, 0, 2]


# ---------------------------------------------------------------------------------------------------- pure: curve
def test_curve_residuals_are_sums_over_the_accepted_images():
    c = CostModel(t_draw=10, t_verify=1, t_delete=1, t_image=2)
    scores = pd.DataFrame({"stem": ["a", "b", "c"], "n_det": [10, 0, 2], "score": [0.9, 0.1, 0.5]})
    plan = rv.make_plan(scores, _pred([0.9, 0.6, 0.5], [1, 0, 1], [1, 1, 0]), costs=c)  # order c, a, b
    truth = pd.DataFrame({"has_error": [True, False, True], "n_fp": [2, 0, 0], "n_fn": [0, 0, 3],
                          "n_gt": [0, 10, 3]})
    cv = rv.curve(plan, truth=truth, costs=c)
    assert list(cv["reviewed"]) == [0, 1, 2, 3] and list(cv["accepted"]) == [3, 2, 1, 0]
    p = plan["p_error"].to_numpy()
    for j in range(4):
        assert cv["err_images"][j] == pytest.approx(p[j:].sum())
        assert cv["wrong_boxes"][j] == pytest.approx((plan["e_fp"] + plan["e_fn"]).to_numpy()[j:].sum())
    assert cv["review_h"].tolist() == pytest.approx(np.array([0, 5, 28, 40]) / 3600)
    assert cv["err_rate"].tolist() == pytest.approx([2.0 / 3, 1.5 / 2, 0.6, 0.0])
    # actual: c has 2 false boxes, a none, b 3 missed
    assert cv["actual_wrong_boxes"].tolist() == [5, 3, 3, 0]
    assert cv["actual_err_images"].tolist() == [2, 1, 1, 0]
    # true review seconds: c 2+2+0+2 = 6, a 10+0+0+2 = 12, b 0+0+30+2 = 32
    assert cv["actual_review_h"].tolist() == pytest.approx(np.array([0, 6, 18, 50]) / 3600)
    assert cv["actual_manual_h"][0] == pytest.approx((0 + 100 + 30 + 3 * 2) / 3600)
    assert cv["saved_h"].tolist() == pytest.approx((cv["manual_h"] - cv["review_h"]).tolist())


def test_cuts_by_fraction_hours_and_error_target():
    cv = pd.DataFrame({"reviewed": [0, 1, 2, 3, 4], "review_h": [0, 0.5, 1.0, 2.0, 3.0],
                       "err_rate": [0.5, 0.3, 0.04, 0.02, 0.0]})
    assert rv.choose_cut(cv, fraction=0.5) == 2
    assert rv.choose_cut(cv, fraction=0.3) == 2  # rounded up: 1.2 images -> 2
    assert rv.choose_cut(cv, fraction=0.0) == 0 and rv.choose_cut(cv, fraction=1.0) == 4
    assert rv.choose_cut(cv, hours=1.9) == 2 and rv.choose_cut(cv, hours=2.0) == 3
    assert rv.choose_cut(cv, max_error_rate=0.05) == 2
    assert rv.choose_cut(cv, max_error_rate=0.0) == 4
    with pytest.raises(ValueError, match="exactly one"):
        rv.choose_cut(cv, fraction=0.5, hours=1)
    with pytest.raises(ValueError, match="fraction"):
        rv.choose_cut(cv, fraction=1.5)


# ---------------------------------------------------------------------------------------------- pure: calibration
def test_isotonic_pools_adjacent_violators():
    kx, kv = rv.isotonic([1, 2, 3, 4], [1, 3, 2, 4])
    assert rv._iso_predict((kx, kv), [1, 2, 3, 4]).tolist() == pytest.approx([1, 2.5, 2.5, 4])
    assert rv._iso_predict((kx, kv), [0, 10]).tolist() == pytest.approx([1, 4])  # flat outside


def test_logistic_and_poisson_fits_match_the_totals_in_sample():
    """At the maximum of a GLM with an unpenalised intercept the fitted values sum to the observed ones."""
    t = _table(150, seed=1)
    X = rv.features(t)
    cal = rv.fit_calibration(X, t, method="logistic")
    p = rv.predict(cal, X)
    assert p["p_error"].sum() == pytest.approx(t["has_error"].sum(), rel=1e-6)
    assert p["e_fp"].sum() == pytest.approx(t["n_fp"].sum(), rel=1e-6)
    assert p["e_fn"].sum() == pytest.approx(t["n_fn"].sum(), rel=1e-6)
    iso = rv.fit_calibration(X, t, method="isotonic", iso_x=t["score_sum"])
    q = rv.predict(iso, X, iso_x=t["score_sum"])
    assert q["p_error"].sum() == pytest.approx(t["has_error"].sum(), rel=1e-9)  # PAV keeps block means
    assert np.all(np.diff(q["e_fn"].to_numpy()[np.argsort(t["score_sum"].to_numpy(), kind="stable")]) >= -1e-12)


def test_cross_fitting_never_uses_an_images_own_truth():
    t = _table(60, seed=2)
    X = rv.features(t)
    for method in rv.METHODS:
        a = rv.cross_fit(X, t, method=method, iso_x=t["score_sum"], k=5, seed=0)
        f = rv.folds(len(t), 5, 0)
        i = 7
        t2 = t.copy()
        t2.loc[i, ["n_fp", "n_fn", "has_error"]] = [9, 9, True]  # change image 7's truth only
        b = rv.cross_fit(X, t2, method=method, iso_x=t["score_sum"], k=5, seed=0)
        assert a.iloc[i].tolist() == pytest.approx(b.iloc[i].tolist())  # its own prediction does not move
        others = f != f[i]
        if method == "logistic":  # (isotonic fits are local: a far-off image need not move)
            assert not np.allclose(a.loc[others, "e_fn"], b.loc[others, "e_fn"])  # the other folds' do
        # and equals a model fitted on the other folds
        tr = f != f[i]
        cal = rv.fit_calibration(X[tr], t[tr], method=method, iso_x=t["score_sum"].to_numpy()[tr])
        assert rv.predict(cal, X[[i]], iso_x=t["score_sum"].to_numpy()[[i]]).iloc[0].tolist() == \
            pytest.approx(a.iloc[i].tolist())


def test_compare_methods_chooses_the_lower_cross_fitted_brier():
    t = _table(120, seed=3)
    ev = rv.compare_methods(rv.features(t), t, iso_x=t["score_sum"])
    assert ev["chosen"] == min(rv.METHODS, key=lambda m: ev[m]["brier"])
    for m in rv.METHODS:
        assert 0 <= ev[m]["brier"] <= 1 and ev[m]["n"] == 120


def test_intervals_cover_the_point_and_plan_is_deterministic():
    val, pool = _table(150, seed=4), _table(200, seed=5)

    def build():
        Xc, Xp = rv.features(val), rv.features(pool)
        cal = rv.fit_calibration(Xc, val, method="logistic")
        plan = rv.make_plan(pool, rv.predict(cal, Xp))
        idx = [int(s[1:]) for s in plan["stem"]]
        boots = rv.bootstrap_predictions(Xc, val, Xp[idx], method="logistic", n_boot=40, seed=0)
        return plan, rv.curve(plan, draws=rv.residual_draws(boots, seed=0))

    (p1, c1), (p2, c2) = build(), build()
    pd.testing.assert_frame_equal(p1, p2)
    pd.testing.assert_frame_equal(c1, c2)
    inner = c1.iloc[:-1]
    assert (inner["err_images_lo"] <= inner["err_images"] + 1e-9).all()
    assert (inner["err_images"] <= inner["err_images_hi"] + 1e-9).all()
    assert c1["err_images_hi"].iloc[-1] == 0


def test_equal_hours_compares_orders_on_the_truth():
    t = _table(80, seed=6)
    plan = rv.make_plan(t, _pred(t["has_error"].astype(float), t["n_fp"], t["n_fn"]))  # an oracle's plan
    h = 0.05
    res = pd.concat([rv.equal_hours(plan, plan, [h], how=o, seed=0) for o in rv.ORDERS]).set_index("order")
    assert (res["wrong_boxes"]["plan"] <= res["wrong_boxes"]).all()  # the oracle's per-second order is best
    assert set(res.index) == set(rv.ORDERS)


# ------------------------------------------------------------------------------------------------ the step (tiny)
@pytest.fixture(scope="module")
def scored_ws(tiny_dataset, tmp_path_factory):
    """Tiny simulated workspace: CAL1 trained (smoke profile) and the POOL scored (T=4)."""
    from alnb.loop import pipeline
    from alnb.acquisition.scoring import score_pool
    from alnb.core.workspace import Workspace

    ws = Workspace.create(tmp_path_factory.mktemp("review") / "ws", tiny_dataset, n_val=10, n_gt1=10, seed=0,
                          progress=False)
    pipeline.train_and_evaluate(ws, "CAL1", ["GT1"], "smoke")
    score_pool(ws, "CAL1", T=4, progress=False)
    return ws


def test_step_writes_the_plan_with_predictions_next_to_the_truth(scored_ws):
    from alnb.loop import reviewstep

    ws = scored_ws
    before = {p: p.read_bytes() for p in (ws.root / "scores.csv", ws.manifest_path)}
    res = reviewstep.write_plan(ws, fraction=0.5, n_boot=30)
    assert {p: p.read_bytes() for p in before} == before  # nothing the other steps wrote changes
    plan, cv, s = reviewstep.load_plan(ws)
    pool = set(ws.stems("POOL")) - set(ws.stems("VAL1", "GT1"))
    assert set(plan["stem"]) == pool and len(plan) == 20
    val = pd.read_csv(ws.root / "scores" / "CAL1" / "val1_scores.csv", dtype={"stem": str})
    assert sorted(val["stem"]) == sorted(ws.stems("VAL1")) and {"has_error", "n_fp", "n_fn"} <= set(val)
    assert s["model"] == "CAL1" and s["simulation"] and s["cut"]["reviewed"] == 10
    assert s["calibration"]["method"] in rv.METHODS
    assert s["calibration"]["cross_fitted"]["logistic"]["n"] == 10
    j = s["cut"]["reviewed"]
    assert s["cut"]["err_images"] == pytest.approx(plan["p_error"].to_numpy()[j:].sum())
    assert cv["actual_wrong_boxes"].iloc[0] == plan["n_fp"].sum() + plan["n_fn"].sum()
    assert {r["order"] for r in s["orders_at_equal_hours"]} == set(rv.ORDERS)
    # same seed, same plan
    again = reviewstep.build_plan(ws, fraction=0.5, n_boot=30)
    pd.testing.assert_frame_equal(again["plan"].reset_index(drop=True), res["plan"].reset_index(drop=True))
    text = reviewstep.describe(s)
    assert "chosen cut (fraction=0.5): review 10 images" in text
    assert json.loads((ws.root / "metrics" / "review_plan_rounds.json").read_text())["CAL1"]["n_images"] == 20
    # the second-stage count recalibration: on by default, recorded, and only the counts change without it
    assert rv.RECALIBRATE and s["calibration"]["recalibrated"] is True
    assert "expected counts recalibrated" in text
    off = reviewstep.build_plan(ws, fraction=0.5, n_boot=30, recalibrate=False)
    assert off["summary"]["calibration"]["recalibrated"] is False
    pe = off["plan"].set_index("stem")["p_error"]
    assert pe.loc[plan["stem"]].to_numpy() == pytest.approx(plan["p_error"].to_numpy())


def test_review_figure_and_report_section(scored_ws):
    from figcheck import figure_problems

    from alnb.loop import reviewstep
    from alnb.figures.plots import review_curve
    from alnb.ui.report import review_plan_section

    ws = scored_ws
    reviewstep.write_plan(ws, max_error_rate=0.05, n_boot=30)
    _, cv, s = reviewstep.load_plan(ws)
    fig = review_curve(cv, s["cut"])
    assert figure_problems(fig) == []
    md = "\n".join(review_plan_section(ws))
    assert "## Review plan" in md and "figures/review_plan.png" in md and "actual wrong boxes" in md
    assert f"review {s['cut']['reviewed']} images" in md
    assert (ws.figures_dir / "review_plan.png").is_file()


def _fresh_copy(ws, tmp_path):
    import shutil

    from alnb.core.workspace import Workspace

    dst = tmp_path / "ws"
    shutil.copytree(ws.root, dst, symlinks=True)
    return Workspace.open(dst)


def test_cli_accept_marks_provenance_and_never_overwrites_a_person(scored_ws, tmp_path, capsys):
    from alnb.apps import cli
    from alnb.labels import labelio

    ws = _fresh_copy(scored_ws, tmp_path)
    pool = sorted(set(ws.stems("POOL")) - set(ws.stems("VAL1", "GT1")))
    person = pool[0]
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / f"{person}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    labelio.import_labels(ws, folder, "yolo", tag="any")
    mine = (ws.root / "labels" / f"{person}.txt").read_bytes()

    assert cli.main(["review", "--workspace", str(ws.root), "--fraction", "0.25", "--accept"]) == 0
    out = capsys.readouterr().out
    assert "chosen cut (fraction=0.25)" in out and "machine-accepted" in out
    m = ws.manifest().set_index("stem")
    plan = pd.read_csv(ws.root / "review_plan.csv", dtype={"stem": str})
    assert person not in set(plan["stem"])  # a person's image is never planned
    assert m.at[person, "label_source"] == "human"
    assert (ws.root / "labels" / f"{person}.txt").read_bytes() == mine
    rec = json.loads((ws.root / "metrics" / "review_accept.json").read_text())
    assert rec["n_accepted"] == len(plan) - rec["reviewed"] and rec["reviewed"] == int(np.ceil(0.25 * len(plan)))
    for s in rec["accepted"]:
        assert m.at[s, "label_source"] == "accepted" and (ws.root / "accepted" / f"{s}.txt").is_file()
    for s in rec["review"]:
        assert m.at[s, "label_source"] == "auto"
    assert not (ws.root / "view" / "labels" / f"{rec['accepted'][0]}.txt").exists()  # never reaches training
    # exports carry the marks
    prov = pd.read_csv(ws.root / "final" / "yolo" / "provenance.csv", dtype={"stem": str}).set_index("stem")
    assert prov.at[person, "provenance"] == "human"
    assert (prov.loc[rec["accepted"], "provenance"] == "machine-accepted").all()
    coco = json.loads((ws.root / "final" / "coco" / "instances.json").read_text())
    marks = {im["alnb_stem"]: im["alnb_provenance"] for im in coco["images"]}
    assert marks[person] == "human" and {marks[s] for s in rec["accepted"]} == {"machine-accepted"}
    tasks = json.loads((ws.root / "final" / "labelstudio" / "tasks.json").read_text())
    by = {t["data"]["alnb_stem"]: t for t in tasks}
    acc = by[rec["accepted"][0]]
    assert acc["annotations"] == [] and acc["predictions"][0]["model_version"] == "machine-accepted:CAL1"
    assert by[person]["annotations"] and not by[person]["predictions"]
    with zipfile.ZipFile(ws.root / "final" / "cvat" / "cvat_yolo1.1.zip") as z:
        assert "machine-accepted" in z.read("provenance.csv").decode()
    # a later import of the person's image changes nothing of the acceptance; a rerun never touches them
    assert cli.main(["review", "--workspace", str(ws.root), "--fraction", "1", "--accept"]) == 0
    m = ws.manifest().set_index("stem")
    assert m.at[person, "label_source"] == "human" and (ws.root / "labels" / f"{person}.txt").read_bytes() == mine
    assert not (m["label_source"] == "accepted").any()  # everything now goes to review: acceptances withdrawn


def test_reviewed_image_labelled_by_people_is_machine_reviewed(scored_ws, tmp_path):
    from alnb.labels import labelio
    from alnb.loop import reviewstep

    ws = _fresh_copy(scored_ws, tmp_path)
    reviewstep.write_plan(ws, fraction=0.5, n_boot=10)
    rec = reviewstep.accept(ws)
    s = rec["review"][0]
    folder = tmp_path / "reviewed"
    folder.mkdir()
    (folder / f"{s}.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    labelio.import_labels(ws, folder, "yolo", tag="any")
    prov = reviewstep.provenance(ws).set_index("stem")
    assert prov.at[s, "provenance"] == "machine-reviewed"
    assert set(prov["provenance"]) <= set(reviewstep.PROVENANCE)


def test_cli_recalibration_is_on_by_default_and_can_be_switched_off(scored_ws, tmp_path, capsys):
    from alnb.apps import cli

    ws = _fresh_copy(scored_ws, tmp_path)
    runs = {}
    for extra in ([], ["--no-recalibrate"]):
        assert cli.main(["review", "--workspace", str(ws.root), "--fraction", "0.5", *extra]) == 0
        out = capsys.readouterr().out
        summary = json.loads((ws.root / "metrics" / "review_plan.json").read_text())
        plan = pd.read_csv(ws.root / "review_plan.csv", dtype={"stem": str})
        runs[bool(extra)] = (summary["calibration"]["recalibrated"], "recalibrated" in out, plan)
    assert runs[False][:2] == (True, True) and runs[True][:2] == (False, False)
    # the same first stage: the error probabilities agree, the recalibrated expected counts do not
    on, off = (runs[k][2].set_index("stem").sort_index() for k in (False, True))
    assert np.allclose(on["p_error"], off["p_error"])
    assert not np.allclose(on[["e_fp", "e_fn"]], off[["e_fp", "e_fn"]])


def test_cli_errors_are_one_clear_message(tiny_workspace, capsys):
    from alnb.apps import cli

    ws = tiny_workspace
    assert cli.main(["review", "--workspace", str(ws.root), "--fraction", "1.5"]) == 2
    err = capsys.readouterr().err
    assert "--fraction must lie between 0 and 1" in err and "Traceback" not in err
    assert cli.main(["review", "--workspace", str(ws.root)]) == 2
    err = capsys.readouterr().err
    assert "scores.csv missing" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as e:
        cli.main(["review", "--workspace", str(ws.root), "--fraction", "0.5", "--hours", "1"])
    assert e.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- the review queue in a tool
def test_review_queue_exported_in_plan_order_and_imported_back(scored_ws, tmp_path, capsys):
    """``alnb export-queue --review``: exactly the plan's review images, in plan order, with the plan model's
    auto-labels; the reviewed labels come back through ``alnb import-labels --tag any`` as people's labels
    (machine-reviewed), the accepted images keep the machine's, and a person's label is never replaced."""
    from alnb.apps import cli
    from alnb.loop import reviewstep
    from alnb.labels.formats.common import read_autolabels

    ws = _fresh_copy(scored_ws, tmp_path)
    for p in (ws.root / "review_plan.csv", ws.root / "metrics" / "review_plan.json"):
        p.unlink(missing_ok=True)  # the module's workspace may hold a plan from an earlier test
    argv = ["export-queue", "--workspace", str(ws.root), "--review", "--format"]
    assert cli.main(argv + ["labelstudio"]) == 2  # no plan yet
    err = capsys.readouterr().err
    assert "review_plan.json missing: run `alnb review --workspace" in err and "Traceback" not in err

    assert cli.main(["review", "--workspace", str(ws.root), "--fraction", "0.5", "--accept"]) == 0
    capsys.readouterr()
    split = reviewstep.review_split(ws)
    review, accepted = list(split["review"]["stem"]), list(split["accepted"]["stem"])
    assert len(review) == 10 and len(accepted) == 10 and split["model"] == "CAL1"

    assert cli.main(argv + ["labelstudio"]) == 0
    out = capsys.readouterr().out
    assert "review queue (10 image(s)" in out and "--tag any" in out
    folder = ws.root / "export" / "review" / "labelstudio"
    tasks = json.loads((folder / "tasks.json").read_text())
    assert [t["data"]["alnb_stem"] for t in tasks] == review  # exactly the review images, plan order
    assert [t["data"]["alnb_rank"] for t in tasks] == list(range(1, 11))
    value = dict(zip(split["review"]["stem"], split["review"]["value"]))
    for t in tasks:
        s = t["data"]["alnb_stem"]
        auto = read_autolabels(ws.root / "autolabels" / "CAL1" / f"{s}.txt", len(ws.names))
        (pred,) = t["predictions"]
        assert pred["model_version"] == "CAL1" and len(pred["result"]) == len(auto)
        for r, (c, cx, cy, w, h, conf) in zip(pred["result"], auto):
            assert r["value"]["rectanglelabels"] == [ws.names[int(c)]]
            assert [r["value"][k] for k in ("x", "y", "width", "height")] == pytest.approx(
                [(cx - w / 2) * 100, (cy - h / 2) * 100, w * 100, h * 100])
        assert pred["score"] == pytest.approx(value[s]) == t["data"]["alnb_priority"]
    by_score = [tasks[i]["data"]["alnb_stem"] for i in np.argsort([-t["predictions"][0]["score"] for t in tasks],
                                                                  kind="stable")]
    assert by_score == review  # prediction score descending = the plan's order
    q = pd.read_csv(folder / "queue.csv", dtype={"stem": str})
    assert list(q["stem"]) == review and q["priority"].tolist() == pytest.approx([value[s] for s in review])
    assert cli.main(argv + ["cvat"]) == 0 and cli.main(argv + ["coco"]) == 0
    capsys.readouterr()
    with zipfile.ZipFile(ws.root / "export" / "review" / "cvat" / "cvat_yolo1.1.zip") as z:
        train = z.read("train.txt").decode().split()
    image = ws.manifest().set_index("stem")["image"]
    assert [t.rsplit("/", 1)[-1] for t in train] == [image[s].rsplit("/", 1)[-1] for s in review]
    coco = json.loads((ws.root / "export" / "review" / "coco" / "instances.json").read_text())
    assert [im["id"] for im in coco["images"]] == list(range(1, 11))
    assert [im["file_name"] for im in coco["images"]] == [image[s] for s in review]

    # errors: --tag with --review; a plan whose model's auto-labels are gone
    assert cli.main(argv + ["labelstudio", "--tag", "GT2"]) == 2
    assert "--review exports the images the review plan sends to review" in capsys.readouterr().err
    summary = json.loads((ws.root / "metrics" / "review_plan.json").read_text())
    stale = ws.root / "metrics" / "review_plan.json"
    stale.write_text(json.dumps({**summary, "model": "CAL0"}))
    assert cli.main(argv + ["labelstudio"]) == 2
    err = capsys.readouterr().err
    assert "plan of CAL0's auto-labels, but" in err and "autolabels/CAL0 is missing" in err and "Traceback" not in err
    stale.write_text(json.dumps(summary))

    # the reviewed labels come back: one accepted as proposed, one corrected
    back = tmp_path / "reviewed"
    back.mkdir()
    auto0 = read_autolabels(ws.root / "autolabels" / "CAL1" / f"{review[0]}.txt", len(ws.names))[:, :5]
    as_proposed = "".join(f"{int(c)} {cx:.10g} {cy:.10g} {w:.10g} {h:.10g}\n" for c, cx, cy, w, h in auto0)
    (back / f"{review[0]}.txt").write_text(as_proposed)
    (back / f"{review[1]}.txt").write_text("1 0.4 0.5 0.2 0.1\n")
    before = {p: p.read_bytes() for p in (ws.manifest_path,)}
    assert cli.main(["import-labels", str(back), "--workspace", str(ws.root), "--format", "yolo"]) == 2
    err = capsys.readouterr().err
    assert "not_in_selection" in err and "--tag any" in err  # the default selections: refused, named, unchanged
    assert {p: p.read_bytes() for p in before} == before
    assert cli.main(["import-labels", str(back), "--workspace", str(ws.root), "--format", "yolo", "--tag",
                     "any"]) == 0
    out = capsys.readouterr().out
    assert "2 new" in out and "final label set (with provenance) updated" in out
    final = pd.read_csv(ws.root / "final" / "yolo" / "provenance.csv", dtype={"stem": str}).set_index("stem")
    assert (final.loc[review[:2], "provenance"] == "machine-reviewed").all()  # the import refreshed final/
    m = ws.manifest().set_index("stem")
    assert (m.loc[review[:2], "label_source"] == "human").all()
    assert (m.loc[accepted, "label_source"] == "accepted").all() and (m.loc[review[2:], "label_source"] == "auto").all()
    assert (ws.root / "labels" / f"{review[0]}.txt").read_text() == as_proposed
    prov = reviewstep.provenance(ws).set_index("stem")
    assert (prov.loc[review[:2], "provenance"] == "machine-reviewed").all()
    assert (prov.loc[accepted, "provenance"] == "machine-accepted").all()
    assert not set(review[2:]) & set(prov.index)  # still waiting for review: not in the final label set
    mine = (ws.root / "labels" / f"{review[1]}.txt").read_bytes()
    (back / f"{review[1]}.txt").write_text("2 0.6 0.5 0.2 0.1\n")  # another person's different label
    assert cli.main(["import-labels", str(back), "--workspace", str(ws.root), "--format", "yolo", "--tag",
                     "any"]) == 2
    assert "changed_human" in capsys.readouterr().err
    assert (ws.root / "labels" / f"{review[1]}.txt").read_bytes() == mine

    # a new plan (the reviewed images are people's now, never planned) keeps them machine-reviewed; its cut reviews
    # nothing, so there is no review queue
    assert cli.main(["review", "--workspace", str(ws.root), "--fraction", "0", "--accept"]) == 0
    capsys.readouterr()
    plan = pd.read_csv(ws.root / "review_plan.csv", dtype={"stem": str})
    assert not set(review[:2]) & set(plan["stem"]) and len(plan) == 18
    prov = reviewstep.provenance(ws).set_index("stem")
    assert (prov.loc[review[:2], "provenance"] == "machine-reviewed").all()
    assert (prov.loc[review[2:] + accepted, "provenance"] == "machine-accepted").all()
    assert cli.main(argv + ["labelstudio"]) == 2
    assert "the chosen cut reviews no image" in capsys.readouterr().err


# ------------------------------------------------------------------------------ the final set: URLs and freshness
def _final_copy(scored_ws, tmp_path):
    import shutil

    ws = _fresh_copy(scored_ws, tmp_path)
    shutil.rmtree(ws.root / "final", ignore_errors=True)
    for p in (ws.root / "metrics" / "review_final.json", ws.root / "metrics" / "review_accept.json"):
        p.unlink(missing_ok=True)
    return ws


def test_final_label_studio_urls_follow_the_document_root(scored_ws, tmp_path, capsys, monkeypatch):
    """``alnb review --accept --document-root`` / ``--url-prefix``: the final Label Studio tasks' image URLs are the
    queue export's for the same images (same function, same defaults); a document root without the dataset is one
    clear error naming both folders, before anything changes; a refresh keeps the settings final/ was written with."""
    from alnb.apps import cli
    from alnb.labels import labelio
    from alnb.labels.formats.labelstudio import DOCUMENT_ROOT_ENV
    from alnb.loop import reviewstep

    monkeypatch.delenv(DOCUMENT_ROOT_ENV, raising=False)
    ws = _final_copy(scored_ws, tmp_path)
    argv = ["review", "--workspace", str(ws.root), "--fraction", "0.5", "--accept"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    before = ws.manifest_path.read_bytes()
    assert cli.main(argv + ["--document-root", str(elsewhere)]) == 2
    err = capsys.readouterr().err
    assert "is not below the Label Studio document root" in err and "Traceback" not in err
    assert str(elsewhere.resolve()) in err and str(ws.dataset_root) in err
    assert ws.manifest_path.read_bytes() == before and not (ws.root / "final").exists()
    assert cli.main(["review", "--workspace", str(ws.root), "--document-root", str(elsewhere)]) == 2
    assert "only --accept writes" in capsys.readouterr().err

    def urls(path):
        return {t["data"]["alnb_stem"]: t["data"]["image"] for t in json.loads(Path(path).read_text())}

    root = ws.dataset_root.parent  # a document root above the dataset folder
    assert cli.main(argv + ["--document-root", str(root)]) == 0
    capsys.readouterr()
    final = urls(ws.root / "final" / "labelstudio" / "tasks.json")
    stems = sorted(final)
    assert len(stems) >= 10
    q = labelio.export_queue(ws, "labelstudio", out_dir=tmp_path / "q", tag=None, stems=stems, document_root=root)
    assert final == urls(q / "tasks.json")
    assert all(u.startswith(f"/data/local-files/?d={ws.dataset_root.name}/") for u in final.values())
    # the refresh after an import keeps these settings, whatever the shell says now
    monkeypatch.setenv(DOCUMENT_ROOT_ENV, str(elsewhere))
    assert reviewstep.refresh_final(ws, log=None) == []
    assert urls(ws.root / "final" / "labelstudio" / "tasks.json") == final
    # the defaults are the queue export's: $LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, else the dataset folder
    monkeypatch.setenv(DOCUMENT_ROOT_ENV, str(root))
    out = reviewstep.export_final(ws, tmp_path / "f_env")
    q = labelio.export_queue(ws, "labelstudio", out_dir=tmp_path / "q_env", tag=None, stems=stems)
    assert urls(out["labelstudio"] / "tasks.json") == urls(q / "tasks.json") == final
    monkeypatch.delenv(DOCUMENT_ROOT_ENV)
    out = reviewstep.export_final(ws, tmp_path / "f_plain", url_prefix="http://localhost:8081/")
    q = labelio.export_queue(ws, "labelstudio", out_dir=tmp_path / "q_plain", tag=None, stems=stems,
                             url_prefix="http://localhost:8081/")
    assert urls(out["labelstudio"] / "tasks.json") == urls(q / "tasks.json")
    assert urls(ws.root / "final" / "labelstudio" / "tasks.json") == final  # other folders leave final/ as it was


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_imports_refresh_the_final_set_and_change_nothing_else(scored_ws, tmp_path, capsys):
    """A person's label for a machine-accepted image, through ``alnb import-labels`` or the loop's label step
    (:func:`alnb.loop.pipeline.ensure_labelled`): final/ then carries the person's label, marked human, and every
    other file of final/ is byte for byte the same."""
    from alnb.apps import cli
    from alnb.labels.formats.common import yolo_line
    from alnb.loop import pipeline, reviewstep
    from alnb.loop.selection import commit

    ws = _final_copy(scored_ws, tmp_path)
    reviewstep.write_plan(ws, fraction=0.5, n_boot=10)
    rec = reviewstep.accept(ws)
    final = ws.root / "final"
    s, s2 = rec["accepted"][:2]
    old = _snapshot(final)
    assert reviewstep.refresh_final(ws, log=None) == [] and _snapshot(final) == old  # nothing changed: no write

    folder = tmp_path / "person"
    folder.mkdir()
    (folder / f"{s}.txt").write_text("1 0.4 0.5 0.2 0.1\n")
    assert cli.main(["import-labels", str(folder), "--workspace", str(ws.root), "--format", "yolo", "--tag",
                     "any"]) == 0
    assert "final label set (with provenance) updated" in capsys.readouterr().out
    new = _snapshot(final)
    assert new["yolo/labels/" + f"{s}.txt"].decode() == "1 0.4 0.5 0.2 0.1\n"
    prov = pd.read_csv(final / "yolo" / "provenance.csv", dtype={"stem": str}, keep_default_na=False)
    assert prov.set_index("stem").at[s, "provenance"] == "human"
    _only_image_changed(old, new, s, ws)

    # the loop's label step (here the simulated annotator reveals the dataset's label) refreshes final/ the same way
    commit(ws, [s2], "GT3")
    old = new
    logs = []
    pipeline.ensure_labelled(ws, "GT3", log=logs.append)
    assert any("final label set (with provenance) updated" in x for x in logs)
    new = _snapshot(final)
    p = reviewstep.provenance(ws).set_index("stem")
    assert p.at[s2, "provenance"] == "human"
    truth = [yolo_line(*b) for b in reviewstep._boxes(p.at[s2, "label_file"], len(ws.names))]
    assert new[f"yolo/labels/{s2}.txt"].decode() == "\n".join(truth) + ("\n" if truth else "")
    _only_image_changed(old, new, s2, ws)


def _only_image_changed(old, new, s, ws):
    """``new`` (a snapshot of final/) differs from ``old`` only in what belongs to image ``s``."""
    import io

    assert set(new) == set(old)
    same = {k for k in old if old[k] == new[k]}
    assert set(old) - same <= {f"yolo/labels/{s}.txt", "yolo/provenance.csv", "coco/instances.json",
                               "labelstudio/tasks.json", "cvat/cvat_yolo1.1.zip"}
    a, b = (pd.read_csv(io.BytesIO(x["yolo/provenance.csv"]), dtype={"stem": str}, keep_default_na=False)
            .set_index("stem") for x in (old, new))
    assert a.drop(index=s).equals(b.drop(index=s)) and a.at[s, "provenance"] == "machine-accepted"

    def coco(x):
        c = json.loads(x["coco/instances.json"])
        stem = {im["id"]: im["alnb_stem"] for im in c["images"]}
        anns = {}
        for an in c["annotations"]:
            anns.setdefault(stem[an["image_id"]], []).append({k: v for k, v in an.items() if k != "id"})
        return {im["alnb_stem"]: im for im in c["images"]}, anns, c["categories"]

    (ia, aa, ca), (ib, ab, cb) = coco(old), coco(new)
    assert ca == cb and {k: v for k, v in ia.items() if k != s} == {k: v for k, v in ib.items() if k != s}
    assert {k: v for k, v in aa.items() if k != s} == {k: v for k, v in ab.items() if k != s}
    assert ib[s]["alnb_provenance"] == "human" and all(x["alnb_provenance"] == "human" for x in ab.get(s, []))
    ta, tb = ({t["data"]["alnb_stem"]: t for t in json.loads(x["labelstudio/tasks.json"])} for x in (old, new))
    assert {k: v for k, v in ta.items() if k != s} == {k: v for k, v in tb.items() if k != s}
    assert tb[s]["annotations"] and not tb[s]["predictions"] and tb[s]["data"]["alnb_provenance"] == "human"
    name = Path(ws.manifest().set_index("stem").at[s, "image"]).stem
    za, zb = (zipfile.ZipFile(io.BytesIO(x["cvat/cvat_yolo1.1.zip"])) for x in (old, new))
    assert za.namelist() == zb.namelist()
    for n in za.namelist():
        if n not in (f"obj_train_data/{name}.txt", "provenance.csv"):
            assert za.read(n) == zb.read(n), n


# ------------------------------------------------------------------------------- pure: second-stage recalibration
def _step_table(n, seed):
    """Known truth a Poisson regression on these features cannot follow: missed boxes 0.05 per image below score 0.5,
    1.5 above (false boxes 0.02 / 0.8); everything else constant.  Returns (table, true mean of n_fn)."""
    rng = np.random.default_rng(seed)
    score = rng.random(n)
    m_fn, m_fp = np.where(score < 0.5, 0.05, 1.5), np.where(score < 0.5, 0.02, 0.8)
    fp, fn, n_det = rng.poisson(m_fp), rng.poisson(m_fn), np.full(n, 3)
    return pd.DataFrame({"stem": [f"s{i:05d}" for i in range(n)], "n_det": n_det, "n_cand": n_det + 1,
                         "score": score, "score_sum": 3 * score, "count_var": np.zeros(n), "failed": np.zeros(n, bool),
                         "least_conf": score, "n_fp": fp, "n_fn": fn, "has_error": (fp + fn) > 0,
                         "n_gt": n_det - fp + fn}), m_fn


def test_recalibrated_counts_match_the_true_means_where_the_poisson_fit_over_predicts():
    cal_t, _ = _step_table(2000, 0)
    new, m = _step_table(4000, 99)
    b = np.minimum((new["score"].to_numpy() * 10).astype(int), 9)  # deciles of the score; the step is at 5
    dev = {}
    for r in (False, True):
        p = rv.predict(rv.fit_calibration(rv.features(cal_t), cal_t, recalibrate=r), rv.features(new))
        dev[r] = pd.Series(p["e_fn"].to_numpy() - m).groupby(b).mean()
    away = [0, 1, 2, 3, 6, 7, 8, 9]  # bins next to the step are blurred by any smooth first stage
    # the log-linear fit over-predicts the low end (about 0.3-0.5 extra misses per image in bins 3-4) ...
    assert dev[False].iloc[:5].max() > 0.25 and dev[False].abs().max() > 0.5
    # ... the second stage recovers the true mean in every bin away from the step, and the low half's total
    assert dev[True].loc[away].abs().max() < 0.1
    assert dev[True].iloc[:5].mean() == pytest.approx(0.0, abs=0.03)


def test_recalibration_is_monotone_and_leaves_p_error_alone():
    t = _step_table(800, 1)[0]
    X = rv.features(t)
    on, off = rv.fit_calibration(X, t, recalibrate=True), rv.fit_calibration(X, t)
    assert on.recalibrated and not off.recalibrated and on.to_dict()["recalibrated"] is True
    for k in ("fp", "fn"):
        assert np.all(np.diff(on.params["recal"][k][1]) >= 0)  # non-decreasing knots
    grid = np.linspace(0, 1, 201)
    g = _step_table(201, 2)[0].assign(score=grid, score_sum=3 * grid)
    p_on, p_off = rv.predict(on, rv.features(g)), rv.predict(off, rv.features(g))
    order = np.argsort(p_off["e_fn"].to_numpy(), kind="stable")
    assert np.all(np.diff(p_on["e_fn"].to_numpy()[order]) >= -1e-12)  # monotone in the first stage's mean
    assert p_on["p_error"].tolist() == p_off["p_error"].tolist()


def test_second_stage_is_fitted_on_out_of_fold_predictions_and_cross_fitted_itself():
    t = _step_table(120, 3)[0]
    X = rv.features(t)
    cal = rv.fit_calibration(X, t, recalibrate=True, k=5, seed=4)
    oof = rv.cross_fit(X, t, k=5, seed=4)  # the first stage's out-of-fold means
    for k in ("fp", "fn"):
        ref = rv.isotonic(oof[f"e_{k}"], t[f"n_{k}"])
        assert cal.params["recal"][k][1].tolist() == pytest.approx(ref[1].tolist())
    # nested: an image's own truth moves neither its first stage nor the map it is recalibrated by
    a = rv.cross_fit(X, t, k=5, seed=0, recalibrate=True)
    f, i = rv.folds(len(t), 5, 0), 11
    t2 = t.copy()
    t2.loc[f == f[i], ["n_fp", "n_fn", "has_error"]] = [7, 9, True]  # the whole of image 11's fold changes
    b = rv.cross_fit(X, t2, k=5, seed=0, recalibrate=True)
    assert a.loc[f == f[i]].to_numpy() == pytest.approx(b.loc[f == f[i]].to_numpy())
    assert not np.allclose(a.loc[f != f[i], "e_fn"], b.loc[f != f[i], "e_fn"])
    tr = f != f[i]
    own = rv.fit_calibration(X[tr], t[tr], recalibrate=True, k=5, seed=0)
    assert rv.predict(own, X[[i]]).iloc[0].tolist() == pytest.approx(a.iloc[i].tolist())


def test_copies_of_one_image_share_a_fold():
    t = _step_table(40, 5)[0]
    g = np.r_[np.arange(40), np.arange(10)]  # images 0-9 twice, as in a bootstrap resample
    tt, X = t.iloc[g].reset_index(drop=True), rv.features(t)[g]
    a = rv.cross_fit(X, tt, k=5, seed=0, groups=g)
    tt2 = tt.copy()
    tt2.loc[g == 3, ["n_fp", "n_fn", "has_error"]] = [8, 8, True]  # both copies of image 3
    b = rv.cross_fit(X, tt2, k=5, seed=0, groups=g)
    assert a.loc[g == 3].to_numpy() == pytest.approx(b.loc[g == 3].to_numpy())
    assert a.loc[40 + 3].tolist() == pytest.approx(a.loc[3].tolist())
    # without groups the copy sits in another fold and sees its twin's truth
    c, d = rv.cross_fit(X, tt, k=5, seed=0), rv.cross_fit(X, tt2, k=5, seed=0)
    assert not np.allclose(c.loc[g == 3].to_numpy(), d.loc[g == 3].to_numpy())


def test_bootstrap_refits_the_second_stage_so_intervals_follow_it():
    val, new = _step_table(400, 6)[0], _step_table(300, 7)[0]
    low = (new["score"] < 0.4).to_numpy()  # the images a cut would accept: true misses 0.05 each
    Xc, Xp = rv.features(val), rv.features(new)
    b_on = rv.bootstrap_predictions(Xc, val, Xp, method="logistic", n_boot=30, seed=0, recalibrate=True)
    b_off = rv.bootstrap_predictions(Xc, val, Xp, method="logistic", n_boot=30, seed=0)
    fn_on = np.mean([b["e_fn"].to_numpy()[low].sum() for b in b_on])
    fn_off = np.mean([b["e_fn"].to_numpy()[low].sum() for b in b_off])
    truth = 0.05 * low.sum()
    assert abs(fn_off - truth) > 0.5 * truth  # the first stage alone: far off in every refit
    assert fn_on == pytest.approx(truth, rel=0.5)
    # each refit's second stage is its own: the replicates differ, and replay the same for the same seed
    assert len({round(float(b["e_fn"].sum()), 9) for b in b_on}) > 1
    again = rv.bootstrap_predictions(Xc, val, Xp, method="logistic", n_boot=30, seed=0, recalibrate=True)
    assert all(x.equals(y) for x, y in zip(b_on, again))


def test_recalibration_skipped_below_three_images():
    t = _step_table(2, 8)[0]
    assert not rv.fit_calibration(rv.features(t), t, recalibrate=True).recalibrated
