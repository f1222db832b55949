"""Labelling-tool round trip: export the queue (Label Studio / CVAT YOLO 1.1 / COCO), import people's labels back."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import zipfile
from xml.etree import ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from alnb.labels import labelio
from alnb.datasets import weld
from alnb.labels.labelio import ImportProblem, export_queue, import_labels
from alnb.core.workspace import Workspace, WorkspaceError, with_tag

ODD = weld.WeldConfig(n_images=12, width=97, height=61, seed=1)  # odd, non-square sizes catch x/y and W/H mix-ups
MODEL = "CAL1"


@pytest.fixture(scope="module")
def odd_dataset(tmp_path_factory):
    return weld.generate(tmp_path_factory.mktemp("odd") / "weld", ODD, progress=False)


def _random_boxes(rng, n, n_classes):
    """(n, 6) cls cx cy w h conf from random corners inside the image, plus boxes touching each edge."""
    rows = []
    for _ in range(n):
        x0, x1 = np.sort(rng.uniform(0, 1, 2))
        y0, y1 = np.sort(rng.uniform(0, 1, 2))
        x1, y1 = max(x1, x0 + 0.03), max(y1, y0 + 0.03)
        x1, y1 = min(x1, 1.0), min(y1, 1.0)
        rows.append([rng.integers(n_classes), (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, rng.uniform(0.05, 1)])
    rows.append([1, 0.1, 0.2, 0.2, 0.4, 0.5])  # touches the left edge
    rows.append([5, 0.9, 0.85, 0.2, 0.3, 0.25])  # touches the right and bottom edges
    return np.asarray(rows)


@pytest.fixture
def ws(odd_dataset, tmp_path):
    """3 VAL1, 3 GT1, 6 POOL; 4 POOL images tagged GT2 with fake auto-labels (one file empty) and scores."""
    w = Workspace.create(tmp_path / "ws", odd_dataset, n_val=3, n_gt1=3, seed=0, progress=False)
    m = w.manifest()
    pool = w.stems("POOL", manifest=m)
    gt2 = pool[:4]
    m = with_tag(m, gt2, "GT2")
    m.loc[m["stem"].isin(gt2), "auto_model"] = MODEL
    w.write_manifest(m)
    rng = np.random.default_rng(7)
    d = w.root / "autolabels" / MODEL
    d.mkdir(parents=True)
    for i, s in enumerate(gt2):
        boxes = np.zeros((0, 6)) if i == 1 else _random_boxes(rng, 1 + i, len(w.names))
        lines = [f"{int(b[0])} {b[1]:.6f} {b[2]:.6f} {b[3]:.6f} {b[4]:.6f} {b[5]:.4f}" for b in boxes]
        (d / f"{s}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    scores = pd.DataFrame({"stem": pool, "score": [0.2, 0.9, 0.5, 0.7, 0.1, 0.3], "tier": ["low", "high", "mid",
                                                                                           "high", "low", "low"],
                           "failed": [False, False, False, True, False, False]})
    scores.to_csv(w.root / "scores.csv", index=False)
    w.gt2 = gt2  # convenience for the tests
    return w


def tree_hash(root) -> str:
    """Hash of every path, file content and symlink target under ``root``."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            h.update(f"L {rel} -> {os.readlink(p)}\n".encode())
        elif p.is_file():
            h.update(f"F {rel}\n".encode())
            h.update(p.read_bytes())
        else:
            h.update(f"D {rel}\n".encode())
    return h.hexdigest()


def auto_boxes(ws, stem):
    return labelio.read_autolabels(ws.root / "autolabels" / MODEL / f"{stem}.txt", len(ws.names))[:, :5]


def imported_boxes(ws, stem):
    text = (ws.root / "labels" / f"{stem}.txt").read_text()
    return np.array([[float(v) for v in line.split()] for line in text.splitlines() if line.strip()]).reshape(-1, 5)


def assert_round_trip(ws, stems):
    m = ws.manifest().set_index("stem")
    for s in stems:
        want, got = auto_boxes(ws, s), imported_boxes(ws, s)
        assert got.shape == want.shape, s
        np.testing.assert_array_equal(got[:, 0], want[:, 0])
        np.testing.assert_allclose(got[:, 1:], want[:, 1:], rtol=0, atol=1e-6)
        assert m.at[s, "label_source"] == "human"
        assert (ws.root / "view" / "labels" / f"{s}.txt").read_text() == (ws.root / "labels" / f"{s}.txt").read_text()


def ls_export(tasks, keep_stem=True):
    """What Label Studio's Export > JSON gives when annotators submit the pre-annotations unchanged."""
    out = []
    for i, t in enumerate(tasks, start=1):
        result = copy.deepcopy(t["predictions"][0]["result"]) if t["predictions"] else []
        for r in result:
            r.pop("score", None)
            r["origin"] = "prediction"
        data = dict(t["data"]) if keep_stem else {"image": t["data"]["image"]}
        out.append({"id": i, "data": data, "predictions": t["predictions"], "meta": {},
                    "annotations": [{"id": 100 + i, "completed_by": 1, "result": result, "was_cancelled": False,
                                     "ground_truth": False, "created_at": "2024-05-01T10:00:00.000000Z",
                                     "updated_at": "2024-05-01T10:00:00.000000Z", "lead_time": 4.2, "task": i}]})
    return out


def write_json(path, obj):
    path.write_text(json.dumps(obj))
    return path


# ------------------------------------------------------------------------------------------------------------- queue
def test_queue_hardest_first_and_without_scores(ws):
    q = labelio.queue(ws)
    scores = pd.read_csv(ws.root / "scores.csv").set_index("stem")
    gt2 = ws.gt2
    # failed first, then score descending
    want = sorted(gt2, key=lambda s: (not scores.at[s, "failed"], -scores.at[s, "score"]))
    assert list(q["stem"]) == want
    assert list(q["rank"]) == [1, 2, 3, 4]
    assert bool(q.iloc[0]["failed"])
    n_auto = dict(zip(q["stem"], q["n_auto"]))
    assert n_auto[gt2[1]] == 0 and all(n_auto[s] == len(auto_boxes(ws, s)) for s in gt2)
    assert (q["model"] == MODEL).all() and (q["width"] == 97).all() and (q["height"] == 61).all()

    (ws.root / "scores.csv").unlink()
    q2 = labelio.queue(ws)
    assert list(q2["stem"]) == [s for s in ws.manifest()["stem"] if s in gt2]  # manifest order
    assert q2["score"].isna().all()

    with pytest.raises(WorkspaceError, match="CONTROL"):
        labelio.queue(ws, tag="CONTROL")
    with pytest.raises(WorkspaceError, match="no auto-labels of model 'nope'"):
        labelio.queue(ws, model="nope")
    no_auto = ws.stems("VAL1")[:1]
    q3 = labelio.queue(ws, stems=no_auto)
    assert q3.iloc[0]["auto_file"] == "" and q3.iloc[0]["n_auto"] == 0


# ------------------------------------------------------------------------------------------------------ label studio
def test_labelstudio_export_content(ws):
    out = export_queue(ws, "labelstudio")
    assert out == ws.root / "export" / "labelstudio"
    tasks = json.loads((out / "tasks.json").read_text())
    q = pd.read_csv(out / "queue.csv", dtype={"stem": str})
    assert [t["data"]["alnb_stem"] for t in tasks] == list(q["stem"])
    scores = pd.read_csv(ws.root / "scores.csv").set_index("stem")
    row = ws.manifest().set_index("stem")
    for t in tasks:
        s = t["data"]["alnb_stem"]
        assert t["data"]["image"] == "/data/local-files/?d=" + row.at[s, "image"]
        (pred,) = t["predictions"]
        assert pred["model_version"] == MODEL and pred["score"] == pytest.approx(scores.at[s, "score"])
        auto = labelio.read_autolabels(ws.root / "autolabels" / MODEL / f"{s}.txt", len(ws.names))
        assert len(pred["result"]) == len(auto)
        for r, (c, cx, cy, w, h, conf) in zip(pred["result"], auto):
            assert r["type"] == "rectanglelabels" and r["from_name"] == "label" and r["to_name"] == "image"
            assert (r["original_width"], r["original_height"]) == (97, 61)
            v = r["value"]
            assert v["rectanglelabels"] == [ws.names[int(c)]]
            assert v["x"] == pytest.approx((cx - w / 2) * 100) and v["y"] == pytest.approx((cy - h / 2) * 100)
            assert v["width"] == pytest.approx(w * 100) and v["height"] == pytest.approx(h * 100)
            assert 0 <= v["x"] and v["x"] + v["width"] <= 100 + 1e-9
            assert r["score"] == pytest.approx(conf)
    empty = next(t for t in tasks if t["data"]["alnb_stem"] == ws.gt2[1])
    assert empty["predictions"][0]["result"] == []  # model found nothing: a prediction with no boxes

    cfg = ET.fromstring((out / "label_config.xml").read_text())
    assert cfg.find("Image").get("name") == "image" and cfg.find("Image").get("value") == "$image"
    rl = cfg.find("RectangleLabels")
    assert rl.get("name") == "label" and rl.get("toName") == "image"
    assert [lab.get("value") for lab in rl.findall("Label")] == ws.names
    assert labelio.labelstudio_config(["a&b", "<c>"]).count("Label value=") == 2  # escaped, still valid XML
    ET.fromstring(labelio.labelstudio_config(["a&b", "<c>"]))

    # deterministic, and a custom URL prefix / document root
    before = (out / "tasks.json").read_bytes()
    assert export_queue(ws, "labelstudio") == out and (out / "tasks.json").read_bytes() == before
    other = export_queue(ws, "labelstudio", out_dir=ws.root / "ls2", url_prefix="http://localhost:8081/",
                         document_root=ws.dataset_root.parent)
    t0 = json.loads((other / "tasks.json").read_text())[0]
    rel = row.at[t0["data"]["alnb_stem"], "image"]
    assert t0["data"]["image"] == f"http://localhost:8081/{ws.dataset_root.name}/{rel}"


@pytest.mark.parametrize("keep_stem", [True, False], ids=["by-alnb_stem", "by-image-url"])
def test_labelstudio_round_trip(ws, tmp_path, keep_stem):
    tasks = json.loads((export_queue(ws, "labelstudio") / "tasks.json").read_text())
    src = write_json(tmp_path / "ls_export.json", ls_export(tasks, keep_stem=keep_stem))
    summary = import_labels(ws, src, "labelstudio")
    assert sorted(summary["stem"]) == sorted(ws.gt2)
    assert set(summary["action"]) == {"imported"}
    assert dict(zip(summary["stem"], summary["n_boxes"])) == {s: len(auto_boxes(ws, s)) for s in ws.gt2}
    assert_round_trip(ws, ws.gt2)
    assert (ws.root / "labels" / f"{ws.gt2[1]}.txt").read_text() == ""  # no objects
    # training can now use GT1 + GT2 (all have trainable labels) and sees exactly the imported boxes
    ws.write_data_yaml("CAL2", ["GT1", "GT2"])
    np.testing.assert_allclose(ws.trainable_labels(ws.gt2[0]), auto_boxes(ws, ws.gt2[0]), atol=1e-6)
    assert len(list((ws.root / "imports").glob("*_labelstudio.json"))) == 1


def test_labelstudio_skips_unlabelled_tasks_and_picks_annotation(ws, tmp_path):
    tasks = json.loads((export_queue(ws, "labelstudio") / "tasks.json").read_text())
    exp = ls_export(tasks)
    exp[0]["annotations"] = []  # not labelled yet
    exp[1]["annotations"][0]["was_cancelled"] = True  # skipped by the annotator
    # two annotations that differ: refused, listed, unless the user chooses (the later one with "latest");
    # uploaded-file URL style is recognised
    later = copy.deepcopy(exp[2]["annotations"][0])
    later.update(id=999, updated_at="2024-06-01T00:00:00Z", result=later["result"][:1])
    exp[2]["annotations"].append(later)
    exp[2]["data"] = {"image": "/data/upload/3/1a2b3c4d-" + exp[2]["data"]["image"].rsplit("/", 1)[-1]}
    src = write_json(tmp_path / "ls.json", exp)
    with pytest.raises(labelio.ImportProblem) as e:
        import_labels(ws, src, "labelstudio")
    assert e.value.kinds == {"several_annotations"} and "annotation 103 by 1" in str(e.value)
    assert "annotation 999 by 1 (2024-06-01T00:00:00Z): 1 region(s)" in str(e.value)
    summary = import_labels(ws, src, "labelstudio", annotation="latest").set_index("stem")
    s0, s1, s2 = (t["data"]["alnb_stem"] for t in tasks[:3])
    assert summary.at[s0, "action"] == "skipped" and summary.at[s1, "action"] == "skipped"
    assert summary.at[s2, "n_boxes"] == 1 and "annotation 999 by 1 of 2 annotations" in summary.at[s2, "note"]
    m = ws.manifest().set_index("stem")
    assert m.at[s0, "label_source"] == "none" and m.at[s2, "label_source"] == "human"
    assert not (ws.root / "labels" / f"{s0}.txt").exists()


# -------------------------------------------------------------------------------------------------------- cvat / yolo
def test_cvat_yolo_round_trip(ws, tmp_path):
    out = export_queue(ws, "cvat")
    z = out / labelio.CVAT_ZIP
    with zipfile.ZipFile(z) as zf:
        names = set(zf.namelist())
        assert {"obj.data", "obj.names", "train.txt"} <= names
        assert {f"obj_train_data/{s}.txt" for s in ws.gt2} <= names
        assert zf.read("obj.names").decode().split() == ws.names
        assert "classes = 6" in zf.read("obj.data").decode()
        train = zf.read("train.txt").decode().split()
        assert train == [f"data/obj_train_data/{s}.png" for s in labelio.queue(ws)["stem"]]
    before = z.read_bytes()
    export_queue(ws, "cvat")
    assert z.read_bytes() == before  # deterministic bytes

    summary = import_labels(ws, z, "yolo")
    assert sorted(summary["stem"]) == sorted(ws.gt2)
    assert_round_trip(ws, ws.gt2)


def test_yolo_folder_maps_class_ids_by_name(ws, tmp_path):
    """A tool that orders the classes differently: ids are mapped through its obj.names."""
    z = export_queue(ws, "cvat") / labelio.CVAT_ZIP
    folder = tmp_path / "cvat_export"
    with zipfile.ZipFile(z) as zf:
        zf.extractall(folder)
    perm = list(reversed(range(len(ws.names))))  # tool id i = workspace class perm[i]
    inv = {c: i for i, c in enumerate(perm)}
    (folder / "obj.names").write_text("\n".join(ws.names[c] for c in perm) + "\n")
    for f in (folder / "obj_train_data").glob("*.txt"):
        lines = [line.split() for line in f.read_text().splitlines() if line.strip()]
        f.write_text("".join(" ".join([str(inv[int(p[0])]), *p[1:]]) + "\n" for p in lines))
    import_labels(ws, folder, "yolo")
    assert_round_trip(ws, ws.gt2)


# --------------------------------------------------------------------------------------------------------------- coco
def test_coco_round_trip(ws):
    out = export_queue(ws, "coco")
    gt = json.loads((out / "instances.json").read_text())
    res = json.loads((out / "results.json").read_text())
    assert [c["name"] for c in sorted(gt["categories"], key=lambda c: c["id"])] == ws.names
    assert all((im["width"], im["height"]) == (97, 61) for im in gt["images"])
    n_auto = sum(len(auto_boxes(ws, s)) for s in ws.gt2)
    assert len(gt["annotations"]) == len(res) == n_auto
    ids = {im["id"]: im["alnb_stem"] for im in gt["images"]}
    r0 = res[0]
    assert set(r0) == {"image_id", "category_id", "bbox", "score"}
    c, cx, cy, w, h = auto_boxes(ws, ids[r0["image_id"]])[0]
    np.testing.assert_allclose(r0["bbox"], [(cx - w / 2) * 97, (cy - h / 2) * 61, w * 97, h * 61], atol=1e-9)
    assert r0["category_id"] == int(c) + 1

    summary = import_labels(ws, out / "instances.json", "coco")
    assert sorted(summary["stem"]) == sorted(ws.gt2)
    assert_round_trip(ws, ws.gt2)


# ------------------------------------------------------------------------------------------------------- bad imports
def _ls_bad(ws, tmp_path, change):
    tasks = json.loads((export_queue(ws, "labelstudio") / "tasks.json").read_text())
    exp = ls_export(tasks)
    change(ws, exp)
    return write_json(tmp_path / "bad_ls.json", exp), "labelstudio"


def _first_region(exp):
    return next(t for t in exp if t["annotations"][0]["result"])["annotations"][0]["result"][0]


def _coco_bad(ws, tmp_path, change):
    gt = json.loads((export_queue(ws, "coco") / "instances.json").read_text())
    change(ws, gt)
    return write_json(tmp_path / "bad_coco.json", gt), "coco"


def _yolo_bad(ws, tmp_path, change):
    folder = tmp_path / "bad_yolo"
    with zipfile.ZipFile(export_queue(ws, "cvat") / labelio.CVAT_ZIP) as zf:
        zf.extractall(folder)
    change(ws, folder / "obj_train_data")
    return folder, "yolo"


def _set_image(ws, exp, stem):
    exp[0]["data"] = {"image": f"/data/local-files/?d=images/{stem}.png"}


BAD = {
    "ls-unknown-class": (_ls_bad, lambda ws, e: _first_region(e)["value"].update(rectanglelabels=["porosity"]),
                         "unknown_class", "'porosity' is not one of the workspace classes"),
    "ls-out-of-bounds": (_ls_bad, lambda ws, e: _first_region(e)["value"].update(x=95.0, width=10.0),
                         "out_of_bounds", "lies outside the image"),
    "ls-not-in-selection": (_ls_bad, lambda ws, e: _set_image(ws, e, ws.stems("VAL1")[0]),
                            "not_in_selection", "is not in the selection 'GT2'"),
    "ls-unknown-image": (_ls_bad, lambda ws, e: _set_image(ws, e, "holiday_photo"),
                         "unknown_image", "is not an image of this workspace"),
    "ls-rotated": (_ls_bad, lambda ws, e: _first_region(e)["value"].update(rotation=12.5),
                   "rotated", "axis-aligned"),
    "ls-polygon": (_ls_bad, lambda ws, e: _first_region(e).update(type="polygonlabels"), "not_a_box", "polygonlabels"),
    "ls-duplicate": (_ls_bad, lambda ws, e: e.append(copy.deepcopy(e[0])), "duplicate_image", "appears twice"),
    "ls-json-min": (_ls_bad, lambda ws, e: e.__setitem__(0, {"image": "x.png", "label": []}), "json_min",
                    "JSON-MIN"),
    "coco-out-of-bounds": (_coco_bad, lambda ws, g: g["annotations"][0].update(bbox=[90.0, 10.0, 20.0, 5.0]),
                           "out_of_bounds", "lies outside the image"),
    "coco-unknown-category": (_coco_bad, lambda ws, g: g["categories"][g["annotations"][0]["category_id"] - 1]
                              .update(name="porosity"), "unknown_class", "'porosity'"),
    "coco-size-mismatch": (_coco_bad, lambda ws, g: g["images"][0].update(width=194, height=122), "size_mismatch",
                           "194x122"),
    "coco-not-in-selection": (_coco_bad, lambda ws, g: g["images"][0].update(
        file_name=f"images/{ws.stems('GT1')[0]}.png"), "not_in_selection", "not in the selection"),
    "yolo-out-of-bounds": (_yolo_bad, lambda ws, d: (d / f"{ws.gt2[0]}.txt").write_text("0 0.95 0.5 0.2 0.2\n"),
                           "out_of_bounds", "outside the image"),
    "yolo-confidence-column": (_yolo_bad, lambda ws, d: (d / f"{ws.gt2[0]}.txt").write_text("0 .5 .5 .2 .2 .9\n"),
                               "has_confidence", "confidence column"),
    "yolo-class-id": (_yolo_bad, lambda ws, d: (d / f"{ws.gt2[0]}.txt").write_text("6 .5 .5 .2 .2\n"),
                      "unknown_class", "class id 6 is not in 0..5"),
    "yolo-not-in-selection": (_yolo_bad, lambda ws, d: (d / f"{sorted(set(ws.stems('POOL')) - set(ws.gt2))[0]}.txt")
                              .write_text("0 .5 .5 .2 .2\n"), "not_in_selection", "not in the selection"),
    "yolo-unknown-image": (_yolo_bad, lambda ws, d: (d / "stranger.txt").write_text(""), "unknown_image",
                           "matches no image"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_import_reports_and_changes_nothing(ws, tmp_path, case):
    make, change, kind, text = BAD[case]
    src, fmt = make(ws, tmp_path, change)
    before = tree_hash(ws.root)
    with pytest.raises(ImportProblem) as err:
        import_labels(ws, src, fmt)
    assert kind in err.value.kinds, err.value
    assert text in str(err.value)
    assert "nothing in the workspace was changed" in str(err.value)
    assert set(err.value.table.columns) == {"source", "item", "image", "kind", "message"}
    assert tree_hash(ws.root) == before


def test_every_problem_is_listed_at_once(ws, tmp_path):
    def change(ws, exp):
        _first_region(exp)["value"].update(rectanglelabels=["porosity"])
        exp[-1]["annotations"][0]["result"].append(
            {"type": "rectanglelabels", "id": "r9", "value": {"x": -5, "y": 10, "width": 20, "height": 20,
                                                              "rectanglelabels": [ws.names[0]]}})
        exp.append({"id": 77, "data": {"image": "nope.png"}, "annotations": [{"result": []}]})

    src, _ = _ls_bad(ws, tmp_path, change)
    before = tree_hash(ws.root)
    with pytest.raises(ImportProblem) as err:
        import_labels(ws, src, "labelstudio")
    assert {"unknown_class", "out_of_bounds", "unknown_image"} <= err.value.kinds
    assert "task 77" in str(err.value) and "region r9" in str(err.value)
    assert tree_hash(ws.root) == before


def test_malformed_files(ws, tmp_path):
    before = tree_hash(ws.root)
    bad = tmp_path / "broken.json"
    bad.write_text('[{"data": {"image": "a.png"}, ')
    for fmt in ("labelstudio", "coco"):
        with pytest.raises(ImportProblem, match="not valid JSON"):
            import_labels(ws, bad, fmt)
    res = export_queue(ws, "coco") / "results.json"
    before = tree_hash(ws.root)
    with pytest.raises(ImportProblem, match="results"):
        import_labels(ws, res, "coco")
    with pytest.raises(ImportProblem, match="does not exist"):
        import_labels(ws, tmp_path / "missing", "yolo")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportProblem, match="no YOLO .txt label files"):
        import_labels(ws, tmp_path / "empty", "yolo")
    with pytest.raises(ValueError, match="unknown import format"):
        import_labels(ws, bad, "pascal")
    assert tree_hash(ws.root) == before


def test_human_labels_are_not_overwritten_unless_asked(ws, tmp_path):
    z = export_queue(ws, "cvat") / labelio.CVAT_ZIP
    import_labels(ws, z, "yolo")
    # people correct one image again: a different box
    folder = tmp_path / "again"
    with zipfile.ZipFile(z) as zf:
        zf.extractall(folder)
    target = ws.gt2[0]
    (folder / "obj_train_data" / f"{target}.txt").write_text("2 0.5 0.5 0.25 0.5\n")
    before = tree_hash(ws.root)
    with pytest.raises(ImportProblem) as err:
        import_labels(ws, folder, "yolo")
    # only the changed image is a problem, with a per-image diff; the identical ones would be "unchanged"
    assert err.value.kinds == {"changed_human"} and len(err.value.problems) == 1
    assert err.value.problems[0]["image"] == target
    assert "added slag-inclusion (cx=0.5000, cy=0.5000, w=0.2500, h=0.5000)" in str(err.value)
    assert "removed " in str(err.value) and "--overwrite" in str(err.value)
    assert tree_hash(ws.root) == before

    dry = import_labels(ws, folder, "yolo", overwrite=True, dry_run=True)
    assert dict(zip(dry["stem"], dry["action"]))[target] == "would be replaced"
    assert set(dry["action"]) == {"would be replaced", "would be unchanged"} and tree_hash(ws.root) == before

    old_text = (ws.root / "labels" / f"{target}.txt").read_text()
    summary = import_labels(ws, folder, "yolo", overwrite=True)
    assert labelio.summary_counts(summary) == {"imported": 0, "replaced": 1, "unchanged": len(ws.gt2) - 1,
                                               "skipped": 0}
    np.testing.assert_allclose(imported_boxes(ws, target), [[2, 0.5, 0.5, 0.25, 0.5]])
    np.testing.assert_allclose(ws.trainable_labels(target), [[2, 0.5, 0.5, 0.25, 0.5]])
    kept = list((ws.root / "labels" / ".history").glob(f"{target}.*.txt"))
    assert len(kept) == 1 and kept[0].read_text() == old_text  # people's earlier labels are never lost
    rec = json.loads(sorted((ws.root / "imports").glob("*.json"))[-1].read_text())
    assert rec["history"] == {target: str(kept[0].relative_to(ws.root))}

    # importing the same labels again changes nothing at all (idempotent)
    before = tree_hash(ws.root)
    again = import_labels(ws, folder, "yolo")
    assert set(again["action"]) == {"unchanged"} and tree_hash(ws.root) == before

    # GT1 images are labelled by people in the dataset: also protected (with tag=None to leave the selection)
    gt1 = ws.stems("GT1")[0]
    (folder / "obj_train_data" / f"{gt1}.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(ImportProblem, match=f"{gt1} already has labels from people"):
        import_labels(ws, folder, "yolo", tag=None)


def test_failure_while_writing_rolls_back(ws, tmp_path, monkeypatch):
    z = export_queue(ws, "cvat") / labelio.CVAT_ZIP
    import_labels(ws, z, "yolo")  # labels/ exists, manifest says human
    folder = tmp_path / "again"
    with zipfile.ZipFile(z) as zf:
        zf.extractall(folder)
    for s in ws.gt2:
        (folder / "obj_train_data" / f"{s}.txt").write_text("3 0.5 0.5 0.2 0.2\n")
    before = tree_hash(ws.root)

    def boom(self, manifest):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(Workspace, "write_manifest", boom)
    with pytest.raises(OSError, match="simulated"):
        import_labels(ws, folder, "yolo", overwrite=True)
    assert tree_hash(ws.root) == before
    assert_round_trip(ws, ws.gt2)  # the earlier import is intact


def test_first_import_failure_leaves_no_labels_folder(ws, tmp_path, monkeypatch):
    z = export_queue(ws, "cvat") / labelio.CVAT_ZIP
    before = tree_hash(ws.root)
    calls = []
    real_replace = os.replace

    def flaky_replace(a, b):
        calls.append(b)
        if len(calls) == 3:
            raise OSError("simulated failure on the third move")
        return real_replace(a, b)

    monkeypatch.setattr(labelio.os, "replace", flaky_replace)
    with pytest.raises(OSError, match="third move"):
        import_labels(ws, z, "yolo")
    monkeypatch.undo()
    assert tree_hash(ws.root) == before
    assert not (ws.root / "labels").exists()


def test_read_autolabels(tmp_path):
    from alnb.core.data import LabelError

    f = tmp_path / "a.txt"
    f.write_text("2 0.5 0.5 0.2 0.4 0.75\n\n1 0.25 0.25 0.1 0.1\n")
    arr = labelio.read_autolabels(f, 6)
    assert arr.dtype == np.float64 and arr.shape == (2, 6)
    np.testing.assert_array_equal(arr[0], [2, 0.5, 0.5, 0.2, 0.4, 0.75])
    assert np.isnan(arr[1, 5])
    f.write_text("")
    assert labelio.read_autolabels(f, 6).shape == (0, 6)
    f.write_text("0 0.5 0.5 0.2 0.2 0.5\n0 0.5 0.5 0.2 0.2 1.7\n")
    with pytest.raises(LabelError, match=r"a.txt:2: confidence '1.7'"):
        labelio.read_autolabels(f, 6)
    f.write_text("9 0.5 0.5 0.2 0.2 0.5\n")
    with pytest.raises(LabelError, match=r"a.txt:1: class id 9"):
        labelio.read_autolabels(f, 6)


def test_cli_export_and_import_round_trip(ws, capsys):
    from alnb.apps.cli import main

    assert main(["export-queue", "--workspace", str(ws.root), "--format", "cvat"]) == 0
    z = ws.root / "export" / "cvat" / labelio.CVAT_ZIP
    assert z.is_file() and "GT2 queue exported" in capsys.readouterr().out
    bad = ws.root.parent / "bad_labels"
    bad.mkdir()
    (bad / f"{ws.gt2[0]}.txt").write_text("9 0.5 0.5 0.1 0.1\n")  # class id out of range
    before = tree_hash(ws.root)
    assert main(["import-labels", str(bad), "--workspace", str(ws.root), "--format", "yolo"]) == 2
    assert "nothing was imported" in capsys.readouterr().err
    assert tree_hash(ws.root) == before
    assert main(["import-labels", str(z), "--workspace", str(ws.root), "--format", "yolo", "--dry-run"]) == 0
    assert tree_hash(ws.root) == before
    assert main(["import-labels", str(z), "--workspace", str(ws.root), "--format", "yolo"]) == 0
    assert_round_trip(ws, ws.gt2)
