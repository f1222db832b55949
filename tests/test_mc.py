"""MC-dropout sampling (alnb.model.mc) and the scoring step (alnb.acquisition.scoring): maths on hand-made tensors, equivalence with
ultralytics predict, tiers, pool scoring, notebook 02."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

import alnb  # noqa: F401
from alnb.acquisition import strategies as A
from alnb.acquisition import difficulty as D
from alnb.ui import display
from alnb.acquisition import scoring
from alnb.model import mc as U
from alnb.loop import selection as sel


# ------------------------------------------------------------------------------------------------------------ helpers
def _model(seed: int = 0, p: float = 0.1, imgsz: int = 64):
    """yolov8n with a dropout head and non-degenerate outputs, without training (see untrained_dropout_model)."""
    return U.untrained_dropout_model("yolov8n.yaml", imgsz=imgsz, p=p, seed=seed, cls_bias=-2.0)


@pytest.fixture(scope="module")
def model():
    return _model()


@pytest.fixture(scope="module")
def noise_images(tmp_path_factory):
    """Four smooth random colour images of two sizes (varied features: no tied scores)."""
    d = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate([(64, 64), (64, 64), (48, 64), (64, 64)]):
        im = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3)).astype(np.uint8), (5, 5), 1.5)
        cv2.imwrite(str(d / f"n{i}.png"), im)
        paths.append(d / f"n{i}.png")
    return paths


# --------------------------------------------------------------------------------------------------------------- maths
def test_binary_entropy_known_values():
    assert U.binary_entropy(np.array(0.5)) == pytest.approx(math.log(2))
    assert U.binary_entropy(np.array(0.3)) == pytest.approx(-(0.3 * math.log(0.3) + 0.7 * math.log(0.7)))
    assert U.binary_entropy(np.array([0.0, 1.0])) == pytest.approx([0, 0], abs=1e-5)
    t = U.binary_entropy(torch.tensor([0.5, 0.3]))
    assert t.tolist() == pytest.approx([math.log(2), 0.6108643], rel=1e-5)


def test_bald_on_hand_made_probabilities():
    # (B=1, T=2, nc=2, A=3)
    probs = torch.tensor([[[[1.0, 0.3, 0.9], [0.0, 0.3, 0.1]],
                           [[0.0, 0.3, 0.1], [0.0, 0.3, 0.9]]]])
    pe, ee, mi = U.bald(probs, sample_dim=1, class_dim=2)
    h = lambda q: -(q * math.log(q) + (1 - q) * math.log(1 - q))  # noqa: E731
    # anchor 0: class 0 flips 1 -> 0 (mean 0.5), class 1 always 0: all epistemic
    assert pe[0, 0].item() == pytest.approx(math.log(2), abs=1e-4)
    assert ee[0, 0].item() == pytest.approx(0, abs=1e-4)
    assert mi[0, 0].item() == pytest.approx(math.log(2), abs=1e-4)
    # anchor 1: constant 0.3 in both classes: all aleatoric, no mutual information
    assert pe[0, 1].item() == pytest.approx(2 * h(0.3), rel=1e-5)
    assert ee[0, 1].item() == pytest.approx(2 * h(0.3), rel=1e-5)
    assert mi[0, 1].item() == pytest.approx(0, abs=1e-6)
    # anchor 2: 0.9/0.1 swap -> means 0.5: predictive 2 ln 2, expected 2 h(0.9)
    assert pe[0, 2].item() == pytest.approx(2 * math.log(2), rel=1e-5)
    assert ee[0, 2].item() == pytest.approx(2 * h(0.9), rel=1e-5)
    assert mi[0, 2].item() == pytest.approx(2 * math.log(2) - 2 * h(0.9), rel=1e-5)
    assert (mi >= 0).all()


def test_anchor_stats_hand_made():
    # T=2 passes, nc=2, n=1 anchor; boxes xywh: centre moves by 2 px, size 10x10
    s = torch.tensor([[[50.0], [50.0], [10.0], [10.0], [0.8], [0.1]],
                      [[52.0], [50.0], [10.0], [10.0], [0.4], [0.1]]])
    st = U.anchor_stats(s)
    assert st["conf"].item() == pytest.approx(0.6)
    assert st["cls_unc"].item() == pytest.approx(U.binary_entropy(np.array(0.6)) / math.log(2), rel=1e-5)
    assert st["conf_std"].item() == pytest.approx(0.2, rel=1e-5)
    # x0 and x1 move by 2 (std 1), y0, y1 fixed: mean corner std 0.5; mean box size 10
    assert st["corner_std"].item() == pytest.approx(0.5, rel=1e-5)
    assert st["box_spread"].item() == pytest.approx(0.05, rel=1e-5)




# ------------------------------------------------------------------------------------------------------------- tiers
def _table():
    # 10 images: scores 0.0 .. 0.9, the two lowest-scored found nothing (failed)
    return pd.DataFrame({"stem": [f"s{i}" for i in range(10)], "score": np.arange(10) / 10,
                         "n_det": [0, 0] + [1] * 8, "failed": [True, True] + [False] * 8,
                         "least_conf": np.linspace(1, 0, 10)})


def test_default_thresholds_and_tiers_on_hand_made_table():
    sc = _table()
    th = sel.choose_thresholds(sc, target_fraction=0.6, hard_share=0.5)
    # 6 of 10 flagged: the 2 failed + the top 4 non-failed scores (0.6..0.9); hard = half of those 4 (0.8, 0.9)
    assert th["t_medium"] == pytest.approx(0.55)
    assert th["t_hard"] == pytest.approx(0.75)
    t = sel.assign_tiers(sc, th["t_medium"], th["t_hard"])
    assert t["tier"].tolist() == ["easy"] * 6 + ["medium"] * 2 + ["hard"] * 2
    assert t["bars"].tolist() == [1] * 6 + [2] * 2 + [3] * 2
    assert t["failed"].tolist() == [True, True] + [False] * 8  # failed kept as its own flag, tier from the score
    flagged = (t["tier"] != "easy") | t["failed"]
    assert flagged.sum() == 6
    # explicit thresholds override; boundaries: score == t_medium is medium, == t_hard is hard
    t2 = sel.assign_tiers(sc, 0.5, 0.8)
    assert t2.set_index("stem").loc[["s4", "s5", "s7", "s8"], "tier"].tolist() == ["easy", "medium", "medium", "hard"]
    with pytest.raises(ValueError):
        sel.assign_tiers(sc, 0.8, 0.5)
    with pytest.raises(ValueError):
        sel.choose_thresholds(sc, target_fraction=0.6, hard_share=1.5)
    # more failed images than the target: nothing else is flagged
    th = sel.choose_thresholds(sc, target_fraction=0.1)
    assert (sel.assign_tiers(sc, th["t_medium"], th["t_hard"])["tier"] == "easy").all()


def test_failed_flag_added_when_missing():
    sc = _table().drop(columns="failed")
    t = sel.assign_tiers(sc, 0.5, 0.8)
    assert t["failed"].tolist() == [True, True] + [False] * 8


def test_difficulty_vs_errors_on_hand_made_table():
    sc = sel.assign_tiers(_table(), 0.55, 0.65)
    sc["has_error"] = [True, True, False, False, False, False, False, True, True, True]
    sc["n_err"] = [2, 1, 0, 0, 0, 0, 0, 1, 2, 3]
    sc["n_cand"] = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    res = D.difficulty_vs_errors(sc)
    assert res["n"] == 10 and res["n_error"] == 5 and res["n_nonfailed"] == 8
    assert res["tiers"]["hard"] == {"n": 3, "n_error": 3, "error_rate": 1.0}
    # each image is counted once: the two failed images (s0, s1, both wrong) only under "failed", not "easy"
    assert res["tiers"]["easy"] == {"n": 4, "n_error": 0, "error_rate": 0.0}
    assert res["tiers"]["failed"] == {"n": 2, "n_error": 2, "error_rate": 1.0}
    assert sum(v["n"] for v in res["tiers"].values()) == res["n"]
    assert res["tiers_hard_minus_easy"] == pytest.approx(1.0)
    # on the 8 non-failed images the errors are the 3 highest scores: AUROC 1 (least_conf falls with the score: 0)
    assert res["auroc"]["score"] == pytest.approx(1.0)
    assert res["auroc"]["least_conf"] == pytest.approx(0.0)
    hy = res["strategies"]["hybrid"]
    # all images: errors at s0, s1 (lowest scores) and s7..s9: 3 positives beat all 5 negatives, 2 beat none
    assert hy["auroc_all_images"] == pytest.approx(15 / 25)
    assert res["strategies"]["least_confidence"]["auroc_all_images"] == pytest.approx(10 / 25)
    # Spearman on non-failed: score ranks 1..8 against error ranks (five ties at 3, then 6, 7, 8)
    assert hy["spearman_errors"] == pytest.approx(np.corrcoef(np.arange(1, 9), [3, 3, 3, 3, 3, 6, 7, 8])[0, 1])
    assert hy["abs_spearman_candidates"] == pytest.approx(
        np.corrcoef(np.arange(1, 9), [1.5, 1.5, 3.5, 3.5, 5.5, 5.5, 7.5, 7.5])[0, 1])
    with pytest.raises(ValueError, match="simulation"):
        D.difficulty_vs_errors(sc.drop(columns="has_error"))


def test_difficulty_frame_keeps_every_row_with_bars_and_failed_apart():
    t = sel.assign_tiers(_table(), 0.55, 0.65)
    df = display.difficulty_frame(t)
    assert len(df) == len(t) and list(df["score"]) == sorted(df["score"], reverse=True)
    html = "".join(df["difficulty"])
    assert "#2ca02c" in html and "#f2c500" in html and "#d62728" in html and "#7f3fbf" in html
    cats = df["difficulty"].str.rsplit(" ", n=1).str[-1]
    assert (cats == "failed").sum() == int(t["failed"].sum())  # failed counted apart, not inside a tier


# ------------------------------------------------------------------------------------------- model-based behaviour
@pytest.mark.parametrize("method", ["cached", "dense", "full"])
def test_t1_without_dropout_equals_ultralytics_predict(model, noise_images, method):
    res = U.mc_predict(model, noise_images, T=1, p=0.0, conf=0.25, iou=0.7, imgsz=64, batch=2, progress=False,
                       method=method)
    ref = model.predict([str(p) for p in noise_images], imgsz=64, conf=0.25, iou=0.7, device="cpu", verbose=False)
    det = res.detections[res.detections["above"]]
    n_total = 0
    for r, p in zip(ref, noise_images):
        d = det[det["stem"] == p.stem]
        assert len(d) == len(r.boxes), p.stem
        n_total += len(d)
        np.testing.assert_allclose(d[["x0", "y0", "x1", "y1"]].to_numpy(), r.boxes.xyxy.numpy(), atol=1e-3)
        np.testing.assert_allclose(d["conf"].to_numpy(), r.boxes.conf.numpy(), atol=1e-5)
        np.testing.assert_array_equal(d["cls"].to_numpy(), r.boxes.cls.numpy().astype(int))
    assert n_total > 5  # the comparison is not vacuous
    assert (res.detections[["mutual_info", "conf_std", "box_spread"]].to_numpy() == 0).all()


def test_dropout_passes_differ_and_uncertainties_finite(model, noise_images):
    from alnb.model.dropout import set_mc

    net = U._prepare_net(model, "cpu")
    set_mc(net, True)
    x = U.letterbox([U.read_image(p) for p in noise_images[:2]], 64, 32)
    with torch.no_grad():
        s = U.sparse_head_samples(net.model[-1], U.backbone_features(net, x), T=4, thr=0.1)
        d = U.head_samples(net.model[-1], U.backbone_features(net, x), T=4)
    assert s.shape == d.shape == (2, 4, 4 + 80, d.shape[-1])
    assert (d[:, 0] - d[:, 1]).abs().max() > 1e-3  # passes differ
    active = s[:, :, 4:].amax(2).amax(1) > 0.1
    assert active.any() and (s[:, 0, :, :][active.unsqueeze(1).expand(-1, 84, -1)]
                             != s[:, 1, :, :][active.unsqueeze(1).expand(-1, 84, -1)]).any()
    res = U.mc_predict(model, noise_images, T=6, conf=0.25, imgsz=64, progress=False)
    cols = ["cls_unc", "entropy", "exp_entropy", "mutual_info", "conf_std", "box_std", "box_spread"]
    v = res.detections[cols].to_numpy()
    assert len(v) > 0 and np.isfinite(v).all() and (v >= 0).all()
    assert (res.detections["mutual_info"] > 0).any() and (res.detections["box_spread"] > 0).any()
    assert np.isfinite(res.images["count_var"]).all() and (res.images["count_var"] >= 0).all()
    # same seed -> same result; the global RNG is left alone
    torch.manual_seed(123)
    before = torch.rand(1).item()
    torch.manual_seed(123)
    again = U.mc_predict(model, noise_images, T=6, conf=0.25, imgsz=64, progress=False)
    assert torch.rand(1).item() == before
    pd.testing.assert_frame_equal(res.detections, again.detections)


def test_cached_and_full_samplers_agree_without_dropout(model, noise_images):
    a = U.mc_predict(model, noise_images, T=3, p=0.0, conf=0.2, imgsz=64, progress=False, method="cached")
    b = U.mc_predict(model, noise_images, T=3, p=0.0, conf=0.2, imgsz=64, progress=False, method="full")
    assert len(a.detections) == len(b.detections) > 0
    cols = ["x0", "y0", "x1", "y1", "conf"]
    np.testing.assert_allclose(a.detections[cols].to_numpy(), b.detections[cols].to_numpy(), atol=1e-3)


def test_model_without_dropout_head_is_refused(noise_images):
    from alnb.core.offline import yolo

    with pytest.raises(ValueError, match="dropout head"):
        U.mc_predict(yolo("yolov8n.yaml"), noise_images[:1], T=2, imgsz=64, progress=False)


def test_score_pool_writes_workspace_outputs(tiny_workspace, tiny_dataset):
    ws = tiny_workspace
    before = sorted((p.relative_to(tiny_dataset), p.stat().st_mtime_ns) for p in tiny_dataset.rglob("*"))
    y = _model(seed=1, p=0.1, imgsz=64)
    for s in y.model.model[-1].cv3:
        s[-1].bias.data.fill_(-1.0)
    man0 = ws.manifest()
    scores = scoring.score_pool(ws, model=y, T=4, conf=0.25, imgsz=64, model_name="CAL1", progress=False)
    pool = ws.stems("POOL")
    assert sorted(scores["stem"]) == pool
    for c in ["stem", "n_det", "failed", "score", "tier", "cls_unc", "mutual_info", "box_spread", "least_conf",
              "count_var", "n_fp", "n_fn", "has_error"]:
        assert c in scores.columns, c
    assert set(scores["tier"]) <= {"easy", "medium", "hard"}
    assert (scores["failed"] == (scores["n_det"] == 0)).all()
    # files
    csv = pd.read_csv(ws.root / "scores.csv", dtype={"stem": str})
    assert len(csv) == len(pool)
    dets = pd.read_csv(ws.root / "detections.csv", dtype={"stem": str})
    assert set(dets["stem"]) <= set(pool)
    labs = sorted(p.stem for p in (ws.root / "autolabels" / "CAL1").glob("*.txt"))
    assert labs == pool
    for s in pool:
        lines = (ws.root / "autolabels" / "CAL1" / f"{s}.txt").read_text().split("\n")
        lines = [ln for ln in lines if ln]
        n_det = int(scores.set_index("stem").at[s, "n_det"])
        assert len(lines) == n_det
        for ln in lines:
            f = ln.split()
            assert len(f) == 6 and 0 <= int(f[0]) < 80 and all(0 <= float(v) <= 1 for v in f[1:])
    th = json.loads((ws.root / "metrics" / "thresholds.json").read_text())
    assert th["t_medium"] <= th["t_hard"] and th["target_fraction"] == 0.6
    flagged = ((scores["tier"] != "easy") | scores["failed"]).mean()
    assert abs(flagged - 0.6) <= 0.1 or scores["failed"].mean() > 0.6
    dve = json.loads((ws.root / "metrics" / "difficulty_vs_errors.json").read_text())
    assert dve["n"] == len(pool) and set(dve["tiers"]) == {"easy", "medium", "hard", "failed"}
    assert set(dve["strategies"]) >= {"hybrid", "least_confidence", "bald", "entropy", "localisation"}
    assert set(dve["aggregations"]) == {"topk", "mean", "max", "sum"}
    # per-detection uncertainty: data-derived box scale -> a typical box has loc_unc 0.5, the mean never saturates
    info = json.loads((ws.root / "metrics" / "mc_scoring.json").read_text())
    assert info["box_ref"] == pytest.approx(np.median(dets.loc[dets["box_spread"] > 0, "box_spread"]))
    assert np.median(dets["loc_unc"]) == pytest.approx(0.5, abs=0.05)
    assert info["detection_uncertainty_median"] == pytest.approx(np.median(dets["hybrid"]))
    assert (dets["hybrid"] < 1).all()
    # image score = mean of the TOP_K largest hybrid values of the image's candidates
    top = dets.groupby("stem")["hybrid"].apply(lambda v: np.sort(v.to_numpy())[::-1][:A.TOP_K].mean())
    got = scores.set_index("stem").loc[top.index, "score"]
    np.testing.assert_allclose(got.to_numpy(), top.to_numpy(), rtol=1e-9)
    assert (scores.loc[scores["n_cand"] == 0, "score"] == 0).all()
    assert (scores["empty"] == (scores["n_cand"] == 0)).all()
    # pooled backbone features of every POOL image, from the same pass
    emb = scoring.load_embeddings(ws, pool)
    assert emb.shape[0] == len(pool) and emb.shape[1] > 8 and np.isfinite(emb).all()
    assert len({tuple(np.round(r, 5)) for r in emb}) == len(pool)  # images differ
    # manifest: POOL rows auto-labelled by CAL1; human labels untouched
    man = ws.manifest().set_index("stem")
    assert (man.loc[pool, "auto_model"] == "CAL1").all()
    assert (man.loc[pool, "label_source"] == "auto").all()
    others = [s for s in man.index if s not in pool]
    assert (man.loc[others, "label_source"] == man0.set_index("stem").loc[others, "label_source"]).all()
    assert (man.loc[others, "auto_model"] == "").all()
    # auto labels never reach the training view
    assert not any((ws.root / "view" / "labels" / f"{s}.txt").exists() for s in pool)
    # the dataset folder is untouched
    after = sorted((p.relative_to(tiny_dataset), p.stat().st_mtime_ns) for p in tiny_dataset.rglob("*"))
    assert before == after


# --------------------------------------------------------------------------------------------------------- notebook
@pytest.mark.slow
def test_notebook_02_headless_smoke(tiny_workspace, tmp_path):
    from alnb.ui.notebooks import run_notebook
    from alnb.model.train import train_cal

    ws = tiny_workspace
    train_cal(ws, "CAL1", "GT1", profile="smoke", verbose=False)
    out = run_notebook("02_autolabel", tmp_path / "executed", {
        "workspace": str(ws.root), "model": "CAL1", "T": 3, "conf": 0.01, "batch": 4, "n_grid": 4})
    assert out.is_file()
    scores = pd.read_csv(ws.root / "scores.csv", dtype={"stem": str})
    assert sorted(scores["stem"]) == ws.stems("POOL")
    assert {"stem", "n_det", "failed", "score", "tier", "has_error"} <= set(scores.columns)
    assert len(list((ws.root / "autolabels" / "CAL1").glob("*.txt"))) == len(scores)
    info = json.loads((ws.root / "metrics" / "mc_scoring.json").read_text())
    assert info["T"] == 3 and info["imgsz"] == 64 and info["model"] == "CAL1"
    dve = json.loads((ws.root / "metrics" / "difficulty_vs_errors.json").read_text())
    assert dve["n"] == len(scores)
    for name in ("uncertainty_grid_hard", "uncertainty_histogram", "errors_vs_difficulty"):
        for ext in ("png", "pdf", "svg"):
            assert (ws.root / "figures" / f"{name}.{ext}").stat().st_size > 1000, name
    executed = json.loads(out.read_text())
    assert any(c.get("outputs") for c in executed["cells"] if c["cell_type"] == "code")


# ------------------------------------------------------------------------------------------ per-image determinism
def _sorted(res):
    det = res.detections.sort_values(["stem", "det"]).reset_index(drop=True)
    img = res.images.sort_values("stem").reset_index(drop=True)
    emb = res.embeddings[np.argsort(res.images["stem"].to_numpy())]
    return det, img, emb


def _assert_same(a, b):
    da, ia, ea = _sorted(a)
    db, ib, eb = _sorted(b)
    pd.testing.assert_frame_equal(da, db, check_exact=True)
    pd.testing.assert_frame_equal(ia, ib, check_exact=True)
    np.testing.assert_array_equal(ea, eb)


def test_dropout_keep_is_a_function_of_image_pass_channel_anchor():
    keys = U.image_keys(["a", "b"], seed=0)
    assert keys.shape == (2, 2) and (keys >= 0).all() and (keys < 2 ** 32).all()
    assert torch.equal(U.image_keys(["b"], seed=0)[0], keys[1])  # a key does not depend on the other stems
    assert not torch.equal(U.image_keys(["a"], seed=1)[0], keys[0])  # ... but on the seed
    anchors = torch.arange(500)
    k = U.dropout_keep(keys, range(6), U.CLS, 40, anchors, 0.3)
    assert k.shape == (2, 6, 40, 500) and k.dtype == torch.bool
    assert abs(1 - k.float().mean().item() - 0.3) < 0.01  # drop rate p
    assert (k[0] != k[1]).float().mean() > 0.3  # images, passes and branches get different masks
    assert (k[:, 0] != k[:, 1]).float().mean() > 0.3
    assert (U.dropout_keep(keys, range(6), U.BOX, 40, anchors, 0.3) != k).float().mean() > 0.3
    # a subset of passes / anchors (the sparse sampler's rows) reads the same masks
    sub = U.dropout_keep(keys[1:].expand(3, -1), [4, 5], U.CLS, 40, torch.tensor([[7], [123], [499]]), 0.3)
    assert torch.equal(sub[..., 0], k[1, 4:6, :, [7, 123, 499]].permute(2, 0, 1))
    assert U.dropout_keep(keys, range(2), U.CLS, 40, anchors, 0.0).all()
    # the hash is the documented one (unsigned 32-bit arithmetic): compare with Python integers
    def ref(v):
        v ^= v >> 16
        v = (v * 0x7FEB352D) % 2 ** 32
        v ^= v >> 15
        v = (v * 0x846CA68B) % 2 ** 32
        return v ^ (v >> 16)

    x = [0, 1, 2 ** 31, 2 ** 32 - 1, 123456789]
    assert U.mix32(np.array(x, dtype=np.uint32)).tolist() == [ref(v) for v in x]
    # an odd channel count uses the low half of the last pair
    assert torch.equal(U.dropout_keep(keys, range(2), U.BOX, 5, anchors, 0.3),
                       U.dropout_keep(keys, range(2), U.BOX, 6, anchors, 0.3)[:, :, :5])


def test_mc_result_does_not_depend_on_batch_order_or_threads(model, noise_images):
    """An image's masks and numbers depend only on (seed, stem, image): any batching, order or thread count."""
    kw = dict(T=5, conf=0.25, imgsz=64, progress=False)
    ref = U.mc_predict(model, noise_images, batch=4, **kw)
    assert len(ref.detections) > 5 and (ref.detections["mutual_info"] > 0).any()
    _assert_same(ref, U.mc_predict(model, noise_images[::-1], batch=1, **kw))
    _assert_same(ref, U.mc_predict(model, [noise_images[i] for i in (2, 0, 3, 1)], batch=3, **kw))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        _assert_same(ref, U.mc_predict(model, noise_images, batch=2, **kw))
    finally:
        torch.set_num_threads(threads)
    # batches of 16 and more (where PyTorch would switch to NNPACK convolutions): same rows as one at a time
    many = [(f"copy{i:02d}_{p.stem}", p) for i, p in enumerate(noise_images * 5)][:17]
    _assert_same(U.mc_predict(model, many, batch=17, **kw), U.mc_predict(model, many, batch=1, **kw))
    # one image scored alone gives its rows of the pool result
    one = U.mc_predict(model, noise_images[1:2], batch=1, **kw)
    d = ref.detections[ref.detections["stem"] == noise_images[1].stem].reset_index(drop=True)
    pd.testing.assert_frame_equal(one.detections, d, check_exact=True)
    # another seed, other masks
    other = U.mc_predict(model, noise_images, batch=4, seed=1, **kw)
    assert not np.array_equal(other.detections["mutual_info"].to_numpy()[:5], ref.detections["mutual_info"][:5])


def test_samplers_share_masks_with_dropout_on(model, noise_images):
    """cached, dense and full read the same per-image masks: same mean detections and uncertainties."""
    kw = dict(T=4, conf=0.25, imgsz=64, progress=False, batch=2)
    a = U.mc_predict(model, noise_images, method="cached", **kw)
    b = U.mc_predict(model, noise_images, method="dense", **kw)
    c = U.mc_predict(model, noise_images, method="full", **kw)
    assert len(a.detections) > 5 and (a.detections["mutual_info"] > 0).any()
    cols = ["x0", "y0", "x1", "y1", "conf", "mutual_info", "conf_std", "box_spread"]
    for other in (b, c):
        assert len(other.detections) == len(a.detections)
        np.testing.assert_array_equal(other.detections["cls"], a.detections["cls"])
        np.testing.assert_allclose(other.detections[cols].to_numpy(), a.detections[cols].to_numpy(), atol=2e-3)
        np.testing.assert_array_equal(other.images["count_var"], a.images["count_var"])
    # the first passes of a longer run are the passes of a shorter one (masks are indexed by pass, not drawn)
    from alnb.model.dropout import set_mc

    net = U._prepare_net(model, "cpu")
    set_mc(net, True)
    x = U.letterbox([U.read_image(p) for p in noise_images[:2]], 64, 32)
    keys = U.image_keys([p.stem for p in noise_images[:2]])
    with torch.inference_mode():
        feats = U.backbone_features(net, x)
        s2 = U.head_samples(net.model[-1], feats, T=2, keys=keys)
        s4 = U.head_samples(net.model[-1], feats, T=4, keys=keys, max_rows=2)
    assert torch.equal(s4[:, :2], s2) and not torch.equal(s4[:, 2], s4[:, 0])


def test_nms_counts_equal_ultralytics(model, noise_images):
    """The per-pass detection counts (count_var) are those of ultralytics' own NMS."""
    from ultralytics.utils.nms import non_max_suppression

    from alnb.model.dropout import set_mc

    net = U._prepare_net(model, "cpu")
    set_mc(net, True)
    x = U.letterbox([U.read_image(p) for p in noise_images], 64, 32)
    with torch.inference_mode():
        s = U.head_samples(net.model[-1], U.backbone_features(net, x), T=3, keys=U.image_keys(range(4)))
    flat = s.reshape(-1, *s.shape[2:])
    seen = []
    for conf, iou, max_det in ((0.25, 0.7, 300), (0.15, 0.5, 300), (0.15, 0.5, 3), (0.999, 0.5, 300)):
        ref = [len(d) for d in non_max_suppression(flat.clone(), conf, iou, max_det=max_det)]
        assert U.nms_counts(flat, conf, iou, max_det).tolist() == ref
        seen += ref
    assert 0 in seen and max(seen) > 10  # empty and busy rows both covered
