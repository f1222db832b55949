"""GT2 rules, budgets, the random control and commits, on hand-made score tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alnb.loop import selection as sel
from alnb.core.workspace import has_tag


def table():
    # stem, score, failed
    return pd.DataFrame({
        "stem": ["a", "b", "c", "d", "e", "f", "g", "h"],
        "score": [0.10, 0.20, 0.35, 0.50, 0.70, 0.90, np.nan, 0.05],
        "failed": [False, False, False, False, False, False, True, True],
    })


def test_categories_and_counts():
    cat = sel.categorise(table(), 0.3, 0.6)
    assert list(cat) == ["easy", "easy", "medium", "medium", "hard", "hard", "failed", "failed"]
    assert sel.tier_counts(table(), 0.3, 0.6) == {"easy": 2, "medium": 2, "hard": 2, "failed": 2}
    # boundaries: score == t_medium is medium, score == t_hard is hard
    assert sel.tier_counts(table(), 0.35, 0.7) == {"easy": 2, "medium": 2, "hard": 2, "failed": 2}
    assert sel.tier_counts(table(), 0.36, 0.71) == {"easy": 3, "medium": 2, "hard": 1, "failed": 2}


def test_study_rule_is_medium_hard_failed_in_order():
    got = sel.study_rule(table(), 0.3, 0.6)
    assert got == ["g", "h", "f", "e", "d", "c"]  # failed first (by stem), then hardest first
    assert sel.study_rule(table(), 1.0, 1.0) == ["g", "h"]  # only failed left
    with pytest.raises(sel.SelectionError, match="above"):
        sel.study_rule(table(), 0.7, 0.3)


def test_budgeted_failed_first_then_score():
    assert sel.budgeted(table(), 3) == ["g", "h", "f"]
    assert sel.budgeted(table(), 0) == []
    assert sel.budgeted(table(), 8)[-1] == "a"
    with pytest.raises(sel.SelectionError, match="larger"):
        sel.budgeted(table(), 9)


def test_string_failed_column_and_ties():
    t = table().assign(failed=["False"] * 6 + ["True", "1"], score=[0.5] * 6 + [np.nan, 0.05])
    assert sel.budgeted(t, 4) == ["g", "h", "a", "b"]  # ties broken by stem


def manifest():
    return pd.DataFrame({"stem": list("abcdefgh") + ["v1", "g1"],
                         "tags": ["POOL"] * 8 + ["VAL1", "GT1"]})


def test_eligible_excludes_val1_gt1():
    t = pd.concat([table(), pd.DataFrame({"stem": ["v1", "g1"], "score": [9.0, 9.0], "failed": [True, False]})])
    got = sel.study_rule(t, 0.3, 0.6, manifest=manifest())
    assert "v1" not in got and "g1" not in got and len(got) == 6
    assert sel.budgeted(t, 2, manifest=manifest()) == ["g", "h"]
    assert "v1" in sel.budgeted(t, 2)  # without a manifest the table is taken as it is


def test_random_control_reproducible_and_pool_only():
    m = manifest()
    a = sel.random_control(m, 4, seed=7)
    b = sel.random_control(m.sample(frac=1, random_state=1), 4, seed=7)  # row order does not matter
    assert a == b and len(a) == 4 and len(set(a)) == 4
    assert set(a) <= set("abcdefgh")
    others = {tuple(sel.random_control(m, 4, seed=s)) for s in range(10)}
    assert len(others) > 1  # the seed matters
    assert sel.random_control(list("hgfedcba"), 8, seed=0) == list("abcdefgh")
    with pytest.raises(sel.SelectionError, match="larger"):
        sel.random_control(m, 9)


def test_overlap():
    o = sel.overlap(["a", "b", "c"], ["c", "d"])
    assert o == {"only_a": 2, "both": 1, "only_b": 1, "jaccard": 0.25}


def scores_for(ws, seed=0):
    pool = ws.stems("POOL")
    rng = np.random.default_rng(seed)
    s = pd.DataFrame({"stem": pool, "score": rng.random(len(pool)), "failed": False})
    s.loc[0, "failed"] = True
    return s


def test_commit_replaces_only_gt2(tiny_workspace):
    ws = tiny_workspace
    s = scores_for(ws)
    pick = sel.study_rule(s, 0.5, 0.8, manifest=ws.manifest())
    m = sel.commit(ws, pick, "GT2", info={"rule": "test"})
    assert sorted(ws.stems("GT2")) == sorted(pick)
    assert ws.load_json("selection")["n"] == len(pick)
    assert (ws.root / "lists" / "GT2.txt").read_text().count("\n") == len(pick)
    before = ws.manifest()
    again = sel.study_rule(s, 0.9, 0.95, manifest=m)
    sel.commit(ws, again, "GT2")
    after = ws.manifest()
    assert sorted(ws.stems("GT2")) == sorted(again) and len(again) < len(pick)
    # other tags untouched
    for t in ("VAL1", "GT1", "POOL"):
        assert (has_tag(before, t) == has_tag(after, t)).all()
    with pytest.raises(sel.SelectionError, match="POOL only"):
        sel.commit(ws, ws.stems("VAL1")[:1], "GT2")


def test_label_selection_simulation_reveals_exactly_the_selection(tiny_workspace):
    ws = tiny_workspace
    pick = ws.stems("POOL")[:5]
    sel.commit(ws, pick, "GT2")
    st = sel.label_selection(ws, "GT2")
    assert st["labelled"] == 5 and st["waiting"] == []
    m = ws.manifest().set_index("stem")
    assert set(m.index[m["label_source"] == "oracle"]) == set(pick)
    assert (m.loc[ws.stems("POOL")[5:], "label_source"] == "none").all()
