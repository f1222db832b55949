"""alnb.loop.forecaststep on hand-made workspace records (no training): the rounds it reads, the forecast and its
interval's source, the stop rule's numbers, metrics/forecast.json, the report's "Next round" and ``alnb status``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from alnb.loop import forecast as fc
from alnb.loop import forecaststep as fs
from alnb.loop import selection as sel

# VAL1 mAP50-95 of CAL1..CAL3 on an exact log-linear curve over 10 (GT1), 14 (+ GT2) and 18 (+ GT3) images: the
# forecast at 22 images (+4, as many as round 3 took) is A + B ln 22 exactly.
A, B = 0.2, 0.05
N = (10, 14, 18)
RECALL = (0.50, 0.55, 0.58)
Z95 = 1.6448536269514722  # standard normal 0.95 quantile: a 90 % two-sided interval is mean +- Z95 sd
T95_1 = 6.313751514675043  # Student t 0.95 quantile on 1 df


def y(n):
    return A + B * math.log(n)


def _eval(k, n, recall):
    return {"name": f"CAL{k}", "mAP50": y(n) + 0.3, "mAP50-95": y(n), "overall": {"recall": recall}}


def rounds_ws(ws, k_max=3):
    """GT2 and GT3 (4 POOL images each) committed; eval_CAL<k>.json and round_<k>.json (round 2: 40 s for 4 images,
    round 3: 60 s) for k <= k_max."""
    pool = ws.stems("POOL")
    sel.commit(ws, pool[:4], "GT2")
    sel.commit(ws, pool[4:8], "GT3")
    cum = 0.0
    for k in range(1, k_max + 1):
        ws.save_json(f"eval_CAL{k}", _eval(k, N[k - 1], RECALL[k - 1]))
        if k > 1:
            new_s = 20.0 * k  # 40 s, 60 s
            cum += new_s
            ws.save_json(f"round_{k}", {"round": k, "chains": {"cal": {"new_images": 4, "new_assisted_s": new_s,
                                                                       "cumulative_assisted_s": cum}}})
    return ws


def test_step_forecasts_the_next_round_from_the_workspace_rounds(tiny_workspace):
    ws = rounds_ws(tiny_workspace)
    res = fs.write_forecast(ws)
    assert res.ok and [r.images for r in res.rounds] == list(N) and res.next_round == 4
    assert [r.new_labelling_s for r in res.rounds] == [None, 40.0, 60.0]
    assert res.budget == 4 and "as many images as round 3 took" in res.budget_source and res.n_next == 22
    f, g = res.forecasts["mAP50-95"], res.gains["mAP50-95"]
    assert f.mean == pytest.approx(y(22), abs=1e-9) and f.model == "loglinear"
    assert g.mean == pytest.approx(y(22) - y(18), abs=1e-9)
    assert res.interval_source == {"mAP50-95": "OLS", "recall": "OLS"} and "OLS prediction interval" in f.note
    # an exact curve: the residual sd is at its floor, so the interval is t_{0.95, 1 df} * SD_FLOOR * sqrt(1 + h),
    # h the leverage of ln 22 in the design [1, ln n]
    X = np.column_stack([np.ones(3), np.log(N)])
    x0 = np.array([1.0, math.log(22)])
    half = T95_1 * fc.SD_FLOOR * math.sqrt(1 + x0 @ np.linalg.inv(X.T @ X) @ x0)
    assert (f.high - f.mean, f.mean - f.low) == pytest.approx((half, half))
    assert res.forecasts["recall"].mean == pytest.approx(fc.forecast(N, RECALL, 22).mean)
    assert res.next_round_hours == pytest.approx(4 * 15.0 / 3600)  # round 3: 60 s for 4 images
    assert res.review is None and res.label_change is None and "keeps no auto-labels of CAL2 and CAL3" in \
        res.label_change_note
    assert not res.advice.stop and res.advice.reason.startswith("continue: predicted gain")
    assert res.advice.numbers["gain_mean"] == pytest.approx(y(22) - y(18))
    saved = json.loads((ws.root / "metrics" / "forecast.json").read_text())
    assert saved["ok"] and saved["n_next"] == 22 and saved["measure"] == "mAP50-95"
    assert saved["forecasts"]["mAP50-95"]["mean"] == pytest.approx(y(22))
    assert saved["interval_source"]["mAP50-95"] == "OLS" and saved["caveat"] == fc.CAVEAT
    assert saved["line"] == res.line() and "advice: continue" in res.line() and f"{y(22):.3f}" in res.line()


def test_backtest_scale_review_hours_and_label_change(tiny_workspace):
    """With a backtest: the interval is mean +- z sd, its bias subtracted, the lowest-error model chosen; the review
    plans of CAL2 and CAL3 give the review hours a point saves, which the hours rule weighs; the auto-labels of both
    models give the label change."""
    ws = rounds_ws(tiny_workspace)
    ws.save_json("run_plan", {"rounds": 4, "rule": "budget", "budget": 6})
    ws.save_json(fs.BACKTEST_FILE, {"level": 0.9, "chains": 3, "measures": {"mAP50-95": {
        "loglinear": {"error_scale": 0.02, "bias": -0.01, "mean_abs_error": 0.015, "n_forecasts": 3},
        "powerlaw": {"error_scale": 0.01, "bias": 0.0, "mean_abs_error": 0.03, "n_forecasts": 3},
        "flat": {"error_scale": 0.05, "bias": -0.04, "mean_abs_error": 0.04, "n_forecasts": 3}}}})
    # review hours per image: 0.1 (CAL2, 16 images left) -> 0.08 (CAL3, 12 left)
    ws.save_json("review_plan_rounds", {"CAL2": {"n_images": 16, "review_all_h": 1.6, "manual_all_h": 4.0,
                                                 "cut": {"review_h": 0.8}},
                                        "CAL3": {"n_images": 12, "review_all_h": 0.96, "manual_all_h": 3.0,
                                                 "cut": {"review_h": 0.5}}})
    pool = ws.stems("POOL")[8:]
    for model, lines in (("CAL2", {pool[0]: "0 0.5 0.5 0.2 0.2 0.9", pool[1]: "1 0.3 0.3 0.1 0.1 0.8"}),
                         ("CAL3", {pool[0]: "0 0.5 0.5 0.2 0.2 0.7", pool[1]: "2 0.3 0.3 0.1 0.1 0.8",
                                   pool[2]: "0 0.5 0.5 0.2 0.2 0.9"})):
        d = ws.root / "autolabels" / model
        d.mkdir(parents=True)
        for stem, line in lines.items():
            (d / f"{stem}.txt").write_text(line + "\n")
    res = fs.write_forecast(ws)
    assert res.budget == 6 and "metrics/run_plan.json" in res.budget_source and res.n_next == 24
    f, g = res.forecasts["mAP50-95"], res.gains["mAP50-95"]
    assert f.model == "loglinear" and res.interval_source == {"mAP50-95": "backtest", "recall": "OLS"}
    assert f.mean == pytest.approx(y(24) + 0.01)  # bias -0.01 (under-prediction) subtracted
    assert (f.high - f.mean, f.mean - f.low) == pytest.approx((Z95 * 0.02, Z95 * 0.02))
    assert g.low == pytest.approx(y(24) + 0.01 - Z95 * 0.02 - y(18))
    assert res.backtest["measures"]["mAP50-95"]["error_scale"] == 0.02
    # one matched box of the 4 in the two images both auto-labelled (a class change is a change)
    assert res.label_change == pytest.approx(0.5) and "2 images both auto-labelled" in res.label_change_note
    rate = (0.1 - 0.08) * 12 / ((y(18) - y(14)) / 0.01)  # review hours saved per point of mAP50-95
    assert res.review["hours_saved_per_point"] == pytest.approx(rate) and "hours_rule" not in res.review
    # the review hours of the 6 images left after round 4 (12 - 6), at CAL3's 0.08 h per image minus the drop the
    # predicted gain buys; the interval follows the gain's (its high end gives the fewest hours)
    drop = rate / 12
    nxt = res.review["review_next_h"]
    assert nxt["images_left"] == 6 and nxt["mean"] == pytest.approx((0.08 - drop * g.mean / 0.01) * 6)
    assert nxt["low"] == pytest.approx(max(0.08 - drop * g.high / 0.01, 0) * 6) and nxt["high"] > nxt["mean"]
    hours = 6 * 15.0 / 3600
    n = res.advice.numbers
    assert n["hours_saved_low"] == pytest.approx(rate * g.low / 0.01) and n["next_round_hours"] == pytest.approx(hours)
    assert n["stabilisation"] == pytest.approx(0.5)
    assert res.advice.stop == (hours > rate * g.low / 0.01) is True  # the lower bound is below 0: stop
    assert "the next round costs" in res.advice.reason
    # the same without the backtest: OLS interval, and the hours rule is off (named), so the advice continues
    (ws.root / "metrics" / f"{fs.BACKTEST_FILE}.json").unlink()
    res2 = fs.next_round_forecast(ws)
    assert res2.interval_source["mAP50-95"] == "OLS" and res2.review["hours_rule"].startswith("off: no backtest")
    assert "hours_saved_low" not in res2.advice.numbers and not res2.advice.stop


@pytest.mark.parametrize("k_max", [0, 1])
def test_fewer_than_two_rounds_is_a_clear_result(tiny_workspace, k_max):
    ws = rounds_ws(tiny_workspace, k_max)
    res = fs.write_forecast(ws)
    assert not res.ok and res.forecasts == {} and res.advice is None and res.next_round == k_max + 1
    assert res.note.startswith("not enough rounds for a forecast: " + str(k_max)) and res.line() == res.note
    saved = json.loads((ws.root / "metrics" / "forecast.json").read_text())
    assert saved["ok"] is False and saved["note"] == res.note
    from alnb.ui.report import next_round_section

    md = "\n".join(next_round_section(ws))
    assert "## Next round" in md and "No forecast: not enough rounds" in md and fc.CAVEAT in md


def test_report_next_round_section_shows_the_numbers(tiny_workspace):
    from alnb.ui.report import next_round_section

    ws = rounds_ws(tiny_workspace)
    md = "\n".join(next_round_section(ws))
    res = fs.next_round_forecast(ws)
    f, g = res.forecasts["mAP50-95"], res.gains["mAP50-95"]
    assert "## Next round" in md and "Is round 4 worth it?" in md and "extrapolated to 22 images: +4" in md
    assert f"| mAP50-95 | {y(18):.3f} | {f.mean:.3f} | {f.low:.3f} to {f.high:.3f} | {g.mean:+.3f} |" in md
    assert "| loglinear | OLS |" in md and "Intervals: mAP50-95: loglinear on 3 points; OLS prediction" in md
    assert "**Advice: continue.** predicted gain" in md and f"*{fc.CAVEAT}*" in md
    assert md.count(fc.CAVEAT) == 1  # the reason's own copy of the caveat is not repeated
    assert "| gain\\_mean |" in md and f"| {g.mean:.4g} |" in md  # the numbers behind the advice
    assert f"Next round's labelling: {4 * 15 / 3600:.2f} h" in md and "Auto-label change since the last round: " \
        "not measured" in md
    assert (ws.root / "metrics" / "forecast.json").is_file() and "`metrics/forecast.json`" in md


def test_alnb_status_prints_the_forecast_line(tiny_workspace, capsys):
    from alnb.apps import cli

    ws = rounds_ws(tiny_workspace)
    assert cli.main(["status", "--workspace", str(ws.root)]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("forecast:"))
    f = fs.next_round_forecast(ws).forecasts["mAP50-95"]
    assert line == (f"forecast:  round 4 (+4 images, 22 in all): VAL1 mAP50-95 {y(22):.3f} [90%: {f.low:.3f}, "
                    f"{f.high:.3f}], gain {y(22) - y(18):+.3f} (loglinear, OLS interval); advice: continue")
    assert not (ws.root / "metrics" / "forecast.json").exists()  # status writes nothing
    assert cli.main(["status", "--workspace", str(ws.root), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["forecast"]["forecasts"]["mAP50-95"]["mean"] == pytest.approx(y(22))


def test_backtest_benchmark_reads_study_and_recipe_chains_and_the_step_reads_its_file(tmp_path, tiny_workspace,
                                                                                      capsys):
    """benchmarks/forecast_backtest.py: one chain per (seed, strategy, budget) of a study folder and per base of the
    round-recipe rows (``fresh`` only, x = GT1 + extra); on exact log-linear chains loglinear's errors are 0 and
    flat's bias is the hand-computed mean(y_10, y_14) - y_18; the step takes that file's lowest-error curve."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "forecast_backtest.py"
    spec = importlib.util.spec_from_file_location("forecast_backtest", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    res = tmp_path / "study" / "results"
    res.mkdir(parents=True)
    rows = [{"strategy": "gt1_only", "budget": "0", "round": 0, "seed": 0, "images": 0, "train_images": 10,
             "mAP50-95": y(10), "recall": 0.5},
            *[{"strategy": "random", "budget": "4", "round": r, "seed": 0, "images": 4 * r, "train_images": 10 + 4 * r,
               "mAP50-95": y(10 + 4 * r), "recall": RECALL[r]} for r in (1, 2)]]
    for i, r in enumerate(rows):
        (res / f"row{i}.json").write_text(json.dumps(r))
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"rows": [
        *[{"base": str(tmp_path / "base0"), "recipe": "fresh", "n": n, "val_mAP50-95": y(10 + n),
           "test_mAP50-95": None} for n in (0, 4, 8)],
        {"base": str(tmp_path / "base0"), "recipe": "finetune", "n": 4, "val_mAP50-95": 0.9}]}))
    chains = bench.recipe_chains(recipe, n_gt1=10)
    assert list(chains) == ["mAP50-95"] and chains["mAP50-95"]["base0"][0].tolist() == [10, 14, 18]
    assert bench.study_chains(tmp_path / "study")["recall"]["study/seed0/random@4"][1].tolist() == list(RECALL)
    out = tmp_path / "bt.json"
    assert bench.main([str(tmp_path / "study"), str(recipe), "--n-gt1", "10", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "lowest MAE: loglinear" in printed and "cover OLS" in printed
    bt = json.loads(out.read_text())["measures"]["mAP50-95"]
    assert bt["loglinear"]["n_forecasts"] == 2 and bt["loglinear"]["mean_abs_error"] == pytest.approx(0, abs=1e-9)
    assert bt["flat"]["bias"] == pytest.approx((y(10) + y(14)) / 2 - y(18))
    ws = rounds_ws(tiny_workspace)
    step = fs.next_round_forecast(ws, backtest=out)
    # recall: one chain, one forecast, no error sd: the OLS interval, said so
    assert json.loads(out.read_text())["measures"]["recall"]["loglinear"]["error_scale"] is None
    assert step.interval_source == {"mAP50-95": "backtest", "recall": "OLS"}
    assert step.forecasts["mAP50-95"].model == "loglinear" and step.backtest["file"] == str(out)
    # a workspace of alnb run --rounds N: the CAL chain and the control chain (CAL1, Control, Control3 at the same
    # labelled images as CAL1, CAL2, CAL3)
    ws.save_json("eval_Control", {"mAP50-95": 0.31, "overall": {"recall": 0.6}})
    ws.save_json("eval_Control3", {"mAP50-95": 0.33, "overall": {"recall": 0.7}})
    wch = bench.workspace_chains(ws.root)
    name = ws.root.name
    assert wch["mAP50-95"][f"{name}/cal"][1].tolist() == pytest.approx([y(n) for n in N])
    assert wch["mAP50-95"][f"{name}/control"][0].tolist() == list(N)
    assert wch["mAP50-95"][f"{name}/control"][1].tolist() == pytest.approx([y(10), 0.31, 0.33])
    assert wch["recall"][f"{name}/control"][1].tolist() == pytest.approx([RECALL[0], 0.6, 0.7])


def test_after_round_forecasts_as_it_stood_then(tiny_workspace):
    """``after_round=2`` ignores CAL3: the forecast is fitted on CAL1 and CAL2 only (an exact two-point line through
    ln 10 and ln 14), for round 3 at the images given, so it can be held against the CAL3 measured since."""
    ws = rounds_ws(tiny_workspace)
    res = fs.next_round_forecast(ws, after_round=2, budget=4)
    assert res.ok and [r.model for r in res.rounds] == ["CAL1", "CAL2"] and res.next_round == 3
    assert res.n_next == 18 and res.forecasts["mAP50-95"].mean == pytest.approx(y(18), abs=1e-9)
    assert res.next_round_hours == pytest.approx(4 * 10.0 / 3600)  # round 2: 40 s for 4 images
    full = fs.next_round_forecast(ws)
    assert full.next_round == 4 and full.n_next == 22


def _study_rows(rounds=3, test=True):
    """Hand-made ``alnb study`` rows: seeds 0 and 1 (seed 1 shifted by +0.01), random@4 with ``rounds`` rounds and
    hybrid@4 with 2; VAL1 mAP50-95 exactly log-linear in the training images (GT1 = 10, +4 per round), TEST
    mAP50-95 the same + 0.02 (``test``), the other columns plausible."""
    rows = []
    for seed, off in ((0, 0.0), (1, 0.01)):
        def row(strategy, budget, r, images):
            n = 10 + images
            return {"strategy": strategy, "budget": budget, "round": r, "seed": seed, "images": images,
                    "new_images": 4 if r else 0, "boxes": 2 * images, "labelling_s": 10.0 * images,
                    "manual_s": 20.0 * images, "train_images": n, "mAP50": y(n) + off + 0.3,
                    "mAP50-95": y(n) + off, "precision": 0.6, "recall": 0.5 + 0.01 * r, "f1": 0.55, "boost": 1.5,
                    "conf": 0.25, "test_mAP50-95": y(n) + off + 0.02 if test else None}
        rows.append(row("gt1_only", 0, 0, 0))
        rows += [row("random", 4, r, 4 * r) for r in range(1, rounds + 1)]
        rows += [row("hybrid", 4, r, 4 * r) for r in range(1, min(rounds, 2) + 1)]
    return rows


def _write_rows(d, rows):
    (d / "results").mkdir(parents=True)
    for i, r in enumerate(rows):
        (d / "results" / f"row{i}.json").write_text(json.dumps(r))
    return d


def test_study_report_backtests_the_studys_own_chains(tmp_path, tiny_workspace):
    """``alnb study``'s report section "Forecast accuracy (backtest)": the chains of the study's rows (seed's
    ``gt1_only`` first, x = training images), numbers equal to :func:`alnb.loop.forecast.backtest` on those chains
    (exact log-linear chains: loglinear's MAE 0; flat's bias hand-computed), VAL1 and TEST; the study also writes
    ``forecast_backtest.json`` in the benchmark's format, which the forecast step reads."""
    from alnb.loop import study as S

    d = _write_rows(tmp_path / "st", _study_rows())
    table = S.results_table(d)
    chains, res = S.forecast_backtest(table, name="st")
    assert set(chains) == {"mAP50-95", "recall", "test_mAP50-95"}
    assert sorted(chains["mAP50-95"]) == ["st/seed0/hybrid@4", "st/seed0/random@4", "st/seed1/hybrid@4",
                                          "st/seed1/random@4"]
    n, v = chains["mAP50-95"]["st/seed1/random@4"]
    assert n.tolist() == [10, 14, 18, 22] and v.tolist() == pytest.approx([y(k) + 0.01 for k in (10, 14, 18, 22)])
    # the same chains from the table's records and from the folder's row files
    from_dir = fs.study_chains(d)
    for m in chains:
        assert {k: (a.tolist(), b.tolist()) for k, (a, b) in chains[m].items()} == \
               {k: (a.tolist(), b.tolist()) for k, (a, b) in from_dir[m].items()}
    for m in ("mAP50-95", "test_mAP50-95"):
        for curve in fc.CURVES:
            bt = fc.backtest(list(chains[m].values()), model=curve, level=0.9)
            r = res[m][curve]
            assert r["n_forecasts"] == bt.n_forecasts == 2 * (2 + 1)  # random: k = 2, 3; hybrid: k = 2
            assert r["mean_abs_error"] == pytest.approx(bt.mean_abs_error) and r["bias"] == pytest.approx(bt.bias)
            assert r["coverage_ols"] == pytest.approx(bt.coverage)
    assert res["mAP50-95"]["loglinear"]["mean_abs_error"] == pytest.approx(0, abs=1e-9)
    e2, e3 = (y(10) + y(14)) / 2 - y(18), (y(10) + y(14) + y(18)) / 3 - y(22)  # flat, any shift: the same
    flat = res["test_mAP50-95"]["flat"]
    assert flat["bias"] == pytest.approx((2 * e2 + e3) / 3) and flat["errors"] == pytest.approx([e2, e2, e3] * 2)

    S.write_outputs(d, table)
    rep = (d / "report.md").read_text()
    sec = rep[rep.index("## Forecast accuracy (backtest)"):rep.index("## Figures")]
    assert "VAL1 mAP50-95: 4 chain(s)." in sec and "TEST mAP50-95: 4 chain(s)." in sec
    assert sec.count("Lowest mean absolute error: loglinear.") == 2
    f = res["mAP50-95"]["flat"]
    assert (f"| flat | 6 | {f['mean_abs_error']:.4f} | {f['bias']:+.4f} | {f['error_scale']:.4f} | "
            f"{f['coverage_ols']:.0%} |") in sec
    assert "| loglinear | 6 | 0.0000 |" in sec and "nothing to backtest" not in sec
    bt_file = d / S.FORECAST_BACKTEST_FILE
    rec = json.loads(bt_file.read_text())
    assert rec["level"] == 0.9 and rec["chains"] == 4 and set(rec["measures"]) == {"mAP50-95", "recall",
                                                                                   "test_mAP50-95"}
    assert rec["measures"]["mAP50-95"]["flat"]["bias"] == pytest.approx(f["bias"])
    assert rec["chain_points"]["mAP50-95"]["st/seed0/random@4"][0] == [10.0, pytest.approx(y(10))]
    step = fs.next_round_forecast(rounds_ws(tiny_workspace), backtest=bt_file)
    assert step.forecasts["mAP50-95"].model == "loglinear" and step.interval_source["mAP50-95"] == "backtest"


def test_study_report_says_so_when_there_is_nothing_to_backtest(tmp_path):
    """One round per chain (2 points: GT1 alone and round 1): no forecast, the report says so and names the fix;
    without a TEST set no TEST chains; no forecast_backtest.json."""
    from alnb.loop import study as S

    d = _write_rows(tmp_path / "one", _study_rows(rounds=1, test=False))
    table = S.results_table(d)
    chains, res = S.forecast_backtest(table)
    assert "test_mAP50-95" not in chains and len(chains["mAP50-95"]) == 4
    assert all(v["n_forecasts"] == 0 for v in res["mAP50-95"].values())
    lines = S.forecast_accuracy_lines(table, res)
    assert lines[0] == "## Forecast accuracy (backtest)"
    assert "One round per chain: nothing to backtest; run a cycles study with --rounds ≥ 3." in lines
    S.write_outputs(d, table)
    rep = (d / "report.md").read_text()
    assert "## Forecast accuracy (backtest)" in rep and "run a cycles study with --rounds ≥ 3" in rep
    assert "| loglinear |" not in rep and not (d / S.FORECAST_BACKTEST_FILE).exists()
