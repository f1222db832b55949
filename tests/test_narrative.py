"""Notebook endings and narrative sentences built from results, the key-number record, and the check that notebook
markdown quotes no figure its outputs do not show -- on hand-made dicts and notebooks."""

from __future__ import annotations

import json

import pandas as pd

from alnb.ui import narrative
from alnb.ui import notebooks


def _nb(markdown: list, outputs: list) -> dict:
    """A notebook with one markdown cell per text and one code cell whose outputs are ``outputs``."""
    return {"cells": [{"cell_type": "markdown", "metadata": {}, "source": m} for m in markdown]
            + [{"cell_type": "code", "metadata": {}, "source": "", "outputs": outputs, "execution_count": 1}]}


def test_prose_numbers_finds_decimals_and_percentages_outside_code():
    nb = _nb(["AUROC 0.84 and |Spearman| 0.78; about 60 % flagged; 12.3% of boxes", "`T=0.5` and ```\n0.9\n``` "
              "and [a link](figures/x_0.5.png), 3 most uncertain, T=20"], [])
    assert [n for _, n in notebooks.prose_numbers(nb)] == ["0.84", "0.78", "60 %", "12.3%"]


def test_unbacked_prose_numbers_fails_on_a_planted_mismatch():
    out = [{"output_type": "stream", "name": "stdout", "text": ["hybrid 0.820 (0.663)\n"]},
           {"output_type": "display_data", "metadata": {}, "data": {"text/markdown": "60 % of the POOL flagged"}}]
    assert notebooks.unbacked_prose_numbers(_nb(["the score: AUROC 0.820, 60 % flagged"], out)) == []
    planted = _nb(["the score: AUROC 0.84 (|Spearman| 0.663), 60 % flagged, 0.82 rounded"], out)
    # 0.84 is not shown anywhere; 0.82 is not 0.820 (a figure must be quoted as shown); 0.663 and 60 % are shown
    assert notebooks.unbacked_prose_numbers(planted) == [(0, "0.84"), (0, "0.82")]


def test_key_numbers_are_a_rounded_table_with_the_exact_values_in_metadata(tmp_path, capsys):
    nums = {"n_pool": 24, "t_medium": 0.89301234, "auroc": float("nan"), "verdict": "mixed", "seconds": 1234.56}
    got = notebooks.record_key_numbers(nums, show=["n_pool", "t_medium", "auroc", "seconds"])  # no IPython here
    assert got == {**nums, "auroc": None}
    printed = capsys.readouterr().out
    assert "| t_medium | 0.893 |" in printed and "| auroc | n/a |" in printed and "| seconds | 1,235 |" in printed
    assert "verdict" not in printed and notebooks.KEY_NUMBERS_MARK not in printed
    # what an executed notebook keeps: the table for people, the exact numbers in the output's metadata
    md = notebooks.key_numbers_markdown(got)
    nb = _nb([], [{"output_type": "display_data", "data": {"text/markdown": md, "text/plain": md},
                   "metadata": {notebooks.KEY_NUMBERS_META: got}}])
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    assert notebooks.read_key_numbers(path) == got
    # notebooks executed before: the printed line is still read
    old = _nb([], [{"output_type": "stream", "name": "stdout",
                    "text": [f"{notebooks.KEY_NUMBERS_MARK} {json.dumps({'n_pool': 3})}\n"]}])
    path.write_text(json.dumps(old))
    assert notebooks.read_key_numbers(path) == {"n_pool": 3}


def _dve(au_h, rho_h, au_cv, rho_cv, rates):
    return {"strategies": {"hybrid": {"auroc": au_h, "abs_spearman_candidates": rho_h},
                           "count_variance": {"auroc": au_cv, "abs_spearman_candidates": rho_cv}},
            "tiers": {k: {"n": 10, "error_rate": v} for k, v in rates.items()}}


def test_score_choice_says_what_this_run_measured():
    text = narrative.score_choice(_dve(0.820, 0.663, 0.837, 0.785,
                                       {"easy": 0.25, "medium": 0.4, "hard": 0.6, "failed": 0.195}))
    assert "AUROC 0.820" in text and "strongly (|Spearman| 0.663)" in text  # 0.663 >= STRONG_RHO: not "does not grow"
    assert "`count_variance` AUROC 0.837 at |Spearman| 0.785" in text and "much of their lead is the count" in text
    assert "the tiers order the error rate" in text and "0.20, below the easy tier's" in text
    weak = narrative.score_choice(_dve(0.72, 0.55, 0.84, 0.98, {"easy": 0.5, "medium": 0.4, "hard": 0.6}))
    assert "moderately (|Spearman| 0.550)" in weak and "do *not* order" in weak
    flat = narrative.score_choice(_dve(0.7, 0.9, 0.6, 0.5, {"easy": 1.0, "medium": 1.0, "hard": 1.0}))
    assert "the same in every tier" in flat and "order the error rate" not in flat
    same = narrative.score_choice(_dve(0.7, 0.9, 0.6, 0.5, {}))
    assert "at least as closely as they do" in same
    assert "not measurable" in narrative.score_choice(_dve(float("nan"), 0.3, 0.6, 0.5, {}))
    assert "cannot be measured" in narrative.score_choice(None)


def test_score_tables_name_every_column():
    dve = {"strategies": {"hybrid": {"column": "score", "auroc": 0.8, "spearman_errors": 0.3,
                                     "auroc_all_images": 0.7, "abs_spearman_candidates": 0.5}},
           "aggregations": {"sum": {"auroc": 0.9, "spearman_errors": 0.5, "auroc_all_images": 0.8,
                                    "abs_spearman_candidates": 0.95}},
           "box_level": {"decision_unc": 0.73, "conf_std": 0.6}}
    t = narrative.score_quality_table(dve)
    assert list(t.columns) == list(narrative.SCORE_TABLE_COLUMNS.values())  # no auroc_all_images, no 'column'
    assert list(t.index) == ["hybrid", "hybrid aggregated by sum"] and t.loc["hybrid", "AUROC: has an error"] == 0.8
    b = narrative.box_level_table(dve)
    assert b.loc["conf_std", "what it is"].startswith("standard deviation") and "decision" in b.loc["decision_unc",
                                                                                                     "what it is"]


def test_endings_are_built_from_the_numbers():
    setup = {"sizes": {"VAL1": 12, "GT1": 12, "POOL": 24, "EXCLUDED": 0}, "mode": "simulation", "problems": 0,
             "class_counts": {"GT1": {"crack": 5, "pore": 2, "slag": 0}}, "not_in_GT1": ["slag"],
             "not_measurable_on_VAL1": []}
    text = narrative.after_setup(setup)
    assert text.startswith("**What this shows.** 48 usable images") and "**What to do next.** Run notebook 01" in text
    assert "rarest class is slag (0 boxes)" in text and narrative._n(1, "box") == "1 box"
    assert "slag has no GT1 box" in text

    ev = {"mAP50": 0.7654, "mAP50-95": 0.4281, "n_images": 178, "conf": 0.163,
          "overall": {"precision": 0.8, "recall": 0.67, "boost": 1.88, "manual_s": 9000.0, "assisted_s": 1500.0},
          "per_class": [{"class": "crack", "instances": 30, "measurable": True, "recall": 0.67},
                        {"class": "pore", "instances": 90, "measurable": True, "recall": 0.0},
                        {"class": "slag", "instances": 0, "measurable": False, "recall": None}],
          "not_measurable": ["slag"]}
    text = narrative.after_training(ev)
    assert "mAP50 0.765 and mAP50-95 0.428" in text and "find 67% of the boxes" in text
    assert "take 25 min instead of 2.5 h" in text and "from pore 0.00 (90 instances) to crack 0.67" in text
    assert "finds no pore at all" in text and "Not measurable on VAL1 (no instance): slag" in text

    scores = pd.DataFrame({"stem": list("abcd")})
    text = narrative.after_scoring(scores, {"easy": 1, "medium": 1, "hard": 1, "failed": 1},
                                   _dve(0.8, 0.3, 0.9, 0.9, {}))
    assert "3 (75 %) are flagged" in text and "AUROC 0.800" in text and "Notebook 03" in text

    summ = pd.DataFrame({"model": ["CAL1", "CAL2"], "mAP50": [0.70, 0.72]})
    sel = {"rule": "study: medium + hard + failed", "counts": {"easy": 10, "medium": 5, "hard": 3, "failed": 2}}
    facts = {"images": 10, "tiers": {"easy": 0, "medium": 5, "hard": 3, "failed": 2}, "assisted_h": 0.5,
             "predicted_h": 0.4}
    text = narrative.after_selection(sel, facts, summ, {"mAP50": 0.064})
    assert "GT2 holds 10 images" in text and "medium 5, hard 3, failed 2" in text and "took 30 min" in text
    assert "(+0.020, within the noise measured for this setup, ±0.064)" in text and "notebook 04" in text

    ver = {"outcome": "no clear difference"}
    both = {"GT2": {"assisted_h": 1.53}, "Control": {"assisted_h": 1.2}}
    text = narrative.after_comparison(ver, both)
    assert "neither set trained a clearly better model" in text and "GT2 took 1.5 h" in text
    assert "Control's 1.2 h (more for the active set" in text and "notebook 05" in text

    v = pd.DataFrame([{"strategy": "hybrid", "budget": "4", "round": 1, "metric": "mAP50", "x": "images",
                       "n_seeds": 2, "mean_diff": -0.025, "lo": -0.3, "hi": 0.25, "verdict": "no detectable difference",
                       "mde": 0.4}])
    text = narrative.after_study(v)
    assert "hybrid (4): no detectable difference, mean difference -0.025 mAP50 over 2 seeds" in text
    assert "(95% intervals)" in text and "random selection is the safe default" in text

    table = pd.DataFrame([{"chain": "CAL", "round": 3, "model": "CAL3", "images": 28.0, "labelling h": 0.02,
                           "mAP50": 0.2}, {"chain": "Control", "round": 3, "model": "Control3", "images": 28.0,
                                           "labelling h": 1.25, "mAP50": 0.25}])
    text = narrative.after_round(table, [{"round": 3, "a": "CAL3", "b": "Control3", "outcome": "mixed"}], 3)
    assert "Round 3 (CAL3 vs Control3): the measures disagree" in text and "1 min of assisted" in text
    assert "1.2 h; mAP50 0.200 vs 0.250" in text and "`round = 4`" in text


def test_profile_text_is_not_a_repr():
    from alnb.model.train import get_profile

    text = narrative.profile_text(get_profile("smoke"))
    assert text.startswith("smoke profile: model ") and "Profile(" not in text and "epochs" in text


def test_profile_text_names_the_round_recipe():
    from alnb.model.train import get_profile

    assert "round models (CAL2, Control, ...): finetune, 10 epochs from the previous round's model" in \
        narrative.profile_text(get_profile("quick", round_recipe="finetune"))
    assert "round models (CAL2, Control, ...): fresh, 25 epochs from the start, as CAL1" in \
        narrative.profile_text(get_profile("quick", round_recipe="fresh"))
    assert "round models (CAL2, Control, ...): fresh, 100 epochs" in narrative.profile_text(get_profile("paper"))
