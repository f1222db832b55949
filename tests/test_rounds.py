"""Rounds 3, 4, ...: GT<k> chosen with CAL<k-1>'s scores, the control chain, nothing selected twice, resumable."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from alnb.apps import headless
from alnb.loop import pipeline
from alnb.core.workspace import (cal_name, control_name, control_tag, gt_tag, join_tags, model_round, tag_round,
                            train_tags)

pytestmark = pytest.mark.slow


def test_round_names():
    assert [gt_tag(k) for k in (2, 3, 4)] == ["GT2", "GT3", "GT4"]
    assert [control_tag(k) for k in (2, 3)] == ["CONTROL", "CONTROL3"]  # round 2 keeps the seed's names
    assert [control_name(k) for k in (2, 3)] == ["Control", "Control3"] and cal_name(3) == "CAL3"
    assert tag_round("CONTROL") == ("control", 2) and tag_round("GT1") is None and tag_round("CONTROL2") is None
    assert model_round("Control3") == ("control", 3) and model_round("CAL1") == ("cal", 1)
    assert train_tags("cal", 3) == ["GT1", "GT2", "GT3"] and train_tags("control", 3) == ["GT1", "CONTROL", "CONTROL3"]
    assert join_tags(["CONTROL3", "GT3", "POOL", "GT2", "CONTROL"]) == "POOL;GT2;CONTROL;GT3;CONTROL3"
    with pytest.raises(ValueError):
        gt_tag(1)


@pytest.fixture(scope="module")
def three_rounds(tiny_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("rounds") / "ws"
    res = headless.run(tiny_dataset, root, profile="smoke", T=4, n_val=10, n_gt1=10, rule="budget", budget=4,
                       rounds=3, log=None)
    return res


def test_three_rounds_never_select_twice_and_use_the_previous_model(three_rounds):
    from alnb.core.workspace import Workspace

    ws = Workspace.open(three_rounds["workspace"])
    held = set(ws.stems("VAL1", "GT1"))
    gts = [set(ws.stems(gt_tag(k))) for k in (2, 3)]
    ctls = [set(ws.stems(control_tag(k))) for k in (2, 3)]
    assert all(len(g) == 4 for g in gts) and all(len(c) == 4 for c in ctls)
    assert not gts[0] & gts[1] and not ctls[0] & ctls[1]  # no image selected twice within a chain
    assert not (set().union(*gts, *ctls) & held)  # VAL1 and GT1 never enter a selection
    for k in (2, 3):
        rec = ws.load_json("selection" if k == 2 else f"gt{k}")
        assert rec["scores_model"] == cal_name(k - 1) and rec["round"] == k
        scores = pd.read_csv(ws.root / "scores" / cal_name(k - 1) / "scores.csv", dtype={"stem": str})
        assert set(scores["model"]) == {cal_name(k - 1)}  # the scores GT<k> was chosen from came from CAL<k-1>
        assert set(ws.stems(gt_tag(k))) <= set(scores["stem"])
    cal2_scored = set(pd.read_csv(ws.root / "scores" / "CAL2" / "scores.csv", dtype={"stem": str})["stem"])
    assert not cal2_scored & (gts[0] | held)  # CAL2 scores only what is still unlabelled in its chain
    for name, start in (("CAL3", "CAL2"), ("Control3", "Control")):  # each chain starts from its previous model
        info = json.loads((ws.root / "runs" / name / "alnb_run.json").read_text())
        assert info["model"].endswith(f"runs/{start}/weights/best.pt") and info["tags"] == train_tags(
            "cal" if name.startswith("CAL") else "control", 3)
    r3 = ws.load_json("round_3")
    assert r3["chains"]["cal"]["cumulative_images"] == 8 and r3["chains"]["control"]["prelabels"] == "Control"
    assert r3["chains"]["cal"]["cumulative_assisted_s"] > ws.load_json("round_2")["chains"]["cal"]["new_assisted_s"]
    st = pipeline.loop_status(ws)
    assert st["rounds"] == 3 and st["next"].startswith("done")


def test_interrupted_round_3_continues_without_retraining(three_rounds, tmp_path, monkeypatch):
    """Interrupt round 3 (while CAL3 trains); the rerun trains nothing of rounds 1-2 again."""
    import shutil

    from alnb.core.workspace import Workspace

    src = Workspace.open(three_rounds["workspace"])
    root = tmp_path / "ws"
    shutil.copytree(src.root, root, symlinks=True)
    for name in ("CAL3", "Control3"):
        shutil.rmtree(root / "runs" / name)
    finished = {n: json.loads((root / "runs" / n / "alnb_run.json").read_text())["finished"]
                for n in ("CAL1", "CAL2", "Control")}
    real = pipeline.train_and_evaluate.__wrapped__ if hasattr(pipeline.train_and_evaluate, "__wrapped__") else None
    calls = []
    orig = pipeline.train_and_evaluate

    def stop_at_cal3(ws, name, *a, **k):
        calls.append(name)
        if name == "CAL3":
            raise KeyboardInterrupt
        return orig(ws, name, *a, **k)

    monkeypatch.setattr(pipeline, "train_and_evaluate", stop_at_cal3)
    kw = dict(profile="smoke", T=4, n_val=10, n_gt1=10, rule="budget", budget=4, rounds=3, log=None)
    with pytest.raises(KeyboardInterrupt):
        headless.run(src.dataset_root, root, **kw)
    monkeypatch.setattr(pipeline, "train_and_evaluate", orig)
    out = headless.run(src.dataset_root, root, **kw)
    for n, t in finished.items():  # rounds 1-2: reused (the cache), not trained again
        assert json.loads((root / "runs" / n / "alnb_run.json").read_text())["finished"] == t
    ws = Workspace.open(out["workspace"])
    assert set(ws.stems("GT3")) == set(src.stems("GT3")) and (root / "runs" / "Control3" / "alnb_run.json").is_file()
    assert real is None or real


def test_default_is_two_rounds(tiny_dataset, tmp_path):
    res = headless.run(tiny_dataset, tmp_path / "ws", profile="smoke", T=4, n_val=10, n_gt1=10, rule="budget",
                       budget=4, log=None)
    from alnb.core.workspace import Workspace

    ws = Workspace.open(res["workspace"])
    assert ws.selection_tags() == ["GT2", "CONTROL"] and not (ws.root / "runs" / "CAL3").exists()


def test_report_shows_both_chains_round_by_round(three_rounds):
    from alnb.ui import report
    from alnb.core.workspace import Workspace

    ws = Workspace.open(three_rounds["workspace"])
    t = report.rounds_table(ws)
    cal, ctl = t[t["chain"] == "CAL"], t[t["chain"] == "Control"]
    assert list(cal["model"]) == ["CAL1", "CAL2", "CAL3"] and list(ctl["model"]) == ["CAL1", "Control", "Control3"]
    assert list(cal["images"]) == [10, 14, 18] and list(ctl["images"]) == [10, 14, 18]  # GT1 + 4 per round
    for chain, arm in ((cal, "cal"), (ctl, "control")):
        h = list(chain["labelling h"])
        assert h[0] == 0 and h[1] <= h[2]
        assert h[2] == pytest.approx(ws.load_json("round_3")["chains"][arm]["cumulative_assisted_s"] / 3600)
        for _, r in chain.iterrows():  # each measure is the model's own evaluation on VAL1
            ev = ws.load_json(f"eval_{r['model']}")
            assert r["mAP50"] == pytest.approx(ev["mAP50"]) and r["boost"] == pytest.approx(ev["overall"]["boost"])
    vs = report.round_verdicts(ws)
    assert [(v["round"], v["a"], v["b"]) for v in vs] == [(2, "CAL2", "Control"), (3, "CAL3", "Control3")]
    assert all(v["outcome"] in report.OUTCOMES for v in vs)
    text = (ws.root / "report.md").read_text()
    assert "## Round by round" in text
    section = text.split("## Round by round")[1].split("## Figures")[0]
    assert all(m in section for m in ("CAL3", "Control3", "round 3 (CAL3 vs Control3)", "rounds_curves.png"))
    assert (ws.figures_dir / "rounds_curves.png").is_file()


def test_review_plan_per_round_changes_no_selection_or_model(three_rounds, tmp_path):
    """``alnb run --review-plan``: round 3 recomputes the review plan with CAL2 right after it scored the POOL; GT3,
    CONTROL3 and the retrained CAL3 / Control3 are the same as without it, and the report lists the review hours."""
    import shutil

    from alnb.core.workspace import Workspace

    src = Workspace.open(three_rounds["workspace"])
    root = tmp_path / "ws"
    shutil.copytree(src.root, root, symlinks=True)
    for name in ("CAL3", "Control3"):
        shutil.rmtree(root / "runs" / name)
    out = headless.run(src.dataset_root, root, profile="smoke", T=4, n_val=10, n_gt1=10, rule="budget", budget=4,
                       rounds=3, log=None, review_plan=True)
    ws = Workspace.open(out["workspace"])
    for tag in ("GT2", "CONTROL", "GT3", "CONTROL3"):
        assert sorted(ws.stems(tag)) == sorted(src.stems(tag)), tag
    for name in ("CAL3", "Control3"):  # trained again after the plan step: the same model, the same numbers
        assert ws.load_json(f"eval_{name}")["mAP50"] == src.load_json(f"eval_{name}")["mAP50"]
        assert ws.load_json(f"eval_{name}")["overall"] == src.load_json(f"eval_{name}")["overall"]
    rounds = ws.load_json("review_plan_rounds")
    plan = pd.read_csv(ws.root / "review_plan.csv", dtype={"stem": str})
    m = ws.manifest()  # the rerun's POOL: every selection already labelled (oracle), the rest machine-labelled
    unlabelled = {s for s, t, ls in zip(m["stem"], m["tags"], m["label_source"])
                  if "POOL" in t.split(";") and ls not in ("human", "oracle")}
    assert list(rounds) == ["CAL1", "CAL2"] and set(plan["stem"]) == unlabelled and rounds["CAL2"]["n_images"] == len(plan)
    assert set(plan["model"]) == {"CAL2"}
    report = (ws.root / "report.md").read_text()
    assert "Review hours for the remaining POOL per model" in report
    assert f"| CAL2 | {len(plan)} | {rounds['CAL2']['review_all_h']:.2f} |" in report
    assert not (src.root / "review_plan.csv").exists()  # without the flag: no plan step
