"""The difficulty explorer: set slider values, assert on counts, GT2 size, figure lines and the commit."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from alnb.loop import pipeline
from alnb.loop import selection as sel
from alnb.ui.widgets import DifficultyController, DifficultyExplorer, difficulty_explorer


def scored_workspace(ws):
    pool = ws.stems("POOL")
    s = pd.DataFrame({"stem": pool, "score": np.linspace(0, 1, len(pool)), "n_det": 1, "failed": False,
                      "tier": "easy"})
    s.loc[s.index[:2], "failed"] = True  # the two lowest scores failed
    s.to_csv(ws.root / "scores.csv", index=False)
    ws.save_json("thresholds", {"t_medium": 0.5, "t_hard": 0.8})
    (ws.root / "autolabels" / "CAL1").mkdir(parents=True)
    (ws.root / "autolabels" / "CAL1" / f"{pool[-1]}.txt").write_text("1 0.5 0.5 0.2 0.2 0.91\n")
    return s


def expected(s, tm, th):
    ok = ~s["failed"]
    return {"easy": int((ok & (s.score < tm)).sum()), "medium": int((ok & (s.score >= tm) & (s.score < th)).sum()),
            "hard": int((ok & (s.score >= th)).sum()), "failed": int(s.failed.sum())}


def test_sliders_drive_counts_gt2_and_figure(tiny_workspace):
    ws = tiny_workspace
    s = scored_workspace(ws)
    ex = difficulty_explorer(ws)
    c = ex.c
    assert (c.t_medium, c.t_hard) == (0.5, 0.8)  # defaults from the scoring step
    assert c.counts == expected(s, 0.5, 0.8)
    assert ex.s_medium.continuous_update is False and ex.s_hard.continuous_update is False

    ex.s_hard.value = 0.9
    ex.s_medium.value = 0.3
    assert (c.t_medium, c.t_hard) == pytest.approx((0.3, 0.9))
    want = expected(s, c.t_medium, c.t_hard)
    assert c.counts == want
    assert c.gt2_size == want["medium"] + want["hard"] + want["failed"] == len(c.selection)
    assert f"<span class='alnb-gt2-size'>{c.gt2_size}</span>" in ex.html
    assert all(f"<span class='alnb-count-{k}'>{v}</span>" in ex.html for k, v in want.items())
    lines = {ln.get_label().split(" =")[0]: ln.get_xdata()[0] for ln in ex.fig.axes[0].get_lines()
             if ln.get_label().startswith("t_")}
    assert lines == pytest.approx({"t_medium": c.t_medium, "t_hard": c.t_hard})

    # the medium slider cannot pass the hard one: it pushes it along
    ex.s_medium.value = 0.95
    assert c.t_hard == pytest.approx(0.95) and ex.s_hard.value == pytest.approx(0.95)
    assert c.counts["medium"] == 0

    ex.reset()
    assert (c.t_medium, c.t_hard) == (0.5, 0.8) and (ex.s_medium.value, ex.s_hard.value) == (0.5, 0.8)
    plt.close("all")


def test_commit_button_writes_gt2_and_recommit_replaces(tiny_workspace):
    ws = tiny_workspace
    s = scored_workspace(ws)
    ex = difficulty_explorer(ws)
    ex.commit_button.click()
    assert sorted(ws.stems("GT2")) == sorted(ex.c.selection)
    assert len(ws.stems("GT2")) == ex.c.gt2_size == sum(expected(s, 0.5, 0.8)[k] for k in ("medium", "hard", "failed"))
    assert "Committed" in ex.message.value and ex.c.is_committed and ">committed</b>" in ex.html
    info = ws.load_json("selection")
    assert info["t_medium"] == 0.5 and info["counts"] == ex.c.counts
    ex.s_medium.value = ex.s_hard.value = float(s.score.max())  # only failed + the top image
    ex.commit_button.click()
    assert len(ws.stems("GT2")) == 3
    assert len(ws.stems("VAL1")) == 10 and len(ws.stems("GT1")) == 10 and len(ws.stems("POOL")) == 20
    plt.close("all")


def test_thumbnails_show_autolabel_boxes(tiny_workspace):
    ws = tiny_workspace
    scored_workspace(ws)
    c = DifficultyController.from_workspace(ws)
    fig = c.thumbnails("hard", n=3)
    assert fig.axes[0].patches and "0.91" in " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "hard: images 1-3 of 4" in fig._suptitle.get_text() and "class conf" in fig._suptitle.get_text()
    assert c.tier_stems("failed") == sorted(ws.stems("POOL"))[:2][::-1]  # highest score first
    plt.close("all")


def test_controller_without_workspace():
    s = pd.DataFrame({"stem": list("abcd"), "score": [0.1, 0.4, 0.6, 0.9]})
    c = DifficultyController(s, 0.5, 0.8)
    assert c.set_thresholds(t_hard=0.3)["t_medium"] == 0.3  # pushed down
    assert c.state["gt2_size"] == 3
    with pytest.raises(ValueError, match="workspace"):
        c.commit()
    with pytest.raises(sel.SelectionError):
        DifficultyController(s, 0.9, 0.1)


def test_moving_a_slider_after_commit_says_not_committed(tiny_workspace):
    ws = tiny_workspace
    s = scored_workspace(ws)
    ex = difficulty_explorer(ws)
    assert ex.c.commit_status() == "not committed (manifest: 0 GT2 images)" and ex.message.value == ""
    ex.commit_button.click()
    n = len(ws.stems("GT2"))
    assert f"Committed</b> {n} images" in ex.message.value and ex.c.commit_status() == "committed"
    ex.s_medium.value = 0.2  # a different selection on screen: the old message must not stay
    assert ex.message.value == ""
    assert ex.c.gt2_size == sum(expected(s, 0.2, 0.8)[k] for k in ("medium", "hard", "failed")) != n
    assert ex.c.commit_status() == f"not committed (manifest: {n} GT2 images)"
    assert f"not committed (manifest: {n} GT2 images)" in ex.html
    ex.reset()  # back to the committed thresholds: the manifest matches again
    assert ex.c.commit_status() == "committed"


def test_snapshot_is_static_html_with_counts_and_histogram(tiny_workspace, monkeypatch):
    """The explorer leaves plain HTML (counts + histogram PNG) in the cell output and updates it in place."""
    import base64

    from IPython.core.interactiveshell import InteractiveShell

    ws = tiny_workspace
    scored_workspace(ws)
    ex = difficulty_explorer(ws)
    shown = []
    shell = InteractiveShell.instance()
    monkeypatch.setattr(shell.display_pub, "publish", lambda data, metadata=None, **k: shown.append((data, k)))
    ex._ipython_display_()
    html = [d["text/html"] for d, _ in shown if "text/html" in d and "alnb-snapshot" in d["text/html"]]
    assert len(html) == 1 and "<span class='alnb-gt2-size'>" in html[0]
    # the snapshot (counts, cost, histogram) comes first, right above the sliders: no scrolling after a drag
    first_widget = next(i for i, (d, _) in enumerate(shown) if "application/vnd.jupyter.widget-view+json" in d)
    assert "alnb-snapshot" in shown[0][0].get("text/html", "") and first_widget == 1
    png = base64.b64decode(html[0].split("base64,")[1].split("'")[0])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    ex.s_hard.value = 0.9
    updates = [(d, k) for d, k in shown if k.get("update")]
    assert updates and f"<span class='alnb-gt2-size'>{ex.c.gt2_size}</span>" in updates[-1][0]["text/html"]
    assert updates[-1][1]["transient"]["display_id"] == shown[0][1]["transient"]["display_id"]


def test_thumbnails_carry_difficulty_bars(tiny_workspace):
    ws = tiny_workspace
    scored_workspace(ws)
    c = DifficultyController.from_workspace(ws)
    for tier, n_lit, colour in (("hard", 3, "#d62728"), ("failed", 3, "#7f3fbf"), ("medium", 2, "#f2c500")):
        fig = c.thumbnails(tier, n=2)
        bars = [p for p in fig.axes[0].patches if (p.get_gid() or "").startswith("tier-bar")]
        lit = [p for p in bars if matplotlib.colors.to_hex(p.get_facecolor()) == colour]
        assert len(bars) == 3 and len(lit) == n_lit, tier


def test_slider_range_is_the_non_failed_scores_and_the_histogram_stays_put(tiny_workspace):
    ws = tiny_workspace
    s = scored_workspace(ws)
    ex = difficulty_explorer(ws)
    ok = s.loc[~s["failed"], "score"]
    assert (ex.s_medium.min, ex.s_medium.max) == pytest.approx((ok.min(), ok.max()))  # failed (score 0) left out
    assert (ex.s_hard.min, ex.s_hard.max) == (ex.s_medium.min, ex.s_medium.max)
    xlim, edges = ex.fig.axes[0].get_xlim(), ex.c.edges.copy()
    ex.s_medium.value = 0.3
    ex.s_hard.value = 0.6
    assert ex.fig.axes[0].get_xlim() == xlim and np.array_equal(ex.c.edges, edges)
    assert xlim == pytest.approx((ok.min(), ok.max()))


def test_what_each_slider_changes_under_the_rule(tiny_workspace):
    ws = tiny_workspace
    scored_workspace(ws)
    ex = difficulty_explorer(ws)
    c = ex.c
    n0 = c.gt2_size
    assert "decides GT2" in ex.effect_medium.value and "stays the same" in ex.effect_hard.value
    assert f"<span class='alnb-gt2-size'>{n0}</span> of 20 POOL images" in ex.html
    texts = [ex.effect_medium.value, ex.effect_hard.value]
    assert not any(f"{n0} of 20" in t for t in texts)  # the count is said once, in the snapshot above the sliders
    ex.s_hard.value = 0.95  # the study rule: medium | hard only splits GT2
    assert c.gt2_size == n0 and f"<span class='alnb-t-hard'>{0.95:.4g}</span>" in ex.html
    ex.s_medium.value = 0.7  # easy | medium changes GT2
    assert c.gt2_size != n0 and f"<span class='alnb-gt2-size'>{c.gt2_size}</span> of 20 POOL images" in ex.html
    # budget mode: the thresholds only colour the tiers, the budget decides (default strategy: random)
    ex.rule.value = "budget"
    ex.budget.value = 5
    assert c.rule == "budget" and c.strategy == "random" and c.gt2_size == 5
    before = list(c.selection)
    ex.s_medium.value, ex.s_hard.value = 0.2, 0.4
    assert c.selection == before and "only colour the tiers" in ex.effect_medium.value
    assert "only colour" not in ex.effect_hard.value  # said once, not under both sliders
    assert "budget: 5 images at random" in ex.html
    ex.commit_button.click()
    rec = ws.load_json("selection")
    assert sorted(ws.stems("GT2")) == sorted(before) and rec["budget"] == 5 and rec["strategy"] == "random"
    # what the explorer committed is what the headless selection commits for the same rule, budget and seed
    assert sorted(pipeline.select_gt2(ws, rule="budget", budget=5, seed=0)) == sorted(before)


def test_budget_mode_strategy_study_rule_is_the_hardest_failed_first(tiny_workspace):
    ws = tiny_workspace
    scored_workspace(ws)
    c = DifficultyController.from_workspace(ws, rule="budget", budget=5, strategy="study_rule")
    assert c.selection == sel.budgeted(c.scores, 5) and "failed first" in c.rule_text()
    assert sorted(pipeline.select_gt2(ws, rule="budget", budget=5, strategy="study_rule")) == sorted(c.selection)
    r = DifficultyController.from_workspace(ws, rule="budget", budget=5)  # the default, random, differs here
    assert len(r.selection) == 5 and r.selection != c.selection
    with pytest.raises(ValueError, match="strategy must be one of"):
        DifficultyController.from_workspace(ws, rule="budget", budget=5, strategy="nope")


def test_cost_line_before_the_commit(tiny_workspace):
    from alnb.ui.widgets import predicted_cost

    ws = tiny_workspace
    s = scored_workspace(ws)
    ws.save_json("eval_CAL1", {"overall": {"precision": 0.8, "recall": 0.5},
                               "costs": {"t_draw": 10.0, "t_verify": 1.6, "t_delete": 1.6, "t_image": 3.0}})
    c = DifficultyController.from_workspace(ws)
    n = c.gt2_size
    # by hand: n_det = 1 per image -> n auto-label boxes; 0.8 of them right, recall 0.5 -> 1.6 n true boxes;
    # assisted = n * 1.6 (verify) + 0.2 n * 1.6 (delete) + 0.8 n * 10 (draw the misses) + n * 3 s per image
    want_h = (n * 1.6 + 0.2 * n * 1.6 + 0.8 * n * 10 + n * 3) / 3600
    cost = c.cost()
    assert cost["images"] == n and cost["auto_boxes"] == n and cost["expected_boxes"] == pytest.approx(1.6 * n)
    assert cost["assisted_h"] == pytest.approx(want_h) and cost["manual_h"] == pytest.approx((16 * n + 3 * n) / 3600)
    assert predicted_cost(4, 0, float("nan"), 0.5)["assisted_h"] != predicted_cost(4, 0, float("nan"), 0.5)["assisted_h"]
    html = c.summary_html()
    from alnb.ui.display import format_hours

    assert want_h < 1 and f"<b class='alnb-cost-hours'>{format_hours(want_h)}</b>" in html
    assert f"{round(want_h * 60)} min</b>" in html and "0.0 h" not in html  # a small selection: minutes
    assert "alnb-cost-warning" not in html  # 12 of 20 is below the warning share
    c.set_thresholds(t_medium=0.0)  # everything: a warning
    assert "alnb-cost-warning" in c.summary_html() and "100 % of the POOL" in c.summary_html()
    assert len(s) == 20


def test_paging_through_a_tier_and_failed_candidates(tiny_workspace):
    ws = tiny_workspace
    s = scored_workspace(ws)
    failed = list(s.loc[s["failed"], "stem"])
    pd.DataFrame({"stem": [failed[0]], "det": [0], "cls": [2], "x0": [10.0], "y0": [10.0], "x1": [30.0], "y1": [20.0],
                  "conf": [0.07], "above": [False]}).to_csv(ws.root / "detections.csv", index=False)
    ws.save_json("mc_scoring", {"conf": 0.2})
    ex = difficulty_explorer(ws, n_thumbs=3)
    c = ex.c
    ex.tier.value = "medium"
    n_med = len(c.tier_stems("medium"))
    assert c.pages("medium") == -(-n_med // 3) >= 2
    assert ex.page_label.value.count(f"page 1 of {c.pages('medium')}") == 1 and ex.prev_button.disabled
    ex.next_button.click()
    assert ex.page == 1 and f"images 4-{min(6, n_med)} of {n_med} medium" in ex.page_label.value
    fig = c.thumbnails("medium", 3, page=1)
    assert f"images 4-{min(6, n_med)} of {n_med}" in fig._suptitle.get_text()
    for _ in range(5):
        ex.next_button.click()
    assert ex.page == c.pages("medium") - 1 and ex.next_button.disabled  # clamped at the last page
    # a failed image shows its best candidate below the operating point, dashed; one without any says so
    fig = c.thumbnails("failed", 3)
    titles = [t.get_text() for ax in fig.axes for t in ax.texts if "failed" in t.get_text()]
    assert any("best candidate < 0.2" in t for t in titles) and any("no candidate at all" in t for t in titles)
    dashed = [p for ax in fig.axes for p in ax.patches if p.get_linestyle() == "--"]
    assert len(dashed) == 1
    assert any("slag-inclusion conf 0.07" in t.get_text() for ax in fig.axes for t in ax.texts)
    plt.close("all")


@pytest.mark.parametrize("hours, text", [(1.43, "1.4 h"), (1.0, "1.0 h"), (0.999, "1.0 h"), (0.25, "15 min"),
                                         (0.043, "3 min"), (0.005, "< 1 min"), (float("nan"), "n/a"), (None, "n/a")])
def test_hours_under_one_hour_read_in_minutes(hours, text):
    from alnb.ui.display import format_hours

    assert format_hours(hours) == text


# ------------------------------------------------------------------------------------------------- the review cut
def hand_plan(n: int = 8, model: str = "CAL1", stems=None):
    """A hand-made review plan of ``n`` images (alnb.loop.review.make_plan + curve with bootstrap draws)."""
    from alnb.loop import review as rv

    stems = list(stems) if stems is not None else [f"img{i:02d}" for i in range(n)]
    n = len(stems)
    scores = pd.DataFrame({"stem": stems, "model": model, "n_det": np.arange(n) % 3 + 1,
                           "score": np.linspace(0.1, 0.9, n)})
    pred = pd.DataFrame({"p_error": np.linspace(0.05, 0.9, n), "e_fp": np.linspace(0.0, 1.5, n),
                         "e_fn": np.linspace(0.1, 2.0, n)})
    plan = rv.make_plan(scores, pred)
    rng = np.random.default_rng(0)
    boots = [pred.iloc[[stems.index(s) for s in plan["stem"]]].reset_index(drop=True) * rng.uniform(0.8, 1.2)
             for _ in range(20)]
    cv = rv.curve(plan, draws=rv.residual_draws(boots, seed=0))
    return plan, cv, {"model": model, "cut": rv.cut_summary(cv, 2)}


def test_review_controller_value_moves_hours_and_residuals():
    from alnb.ui.display import format_hours
    from alnb.ui.widgets import ReviewController

    plan, cv, summary = hand_plan()
    c = ReviewController(plan, cv, summary)
    assert c.reviewed == 2 and c.value == pytest.approx(2 / 8)  # starts at the plan's chosen cut
    c.value = 0.5
    assert c.reviewed == 4
    row = cv.iloc[4]
    assert c.cut()["review_h"] == pytest.approx(plan["review_s"].iloc[:4].sum() / 3600)
    hours = c.hours_text()
    assert hours.startswith("review 4 of 8 images: ") and format_hours(row["review_h"]) in hours
    assert "0.0 h" not in hours and " min" in hours  # a few images: minutes, never "0.0 h"
    assert f"saved {format_hours(row['saved_h'])}" in hours
    res = c.residual_text()
    tail = plan.iloc[4:]
    assert res.startswith(f"accept 4 images unreviewed: predicted {tail['p_error'].sum():.1f} "
                          f"[{row['err_images_lo']:.0f}-{row['err_images_hi']:.0f}]")
    assert f"{tail['e_fn'].sum():.1f} [{row['fn_lo']:.0f}-{row['fn_hi']:.0f}] missed boxes" in res
    assert f"{tail['e_fp'].sum():.1f} [{row['fp_lo']:.0f}-{row['fp_hi']:.0f}] false boxes" in res
    assert f"({100 * tail['p_error'].sum() / 4:.1f} %)" in res
    html = c.html()
    assert "data-value='0.5'" in html and "data-reviewed='4'" in html and "alnb-review-hours" in html
    # the residuals shrink as the cut moves right; the ends: nothing / everything reviewed
    c.value = 0.75
    assert c.reviewed == 6 and c.cut()["wrong_boxes"] < row["wrong_boxes"]
    c.value = 5.0  # clamped to the range
    assert c.value == 1.0 and c.reviewed == 8 and c.cut()["err_images"] == 0
    assert c.residual_text().startswith("accept 0 images unreviewed: predicted 0.0")
    c.value = -1
    assert c.reviewed == 0 and c.cut()["review_h"] == 0 and "review 0 of 8 images: < 1 min" in c.hours_text()
    # in hours: as many images as fit
    h = ReviewController(plan, cv, summary, unit="hours")
    assert h.range == (0.0, pytest.approx(cv["review_h"].iloc[-1])) and h.value == pytest.approx(cv["review_h"].iloc[2])
    h.value = float(cv["review_h"].iloc[5]) + 1e-7
    assert h.reviewed == 5
    h.value = float(cv["review_h"].iloc[5]) - 1e-7
    assert h.reviewed == 4
    fig = h.figure()
    assert [ln.get_xdata()[0] for ln in fig.axes[0].get_lines() if ln.get_linestyle() == ":"] == \
        [pytest.approx(cv["review_h"].iloc[4])]  # the cut marked on the curve
    plt.close(fig)
    with pytest.raises(ValueError):
        ReviewController(plan, cv, summary, unit="images")


def test_review_explorer_slider_drives_the_controller_and_accepts(tiny_workspace):
    from alnb.labels.formats.common import read_autolabels
    from alnb.ui.widgets import ReviewController, ReviewExplorer

    ws = tiny_workspace
    pool = sorted(ws.stems("POOL"))[:8]
    (ws.root / "autolabels" / "CAL1").mkdir(parents=True)
    for i, s in enumerate(pool):
        (ws.root / "autolabels" / "CAL1" / f"{s}.txt").write_text(f"{i % 2} 0.5 0.5 0.2 0.3 0.{i + 1}\n")
    m0 = ws.manifest()
    plan, cv, summary = hand_plan(stems=pool)
    ex = ReviewExplorer(ReviewController(plan, cv, summary, ws=ws))
    c = ex.c
    assert ex.slider.continuous_update is False and ex.slider.step == pytest.approx(1 / 8)
    ex.slider.value = 0.625
    assert c.reviewed == 5 and ex.numbers.value == c.html() and "data-reviewed='5'" in ex.numbers.value
    ex.accept_button.click()
    rec = ws.load_json("review_accept")
    assert rec["reviewed"] == 5 and rec["accepted"] == list(plan["stem"].iloc[5:]) and "Accepted" in ex.message.value
    m = ws.manifest().set_index("stem")
    assert set(m.index[m["label_source"] == "accepted"]) == set(plan["stem"].iloc[5:])
    untouched = m0.set_index("stem")["label_source"].drop(index=list(plan["stem"].iloc[5:]))
    assert m["label_source"].drop(index=list(plan["stem"].iloc[5:])).equals(untouched)
    for s in plan["stem"].iloc[5:]:  # the model's boxes, without their confidence
        got = read_autolabels(ws.root / "accepted" / f"{s}.txt", len(ws.names))
        want = read_autolabels(ws.root / "autolabels" / "CAL1" / f"{s}.txt", len(ws.names))
        assert np.allclose(got[:, :5], want[:, :5]) and np.isnan(got[:, 5]).all()
    prov = pd.read_csv(ws.root / "final" / "yolo" / "provenance.csv", dtype={"stem": str})
    assert sorted(prov.loc[prov["provenance"] == "machine-accepted", "stem"]) == sorted(plan["stem"].iloc[5:])
    # moving the cut left and accepting again: images now sent to review lose their acceptance
    ex.slider.value = 0.875
    ex.accept_button.click()
    m = ws.manifest().set_index("stem")
    assert set(m.index[m["label_source"] == "accepted"]) == {plan["stem"].iloc[7]}
    assert not (ws.root / "accepted" / f"{plan['stem'].iloc[5]}.txt").exists()
    plt.close("all")
