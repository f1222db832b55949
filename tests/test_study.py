"""The strategy study (alnb.loop.study): interval / verdict / label-savings maths on hand-made tables, the grid, an end to
end smoke study with resume after an interruption, ``alnb study``, and the notebooks' recorded key numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from alnb.loop import study as S


# ------------------------------------------------------------------------------------------------------------ maths
def test_interval_matches_hand_computed_t_interval():
    iv = S.interval([1.0, 2.0, 3.0])
    # mean 2, sd 1, t(0.975, 2) = 4.303 -> half width 4.303 / sqrt(3)
    assert iv["mean"] == 2.0 and iv["sd"] == pytest.approx(1.0) and iv["n"] == 3
    assert iv["hi"] - iv["mean"] == pytest.approx(4.302653 / math.sqrt(3))
    assert S.interval([5.0, np.nan])["n"] == 1 and math.isnan(S.interval([5.0])["lo"])
    assert math.isnan(S.t_quantile(0))
    wide = S.interval(np.r_[np.zeros(50), np.ones(50)])
    assert wide["hi"] - wide["mean"] == pytest.approx(1.984217 * wide["sd"] / 10, abs=1e-6)  # t(0.975, 99)


def test_verdict_rules():
    assert S.verdict_of(S.interval([0.05, 0.06, 0.07])) == "better"
    assert S.verdict_of(S.interval([-0.05, -0.06, -0.07])) == "worse"
    assert S.verdict_of(S.interval([-0.05, 0.06, 0.0])) == "no detectable difference"
    assert S.verdict_of(S.interval([0.5])) == "too few seeds"


def _table():
    """3 seeds; random at 10 and 20 images, hybrid at 10, study_rule at 15 images (its own size)."""
    rows = []
    for seed, off in ((0, 0.0), (1, 0.02), (2, -0.02)):
        rows += [{"strategy": "gt1_only", "budget": "0", "seed": seed, "images": 0, "labelling_s": 0.0,
                  "mAP50": 0.20 + off},
                 {"strategy": "random", "budget": "10", "seed": seed, "images": 10, "labelling_s": 100.0,
                  "mAP50": 0.30 + off},
                 {"strategy": "random", "budget": "20", "seed": seed, "images": 20, "labelling_s": 200.0,
                  "mAP50": 0.40 + off},
                 {"strategy": "hybrid", "budget": "10", "seed": seed, "images": 10, "labelling_s": 150.0,
                  "mAP50": 0.35 + off + 0.01 * seed},
                 {"strategy": "study_rule", "budget": "10", "seed": seed, "images": 15, "labelling_s": 150.0,
                  "mAP50": 0.30 + off}]
    return pd.DataFrame(rows)


def test_paired_difference_figure_keeps_verdicts_inside_the_axes():
    """Each verdict label sits above its seeds' dots and interval and inside the axes (not across the title)."""
    import matplotlib

    matplotlib.use("Agg")
    from alnb.figures import study_plots

    t = _table()
    fig = study_plots.paired_difference(S.paired_differences(t), S.verdicts(t))
    ax = fig.axes[0]
    fig.canvas.draw()
    labels = [x for x in ax.texts if x.get_text().replace("\n", " ") in {"better", "worse", "no detectable difference",
                                                                         "too few seeds"}]
    assert len(labels) == len(S.verdicts(t)[["strategy", "budget"]].drop_duplicates())
    box = ax.get_window_extent()
    for x in labels:
        ext = x.get_window_extent()
        assert box.y0 <= ext.y0 and ext.y1 <= box.y1, x.get_text()


def test_paired_differences_interpolate_the_same_seeds_random_curve():
    d = S.paired_differences(_table()).set_index(["strategy", "seed"])
    assert d.loc[("hybrid", 0), "diff"] == pytest.approx(0.05)
    assert d.loc[("hybrid", 2), "diff"] == pytest.approx(0.07)
    # study rule at 15 images: random on the same seed interpolated half-way between 0.30 and 0.40
    assert d.loc[("study_rule", 1), "reference"] == pytest.approx(0.37)
    assert d.loc[("study_rule", 1), "diff"] == pytest.approx(-0.05)
    # per labelling second: hybrid (150 s) against random at 150 s (0.35 on seed 0): difference 0
    ds = S.paired_differences(_table(), x="labelling_s").set_index(["strategy", "seed"])
    assert ds.loc[("hybrid", 0), "diff"] == pytest.approx(0.0)
    # outside the random curve: never extrapolated
    t = _table()
    t.loc[t["strategy"] == "hybrid", "images"] = 30
    d = S.paired_differences(t)
    assert d.loc[d["strategy"] == "hybrid", "diff"].isna().all() and d["diff"].notna().sum() == 3


def test_verdicts_from_paired_intervals():
    v = S.verdicts(_table()).set_index("strategy")
    assert v.at["hybrid", "verdict"] == "better" and v.at["hybrid", "mean_diff"] == pytest.approx(0.06)
    assert v.at["hybrid", "n_seeds"] == 3
    # 0.06 +- 4.302653 * 0.01 / sqrt(3)
    assert v.at["hybrid", "lo"] == pytest.approx(0.06 - 4.302653 * 0.01 / math.sqrt(3))
    assert v.at["study_rule", "verdict"] == "worse"  # -0.05 on every seed
    noisy = _table()
    noisy.loc[(noisy["strategy"] == "hybrid") & (noisy["seed"] == 1), "mAP50"] = 0.10
    assert S.verdicts(noisy).set_index("strategy").at["hybrid", "verdict"] == "no detectable difference"


def test_label_savings_read_off_the_random_curve():
    s = S.label_savings(_table()).set_index("strategy")
    # hybrid mean mAP50 0.36 at 10 images; mean random curve 0.20 / 0.30 / 0.40 at 0 / 10 / 20 -> 16 images
    assert s.at["hybrid", "random_images"] == pytest.approx(16.0)
    assert s.at["hybrid", "saved_images"] == pytest.approx(6.0)
    # study rule 0.30 at 15 images: random reaches 0.30 with 10 -> 5 images lost
    assert s.at["study_rule", "saved_images"] == pytest.approx(-5.0)
    better = _table()
    better.loc[better["strategy"] == "hybrid", "mAP50"] = 0.9
    b = S.label_savings(better).set_index("strategy")
    assert bool(b.at["hybrid", "beyond_reference"]) and math.isnan(b.at["hybrid", "random_images"])
    # a noisy dip in the random curve does not give two answers (running maximum)
    assert S.random_images_for(0.35, [0, 10, 20, 30], [0.2, 0.4, 0.3, 0.5]) == pytest.approx(7.5)


def _chain_table():
    """3 seeds, two rounds of 10 images: random at 100 / 200 labelling s, hybrid 0.06 ahead (seed-varying) at 150 /
    300 s; mAP50-95 = mAP50 / 2."""
    rows = []
    for seed, off in ((0, 0.0), (1, 0.02), (2, -0.02)):
        rows.append({"strategy": "gt1_only", "budget": "0", "round": 0, "seed": seed, "images": 0,
                     "labelling_s": 0.0, "mAP50": 0.20 + off})
        for r in (1, 2):
            rows.append({"strategy": "random", "budget": "10", "round": r, "seed": seed, "images": 10 * r,
                         "labelling_s": 100.0 * r, "mAP50": 0.20 + 0.10 * r + off})
            rows.append({"strategy": "hybrid", "budget": "10", "round": r, "seed": seed, "images": 10 * r,
                         "labelling_s": 150.0 * r, "mAP50": 0.26 + 0.10 * r + off + 0.01 * seed})
    t = pd.DataFrame(rows)
    return t.assign(**{"mAP50-95": t["mAP50"] / 2})


def test_round_table_pairs_each_round_per_image_and_per_second():
    t = _chain_table()
    ver = pd.concat([S.verdicts(t, metric=m, x=x) for m in ("mAP50", "mAP50-95") for x in ("images", "labelling_s")],
                    ignore_index=True)
    tab = S.round_table(S.summarise(t), ver)["10"].set_index("round")
    assert list(tab.index) == [0, 1, 2]
    assert tab.at[0, "random mAP50 / mAP50-95"] == "0.200 / 0.100"
    assert tab.at[2, "random mAP50 / mAP50-95"] == "0.400 / 0.200" and tab.at[2, "random images (cum.)"] == 20
    # per image: +0.07 on average (0.06 + 0.01 * seed), interval 0.07 +- t(2) * 0.01 / sqrt(3), bold (excludes 0)
    h = 4.302653 * 0.01 / math.sqrt(3)
    per_image = tab.at[1, "hybrid - random, per image"].split(" ; ")
    assert per_image[0] == f"**+0.070 [{0.07 - h:+.3f}, {0.07 + h:+.3f}]**"
    assert per_image[1] == f"**+0.035 [{0.035 - h / 2:+.3f}, {0.035 + h / 2:+.3f}]**"
    # equal seconds, round 1: hybrid's 150 s = half-way between random's 100 s (0.30) and 200 s (0.40) -> 0.35;
    # hybrid 0.36 + 0.01 * seed - 0.35 = +0.01 + 0.01 * seed: +0.02 +- 0.0248, not bold.  Round 2 (300 s) lies beyond
    # random's curve: "-"
    assert tab.at[1, "hybrid - random, equal seconds"].split(" ; ")[0] == f"+0.020 [{0.02 - h:+.3f}, {0.02 + h:+.3f}]"
    assert tab.at[2, "hybrid - random, equal seconds"] == "- ; -"
    assert tab.at[2, "cum. labelling s: random / hybrid"] == "200 / 300" and tab.at[0, "hybrid - random, per image"] == ""
    # a difference whose interval contains 0 is not bold
    noisy = t.copy()
    noisy.loc[(noisy["strategy"] == "hybrid") & (noisy["seed"] == 1), "mAP50"] -= 0.2
    vn = S.verdicts(noisy, metric="mAP50")
    cell = S.round_table(S.summarise(noisy), vn, metrics=("mAP50",))["10"].set_index("round").at[
        1, "hybrid - random, per image"]
    assert not cell.startswith("**") and cell.startswith("+0.003 [")


def test_seconds_savings_tells_a_strategy_at_gt1_from_one_beyond_random():
    t = _chain_table()
    ss = S.seconds_savings(t, metric="mAP50").set_index(["strategy", "round"])
    # round 1: hybrid 0.36 + off + 0.01 * seed at 150 s; random's own seed curve 0.20 + off / 0.30 + off / 0.40 + off
    # at 0 / 100 / 200 s needs 160, 170, 180 s -> saved 1 - 150 / need on all 3 seeds
    r1 = ss.loc[("hybrid", 1)]
    assert r1["n_reached"] == 3 and r1["n_at_gt1"] == 0
    assert r1["saved"] == pytest.approx(np.mean([1 - 150 / 160, 1 - 150 / 170, 1 - 150 / 180]))
    # round 2: 0.46 + ... is above random's best point on every seed: beyond the curve, neither reached nor at GT1
    assert ss.loc[("hybrid", 2), "n_reached"] == 0 and ss.loc[("hybrid", 2), "n_at_gt1"] == 0
    # a strategy no better than GT1 alone on seed 0: random needs 0 s there, counted apart, not as "not reached"
    low = t.copy()
    low.loc[(low["strategy"] == "hybrid") & (low["round"] == 1) & (low["seed"] == 0), "mAP50"] = 0.15
    r1 = S.seconds_savings(low, metric="mAP50").set_index(["strategy", "round"]).loc[("hybrid", 1)]
    assert r1["n_at_gt1"] == 1 and r1["n_reached"] == 2
    assert r1["saved"] == pytest.approx(np.mean([1 - 150 / 170, 1 - 150 / 180]))


def test_study_tables_benchmark_extends_random_over_seconds_with_its_longer_chain(tmp_path, capsys):
    """benchmarks/study_tables.py reads every row of the folder: random's rounds beyond the strategies' give their
    later rounds an equal-seconds comparison that the grid's own report (random as long as the others) cannot."""
    import importlib.util
    from pathlib import Path

    t = _chain_table()
    extra = [{"strategy": "random", "budget": "10", "round": 3, "seed": seed, "images": 30, "labelling_s": 300.0,
              "mAP50": 0.50 + off, "mAP50-95": (0.50 + off) / 2} for seed, off in ((0, 0.0), (1, 0.02), (2, -0.02))]
    (tmp_path / "results").mkdir()
    for row in [*t.to_dict("records"), *extra]:
        (tmp_path / "results" / f"{S.row_file(tmp_path, row['seed'], row['strategy'], row['budget'], row['round']).name}"
         ).write_text(json.dumps({**row, "train_s": 1.0, "train_images": 10, "boxes": 1, "reused": False}))
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "study_tables.py"
    spec = importlib.util.spec_from_file_location("study_tables", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    r = mod.tables(tmp_path)
    assert r["seeds"] == [0, 1, 2] and r["rounds"] == 2
    tab = r["round_table"]["10"].set_index("round")
    # hybrid's round 2 (300 s) now meets random's round 3 (300 s): 0.46 + off + 0.01 * seed - (0.50 + off)
    cell = tab.at[2, "hybrid - random, equal seconds"].split(" ; ")[0]
    assert cell.startswith("**-0.030 [")
    assert 3 not in set(r["verdicts"]["round"])  # random's extra round is its curve, not a compared round
    assert tab.at[3, "hybrid - random, per image"] == "" and tab.at[3, "cum. labelling s: random / hybrid"] == "300 / -"
    assert mod.main([str(tmp_path), "--seeds", "0", "1"]) == 0
    out = capsys.readouterr().out
    assert "seeds [0, 1]" in out and "random's chain to round 3" in out and "trainings: 10" in out


def test_summarise_means_and_intervals():
    s = S.summarise(_table()).set_index(["strategy", "budget"])
    assert s.at[("random", "20"), "mAP50"] == pytest.approx(0.40)
    assert s.at[("random", "20"), "mAP50_hi"] - 0.40 == pytest.approx(4.302653 * 0.02 / math.sqrt(3))
    assert s.at[("study_rule", "10"), "images"] == 15 and s.at[("hybrid", "10"), "n_seeds"] == 3


def test_grids_and_estimate(tmp_path):
    small = S.get_grid("small")
    assert len(small.seeds) >= 3 and small.profile == "quick" and "random" in small.strategies
    assert "study_rule" in small.strategies
    # the 10-epoch fine-tune: 5 x CAL1 (177 x 25 epochs) + 15 runs of (177 + 100) x 10 at the default throughput
    est = S.estimate_seconds(tmp_path, small, train_overrides={"round_recipe": "finetune"})
    assert est["runs"] == 5 + 15 and 600 < est["seconds"] < 2 * 3600
    assert S.estimate_seconds(tmp_path, small, workers=4, train_overrides={"round_recipe": "finetune"})[
        "seconds"] == pytest.approx(est["seconds"] / 4, rel=1e-3)
    # the quick profile's default recipe trains every round model fresh: the 15 added-set runs take 25 epochs, not
    # 10 (finetune_epochs set but unused); finetune_epochs=None means the same
    ips = est["images_per_s"]
    for fresh in (S.estimate_seconds(tmp_path, small),
                  S.estimate_seconds(tmp_path, small, train_overrides={"finetune_epochs": None})):
        assert fresh["seconds"] - est["seconds"] == pytest.approx(15 * (177 + 100) * (25 - 10) / ips, rel=1e-3)
    cyc = S.get_grid("cycles")
    assert cyc.rounds == 3 and cyc.budgets == ("50",) and S.estimate_seconds(tmp_path, cyc)["runs"] == 5 + 3 * 3 * 5
    assert S.get_grid("small", budgets=["600s"]).budgets == ("600s",) and S.parse_budget("600s") == ("seconds", 600)
    with pytest.raises(ValueError):
        S.get_grid("small", budgets=["12x"])
    assert S.get_grid("small", seeds=[0, 1]).seeds == (0, 1)
    with pytest.raises(KeyError):
        S.get_grid("small", strategies=["random", "oracle"])
    with pytest.raises(ValueError, match="random"):
        S.get_grid("small", strategies=["hybrid"])
    with pytest.raises(ValueError):
        S.get_grid("small", budgets=[0])
    assert set(S.get_grid("full").strategies) >= {"coreset", "uncertain_diverse", "bald"}


def test_ray_tasks_take_a_gpu_each_where_the_cluster_has_gpus():
    assert S.task_resources({"CPU": 16.0}, 2) == {"num_cpus": 2, "num_gpus": 0}
    assert S.task_resources({"CPU": 64.0, "GPU": 8.0}, 4) == {"num_cpus": 4, "num_gpus": 1}
    assert S.cluster_workers({"CPU": 16.0}, 2) == 8 and S.cluster_workers({"CPU": 1.0}, 2) == 1
    assert S.cluster_workers({"CPU": 64.0, "GPU": 8.0}, 4) == 8  # one training per GPU
    est1 = S.estimate_seconds("/nonexistent", S.get_grid("small"), workers=1)
    est8 = S.estimate_seconds("/nonexistent", S.get_grid("small"), workers=S.cluster_workers({"CPU": 16.0}, 2))
    assert est8["workers"] == 8 and est8["seconds"] < est1["seconds"]


# ------------------------------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_smoke_study_end_to_end_with_resume(tiny_dataset, tmp_path, monkeypatch):
    out = tmp_path / "study"
    real_write = S._write_row
    calls = {"n": 0}

    class Interrupted(RuntimeError):
        pass

    def write_then_stop(path, row):
        calls["n"] += 1
        # rows 1-2: the seeds' CAL1s, row 3: seed 0's random chain; seed 0's hybrid chain is trained, then the process
        # "dies" before its row
        if calls["n"] == 4:
            raise Interrupted("simulated interruption")
        real_write(path, row)

    monkeypatch.setattr(S, "_write_row", write_then_stop)
    with pytest.raises(Interrupted):
        S.run_study(out, tiny_dataset, grid="smoke", progress=False, log=None)
    assert sorted(p.name for p in (out / "results").glob("*.json")) == [
        "seed0__gt1_only__0__r0.json", "seed0__random__4__r1.json", "seed1__gt1_only__0__r0.json"]
    monkeypatch.setattr(S, "_write_row", real_write)

    res = S.run_study(out, tiny_dataset, grid="smoke", progress=False, log=None)
    # resumed: the CAL1s and seed 0's chains were not trained again (the interrupted one comes from the cache)
    assert not any(t.startswith("seed0/") for t in res.trained)
    assert sorted(res.trained) == ["seed1/hybrid__4/CAL2", "seed1/random__4/CAL2"]
    t = res.table
    assert len(t) == 2 * (1 + 2)  # per seed: gt1_only + 2 strategies x 1 budget
    r0 = t[(t["seed"] == 0) & (t["strategy"] != "gt1_only")].set_index("strategy")
    assert not r0.at["random", "reused"] and r0.at["hybrid", "reused"]  # hybrid was the interrupted run
    sel = t[t["strategy"] != "gt1_only"]
    assert (sel["images"] == 4).all() and (sel["boxes"] >= 0).all() and (sel["labelling_s"] > 0).all()
    assert sel["mAP50"].between(0, 1).all() and sel["conf"].between(0, 1).all()
    # seeds differ: own split, own draws
    assert (out / "seed0" / "chains" / "hybrid__4" / "runs" / "CAL2" / "weights" / "best.pt").is_file()
    s0 = json.loads((out / "seed0" / "workspace.json").read_text())
    s1 = json.loads((out / "seed1" / "workspace.json").read_text())
    assert s0["seed"] == 0 and s1["seed"] == 1
    assert (out / "seed0" / "manifest.csv").read_text() != (out / "seed1" / "manifest.csv").read_text()
    assert t.set_index(["strategy", "seed"]).loc[("random", 0), "selection_sha"] != \
        t.set_index(["strategy", "seed"]).loc[("random", 1), "selection_sha"]
    for f in ("results.csv", "summary.csv", "verdicts.csv", "savings.csv", "report.md"):
        assert (out / f).stat().st_size > 0, f
    for name in ("study_curves_images", "study_curves_seconds", "study_paired_diff"):
        for ext in ("png", "pdf", "svg"):
            assert (out / "figures" / f"{name}.{ext}").stat().st_size > 1000
    rep = (out / "report.md").read_text()
    assert "95 %" in rep and "hybrid" in rep and "verdict" in rep.lower()
    assert "## Round by round: paired differences to random, per image and per labelling second" in rep
    assert "| hybrid - random, per image | hybrid - random, equal seconds |" in rep
    v = pd.read_csv(out / "verdicts.csv")
    assert set(v["verdict"]) <= {"better", "worse", "no detectable difference", "too few seeds"}

    # a finished study is never retrained: a third call trains nothing and gives the same table
    again = S.run_study(out, tiny_dataset, grid="smoke", progress=False, log=None)
    assert again.trained == []
    pd.testing.assert_frame_equal(again.table, res.table)


@pytest.mark.slow
def test_a_test_set_added_to_a_finished_study_is_evaluated_without_retraining(tiny_dataset, tmp_path):
    """grid.test > 0 on a study finished without TEST: every row's model is evaluated on the TEST images (no training,
    VAL1 figures unchanged), the TEST figures equal those of a study that had TEST from the start, and the variance
    split (training vs evaluation noise) is written."""
    kw = dict(grid="smoke", seeds=[0, 1], strategies=["random", "hybrid"], image_size=64, progress=False, log=None)
    first = S.run_study(tmp_path / "st", tiny_dataset, **kw)
    assert first.table["test_mAP50"].isna().all()
    second = S.run_study(tmp_path / "st", tiny_dataset, test=12, **kw)
    t = second.table
    assert second.trained == [] and t["test_mAP50"].between(0, 1).all()
    rows = [json.loads(p.read_text()) for p in (tmp_path / "st" / "results").glob("*.json")]
    assert len(rows) == 6 and all(r["test_n_images"] == 12 for r in rows)
    pd.testing.assert_series_equal(t["mAP50"], first.table["mAP50"])
    assert len(list((tmp_path / "st" / "predictions").glob("*.npz"))) == len(t) == 2 * 3
    var = pd.read_csv(tmp_path / "st" / "variance.csv")
    assert list(var["strategy"]) == ["hybrid"] and var.at[0, "n_seeds"] == 2 and var.at[0, "evaluation"] >= 0
    assert var.at[0, "training"] == pytest.approx(max(var.at[0, "total"] - var.at[0, "evaluation"], 0))
    assert "Where the variance" in (tmp_path / "st" / "report.md").read_text()
    fresh = S.run_study(tmp_path / "st2", tiny_dataset, test=12, **kw)  # TEST from the start: the same figures
    pd.testing.assert_series_equal(fresh.table["test_mAP50"], t["test_mAP50"])
    assert S.run_study(tmp_path / "st", tiny_dataset, test=12, **kw).trained == []


@pytest.mark.slow
def test_cli_study_smoke(tiny_dataset, tmp_path, capsys):
    from alnb.apps import cli

    out = tmp_path / "st"
    assert cli.main(["study", "--data", str(tiny_dataset), "--out", str(out), "--grid", "smoke", "--estimate"]) == 0
    assert "training run(s) to do" in capsys.readouterr().out
    assert cli.main(["study", "--data", str(tiny_dataset), "--out", str(out), "--grid", "smoke", "--seeds", "0",
                     "--strategies", "random", "study_rule", "--budgets", "3"]) == 0
    cap = capsys.readouterr()
    text = cap.out
    assert "report:" in text and (out / "results.csv").is_file()
    assert "Epoch" not in text + cap.err and "Epoch" in (out / "logs" / "seed0__CAL1.log").read_text()
    assert (out / "logs" / "seed0__study_rule__3.log").is_file()
    t = pd.read_csv(out / "results.csv")
    assert set(t["strategy"]) == {"gt1_only", "random", "study_rule"} and (t.loc[t["budget"] == 3, "images"] == 3).all()


# ------------------------------------------------------------------------------------------- notebook key numbers
def run_notebooks_02_to_05(tiny_dataset, base) -> dict:
    """Notebooks 02 -> 05 on the tiny dataset, seeded, smoke profile; returns {name: key numbers}."""
    from alnb.loop import pipeline
    from alnb.ui.notebooks import read_key_numbers, run_notebook

    ws = pipeline.setup(base / "ws", tiny_dataset, n_val=10, n_gt1=10, seed=0)
    pipeline.train_and_evaluate(ws, "CAL1", ["GT1"], "smoke", seed=0)
    params = {"02_autolabel": {"T": 4, "conf": 0.001, "n_grid": 4},  # a 1-epoch CAL1: low scores
              "03_select_gt2": {"profile": "smoke", "interactive": False, "n_thumbs": 4},
              "04_random_control": {"profile": "smoke"}}
    out = {}
    for name, p in params.items():
        out[name] = read_key_numbers(run_notebook(name, base / "executed", {"workspace": str(ws.root), **p}))
    out["05_strategies"] = read_key_numbers(run_notebook("05_strategies", base / "executed", {
        "study_dir": str(base / "study"), "data_dir": str(tiny_dataset), "grid": "smoke", "seeds": [0, 1]}))
    return out


# Expected key numbers of the seeded smoke run above (tiny generated data, 1-epoch models: the numbers are small but
# fixed; same seed -> same split, models, scores and selections on CPU).  A change in scoring, selection or training
# moves them: update them only with a reason.
EXPECTED = {  # updated for channels-last CPU training (issue 18: smoke/quick train in the channels-last layout,
    # which changes float rounding; the numbers of two runs of the same code stay identical)
    "02_autolabel": {"n_pool": 20, "n_failed": 0, "n_flagged": 12, "t_medium": 0.8930, "t_hard": 0.9247,
                     "detection_uncertainty_median": 0.7429, "abs_spearman_score_candidates": 0.313,
                     "spearman_errors_hybrid": 0.249, "spearman_errors_entropy": 0.470,
                     "spearman_errors_least_confidence": -0.022, "box_auroc_hybrid": 0.689,
                     # every non-failed image of this tiny model has an error: image AUROC undefined (null), not 0.5
                     "auroc_hybrid": None},
    "03_select_gt2": {"gt2_size": 12, "n_easy": 8, "n_medium": 7, "n_hard": 5, "n_failed": 0, "mAP50_CAL2": 0.1807,
                      "boost_CAL2": 1.324},
    # each model at its own operating point (notebooks 03/04: conf = None).  The verdict weighs per-class recall /
    # precision too (issue 21), as one measure, and a one-seed difference within the measured noise is a tie (issue
    # 36): the same models as before (mAP50 +0.014, boost +0.06x for CAL2, inside the noise) now read as no clear
    # difference
    "04_random_control": {"control_size": 12, "overlap_with_gt2": 8, "verdict": "no clear difference",
                          "mAP50_CAL1": 0.1436, "mAP50_CAL2": 0.1807, "mAP50_Control": 0.1668,
                          "boost_CAL1": 1.020, "boost_CAL2": 1.324, "boost_Control": 1.264},
    "05_strategies": {"n_runs": 6, "n_seeds": 2, "verdict_hybrid_4": "no detectable difference",
                      "mAP50_gt1_only_0": 0.0718, "mAP50_random_4": 0.0916, "mAP50_hybrid_4": 0.0668},
}
TOL = {"default": 0.02, "mAP": 0.02}  # absolute tolerances (CPU threads may change float rounding slightly)


@pytest.mark.slow
def test_notebooks_record_key_numbers_that_match_a_seeded_run(tiny_dataset, tmp_path):
    got = run_notebooks_02_to_05(tiny_dataset, tmp_path)
    for nb, expect in EXPECTED.items():
        every = json.dumps(got[nb], sort_keys=True)  # shown on failure: the numbers to review (and, with a reason,
        for key, value in expect.items():  # to copy into EXPECTED)
            assert key in got[nb], (nb, key, every)
            if isinstance(value, (str, bool, int)) or value is None:
                assert got[nb][key] == value, (nb, key, got[nb][key], every)
            else:
                tol = TOL["mAP"] if "mAP" in key else TOL["default"]
                assert got[nb][key] == pytest.approx(value, abs=tol), (nb, key, got[nb][key], every)
