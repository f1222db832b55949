"""Typed options and results (alnb.core.records): each options dataclass stands for its function's keywords (same
names, same defaults, the same call), a keyword beside ``options=`` is refused by name, and each result record reads
the same by attribute and by key and writes the same JSON as the dict it replaced."""

from __future__ import annotations

import dataclasses
import inspect
import json
from dataclasses import dataclass

import pandas as pd
import pytest

import alnb  # noqa: F401
from alnb.acquisition.scoring import ScoreOptions, score_pool
from alnb.apps import headless
from alnb.apps.headless import RunOptions, RunResult
from alnb.core.records import Options, Record, takes_options
from alnb.core.workspace import Workspace, atomic_write_json
from alnb.evaluation.step import EvalResult
from alnb.loop import pipeline
from alnb.loop.pipeline import LoopStatus, RoundResult, TrainEvalResult
from alnb.loop.study import StudyOptions, run_study

SHIPPED = alnb.__path__[0] + "/models/weld-defect-tiny.pt"


# ------------------------------------------------------------------------------------------------- the rule itself
@dataclass(frozen=True)
class _Opts(Options):
    a: int = 1
    b: str = "x"


@takes_options(_Opts)
def _f(ws, a: int = 1, *, b: str = "x", other=None, **extra):
    return {"ws": ws, "a": a, "b": b, "other": other, **extra}


def test_options_and_keywords_give_the_same_call():
    assert _f("w", options=_Opts(a=2, b="y"), other=3) == _f("w", 2, b="y", other=3) == _f("w", a=2, b="y", other=3)
    assert _f("w", options=_Opts()) == _f("w")
    assert "options" in inspect.signature(_f).parameters and _f.options_class is _Opts


@pytest.mark.parametrize("call", [lambda: _f("w", 5, options=_Opts()), lambda: _f("w", a=1, options=_Opts()),
                                  lambda: _f("w", b="x", options=_Opts(b="y"))])
def test_a_keyword_beside_options_is_refused_by_name(call):
    with pytest.raises(TypeError, match=r"(a|b) given both as keyword and in options="):
        call()


def test_options_of_another_kind_are_refused():
    with pytest.raises(TypeError, match="options= takes a _Opts"):
        _f("w", options={"a": 2})
    with pytest.raises(dataclasses.FrozenInstanceError):
        _Opts().a = 3  # frozen: dataclasses.replace(options, a=3) makes another
    assert dataclasses.replace(_Opts(b="y"), a=3) == _Opts(a=3, b="y")


@pytest.mark.parametrize("fn, cls", [(score_pool, ScoreOptions), (run_study, StudyOptions),
                                     (headless.run, RunOptions)])
def test_each_options_field_is_a_parameter_with_the_same_default(fn, cls):
    params = inspect.signature(fn).parameters
    assert fn.options_class is cls and params["options"].default is None
    for f in dataclasses.fields(cls):
        if f.name == "train_overrides" and cls is RunOptions:  # run's **train_overrides
            assert params["train_overrides"].kind is inspect.Parameter.VAR_KEYWORD and f.default is None
            continue
        assert f.name in params, f"{cls.__name__}.{f.name} is no parameter of {fn.__name__}"
        assert params[f.name].default == f.default, f"{cls.__name__}.{f.name}: default differs"


# ------------------------------------------------------------------------------------------------ the three options
def _scores_files(ws):
    return {f: (ws.root / f).read_bytes() for f in ("scores.csv", "detections.csv", "metrics/thresholds.json")}


def test_score_options_score_as_the_keywords(tiny_dataset, tmp_path):
    from alnb.model.mc import untrained_dropout_model

    model = untrained_dropout_model("yolov8n.yaml", imgsz=64, p=0.1, seed=1, cls_bias=-1.0)  # as tests/test_mc.py
    a, b = (Workspace.create(tmp_path / n, tiny_dataset, n_val=10, n_gt1=10, seed=0, progress=False) for n in "ab")
    kw = dict(T=3, conf=0.25, imgsz=64, batch=4, part_size=8, hard_share=0.3, progress=False)
    by_kw = score_pool(a, model=model, model_name="CAL1", **kw)
    by_opt = score_pool(b, model=model, model_name="CAL1", options=ScoreOptions(**kw))
    pd.testing.assert_frame_equal(by_kw, by_opt)
    assert _scores_files(a) == _scores_files(b) and len(by_kw) == 20
    with pytest.raises(TypeError, match="T given both"):  # refused before any work
        score_pool(b, model=model, T=4, options=ScoreOptions(**kw))


def test_study_options_estimate_as_the_keywords(tiny_dataset, tmp_path):
    kw = dict(grid="smoke", seeds=[0, 1], budgets=[4], log=None, progress=False)
    by_kw = run_study(tmp_path / "st", tiny_dataset, estimate_only=True, **kw)
    by_opt = run_study(tmp_path / "st", tiny_dataset, estimate_only=True, options=StudyOptions(**kw))
    assert by_kw == by_opt and by_kw["runs"] > 0
    assert by_kw != run_study(tmp_path / "st", tiny_dataset, estimate_only=True,
                              options=dataclasses.replace(StudyOptions(**kw), seeds=[0]))
    with pytest.raises(TypeError, match="grid given both"):
        run_study(tmp_path / "st", tiny_dataset, grid="smoke", options=StudyOptions(**kw))


class _Stop(Exception):
    pass


def test_run_options_reach_the_steps_as_the_keywords(tiny_dataset, tmp_path, monkeypatch):
    seen = []

    def first_training(ws, name, tags, profile, **kw):  # CAL1's training: stop there, remember the call
        seen.append((name, tags, profile, kw))
        raise _Stop

    monkeypatch.setattr(headless, "train_and_evaluate", first_training)
    kw = dict(profile="smoke", T=4, n_val=10, n_gt1=10, rule="budget", budget=4, rounds=3, log=None)
    with pytest.raises(_Stop):
        headless.run(tiny_dataset, tmp_path / "a", epochs=1, **kw)
    with pytest.raises(_Stop):
        headless.run(tiny_dataset, tmp_path / "b", options=RunOptions(**kw, train_overrides={"epochs": 1}))
    assert seen[0] == seen[1] and seen[0][3]["epochs"] == 1 and seen[0][2] == "smoke"
    a, b = Workspace.open(tmp_path / "a"), Workspace.open(tmp_path / "b")
    assert a.load_json("run_plan") == b.load_json("run_plan") and a.load_json("run_plan")["rounds"] == 3
    assert a.manifest()[["stem", "tags"]].equals(b.manifest()[["stem", "tags"]])
    with pytest.raises(TypeError, match="epochs given both"):  # a train override counts as one of the options
        headless.run(tiny_dataset, tmp_path / "c", epochs=2, options=RunOptions(train_overrides={"epochs": 1}))
    with pytest.raises(TypeError, match="rounds given both"):
        headless.run(tiny_dataset, tmp_path / "c", rounds=2, options=RunOptions(**kw))
    assert not (tmp_path / "c").exists()  # refused before any work
    with pytest.raises(ValueError, match="rounds=1"):  # the options' values are the run's
        headless.run(tiny_dataset, tmp_path / "c", options=RunOptions(rounds=1))


# ------------------------------------------------------------------------------------------------------ the results
def _same_by_attribute_and_key(rec: Record):
    d = rec.to_dict()
    assert list(rec) == list(d) and len(rec) == len(d) and dict(rec) == d and rec == d
    for f in dataclasses.fields(rec):
        key = rec.KEYS.get(f.name, f.name)
        if key in d:
            assert rec[key] is getattr(rec, f.name)
        else:
            assert f.name in rec.OPTIONAL and getattr(rec, f.name) is None
    with pytest.raises(TypeError):
        rec["new"] = 1  # read-only: a caller that adds keys builds {**rec.to_dict(), ...}
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(rec, dataclasses.fields(rec)[0].name, None)
    assert type(rec).from_dict(d) == rec


def test_eval_result_reads_by_attribute_and_key_and_writes_the_same_json(tiny_workspace, tmp_path):
    from alnb.evaluation.step import evaluate, per_class_frame

    ev = evaluate(tiny_workspace, SHIPPED, with_map=True)  # the shipped checkpoint: no training
    assert isinstance(ev, EvalResult)
    _same_by_attribute_and_key(ev)
    assert ev.map50 == ev["mAP50"] and ev.map50_95 is ev["mAP50-95"] and ev.overall is ev["overall"]
    assert "ultralytics_mAP50" not in ev and ev.get("ultralytics_mAP50") is None  # only with ultralytics_map=True
    assert len(per_class_frame(ev)) == len(tiny_workspace.names)
    saved = tiny_workspace.root / "metrics" / f"eval_{ev.name}.json"
    atomic_write_json(tmp_path / "rec.json", ev)
    atomic_write_json(tmp_path / "dict.json", ev.to_dict())
    assert (tmp_path / "rec.json").read_bytes() == (tmp_path / "dict.json").read_bytes() == saved.read_bytes()
    assert list(json.loads(saved.read_text())) == list(ev)  # the file's keys, in the file's order


def test_loop_status_reads_by_attribute_and_key(tiny_workspace, capsys):
    from alnb.apps import cli

    st = pipeline.loop_status(tiny_workspace)
    assert isinstance(st, LoopStatus)
    _same_by_attribute_and_key(st)
    assert st.next == st["next"] and st.next.startswith("round 1") and st.round == 1 and st.sets["VAL1"] == 10
    assert cli.main(["status", "--workspace", str(tiny_workspace.root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "forecast" in out and {k: v for k, v in out.items() if k != "forecast"} == json.loads(
        json.dumps(st.to_dict(), default=str))


def test_round_and_run_results_read_by_attribute_and_key():
    ev = {"mAP50": 0.5}
    te = TrainEvalResult(train="run", eval=ev)
    r = RoundResult(cal=te, control=TrainEvalResult(train="run2", eval=ev))
    for rec in (te, r, RunResult(workspace="w", report="r.md", figures="f", seconds=1.0)):
        _same_by_attribute_and_key(rec)
    assert r["cal"]["eval"]["mAP50"] == r.cal.eval["mAP50"] == 0.5 and r.control.train == "run2"
