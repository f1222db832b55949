"""CAL training: profiles, the run cache, determinism, dropout trained into the head, evaluation, notebook 01."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from alnb.model import dropout
from alnb.model.dropout import MCDropoutConv2d, dropout_modules, set_mc
from alnb.core.workspace import Workspace


# --------------------------------------------------------------------------------------------------- no training
def test_profiles_and_overrides():
    from alnb.model.train import PROFILES, get_profile

    assert {"smoke", "quick", "paper"} <= set(PROFILES)
    assert PROFILES["smoke"].imgsz <= 64 and PROFILES["smoke"].epochs <= 2
    assert PROFILES["paper"].imgsz == 640 and PROFILES["paper"].model == "yolov8n.yaml"
    p = get_profile("quick", epochs=3, dropout=0.2, lr0=0.005)
    assert (p.epochs, p.dropout, p.extra["lr0"]) == (3, 0.2, 0.005)
    assert PROFILES["quick"].epochs != 3 and PROFILES["quick"].extra.get("lr0") != 0.005  # profiles stay as they are
    assert p.train_args()["lr0"] == 0.005
    with pytest.raises(ValueError, match="unknown training argument"):
        get_profile("quick", no_such_arg=1)
    with pytest.raises(ValueError, match="set by alnb"):
        get_profile("quick", data="x.yaml")
    with pytest.raises(ValueError, match="dropout"):
        get_profile("quick", dropout=1.5)
    with pytest.raises(KeyError, match="unknown training profile"):
        get_profile("nope")


def test_tiny_model_yaml_scale_and_dropout_trainer_model():
    from ultralytics.nn.tasks import DetectionModel

    from alnb.model.train import dropout_trainer, model_cfg

    d = model_cfg("yolov8-tiny.yaml")
    assert d["scale"] == "t"
    tiny = DetectionModel(d, nc=6, verbose=False)
    n = DetectionModel(model_cfg("yolov8n.yaml"), nc=6, verbose=False)
    n_tiny, n_n = (sum(p.numel() for p in m.parameters()) for m in (tiny, n))
    assert n_tiny < 0.5 * n_n  # width 0.125 vs 0.25
    # the trainer's get_model installs dropout in the head (no data needed for this call)
    tr = dropout_trainer(0.3).__new__(dropout_trainer(0.3))
    from ultralytics.cfg import get_cfg

    tr.args = get_cfg()
    tr.data = {"nc": 6, "channels": 3, "names": {i: str(i) for i in range(6)}}
    model = type(tr).get_model(tr, cfg="yolov8-tiny.yaml", verbose=False)
    mods = dropout_modules(model)
    assert len(mods) == 6 and all(m.p == 0.3 for m in mods)  # 3 scales x (box, class)
    with pytest.raises(ValueError):
        dropout_trainer(1.0)


def test_auto_device_and_missing_weights(tmp_path):
    from alnb.model.train import auto_device, load_model

    assert auto_device() == ("0" if torch.cuda.is_available() else "cpu")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "nothing.pt")


# ------------------------------------------------------------------------------------------------------ training
def _ckpt_model(path):
    """The network pickled in an ultralytics checkpoint (final checkpoints keep it under 'model', 'ema' is None)."""
    ck = torch.load(path, weights_only=False)
    return ck.get("ema") or ck["model"]


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory):
    """One smoke training run (1 epoch, 64 px) on a tiny workspace, with checks recorded by callbacks."""
    from alnb.model.train import train_cal

    ws = Workspace.create(tmp_path_factory.mktemp("ws") / "ws", tiny_dataset, n_val=10, n_gt1=10, seed=0,
                          progress=False)
    seen = {}

    def on_batch_end(trainer):
        net = trainer.model
        seen.setdefault("train", []).append((len(dropout_modules(net)), net.training,
                                             all(m.training for m in dropout_modules(net))))
        seen["ema"] = len(dropout_modules(trainer.ema.ema))

    def on_val_start(validator):  # validation during training runs the EMA copy in eval mode
        seen["val"] = True

    res = train_cal(ws, "CAL1", "GT1", "smoke", seed=0, verbose=False,
                    callbacks={"on_train_batch_end": on_batch_end, "on_val_start": on_val_start})
    return ws, res, seen


@pytest.mark.slow
def test_smoke_training_writes_run_and_cache_reuses(trained):
    from alnb.model.train import RUN_FILE, load_run, train_cal

    ws, res, _ = trained
    assert res.run_dir == ws.root / "runs" / "CAL1" and not res.reused
    for f in ("weights/best.pt", "weights/last.pt", "results.csv", "args.yaml", RUN_FILE):
        assert (res.run_dir / f).is_file(), f
    info = json.loads((res.run_dir / RUN_FILE).read_text())
    assert info["key"] == res.key and info["n_train"] == 10 and info["n_val"] == 10 and info["profile"] == "smoke"
    assert info["seconds"] > 0 and {"mAP50", "precision", "recall"} <= set(info["metrics"])
    again = train_cal(ws, "CAL1", "GT1", "smoke", seed=0, verbose=False)
    assert again.reused and again.key == res.key and again.seconds == res.seconds
    loaded = load_run(ws, "CAL1")
    assert loaded.weights == res.weights and loaded.key == res.key
    with pytest.raises(FileNotFoundError, match="train_cal"):
        load_run(ws, "CAL9")


@pytest.mark.slow
def test_cache_key_follows_labels_and_config(trained):
    from alnb.model.train import run_key

    ws, res, _ = trained
    data_yaml = ws.root / "data" / "CAL1.yaml"
    cfg = {"args": {"epochs": 1}}
    k0 = run_key(data_yaml, cfg)
    assert run_key(data_yaml, cfg) == k0
    assert run_key(data_yaml, {"args": {"epochs": 2}}) != k0
    stem = ws.stems("GT1")[0]
    lab = ws.root / "view" / "labels" / f"{stem}.txt"
    old = lab.read_text()
    try:
        lab.write_text(old + "0 0.5 0.5 0.1 0.1\n")
        assert run_key(data_yaml, cfg) != k0
    finally:
        lab.write_text(old)
    assert run_key(data_yaml, cfg) == k0


@pytest.mark.slow
def test_same_seed_same_weights_on_cpu(trained):
    from alnb.model.train import train_cal

    ws, res, _ = trained
    if res.info["device"] != "cpu":
        pytest.skip("bitwise reproducibility is only promised on CPU")
    first = {k: v.clone() for k, v in _ckpt_model(res.weights).state_dict().items()}
    again = train_cal(ws, "CAL1", "GT1", "smoke", seed=0, force=True, verbose=False)
    assert not again.reused and again.key == res.key
    second = _ckpt_model(again.weights).state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.slow
def test_thread_count_is_recorded_keyed_and_reproducible(trained):
    """The thread count changes a CPU model's numbers, so it is in alnb_run.json and the cache key; the same seed and
    the same count give bit-identical weights."""
    from alnb.core.cpu import default_threads
    from alnb.model.train import train_cal

    ws, res, _ = trained
    if res.info["device"] != "cpu":
        pytest.skip("bitwise reproducibility is only promised on CPU")
    assert res.info["threads"] == default_threads()
    one = train_cal(ws, "CAL1t1", "GT1", "smoke", seed=0, threads=1, verbose=False)
    assert one.info["threads"] == 1 and (one.key != res.key) == (default_threads() != 1)
    again = train_cal(ws, "CAL1t1", "GT1", "smoke", seed=0, threads=1, force=True, verbose=False)
    a, b = _ckpt_model(one.weights).state_dict(), _ckpt_model(again.weights).state_dict()
    assert again.key == one.key and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_channels_last_is_keyed_reproducible_and_saved_in_the_usual_layout(trained):
    """The smoke / quick profiles train in channels-last layout on CPU: recorded, in the cache key (other kernels,
    other sums), the same seed gives bit-identical weights, and the checkpoint is stored contiguous (NCHW)."""
    from alnb.model.train import get_profile, train_cal

    ws, res, _ = trained
    if res.info["device"] != "cpu":
        pytest.skip("channels-last training is a CPU setting")
    assert get_profile("smoke").channels_last and get_profile("quick").channels_last
    assert res.info["channels_last"] is True
    nchw = train_cal(ws, "CAL1nchw", "GT1", "smoke", seed=0, channels_last=False, verbose=False)
    assert nchw.info["channels_last"] is False and nchw.key != res.key
    again = train_cal(ws, "CAL1cl", "GT1", "smoke", seed=0, verbose=False)
    assert again.key == res.key
    a, b = _ckpt_model(res.weights).state_dict(), _ckpt_model(again.weights).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(v.is_contiguous() for v in a.values())
    c = _ckpt_model(nchw.weights).state_dict()
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())  # the layout changes the sums


@pytest.mark.slow
def test_reported_map_is_pycocotools_on_the_auto_label_boxes(trained):
    """evaluate()'s mAP50 / mAP50-95 equal pycocotools' COCOeval on the boxes the prediction path gives (the boxes
    users get as auto-labels, down to the sweep confidence)."""
    from test_metrics import _coco_eval

    from alnb.evaluation.step import evaluate, predict_boxes
    from alnb.evaluation.metrics import SWEEP_CONF, xywhn_to_xyxy
    from alnb.model.train import load_model

    ws, res, _ = trained
    ev = evaluate(ws, "CAL1", save=False)
    model = load_model(res.weights)
    m = ws.manifest().set_index("stem")
    stems = ws.stems("VAL1")
    preds, gts = [], []
    for s, (_, pred, (h, w)) in zip(stems, predict_boxes(model, [ws.view_image({"stem": s, "image": m.at[s, "image"]})
                                                                 for s in stems], conf=SWEEP_CONF)):
        lab = np.asarray(ws.true_labels(s), float).reshape(-1, 5)
        preds.append(pred)
        gts.append(np.concatenate([lab[:, :1], xywhn_to_xyxy(lab[:, 1:], w, h)], axis=1))
    m5095, m50, _ = _coco_eval(preds, gts, len(ws.names))
    assert ev["mAP50"] == pytest.approx(m50, abs=0.005) and ev["mAP50-95"] == pytest.approx(m5095, abs=0.005)
    assert ev["mAP50"] > 0 and "COCO-style" in ev["map_boxes"]


@pytest.mark.slow
def test_dropout_trained_in_saved_and_reloaded(trained):
    from alnb.model.train import load_model

    ws, res, seen = trained
    n_convs = 6  # 3 scales x (box branch, class branch)
    assert seen["train"] and all(n == n_convs and training and mods_training for n, training, mods_training
                                 in seen["train"])
    assert seen["ema"] == n_convs and seen.get("val")
    for f in ("best.pt", "last.pt"):
        mods = dropout_modules(_ckpt_model(res.run_dir / "weights" / f))
        assert len(mods) == n_convs and all(m.p == pytest.approx(0.1) for m in mods)
    model = load_model(res.weights)
    net = model.model.float().eval()
    assert len(dropout_modules(net)) == n_convs
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = net(x)[0], net(x)[0]
        assert torch.equal(a, b)  # dropout off in eval
        assert set_mc(net, True) == n_convs
        c, d = net(x)[0], net(x)[0]
        set_mc(net, False)
        e = net(x)[0]
    assert not torch.equal(c, d) and not torch.equal(a, c)  # MC mode samples masks
    assert torch.equal(a, e)
    # ultralytics predict (which fuses the model) keeps the modules and is deterministic
    img = next((ws.root / "view" / "images").iterdir())
    p1 = model.predict(str(img), conf=0.0001, verbose=False)[0].boxes.data
    p2 = model.predict(str(img), conf=0.0001, verbose=False)[0].boxes.data
    assert torch.equal(p1, p2)
    assert len(dropout_modules(model.model)) == n_convs


@pytest.mark.slow
def test_evaluate_counts_are_consistent(trained):
    from alnb.evaluation.step import evaluate, per_class_frame, per_image_frame

    ws, res, _ = trained
    r = evaluate(ws, "CAL1", conf=0.001)
    saved = json.loads((ws.root / "metrics" / "eval_CAL1.json").read_text())
    assert saved["name"] == "CAL1" and saved["n_images"] == 10 and saved["conf"] == 0.001
    counts = ws.dataset.class_counts(ws.stems("VAL1"))
    n_true = sum(len(ws.true_labels(s)) for s in ws.stems("VAL1"))
    ov = r["overall"]
    assert ov["instances"] == n_true and ov["tp"] + ov["fn"] == n_true and ov["tp"] + ov["fp"] == ov["predictions"]
    pc = per_class_frame(r)
    assert pc["instances"].to_dict() == {k: int(v) for k, v in counts.items()}
    assert pc["tp"].sum() == ov["tp"] and pc["fp"].sum() == ov["fp"] and pc["fn"].sum() == ov["fn"]
    absent = [k for k, v in counts.items() if v == 0]
    assert r["not_measurable"] == absent
    for name in absent:  # not measurable: NaN in memory, null in JSON, never 0
        assert not pc.loc[name, "measurable"] and math.isnan(pc.loc[name, "recall"])
        assert next(c for c in saved["per_class"] if c["class"] == name)["recall"] is None
    pi = per_image_frame(r)
    assert len(pi) == 10 and pi["tp"].sum() == ov["tp"] and pi["n_gt"].sum() == n_true
    assert (pi["errors"].diff().dropna() <= 0).all()
    assert 0 <= r["mAP50"] <= 1 and 0 <= r["mAP50-95"] <= r["mAP50"] + 1e-9
    assert r["overall"]["boost"] > 0
    r2 = evaluate(ws, res.weights, conf=0.001, with_map=False, save=False)
    assert r2["overall"]["tp"] == ov["tp"] and r2["name"] == "CAL1" and math.isnan(r2["mAP50"])


@pytest.mark.slow
def test_copied_run_takes_its_folder_name(trained):
    """A finished run copied under another name (a sweep's model reused as a study's CAL1) is that name: its
    operating point is recorded and found under it, so auto-labelling with it works."""
    import shutil

    from alnb.evaluation.step import evaluate, operating_point
    from alnb.model.train import load_run

    ws, res, _ = trained
    shutil.copytree(res.run_dir, ws.root / "runs" / "CALX")
    try:
        copy = load_run(ws, "CALX")
        assert copy.name == "CALX" and copy.key == res.key
        assert copy.weights == ws.root / "runs" / "CALX" / "weights" / "best.pt"
        r = evaluate(ws, "CALX", with_map=False, save=False)
        assert r["name"] == "CALX"
        rec = json.loads((ws.root / "metrics" / "operating_point_CALX.json").read_text())
        assert rec["model"] == "CALX" and rec["conf"] == r["conf"]
        assert operating_point(ws, "CALX") == r["conf"]
    finally:
        shutil.rmtree(ws.root / "runs" / "CALX", ignore_errors=True)
        (ws.root / "metrics" / "operating_point_CALX.json").unlink(missing_ok=True)


@pytest.mark.slow
def test_notebook_01_smoke(tiny_dataset, tmp_path):
    from alnb.ui.notebooks import run_notebook

    ws = Workspace.create(tmp_path / "ws", tiny_dataset, n_val=10, n_gt1=10, seed=0, progress=False)
    run_notebook("01_train_gt1", tmp_path / "out", {"workspace": str(ws.root), "profile": "smoke"})
    assert (ws.root / "runs" / "CAL1" / "weights" / "best.pt").is_file()
    ev = json.loads((ws.root / "metrics" / "eval_CAL1.json").read_text())
    assert ev["n_images"] == 10 and ev["train"]["profile"] == "smoke"
    for fig in ("cal1_training_curves", "cal1_pr_per_class"):
        for ext in ("png", "pdf", "svg"):
            assert (ws.root / "figures" / f"{fig}.{ext}").is_file()


@pytest.mark.slow
def test_start_from_local_weights(trained, tmp_path):
    from alnb.model.train import train_cal

    ws, res, _ = trained
    with pytest.raises(FileNotFoundError, match="never"):
        train_cal(ws, "CAL1w", "GT1", "smoke", weights=tmp_path / "missing.pt", verbose=False)
    r = train_cal(ws, "CAL1w", "GT1", "smoke", weights=res.weights, dropout=0.2, verbose=False)
    assert not r.reused and r.key != res.key and r.weights.is_file()
    mods = dropout_modules(_ckpt_model(r.weights))
    assert len(mods) == 6 and all(m.p == pytest.approx(0.2) for m in mods)


@pytest.mark.slow
def test_smoke_profile_predicts_real_boxes_and_scores(trained):
    """The smoke profile starts from the shipped checkpoint: one epoch gives non-empty predictions, so the tests
    exercise real operating points, scores and tiers (not an all-failed pool with score 0)."""
    from alnb.evaluation.step import evaluate, operating_point
    from alnb.acquisition.scoring import score_pool

    ws, res, _ = trained
    assert res.info["model"].endswith("weld-defect-tiny.pt")
    ev = evaluate(ws, "CAL1", with_map=False)  # operating point chosen on VAL1
    assert ev["conf_rule"] == "f1" and ev["overall"]["predictions"] > 0 and ev["overall"]["tp"] > 0
    assert operating_point(ws, "CAL1") == pytest.approx(ev["conf"])
    scores = score_pool(ws, model="CAL1", T=4, progress=False)
    assert (~scores["failed"]).sum() > 0 and scores["n_det"].sum() > 0
    assert scores["score"].nunique() > 2  # real, different difficulty scores


def test_repeat_factors_follow_lvis_rule():
    from alnb.model.train import repeat_factors

    # 10 images: class 0 in all of them, class 1 in one (f = 0.1), one image has no box at all
    labels = [np.array([0, 0])] * 8 + [np.array([0, 1]), np.array([], dtype=int)]
    labels[0] = np.array([0])
    r = repeat_factors(labels, thresh=0.4)
    assert r.shape == (10,)
    assert r[8] == pytest.approx(math.sqrt(0.4 / 0.1))  # the rare class decides: 2.0
    assert r[9] == 1.0 and (r[:8] == 1.0).all()  # f(class 0) = 0.9 > thresh -> factor 1
    assert repeat_factors(labels, thresh=0.01).max() == 1.0  # nothing rare at a low threshold
    assert repeat_factors([], thresh=0.3).size == 0


def test_oversample_list_repeats_rare_images_deterministically(tmp_path):
    from alnb.model.train import oversample_list

    img_dir, lab_dir = tmp_path / "view" / "images", tmp_path / "view" / "labels"
    img_dir.mkdir(parents=True)
    lab_dir.mkdir(parents=True)
    paths = []
    for i in range(20):
        cls = [0] if i else [0, 1]  # class 1 only in image 0
        (lab_dir / f"im{i}.txt").write_text("".join(f"{c} 0.5 0.5 0.1 0.1\n" for c in cls))
        paths.append(str(img_dir / f"im{i}.png"))
    paths.append(str(img_dir / "nolabel.png"))  # no label file: a background image, kept once
    lst = tmp_path / "train.txt"
    lst.write_text("\n".join(paths) + "\n")
    out = oversample_list(lst, thresh=9 / 21, n_classes=2, seed=0)  # f(class 1) = 1/21: sqrt(9) = 3
    lines = lst.read_text().splitlines()
    assert out == {"n_images": 21, "n_samples": 23, "max_repeat": 3}
    assert lines.count(paths[0]) == 3 and all(lines.count(p) == 1 for p in paths[1:])
    lst.write_text("\n".join(paths) + "\n")
    once = oversample_list(lst, thresh=4 / 21, n_classes=2, seed=1)  # sqrt(4) = 2
    assert once["n_samples"] == 22


@pytest.mark.slow
def test_repeat_factor_sampling_in_a_real_run(trained):
    from alnb.model.train import train_cal

    ws, res, _ = trained
    rfs = train_cal(ws, "CAL1_rfs", "GT1", "smoke", seed=0, verbose=False, repeat_thresh=0.9)
    lines = (ws.root / "lists" / "CAL1_rfs_train.txt").read_text().splitlines()
    assert rfs.info["n_train"] == 10 == len(set(lines))  # images, each listed by its repeat factor
    assert rfs.info["resampling"]["n_samples"] == len(lines) > 10 and rfs.info["resampling"]["max_repeat"] >= 2
    assert rfs.key != res.key  # the oversampled list and the threshold are part of the cache key


# ------------------------------------------------------------------------------------------------- round recipes
def test_recipes_are_named_and_checked():
    from alnb.model.train import RECIPES, get_profile, recipe_of

    assert list(RECIPES) == ["finetune", "finetune-lowlr", "shrink-perturb", "fresh"]
    assert recipe_of("quick").name == get_profile("quick").round_recipe
    assert recipe_of(get_profile("quick", round_recipe="fresh")).warm is False
    assert recipe_of(get_profile("quick", finetune_epochs=None)).name == "fresh"  # no warm start without it
    with pytest.raises(ValueError, match="unknown round_recipe 'warm'"):
        get_profile("quick", round_recipe="warm")


@pytest.mark.slow
def test_shrink_perturb_checkpoint_scales_weights_keeps_dfl_and_is_seeded(trained, tmp_path):
    from alnb.model.train import shrink_perturb_checkpoint

    _, res, _ = trained
    a = shrink_perturb_checkpoint(res.weights, tmp_path / "s", 0.5, 0.0, seed=3)
    b = shrink_perturb_checkpoint(res.weights, tmp_path / "t", 0.5, 0.01, seed=3)
    c = shrink_perturb_checkpoint(res.weights, tmp_path / "u", 0.5, 0.01, seed=3)
    src, sa, sb, sc = (_ckpt_model(w).state_dict() for w in (res.weights, a, b, c))
    dfl = [k for k in src if ".dfl." in k]
    assert dfl and all(torch.equal(sa[k], src[k]) for k in dfl)  # the fixed box decoder is untouched
    conv = next(k for k in src if k.endswith("conv.weight") and ".dfl." not in k)
    assert torch.allclose(sa[conv].float(), 0.5 * src[conv].float(), atol=1e-3)  # shrink alone: exactly half
    assert not torch.equal(sb[conv], sa[conv]) and all(torch.equal(sb[k], sc[k]) for k in sb)  # seeded noise
    assert all(torch.equal(sa[k], src[k]) for k in src if "running_" in k)  # BatchNorm statistics kept
    assert shrink_perturb_checkpoint(res.weights, tmp_path / "s", 0.5, 0.0, seed=3) == a  # cached by its inputs


@pytest.mark.slow
def test_round_recipe_decides_start_epochs_and_learning_rate(trained):
    from alnb.loop import pipeline
    from alnb.loop import selection as sel

    ws, res, _ = trained
    sel.commit(ws, sorted(ws.stems("POOL"))[:4], "CONTROL", info={"rule": "test"})
    pipeline.ensure_labelled(ws, "CONTROL", log=None)
    tags = ["GT1", "CONTROL"]
    ft = pipeline.train_and_evaluate(ws, "R_ft", tags, "smoke", round_recipe="finetune", verbose=False)["train"]
    low = pipeline.train_and_evaluate(ws, "R_low", tags, "smoke", round_recipe="finetune-lowlr",
                                      lr0=0.004, verbose=False)["train"]
    fresh = pipeline.train_and_evaluate(ws, "R_fresh", tags, "smoke", round_recipe="fresh", epochs=2,
                                        verbose=False)["train"]
    assert ft.info["recipe"] == "finetune" and ft.info["model"] == str(res.weights)  # from CAL1
    assert low.info["recipe"] == "finetune-lowlr" and low.info["args"]["lr0"] == pytest.approx(0.001)
    assert fresh.info["recipe"] == "fresh" and fresh.info["model"].endswith("weld-defect-tiny.pt")
    assert fresh.info["epochs_run"] == 2 and ft.info["epochs_run"] == 1  # smoke: finetune_epochs = 1
