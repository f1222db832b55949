"""Streaming, resumable scoring (alnb.acquisition.engines, alnb.acquisition.scoring.score_pool) and the Ray engine: an interrupted scoring
continues where it stopped and ends with the same files; Ray workers give the single-process numbers exactly."""

from __future__ import annotations

import time

import numpy as np
import pytest

import alnb  # noqa: F401
from alnb.apps import cli
from alnb.acquisition import engines
from alnb.acquisition import scoring
from alnb.model import mc as U
from alnb.core.workspace import Workspace

OUTPUTS = ["scores.csv", "detections.csv", "metrics/thresholds.json", "metrics/difficulty_vs_errors.json"]


def _model():
    """An untrained yolov8n with a dropout head whose class outputs pass the thresholds (as in tests/test_mc.py)."""
    y = U.untrained_dropout_model("yolov8n.yaml", imgsz=64, p=0.1, seed=1, cls_bias=-1.0)
    return y


@pytest.fixture(scope="module")
def model():
    return _model()


def _ws(dataset, root):
    return Workspace.create(root, dataset, n_val=10, n_gt1=10, seed=0, progress=False)


def _files(ws) -> dict:
    out = {f: (ws.root / f).read_bytes() for f in OUTPUTS}
    for p in sorted((ws.root / "autolabels" / "CAL1").glob("*.txt")):
        out[f"autolabels/{p.name}"] = p.read_bytes()
    with np.load(ws.root / scoring.EMBEDDINGS_FILE) as z:
        out["embeddings"] = (z["stems"].tolist(), z["embeddings"].tobytes())
    return out


def _assert_same_outputs(a, b):
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    for k in fa:
        assert fa[k] == fb[k], f"{k} differs"


KW = dict(T=4, conf=0.25, imgsz=64, model_name="CAL1", progress=False)


def test_interrupted_scoring_resumes_and_equals_uninterrupted(model, tiny_dataset, tmp_path, monkeypatch):
    ref = _ws(tiny_dataset, tmp_path / "ref")
    scoring.score_pool(ref, model=model, batch=8, part_size=5, **KW)
    n = len(ref.stems("POOL"))
    assert n == 20
    info = ref.load_json("mc_scoring")
    assert (info["n_scored"], info["n_reused"], info["engine"]) == (20, 0, "local")
    assert len(list((ref.root / "scoring" / info["scoring_key"]).glob("part-*.npz"))) == 4

    # Ctrl-C while the third of four parts is being scored, i.e. at 50 %
    ws = _ws(tiny_dataset, tmp_path / "ws")
    real = U.MCScorer.score
    seen = []

    def interrupted(self, images, progress=False):
        seen.append([s for s, _ in images])
        if len(seen) == 3:
            raise KeyboardInterrupt
        return real(self, images, progress)

    monkeypatch.setattr(U.MCScorer, "score", interrupted)
    with pytest.raises(KeyboardInterrupt):
        scoring.score_pool(ws, model=model, batch=3, part_size=5, **KW)
    assert not (ws.root / "scores.csv").exists()  # nothing pool-wide is written from half a pool
    parts = list((ws.root / "scoring").glob("*/part-*.npz"))
    assert len(parts) == 2 and not list((ws.root / "scoring").glob("*/.part-*"))  # no half-written part
    first_half = sorted(seen[0] + seen[1])

    # the rerun scores only the other half (in other batches: batch 2), then writes what the uninterrupted run wrote
    scored = []

    def counting(self, images, progress=False):
        scored.extend(s for s, _ in images)
        return real(self, images, progress)

    monkeypatch.setattr(U.MCScorer, "score", counting)
    scoring.score_pool(ws, model=model, batch=2, part_size=5, **KW)
    assert len(scored) == n // 2 and not set(scored) & set(first_half)
    assert sorted(scored + first_half) == ws.stems("POOL")
    info = ws.load_json("mc_scoring")
    assert (info["n_scored"], info["n_reused"]) == (10, 10)
    assert info["seconds"] > 0 and info["seconds_per_image"] > 0  # the whole pool's scoring time, both runs
    _assert_same_outputs(ws, ref)

    # a third run reuses everything; a damaged part is scored again (and kept aside), never trusted
    scored.clear()
    part = sorted((ws.root / "scoring").glob("*/part-*.npz"))[0]
    part.write_bytes(b"not an npz file")
    scoring.score_pool(ws, model=model, batch=8, part_size=5, **KW)
    assert len(scored) == 5 and part.with_suffix(".damaged").is_file()
    _assert_same_outputs(ws, ref)
    scored.clear()
    scoring.score_pool(ws, model=model, batch=8, part_size=5, **KW)
    assert scored == [] and ws.load_json("mc_scoring")["n_reused"] == 20
    _assert_same_outputs(ws, ref)

    # other settings (T) are another key: nothing is reused from the T=4 parts
    scoring.score_pool(ws, model=model, batch=8, part_size=5, **{**KW, "T": 3})
    assert len(scored) == 20 and len(list((ws.root / "scoring").glob("*/settings.json"))) == 2


def test_part_store_load_orders_rows_and_prefers_matching_paths(model, tiny_dataset, tmp_path):
    paths = sorted((tiny_dataset / "images").rglob("*.png"))[:6]
    items = [(p.stem, p) for p in paths]
    scorer = U.MCScorer(model, T=3, conf=0.25, imgsz=64)
    store = engines.PartStore(tmp_path, "k")
    store.write(scorer.score(items[3:]))
    store.write(scorer.score(items[:4]))  # items[3] twice
    whole = scorer.score(items)
    got = store.load(items[::-1])
    assert got.images["stem"].tolist() == [s for s, _ in items[::-1]]
    assert got.detections["stem"].drop_duplicates().tolist() == \
        [s for s, _ in items[::-1] if s in set(whole.detections["stem"])]
    d = whole.detections.set_index(["stem", "det"]).sort_index()
    np.testing.assert_array_equal(got.detections.set_index(["stem", "det"]).sort_index().to_numpy(), d.to_numpy())
    # an image whose file moved is not taken from a part made from the old path
    with pytest.raises(KeyError, match="no scoring part"):
        store.load([(items[0][0], tmp_path / "elsewhere.png")])
    assert set(store.done()) == {s for s, _ in items}


def test_cli_score_and_its_errors(tiny_dataset, tmp_path, capsys, monkeypatch):
    from alnb.model.pretrain import CHECKPOINT

    ws = _ws(tiny_dataset, tmp_path / "ws")
    args = ["score", "--workspace", str(ws.root), "--model", str(CHECKPOINT), "--T", "3", "--imgsz", "64",
            "--part-size", "8"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "scored 20 POOL image(s) with weld-defect-tiny (T=3, engine local): 20 now" in out
    assert (ws.root / "scores.csv").is_file()
    assert cli.main(args) == 0 and "0 now" in capsys.readouterr().out  # resumed: nothing left to score

    def no_ray():
        raise engines.EngineUnavailable("engine 'ray' needs Ray Data, which is not installed here. Install the "
                                        "optional extra: pip install -e \".[ray]\"")

    monkeypatch.setattr(engines, "_import_ray", no_ray)
    assert cli.main(args + ["--engine", "ray"]) == cli.EXIT_USER
    err = capsys.readouterr().err
    assert 'pip install -e ".[ray]"' in err and "Traceback" not in err
    assert cli.main(["score", "--workspace", str(tmp_path / "nope")]) == cli.EXIT_USER
    assert "not an alnb workspace" in capsys.readouterr().err
    assert cli.main(args + ["--T", "0"]) == cli.EXIT_USER
    assert "--T must be at least 1" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------------ Ray
@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance with 2 CPUs (module-wide: starting one costs seconds)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]' (CI installs it)")
    pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install -e '.[ray]'")
    import os

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": {"YOLO_OFFLINE": "1"}})
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Data's own settings
def test_ray_engine_equals_single_process(local_ray, model, tiny_dataset, tmp_path):
    ref = _ws(tiny_dataset, tmp_path / "ref")
    scoring.score_pool(ref, model=model, batch=8, **KW)
    ws = _ws(tiny_dataset, tmp_path / "ray")
    t0 = time.perf_counter()
    scoring.score_pool(ws, model=model, batch=4, engine="ray", workers=2, part_size=5, **KW)
    seconds = time.perf_counter() - t0
    info = ws.load_json("mc_scoring")
    assert (info["engine"], info["n_scored"]) == ("ray", 20)
    assert len(list((ws.root / "scoring" / info["scoring_key"]).glob("part-*.npz"))) == 4  # one part per task
    _assert_same_outputs(ws, ref)
    assert info["scoring_key"] == ref.load_json("mc_scoring")["scoring_key"]  # the same parts, wherever made
    print(f"ray scoring of 20 images with 2 workers: {seconds:.1f} s")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Data's own settings
def test_study_on_ray_equals_the_local_engine(local_ray, tiny_dataset, tmp_path):
    """A smoke study (1 thread per training) run as Ray tasks on the local 2-CPU instance writes the same row files as
    the local engine: same selections, same models, same numbers (only the timing fields differ)."""
    import json

    from alnb.loop import study as S

    kw = dict(grid="smoke", seeds=[0], strategies=["random", "hybrid"], rounds=2, threads=1, progress=False, log=None)
    loc = S.run_study(tmp_path / "local", tiny_dataset, **kw)
    t0 = time.perf_counter()
    ray_res = S.run_study(tmp_path / "ray", tiny_dataset, engine="ray", **kw)
    print(f"smoke study on Ray (2 CPUs, 1 thread per task): {time.perf_counter() - t0:.1f} s")
    timing = {"train_s", "reused"}
    a = sorted((tmp_path / "local" / "results").glob("*.json"))
    b = sorted((tmp_path / "ray" / "results").glob("*.json"))
    assert [p.name for p in a] == [p.name for p in b] and len(a) == 1 + 2 * 2
    for pa, pb in zip(a, b):
        ra, rb = json.loads(pa.read_text()), json.loads(pb.read_text())
        assert {k: v for k, v in ra.items() if k not in timing} == {k: v for k, v in rb.items() if k not in timing}, pa
    assert json.loads((tmp_path / "ray" / "study.json").read_text())["engine"] == "ray"
    assert set(ray_res.table["round"]) == {0, 1, 2} and len(loc.table) == len(ray_res.table)
