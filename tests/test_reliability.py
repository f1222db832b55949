"""Reliability: every bad input gets one clear message (no raw traceback), the dataset folder and labels people gave
stay byte-identical, workspaces are locked against a second writer, and the real labelling loop runs from the CLI.

Each case runs the command line in-process (``alnb.apps.cli.main``) and asserts the exit code, the message, the absence of
a traceback, and the hashes of the dataset folder (and of ``<workspace>/labels``) before and after.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from alnb.apps import cli
from alnb.labels import labelio
from alnb.core import lock
from alnb.loop import pipeline
from alnb.loop import selection as sel
from alnb.core.data import load_dataset
from alnb.core.workspace import WaitingForLabels, Workspace, WorkspaceError, with_tag

NAMES = ["crack", "pore"]


# ------------------------------------------------------------------------------------------------------------ helpers
def tree_hash(root) -> str:
    """Every path, file content and symlink target under ``root`` (empty hash when it does not exist)."""
    h = hashlib.sha256()
    if not os.path.exists(root):
        return "absent"
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for n in sorted(filenames) + sorted(d for d in dirnames):
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                h.update(f"L {rel} -> {os.readlink(p)}\n".encode())
            elif os.path.isfile(p):
                h.update(f"F {rel}\n".encode())
                with open(p, "rb") as f:
                    h.update(f.read())
            else:
                h.update(f"D {rel}\n".encode())
    return h.hexdigest()


def img(path, w=32, h=32, v=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w), v, np.uint8)).save(path)


def make_ds(root, n=24, names=NAMES, unlabelled=(), empty=(), yaml_text=None, stems=None):
    """``n`` 32x32 images with one box each (class i % len(names)); ``unlabelled`` / ``empty``: indices."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text(yaml_text if yaml_text is not None else f"names: {list(names)}\n")
    stems = stems or [f"img_{i:02d}" for i in range(n)]
    for i, s in enumerate(stems):
        img(root / "images" / f"{s}.png", v=60 + i)
        if i in unlabelled:
            continue
        lab = root / "labels" / f"{s}.txt"
        lab.parent.mkdir(parents=True, exist_ok=True)
        lab.write_text("" if i in empty else f"{i % len(names)} 0.5 0.5 0.25 0.25\n")
    return root


def run_cli(capsys, *argv):
    """``alnb ARGV`` in-process: (exit code, stdout, stderr); a SystemExit (argparse) counts as its code."""
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err, out.out + out.err
    return rc, out.out, out.err


def run_args(ds, ws, *extra):
    return ["run", "--data", ds, "--workspace", ws, "--profile", "smoke", "--n-val", 4, "--n-gt1", 4, "--T", 2, *extra]


# ---------------------------------------------------------------------------------------------- bad datasets (setup)
BAD_DATASETS = {
    # case: (how to spoil the dataset, extra run args, expected text)
    "no-data-yaml": (lambda r: (r / "data.yaml").unlink(), (), "data.yaml not found"),
    "yaml-syntax": (lambda r: (r / "data.yaml").write_text("names: [crack, pore\n"), (), "not valid YAML"),
    "yaml-not-mapping": (lambda r: (r / "data.yaml").write_text("- crack\n- pore\n"), (), "expected a mapping"),
    "yaml-no-names": (lambda r: (r / "data.yaml").write_text("nc: 2\n"), (), "no 'names' list"),
    "duplicate-class-names": (lambda r: (r / "data.yaml").write_text("names: [crack, pore, crack]\n"), (),
                              "duplicate class name(s) {'crack': [0, 2]}"),
    "names-bad-keys": (lambda r: (r / "data.yaml").write_text("names: {a: crack, b: pore}\n"), (),
                       "'names' keys must be class ids"),
    "names-gap": (lambda r: (r / "data.yaml").write_text("names: {0: crack, 2: pore}\n"), (), "without gaps"),
    "nc-mismatch": (lambda r: (r / "data.yaml").write_text("nc: 3\nnames: [crack, pore]\n"), (),
                    "nc=3 but 'names' has 2 entries"),
    "empty-class-name": (lambda r: (r / "data.yaml").write_text("names: [crack, '']\n"), (), "are empty"),
    "no-images": (lambda r: shutil.rmtree(r / "images"), (), "no images found"),
    "all-empty-labels": (lambda r: [p.write_text("") for p in (r / "labels").glob("*.txt")], (),
                         "holds a box (every label file is empty)"),
    "n-val-too-large": (lambda r: None, ("--n-val", 30), "only 24 labelled"),
    "n-val-fraction-zero": (lambda r: None, ("--n-val", 0.01), "gives no VAL1 image"),
    "n-gt1-fraction-zero": (lambda r: None, ("--n-gt1", 0.01), "gives no GT1 image"),
    "nothing-left-for-pool": (lambda r: None, ("--n-val", 12, "--n-gt1", 12), "nothing would be left"),
    "gt1-without-boxes": (lambda r: [p.write_text("") for p in sorted((r / "labels").glob("*.txt"))[2:]],
                          ("--n-val", 1, "--n-gt1", 1, "--seed", 3), None),
}


@pytest.mark.parametrize("case", list(BAD_DATASETS))
def test_bad_dataset_one_clear_message(tmp_path, capsys, case):
    spoil, extra, text = BAD_DATASETS[case]
    ds = make_ds(tmp_path / "ds")
    spoil(ds)
    before = tree_hash(ds)
    rc, out, err = run_cli(capsys, *run_args(ds, tmp_path / "ws"), *extra)
    if case == "gt1-without-boxes":  # depends on the draw: either a clear refusal or a normal start
        assert rc == 2 and "hold no box at all" in err or rc in (0, 3), err
    else:
        assert rc == 2, out + err
        assert text in err, err
        assert err.startswith("alnb: ") and "--debug" in err
    assert tree_hash(ds) == before


def test_missing_dataset_folder_and_bad_counts(tmp_path, capsys):
    rc, _, err = run_cli(capsys, *run_args(tmp_path / "nope", tmp_path / "ws"))
    assert rc == 2 and "does not exist" in err
    assert not (tmp_path / "ws").exists()
    for bad in ("0", "-3", "1.5", "abc"):
        rc, _, err = run_cli(capsys, "run", "--data", tmp_path, "--workspace", tmp_path / "ws", "--n-val", bad)
        assert rc == 2 and "--n-val" in err, err
    # the Python API says the same thing
    ds = load_dataset(make_ds(tmp_path / "ds"), progress=False)
    from alnb.core.workspace import make_split
    with pytest.raises(ValueError, match="n_gt1=0 gives no GT1 image"):
        make_split(ds, n_val=4, n_gt1=0)


def test_workspace_inside_dataset_is_refused_before_anything_is_written(tmp_path, capsys):
    ds = make_ds(tmp_path / "ds")
    before = tree_hash(ds)
    for ws in (ds / "runs" / "w", ds):
        rc, _, err = run_cli(capsys, *run_args(ds, ws))
        assert rc == 2 and "inside the dataset folder" in err
    rc, _, err = run_cli(capsys, *run_args(ds, tmp_path))  # the dataset inside the workspace
    assert rc == 2 and "inside the workspace" in err
    assert tree_hash(ds) == before


def test_excluded_images_are_listed_duplicates_tiny_spaces(tmp_path, capsys):
    ds = make_ds(tmp_path / "ds", stems=[f"im {i:02d}" for i in range(24)])  # spaces in every name
    img(ds / "images" / "a" / "twin.png"); img(ds / "images" / "b" / "twin.jpg")
    (ds / "labels" / "a").mkdir(); (ds / "labels" / "a" / "twin.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    img(ds / "images" / "dot.png", w=1, h=1); (ds / "labels" / "dot.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (ds / "labels" / "im 03.txt").write_text("0 0.5 0.5 0.1\n")  # wrong field count
    before = tree_hash(ds)
    logs = []
    ws = pipeline.setup(tmp_path / "ws", ds, n_val=4, n_gt1=4, log=logs.append)
    text = "\n".join(logs)
    assert "validation: 4 image(s) excluded" in text
    assert "[duplicate_stem] images/a/twin.png" in text and "[too_small] images/dot.png" in text
    assert "1x1 px" in text and "[field_count] labels/im 03.txt:1" in text
    m = ws.manifest()
    assert m["stem"].is_unique and set(m.loc[m["problem"] != "", "stem"]) == {
        "images/a/twin.png", "images/b/twin.jpg", "dot", "im 03"}
    summary = json.loads((ws.root / "metrics" / "setup.json").read_text())
    assert summary["problem_kinds"] == {"duplicate_stem": 2, "too_small": 1, "field_count": 1}
    # image lists hold one path per line; the run cache reads them the same way (names with spaces)
    from alnb.model.train import _list_digest

    lst = ws.write_list("probe", ws.stems("GT1"))
    assert len(lst.read_text().splitlines()) == 4 and " " in lst.read_text()
    assert _list_digest(lst)["n"] == 4
    assert tree_hash(ds) == before


BAD_FILES = {  # label text (or None: a special image), the kind validation reports
    "fields": ("0 0.5 0.5 0.1\n", "field_count"),
    "polygon": ("0 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2\n", "field_count"),
    "nan": ("0 0.5 abc 0.1 0.1\n", "not_a_number"),
    "inf": ("0 0.5 inf 0.1 0.1\n", "not_a_number"),
    "cls": ("5 0.5 0.5 0.1 0.1\n", "class_out_of_range"),
    "negcls": ("-1 0.5 0.5 0.1 0.1\n", "class_out_of_range"),
    "fraccls": ("0.5 0.5 0.5 0.1 0.1\n", "class_out_of_range"),
    "oob": ("1 0.95 0.5 0.2 0.1\n", "out_of_bounds"),
    "pixels": ("1 120 80 30 20\n", "out_of_bounds"),
    "zero": ("1 0.5 0.5 0 0.1\n", "zero_area"),
    "binary": (b"\xff\xfe\x00garbage", "not_text"),
}


def test_every_excluded_kind_is_listed_by_setup(tmp_path):
    ds = make_ds(tmp_path / "ds")
    for name, (text, _) in BAD_FILES.items():
        img(ds / "images" / f"bad_{name}.png")
        f = ds / "labels" / f"bad_{name}.txt"
        f.write_bytes(text) if isinstance(text, bytes) else f.write_text(text)
    (ds / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    (ds / "images" / "empty.png").write_bytes(b"")
    img(ds / "images" / "thin.png", w=200, h=4)
    (ds / "labels" / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    before = tree_hash(ds)
    logs = []
    ws = pipeline.setup(tmp_path / "ws", ds, n_val=4, n_gt1=4, log=logs.append)
    text = "\n".join(logs)
    m = ws.manifest().set_index("stem")
    for name, (_, kind) in BAD_FILES.items():
        assert m.at[f"bad_{name}", "problem"] == kind and m.at[f"bad_{name}", "tags"] == "EXCLUDED", name
    for stem, kind in (("corrupt", "unreadable_image"), ("empty", "unreadable_image"), ("thin", "too_small")):
        assert m.at[stem, "problem"] == kind and m.at[stem, "tags"] == "EXCLUDED"
    assert "validation: 14 image(s) excluded, 15 problem(s)" in text and "orphan_label 1" in text
    assert "[field_count] labels/bad_fields.txt:1" in text and "... and 5 more" in text
    listed = json.loads((ws.root / "metrics" / "setup.json").read_text())["problem_list"]
    assert len(listed) == 15 and all(p["message"] for p in listed)
    assert tree_hash(ds) == before


def test_classes_without_instances_are_named(tmp_path):
    ds = make_ds(tmp_path / "ds", yaml_text="names: [crack, pore, ghost]\n")  # 'ghost' has no box anywhere
    logs = []
    pipeline.setup(tmp_path / "ws", ds, n_val=4, n_gt1=4, log=logs.append)
    text = "\n".join(logs)
    assert "class(es) ['ghost'] have no instance in GT1" in text
    assert "class(es) ['ghost'] have no instance in VAL1" in text


def test_resetup_after_fixing_labels_revalidates(tmp_path, capsys):
    ds = make_ds(tmp_path / "ds")
    (ds / "labels" / "img_05.txt").write_text("7 0.5 0.5 0.2 0.2\n")  # class id out of range
    ws = pipeline.setup(tmp_path / "ws", ds, n_val=4, n_gt1=4, log=None)
    assert "EXCLUDED" in ws.manifest().set_index("stem").at["img_05", "tags"]
    (ds / "labels" / "img_05.txt").write_text("1 0.5 0.5 0.2 0.2\n")  # fixed by the user
    (ds / "labels" / "img_06.txt").write_text("1 0.5 0.5 0.2\n")  # and a new mistake
    logs = []
    ws = pipeline.setup(tmp_path / "ws", ds, n_val=4, n_gt1=4, log=logs.append)
    row = ws.manifest().set_index("stem")
    assert row.at["img_05", "tags"] == "POOL" and row.at["img_05", "problem"] == ""
    assert row.at["img_06", "tags"] == "EXCLUDED" and row.at["img_06", "problem"] == "field_count"
    text = "\n".join(logs)
    assert "1 image(s) fixed" in text and "1 image(s) new problem" in text
    # other settings without --overwrite: a clear message naming the flag; the split is untouched
    first = ws.manifest_path.read_bytes()
    with pytest.raises(WorkspaceError, match="--overwrite"):
        pipeline.setup(tmp_path / "ws", ds, n_val=5, n_gt1=4, log=None)
    assert ws.manifest_path.read_bytes() == first
    (ds / "data.yaml").write_text("names: [crack, pore, slag]\n")
    with pytest.raises(WorkspaceError, match="class names .* changed"):
        pipeline.setup(tmp_path / "ws", ds, n_val=4, n_gt1=4, log=None)


def test_files_are_written_with_normal_permissions(tmp_path):
    ds = make_ds(tmp_path / "ds")
    ws = pipeline.setup(tmp_path / "ws", ds, n_val=4, n_gt1=4, log=None)
    umask = os.umask(0)
    os.umask(umask)
    want = 0o666 & ~umask
    sel.commit(ws, ws.stems("POOL")[:3], "GT2")
    z = labelio.export_queue(ws, "cvat") / labelio.CVAT_ZIP
    ls = labelio.export_queue(ws, "labelstudio") / "tasks.json"
    labelio.import_labels(ws, z, "yolo", overwrite=True)  # simulation: the dataset labels, re-imported as people's
    for p in (ws.manifest_path, ws.root / "workspace.json", ws.root / "metrics" / "setup.json",
              ws.root / "lists" / "GT1.txt", z, ls, *sorted((ws.root / "imports").glob("*.json")),
              ws.root / "view" / "labels" / f"{ws.stems('GT1')[0]}.txt"):
        assert stat.S_IMODE(p.stat().st_mode) == want, p


# ------------------------------------------------------------------------------------------------ workspace commands
def fake_autolabels(ws, stems, line):
    """CAL1 auto-labels (one ``line`` each) for ``stems``, recorded in the manifest as the scoring step would."""
    auto = ws.root / "autolabels" / "CAL1"
    auto.mkdir(parents=True, exist_ok=True)
    for s in stems:
        (auto / f"{s}.txt").write_text(line)
    m = ws.manifest()
    m.loc[m["stem"].isin(list(stems)), "auto_model"] = "CAL1"
    ws.write_manifest(m)


@pytest.fixture
def real_ws(tmp_path):
    """A real-loop workspace (8 unlabelled POOL images), GT2 = 4 of them with fake auto-labels and scores; the
    true labels of the unlabelled images are kept aside in ``truth/`` (what people will draw)."""
    ds = make_ds(tmp_path / "ds", unlabelled=range(16, 24))
    truth = tmp_path / "truth"
    truth.mkdir()
    for i in range(16, 24):
        (truth / f"img_{i:02d}.txt").write_text(f"{i % 2} 0.5 0.5 0.25 0.25\n")
    ws = pipeline.setup(tmp_path / "ws", ds, n_val=4, n_gt1=4, log=None)
    pool = [s for s in ws.stems("POOL") if int(s[-2:]) >= 16]
    fake_autolabels(ws, pool, "0 0.45 0.5 0.2 0.25 0.6\n")
    pd.DataFrame({"stem": pool, "score": np.linspace(0.1, 0.9, len(pool)), "tier": "hard",
                  "failed": False}).to_csv(ws.root / "scores.csv", index=False)
    sel.commit(ws, pool[:4], "GT2")
    ws.truth, ws.ds, ws.pool = truth, ds, pool
    return ws


def ls_export(ws, stems, truth, unannotated=()):
    """A Label Studio JSON export (as Export > JSON writes it) with people's boxes = ``truth`` for ``stems``."""
    tasks = []
    for k, s in enumerate(list(stems) + list(unannotated)):
        anns = []
        if s in stems:
            res = []
            for line in (truth / f"{s}.txt").read_text().splitlines():
                c, cx, cy, w, h = map(float, line.split())
                res.append({"id": f"r{k}", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
                            "original_width": 32, "original_height": 32,
                            "value": {"x": (cx - w / 2) * 100, "y": (cy - h / 2) * 100, "width": w * 100,
                                      "height": h * 100, "rotation": 0, "rectanglelabels": [NAMES[int(c)]]}})
            anns = [{"id": 100 + k, "result": res, "was_cancelled": False, "updated_at": "2026-01-01T00:00:00Z"}]
        tasks.append({"id": k + 1, "data": {"image": f"/data/local-files/?d=images/{s}.png", "alnb_stem": s},
                      "annotations": anns, "predictions": []})
    return tasks


def write_json(path, obj):
    path.write_text(json.dumps(obj))
    return path


def test_export_queue_before_selection_and_empty_selection(tmp_path, capsys):
    ds = make_ds(tmp_path / "ds", unlabelled=range(16, 24))
    ws = pipeline.setup(tmp_path / "ws", ds, n_val=4, n_gt1=4, log=None)
    rc, _, err = run_cli(capsys, "export-queue", "--workspace", ws.root, "--format", "labelstudio")
    assert rc == 2 and "carries the tag 'GT2'" in err and "make the selection first" in err
    sel.commit(ws, [], "GT2")
    rc, _, err = run_cli(capsys, "export-queue", "--workspace", ws.root, "--format", "cvat")
    assert rc == 2 and "carries the tag 'GT2'" in err


def test_commands_on_a_folder_that_is_not_a_workspace(tmp_path, capsys):
    for argv in (("status", "--workspace", tmp_path), ("export-queue", "--workspace", tmp_path, "--format", "coco"),
                 ("import-labels", tmp_path, "--workspace", tmp_path, "--format", "yolo")):
        rc, _, err = run_cli(capsys, *argv)
        assert rc == 2 and "is not an alnb workspace" in err and "alnb run --data" in err
        assert "alnb setup" not in err  # never name a command that does not exist


def test_export_queue_url_prefix_and_document_root(real_ws, capsys):
    ws = real_ws
    rc, out, _ = run_cli(capsys, "export-queue", "--workspace", ws.root, "--format", "labelstudio",
                         "--url-prefix", "http://127.0.0.1:8081/", "--document-root", ws.ds.parent)
    assert rc == 0
    tasks = json.loads((ws.root / "export" / "labelstudio" / "tasks.json").read_text())
    assert tasks[0]["data"]["image"].startswith("http://127.0.0.1:8081/ds/images/img_")
    rc, _, err = run_cli(capsys, "export-queue", "--workspace", ws.root, "--format", "labelstudio",
                         "--document-root", ws.root)
    assert rc == 2 and "not below the Label Studio document root" in err


def test_import_counts_are_honest_and_skipped_are_listed(real_ws, tmp_path, capsys):
    ws = real_ws
    gt2 = ws.stems("GT2")
    src = write_json(tmp_path / "ls.json", ls_export(ws, gt2[:2], ws.truth, unannotated=gt2[2:]))
    rc, out, _ = run_cli(capsys, "import-labels", src, "--workspace", ws.root, "--format", "labelstudio")
    assert rc == 0
    assert "2 new, 0 replaced, 0 unchanged, 2 skipped" in out
    assert f"skipped (no submitted annotation): {gt2[2]}, {gt2[3]}" in out
    for s in gt2[:2]:
        assert (ws.root / "labels" / f"{s}.txt").read_text() == (ws.truth / f"{s}.txt").read_text()


def test_reimport_is_idempotent_and_changed_labels_are_refused_with_a_diff(real_ws, tmp_path, capsys):
    ws = real_ws
    gt2 = ws.stems("GT2")
    src = write_json(tmp_path / "ls.json", ls_export(ws, gt2, ws.truth))
    assert run_cli(capsys, "import-labels", src, "--workspace", ws.root, "--format", "labelstudio")[0] == 0
    ws_before, labels_before = tree_hash(ws.root), tree_hash(ws.root / "labels")
    rc, out, _ = run_cli(capsys, "import-labels", src, "--workspace", ws.root, "--format", "labelstudio")
    assert rc == 0 and "0 new, 0 replaced, 4 unchanged, 0 skipped" in out
    assert tree_hash(ws.root) == ws_before  # nothing written at all

    tasks = json.loads(src.read_text())
    tasks[0]["annotations"][0]["result"][0]["value"]["x"] += 10  # someone moved a box in the tool afterwards
    write_json(src, tasks)
    rc, _, err = run_cli(capsys, "import-labels", src, "--workspace", ws.root, "--format", "labelstudio")
    assert rc == 2 and "[changed_human]" in err and f"image {gt2[0]}" in err
    assert "removed pore (cx=0.5000" in err or "removed crack (cx=0.5000" in err
    assert "--overwrite" in err and "labels/.history/" in err
    assert tree_hash(ws.root / "labels") == labels_before and tree_hash(ws.ds) == tree_hash(ws.ds)

    rc, out, _ = run_cli(capsys, "import-labels", src, "--workspace", ws.root, "--format", "labelstudio",
                         "--overwrite")
    assert rc == 0 and "0 new, 1 replaced, 3 unchanged" in out and f"replaced (old files" in out
    hist = list((ws.root / "labels" / ".history").glob(f"{gt2[0]}.*.txt"))
    assert len(hist) == 1 and hist[0].read_text() == (ws.truth / f"{gt2[0]}.txt").read_text()


def test_one_export_serves_gt2_and_control(real_ws, tmp_path, capsys):
    ws = real_ws
    gt2 = ws.stems("GT2")
    control = [s for s in ws.pool if s not in gt2][:3] + gt2[:1]  # Control may overlap GT2
    src = write_json(tmp_path / "project.json", ls_export(ws, gt2, ws.truth))
    st = pipeline.ensure_labelled(ws, "GT2", source=src, fmt="labelstudio", log=None)
    assert st["labelled"] == 4 and not st["waiting"]
    sel.commit(ws, control, "CONTROL")
    with pytest.raises(WaitingForLabels) as w:
        pipeline.ensure_labelled(ws, "CONTROL", source=src, fmt="labelstudio", log=None)
    assert sorted(w.value.waiting) == sorted(control[:3]) and w.value.queue
    queued = json.loads((tmp_path / "ws" / "export" / "CONTROL_labelstudio" / "tasks.json").read_text())
    assert sorted(t["data"]["alnb_stem"] for t in queued) == sorted(control[:3])
    # people label the Control tasks in the same project and export the whole project again
    write_json(src, ls_export(ws, gt2 + control[:3], ws.truth))
    logs = []
    st = pipeline.ensure_labelled(ws, "CONTROL", source=src, fmt="labelstudio", log=logs.append)
    assert not st["waiting"] and "3 new, 0 replaced, 4 unchanged" in logs[0]
    src_of = ws.manifest().set_index("stem")["label_source"]
    assert (src_of[gt2 + control] == "human").all()


def test_export_in_the_wrong_format_is_named(real_ws, tmp_path, capsys):
    ws = real_ws
    src = write_json(tmp_path / "project.json", ls_export(ws, ws.stems("GT2"), ws.truth))
    before = tree_hash(ws.root)
    rc, _, err = run_cli(capsys, "import-labels", src, "--workspace", ws.root, "--format", "yolo")
    assert rc == 2 and "[not_yolo]" in err and "needs format 'labelstudio'" in err
    rc, _, err = run_cli(capsys, "import-labels", src, "--workspace", ws.root, "--format", "coco")
    assert rc == 2 and "[not_coco]" in err and "Label Studio export" in err
    coco = write_json(tmp_path / "i.json", {"images": [], "annotations": [], "categories": []})
    rc, _, err = run_cli(capsys, "import-labels", coco, "--workspace", ws.root, "--format", "labelstudio")
    assert rc == 2 and "this is a COCO file" in err
    assert tree_hash(ws.root) == before


def test_labels_source_that_does_not_exist(real_ws, tmp_path):
    with pytest.raises(WorkspaceError, match="labels source .* does not exist"):
        pipeline.ensure_labelled(real_ws, "GT2", source=tmp_path / "nope.json", fmt="labelstudio", log=None)


def test_waiting_for_labels_exit_code_and_next_command(real_ws, capsys, monkeypatch):
    ws = real_ws
    err = WaitingForLabels("GT2", 4, ws.stems("GT2"), ws.root / "export" / "GT2_labelstudio")
    argv = ["run", "--data", str(ws.ds), "--workspace", str(ws.root), "--profile", "smoke", "--overwrite"]
    rc = cli._report_error(err, argv, debug=False)
    out = capsys.readouterr().out
    assert rc == cli.EXIT_WAITING == 3
    assert "4 of 4 GT2 image(s) have no labels yet" in out
    assert f"{ws.root / 'export' / 'GT2_labelstudio' / 'tasks.json'}" in out
    assert (f"next: alnb run --data {ws.ds} --workspace {ws.root} --profile smoke --labels EXPORT.json "
            f"--label-format labelstudio") in out  # --overwrite is not repeated (it would split again)


def test_status_shows_where_the_loop_stands(real_ws, capsys):
    ws = real_ws
    rc, out, _ = run_cli(capsys, "status", "--workspace", ws.root)
    assert rc == 0
    assert "GT2:       0 of 4 labelled, 4 waiting" in out
    assert "trainings: CAL1 -, CAL2 -, Control -" in out and "lock:      free" in out
    assert f"next:      round 1, train CAL1 on GT1: alnb run --data {ws.ds} --workspace {ws.root}" in out
    rc, out, _ = run_cli(capsys, "status", "--workspace", ws.root, "--json")
    st = json.loads(out)
    assert st["sets"]["GT2"] == 4 and st["labels"]["GT2"]["labelled"] == 0


def test_coco_duplicate_category_ids_are_refused(real_ws, tmp_path):
    ws = real_ws
    s = ws.stems("GT2")[0]
    coco = {"images": [{"id": 1, "file_name": f"images/{s}.png", "width": 32, "height": 32}],
            "categories": [{"id": 1, "name": "crack"}, {"id": 1, "name": "pore"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}]}
    before = tree_hash(ws.root)
    with pytest.raises(labelio.ImportProblem) as e:
        labelio.import_labels(ws, write_json(tmp_path / "c.json", coco), "coco")
    assert e.value.kinds == {"duplicate_category_id"} and "share id 1 ('crack' and 'pore')" in str(e.value)
    assert tree_hash(ws.root) == before


def test_recommit_hides_revealed_labels_again(tmp_path):
    ds = make_ds(tmp_path / "ds")  # fully labelled: simulation mode
    ws = pipeline.setup(tmp_path / "ws", ds, n_val=4, n_gt1=4, log=None)
    pool = ws.stems("POOL")
    sel.commit(ws, pool[:6], "GT2")
    sel.commit(ws, pool[4:8], "CONTROL")
    sel.label_selection(ws, "GT2")
    sel.label_selection(ws, "CONTROL")
    assert (ws.root / "view" / "labels" / f"{pool[0]}.txt").is_file()
    sel.commit(ws, pool[2:6], "GT2")  # pool[0:2] leave GT2; pool[4:6] are still in CONTROL
    src = ws.manifest().set_index("stem")["label_source"]
    assert list(src[pool[:2]]) == ["none", "none"] and (src[pool[2:8]] == "oracle").all()
    assert not (ws.root / "view" / "labels" / f"{pool[0]}.txt").exists()
    logs = []
    pipeline.ensure_labelled(ws, "GT2", source=tmp_path / "whatever.json", fmt="labelstudio", log=logs.append)
    assert "simulation mode" in logs[0] and "is not read" in logs[0]  # said, not silently ignored
    sel.commit(ws, pool[8:10], "GT2")  # simulation mode: status never asks people for labels
    st = pipeline.loop_status(ws)
    assert st["labels"]["GT2"]["waiting"] == pool[8:10] and "--labels" not in st["next"]


# -------------------------------------------------------------------------------------------------- errors and locks
def test_unexpected_errors_and_debug(real_ws, capsys, monkeypatch):
    def boom(*a, **k):
        raise TypeError("simulated bug")

    monkeypatch.setattr(labelio, "export_queue", boom)
    rc, _, err = run_cli(capsys, "export-queue", "--workspace", real_ws.root, "--format", "coco")
    assert rc == cli.EXIT_BUG == 1 and "unexpected error (TypeError: simulated bug)" in err
    assert cli.main(["export-queue", "--workspace", str(real_ws.root), "--format", "coco", "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_read_only_workspace(real_ws, tmp_path, capsys, monkeypatch):
    real_open = os.open

    def ro_open(path, flags, *a, **k):
        if str(path).endswith(lock.LOCK_NAME):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", ro_open)
    src = write_json(tmp_path / "ls.json", ls_export(real_ws, real_ws.stems("GT2"), real_ws.truth))
    before = tree_hash(real_ws.root)
    rc, _, err = run_cli(capsys, "import-labels", src, "--workspace", real_ws.root, "--format", "labelstudio")
    assert rc == 2 and "is not writable (Read-only file system)" in err and "nothing was changed" in err
    assert tree_hash(real_ws.root) == before


HOLD = textwrap.dedent("""
    import sys, time
    from alnb.core import lock
    lock.acquire(sys.argv[1], "alnb run --data d --workspace w")
    print("held", flush=True)
    time.sleep(120)
""")


def test_second_writer_stops_with_the_holder_named_and_stale_locks_are_taken_over(real_ws, tmp_path, capsys):
    ws = real_ws
    src = write_json(tmp_path / "ls.json", ls_export(ws, ws.stems("GT2"), ws.truth))
    env = {k: v for k, v in os.environ.items() if k != lock.ENV}
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(ws.root)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == "held"
        labels_before = tree_hash(ws.root / "labels")
        rc, _, err = run_cli(capsys, "import-labels", src, "--workspace", ws.root, "--format", "labelstudio")
        assert rc == cli.EXIT_BUSY == 4
        assert f"is busy: pid {p.pid} on host" in err and "(alnb run --data d --workspace w)" in err
        assert tree_hash(ws.root / "labels") == labels_before
        rc, out, _ = run_cli(capsys, "status", "--workspace", ws.root)
        assert f"lock:      held by pid {p.pid}" in out
        with pytest.raises(lock.WorkspaceBusy):
            sel.commit(ws, ws.stems("GT2")[:2], "GT2")
    finally:
        p.kill()
        p.wait()
    rc, out, _ = run_cli(capsys, "status", "--workspace", ws.root)
    assert f"stale (pid {p.pid}" in out
    rc, out, _ = run_cli(capsys, "import-labels", src, "--workspace", ws.root, "--format", "labelstudio")
    assert rc == 0 and f"took over a stale lock" not in out or rc == 0
    assert not (ws.root / lock.LOCK_NAME).exists()  # released (and removed) at the end


def test_lock_is_reentrant_and_inherited_by_child_processes(tmp_path):
    root = tmp_path / "w"
    with lock.workspace_lock(root, "outer"):
        with lock.workspace_lock(root, "inner"):
            assert lock.is_held(root)
        assert lock.is_held(root)
        child = subprocess.run([sys.executable, "-c", f"from alnb.core import lock; lock.acquire({str(root)!r}); "
                                                      f"print('ok')"], capture_output=True, text=True)
        assert child.stdout.strip() == "ok", child.stderr
    assert not lock.is_held(root) and not (root / lock.LOCK_NAME).exists()


RACE = textwrap.dedent("""
    import sys, time
    from alnb.core import lock
    t0 = float(sys.argv[2])
    while time.time() < t0:
        pass
    for _ in range(40):
        try:
            lock.acquire(sys.argv[1], "racer")
        except lock.WorkspaceBusy:
            time.sleep(0.005)
            continue
        with open(sys.argv[3], "a") as f:  # inside the lock: nobody else may be in here now
            f.write("in\\n"); f.flush(); time.sleep(0.02); f.write("out\\n")
        lock.release(sys.argv[1])
        time.sleep(0.005)
""")


def test_racing_processes_never_hold_the_lock_together(tmp_path):
    root, log = tmp_path / "w", tmp_path / "log.txt"
    env = {k: v for k, v in os.environ.items() if k != lock.ENV}
    start = time.time() + 3
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(root), str(start), str(log)], env=env)
             for _ in range(4)]
    assert [p.wait(120) for p in procs] == [0] * 4
    lines = log.read_text().split()
    assert lines and lines == ["in", "out"] * (len(lines) // 2)  # strictly alternating: one holder at a time
    assert not (root / lock.LOCK_NAME).exists()


# ------------------------------------------------------------------------------------- the real loop, end to end
def run_sub(*argv):
    """``python -m alnb ARGV`` in a subprocess: (exit code, stdout, stderr); never a traceback."""
    env = {k: v for k, v in os.environ.items() if k != lock.ENV}
    p = subprocess.run([sys.executable, "-m", "alnb", *map(str, argv)], capture_output=True, text=True, env=env,
                       timeout=900)
    assert "Traceback" not in p.stdout + p.stderr, p.stdout + p.stderr
    return p.returncode, p.stdout, p.stderr


@pytest.mark.slow
def test_real_loop_from_the_cli(tmp_path):
    """``alnb run`` on a dataset with unlabelled images: exit 3 with the queue for GT2, labels imported from a
    folder, exit 3 again for Control, then the whole study finishes; people's labels are never changed.  Runs the real
    command (``python -m alnb``) in subprocesses, as a user would."""
    from alnb.datasets import weld

    ds = weld.generate(tmp_path / "ds", weld.WeldConfig(n_images=40, width=64, height=64, seed=3), progress=False)
    truth = tmp_path / "truth"
    truth.mkdir()
    for i, lab in enumerate(sorted((ds / "labels").glob("*.txt"))):
        if i % 2:  # every other image is unlabelled: people will label it
            shutil.move(lab, truth / lab.name)
    ds_hash = tree_hash(ds)
    ws = tmp_path / "ws"
    argv = ["run", "--data", ds, "--workspace", ws, "--profile", "smoke", "--T", 2, "--n-val", 8, "--n-gt1", 8,
            "--budget", 4]
    rc, out, _ = run_sub(*argv)
    w = Workspace.open(ws)
    waiting = [s for s in w.stems("GT2") if (truth / f"{s}.txt").is_file()]  # the rest had dataset labels
    assert rc == 3 and waiting, out
    assert f"waiting for labels: {len(waiting)} of 4 GT2 image(s)" in out and "GT2_labelstudio/tasks.json" in out
    assert "--labels EXPORT.json --label-format labelstudio" in out
    rc, out, _ = run_sub("status", "--workspace", ws)  # status repeats the exact command the run printed
    assert rc == 0 and "next:      round 2, label GT2" in out and "--profile smoke --T 2" in out and "--budget 4 --labels" in out
    people = tmp_path / "people"
    people.mkdir()
    for s in waiting:
        shutil.copy(truth / f"{s}.txt", people / f"{s}.txt")
    rc, out, _ = run_sub(*argv, "--labels", people, "--label-format", "yolo")
    control_waiting = [s for s in w.stems("CONTROL") if (truth / f"{s}.txt").is_file() and s not in waiting]
    assert f"{len(waiting)} new, 0 replaced, 0 unchanged" in out
    if control_waiting:
        assert rc == 3 and "CONTROL image(s) have no labels" in out, out
    labels_after_gt2 = {p.name: p.read_bytes() for p in (ws / "labels").glob("*.txt")}
    for s in control_waiting:
        shutil.copy(truth / f"{s}.txt", people / f"{s}.txt")
    rc, out, _ = run_sub(*argv, "--labels", people, "--label-format", "yolo")
    assert rc == 0, out
    assert "report:" in out
    for name, data in labels_after_gt2.items():
        assert (ws / "labels" / name).read_bytes() == data
    assert tree_hash(ds) == ds_hash
    rc, out, _ = run_sub("status", "--workspace", ws)
    assert "next:      done" in out


@pytest.mark.slow
def test_two_concurrent_runs_on_one_workspace(tiny_dataset, tmp_path):
    """The second ``alnb run`` stops with the lock message (exit 4); the first finishes with a valid results.csv."""
    ws = tmp_path / "ws"
    argv = [sys.executable, "-m", "alnb", "run", "--data", str(tiny_dataset), "--workspace", str(ws), "--profile",
            "smoke", "--T", "2", "--n-val", "10", "--n-gt1", "10"]
    env = {k: v for k, v in os.environ.items() if k != lock.ENV}
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        for _ in range(600):
            if (ws / lock.LOCK_NAME).is_file() and lock.read_holder(ws):
                break
            time.sleep(0.1)
        second = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        assert second.returncode == 4, second.stdout + second.stderr
        assert f"is busy: pid {first.pid} on host" in second.stderr and "Traceback" not in second.stderr
        out, _ = first.communicate(timeout=600)
    finally:
        first.kill()
    assert first.returncode == 0, out
    for name in ("CAL1", "CAL2", "Control"):
        res = pd.read_csv(ws / "runs" / name / "results.csv")
        epochs = res.iloc[:, 0].tolist()
        assert epochs == sorted(epochs) and len(epochs) == len(set(epochs)), (name, epochs)
    assert not (ws / lock.LOCK_NAME).exists()


# ------------------------------------------------------------------ real exports and real folders (issue 22)
def exif_jpeg(path, w, h, orientation, v=90):
    """A JPEG stored ``w`` x ``h`` with EXIF orientation ``orientation`` (6: shown and trained on as h x w)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ex = Image.Exif()
    ex[274] = orientation
    Image.fromarray(np.full((h, w), v, np.uint8)).save(path, format="JPEG", exif=ex)
    return path


def status_next(capsys, ws_root) -> str:
    rc, out, _ = run_cli(capsys, "status", "--workspace", ws_root)
    assert rc == 0, out
    return next(line for line in out.splitlines() if line.startswith("next:"))


def test_exif_orientation_is_the_size_the_trainer_sees(tmp_path, capsys):
    """A JPEG stored 48x32 with orientation 6 is 32x48 everywhere: the trainer's reader, manifest.csv, the COCO export,
    and a Label Studio annotation reporting the displayed size is imported (it was refused as 'a different image')."""
    from ultralytics.utils.patches import imread

    ds = make_ds(tmp_path / "ds", unlabelled=range(16, 24))
    (ds / "images" / "img_20.png").unlink()
    exif_jpeg(ds / "images" / "img_20.jpg", 48, 32, 6)
    assert imread(str(ds / "images" / "img_20.jpg")).shape[:2] == (48, 32)  # (h, w) as ultralytics trains on it
    ws = pipeline.setup(tmp_path / "ws", ds, n_val=4, n_gt1=4, log=None)
    row = ws.manifest().set_index("stem").loc["img_20"]
    assert (row["width"], row["height"]) == (32, 48)
    sel.commit(ws, ["img_20"], "GT2")
    before = tree_hash(ds)
    rc, _, err = run_cli(capsys, "export-queue", "--workspace", ws.root, "--format", "coco")
    assert rc == 0, err
    coco = json.loads((ws.root / "export" / "coco" / "instances.json").read_text())
    assert [(i["width"], i["height"]) for i in coco["images"]] == [(32, 48)]
    res = [{"id": "r1", "type": "rectanglelabels", "from_name": "label", "to_name": "image", "original_width": 32,
            "original_height": 48, "value": {"x": 25, "y": 25, "width": 50, "height": 25, "rotation": 0,
                                             "rectanglelabels": ["pore"]}}]
    src = write_json(tmp_path / "ls.json", [{"id": 1, "data": {"image": "/data/local-files/?d=images/img_20.jpg"},
                                             "annotations": [{"id": 7, "result": res}]}])
    rc, out, err = run_cli(capsys, "import-labels", src, "--workspace", ws.root, "--format", "labelstudio")
    assert rc == 0 and "1 new, 0 replaced, 0 unchanged, 0 skipped" in out, out + err
    assert (ws.root / "labels" / "img_20.txt").read_text() == "1 0.5 0.375 0.5 0.25\n"
    assert tree_hash(ds) == before


def test_label_file_with_upper_case_extension_is_the_label_file(tmp_path, capsys):
    """labels/img_03.TXT labels img_03.png: the image stays labelled and the dataset in simulation mode (it silently
    became unlabelled and switched the study to the real loop)."""
    ds = make_ds(tmp_path / "ds")
    (ds / "labels" / "img_03.txt").rename(ds / "labels" / "img_03.TXT")
    before = tree_hash(ds)
    logs = []
    ws = pipeline.setup(tmp_path / "ws", ds, n_val=4, n_gt1=4, log=logs.append)
    assert ws.mode == "simulation" and logs[0] == "[alnb] validation: no problems found"
    row = ws.manifest().set_index("stem").loc["img_03"]
    assert (row["label_file"], row["label_state"], row["n_boxes"]) == ("labels/img_03.TXT", "labelled", 1)
    if "POOL" not in row["tags"]:  # trainable now: the view holds it under the name ultralytics looks for
        assert (ws.root / "view" / "labels" / "img_03.txt").read_text() == "1 0.5 0.5 0.25 0.25\n"
    assert ws.dataset.labels("img_03").tolist() == [[1, 0.5, 0.5, 0.25, 0.25]]
    assert tree_hash(ds) == before


def test_label_path_that_is_a_folder_is_a_problem_not_unlabelled(tmp_path, capsys):
    ds = make_ds(tmp_path / "ds")
    (ds / "labels" / "img_07.txt").unlink()
    (ds / "labels" / "img_07.txt").mkdir()
    (ds / "labels" / "img_08.TXT").write_text("0 0.5 0.5 0.2 0.2\n")  # a second label file of img_08, other case
    before = tree_hash(ds)
    logs = []
    ws = pipeline.setup(tmp_path / "ws", ds, n_val=4, n_gt1=4, log=logs.append)
    text = "\n".join(logs)
    assert ws.mode == "simulation"  # not switched to the real loop by one unreadable label path
    assert "[label_is_folder] labels/img_07.txt: the label path of this image is a folder" in text
    assert "[two_label_files] labels/img_08.TXT" in text and "labels/img_08.txt" in text
    m = ws.manifest().set_index("stem")
    assert m.at["img_07", "tags"] == "EXCLUDED" and m.at["img_08", "tags"] == "EXCLUDED"
    assert tree_hash(ds) == before


def test_images_folder_that_is_a_symlink(tmp_path, capsys):
    ds = make_ds(tmp_path / "ds")
    shutil.move(ds / "images", tmp_path / "elsewhere")
    (ds / "images").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere" / "loop").symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # no endless walk
    before = tree_hash(ds)
    ws = pipeline.setup(tmp_path / "ws", ds, n_val=4, n_gt1=4, log=None)
    assert len(ws.manifest()) == 24 and ws.mode == "simulation" and ws.tag_counts()["EXCLUDED"] == 0
    assert tree_hash(ds) == before


def test_data_yaml_path_as_data_and_too_large_budget_before_training(tmp_path, capsys):
    """``--data ds/data.yaml`` is the dataset (it "did not exist"); ``--budget`` larger than the POOL is refused right
    after setup, before CAL1 trains (it was refused minutes later, at "select GT2")."""
    ds = make_ds(tmp_path / "ds")
    before = tree_hash(ds)
    rc, out, err = run_cli(capsys, *run_args(ds / "data.yaml", tmp_path / "ws"), "--budget", 1000)
    assert rc == 2 and "budget 1000 is larger than the 16 POOL image(s)" in err and "Nothing was trained" in err
    assert "[alnb] setup done" in out and "CAL1" not in out
    assert not (tmp_path / "ws" / "runs" / "CAL1").exists()
    assert Workspace.open(tmp_path / "ws").config["data_yaml"] == str(ds / "data.yaml")
    assert tree_hash(ds) == before
    # a workspace inside the dataset folder is refused whichever way the dataset is named
    rc, _, err = run_cli(capsys, *run_args(ds / "data.yaml", ds / "ws"))
    assert rc == 2 and "inside the dataset folder" in err
    assert tree_hash(ds) == before


def test_status_next_command_keeps_the_original_settings(tmp_path, capsys):
    ds = make_ds(tmp_path / "ds")
    ws = tmp_path / "ws"
    rc, _, _ = run_cli(capsys, *run_args(ds, ws), "--budget", 1000)  # stops after setup (exit 2)
    assert rc == 2
    nxt = status_next(capsys, ws)
    assert "--profile smoke --n-val 4 --n-gt1 4 --T 2 --budget 1000" in nxt
    (ws / "metrics" / "run_command.json").unlink()  # made in Python: rebuilt from workspace.json
    nxt = status_next(capsys, ws)
    assert f"alnb run --data {ds} --workspace {ws} --n-val 4 --n-gt1 4 --seed 0" in nxt
    # the rebuilt command reopens the workspace instead of being refused with advice to --overwrite
    assert Workspace.create(ws, ds, n_val=4, n_gt1=4, seed=0).manifest_path.is_file()


@pytest.mark.parametrize("flags, text", [
    (("--conf", 1.5), "--conf must lie strictly between 0 and 1, got 1.5"),
    (("--conf", 0), "--conf must lie strictly between 0 and 1, got 0.0"),
    (("--T", 0), "--T must be at least 1"),
    (("--budget", 0), "--budget must be at least 1"),
    (("--epochs", 0), "--epochs must be at least 1"),
    (("--imgsz", 8), "--imgsz must be at least 32"),
    (("--seed", -1), "--seed must be a whole number >= 0"),
    (("--labels", "nope.json"), "--labels nope.json: no such file or folder"),
])
def test_command_line_values_are_checked_before_any_work(tmp_path, capsys, flags, text):
    ds = make_ds(tmp_path / "ds")
    before = tree_hash(ds)
    rc, out, err = run_cli(capsys, *run_args(ds, tmp_path / "ws"), *flags)
    assert rc == 2 and text in err and "Nothing was done" in err, out + err
    assert not (tmp_path / "ws").exists() and "[alnb] setup" not in out
    assert tree_hash(ds) == before


@pytest.mark.parametrize("edit, text", [
    (lambda t: "\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != 9) for line in t.splitlines()),
     "column(s) ['auto_model'] missing"),
    (lambda t: t + t.splitlines()[3] + "\n", "line 26, column 'stem': stem 'img_02' appears again (first on line 4"),
    (lambda t: t.replace(",32,32,", ",32,wide,", 1), "column 'height': 'wide' is not a whole number"),
    (lambda t: t.replace(",human,", ",people,", 1), "column 'label_source': 'people' is not one of"),
    (lambda t: t[: len(t) // 3], "line "),
])
def test_hand_edited_manifest_is_named_with_advice(real_ws, tmp_path, capsys, edit, text):
    ws = real_ws
    ws.manifest_path.write_text(edit(ws.manifest_path.read_text()))
    ds_before, labels_before = tree_hash(ws.ds), tree_hash(ws.root / "labels")
    for argv in (("status", "--workspace", ws.root),
                 ("export-queue", "--workspace", ws.root, "--format", "labelstudio"),
                 run_args(ws.ds, ws.root)):
        rc, _, err = run_cli(capsys, *argv)
        assert rc == 2 and str(ws.manifest_path) in err and text in err, err
        assert "--overwrite" in err and "unexpected error" not in err
    assert tree_hash(ws.ds) == ds_before and tree_hash(ws.root / "labels") == labels_before
    # the advice works: a new split replaces the broken manifest
    assert len(Workspace.create(ws.root, ws.ds, n_val=4, n_gt1=4, overwrite=True).manifest()) == 24


def fake_finished_run(ws, name, weights_bytes):
    d = ws.root / "runs" / name
    (d / "weights").mkdir(parents=True)
    (d / "weights" / "best.pt").write_bytes(weights_bytes)
    (d / "alnb_run.json").write_text(json.dumps({"name": name, "key": "k", "profile": "smoke", "seconds": 1.0}))
    return d


@pytest.mark.parametrize("spoil", ["truncated", "text", "state_dict"])
def test_bad_checkpoints_get_advice(real_ws, tmp_path, capsys, spoil):
    """A truncated / foreign ``best.pt`` says "delete runs/CAL1 to retrain"; a bad ``--start`` is refused before any
    work (both were "unexpected error ... looks like a bug")."""
    import io

    import torch

    from alnb.model.train import MODELS_DIR

    good = (MODELS_DIR / "weld-defect-tiny.pt").read_bytes()
    buf = io.BytesIO()
    torch.save({"conv.weight": torch.zeros(2)}, buf)
    data = {"truncated": good[: len(good) // 2], "text": b"not a model\n", "state_dict": buf.getvalue()}[spoil]
    ws = real_ws
    run = fake_finished_run(ws, "CAL1", data)
    ds_before, labels_before = tree_hash(ws.ds), tree_hash(ws.root / "labels")
    rc, _, err = run_cli(capsys, "score", "--workspace", ws.root, "--model", "CAL1", "--conf", 0.25, "--T", 2)
    assert rc == 2 and f"{run / 'weights' / 'best.pt'} is not a usable model checkpoint" in err, err
    assert f"delete that folder (rm -r '{run}')" in err and "retrain CAL1" in err
    start = tmp_path / "start.pt"
    start.write_bytes(data)
    rc, out, err = run_cli(capsys, *run_args(ws.ds, tmp_path / "ws2"), "--start", start)
    assert rc == 2 and f"{start} is not a usable model checkpoint" in err and "--start none" in err, err
    assert not (tmp_path / "ws2").exists()
    assert tree_hash(ws.ds) == ds_before and tree_hash(ws.root / "labels") == labels_before


def ls_task(tid, stem, *annotations, image=None):
    return {"id": tid, "data": {"image": image or f"/data/local-files/?d=images/{stem}.png", "alnb_stem": stem},
            "annotations": list(annotations), "predictions": []}


def ls_region(rid, label, x, y, w, h, typ="rectanglelabels", key=None):
    return {"id": rid, "type": typ, "from_name": "label", "to_name": "image", "original_width": 32,
            "original_height": 32, "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0,
                                             key or typ: [label]}}


def test_labels_region_with_box_geometry_is_a_box_never_no_objects(real_ws, tmp_path, capsys):
    """``"type": "labels"`` with x/y/width/height is a box (as Label Studio's converter reads it); it used to be
    skipped and the image imported as *no objects*.  An unknown type with geometry is refused by name."""
    ws = real_ws
    gt2 = ws.stems("GT2")
    tasks = [ls_task(1, gt2[0], {"id": 11, "result": [ls_region("a", "crack", 25, 25, 50, 50, typ="labels"),
                                                        ls_region("b", "pore", 0, 0, 25, 25, typ="labels")]})]
    src = write_json(tmp_path / "ls.json", tasks)
    rc, out, err = run_cli(capsys, "import-labels", src, "--workspace", ws.root, "--format", "labelstudio")
    assert rc == 0 and "1 new, 0 replaced, 0 unchanged, 0 skipped" in out, out + err
    assert (ws.root / "labels" / f"{gt2[0]}.txt").read_text() == "0 0.5 0.5 0.5 0.5\n1 0.125 0.125 0.25 0.25\n"
    labels_before, ds_before = tree_hash(ws.root / "labels"), tree_hash(ws.ds)
    tasks = [ls_task(2, gt2[1], {"id": 12, "result": [ls_region("c", "crack", 25, 25, 50, 50, typ="boxlabels")]})]
    rc, _, err = run_cli(capsys, "import-labels", write_json(tmp_path / "ls2.json", tasks), "--workspace", ws.root,
                         "--format", "labelstudio")
    assert rc == 2 and "[unknown_region]" in err and "task 2, annotation 12, region c" in err
    assert "region of type 'boxlabels' carries box geometry (x, y, width, height)" in err
    assert tree_hash(ws.root / "labels") == labels_before and tree_hash(ws.ds) == ds_before
    assert ws.manifest().set_index("stem").at[gt2[1], "label_source"] == "none"


def test_several_annotations_on_one_task_are_a_choice_named_in_the_output(real_ws, tmp_path, capsys):
    ws = real_ws
    s = ws.stems("GT2")[0]
    ann = lambda aid, who, when, res: {"id": aid, "completed_by": who, "result": res, "was_cancelled": False,  # noqa
                                       "created_at": when, "updated_at": when}
    first = ann(21, {"id": 3, "email": "ana@lab"}, "2026-01-01T10:00:00Z",
                [ls_region(f"r{i}", "crack", 10 * i, 10, 5, 5) for i in range(1, 10)])  # 9 boxes
    second = ann(22, {"id": 4, "email": "ben@lab"}, "2026-01-02T10:00:00Z", [])  # later, empty
    src = write_json(tmp_path / "ls.json", [ls_task(1, s, first, second)])
    labels_before, ds_before = tree_hash(ws.root / "labels"), tree_hash(ws.ds)
    rc, out, err = run_cli(capsys, "import-labels", src, "--workspace", ws.root, "--format", "labelstudio")
    assert rc == 2 and "[several_annotations]" in err and f"task 1, image {s}" in err, out + err
    assert "annotation 21 by ana@lab (2026-01-01T10:00:00Z): 9 region(s)" in err
    assert "annotation 22 by ben@lab (2026-01-02T10:00:00Z): 0 region(s)" in err and "--annotation latest" in err
    assert tree_hash(ws.root / "labels") == labels_before and tree_hash(ws.ds) == ds_before
    rc, out, _ = run_cli(capsys, "import-labels", src, "--workspace", ws.root, "--format", "labelstudio",
                         "--annotation", "ana@lab", "--dry-run")
    assert rc == 0 and "would import labels" in out and "1 new" in out
    assert f"1 task(s) with several annotations: {s}: annotation 21 by ana@lab of 2 annotations" in out
    rc, out, _ = run_cli(capsys, "import-labels", src, "--workspace", ws.root, "--format", "labelstudio",
                         "--annotation", "first")
    assert rc == 0 and "(--annotation first)" in out
    assert len((ws.root / "labels" / f"{s}.txt").read_text().splitlines()) == 9  # the first person's 9 boxes
    rc, _, err = run_cli(capsys, "import-labels", src, "--workspace", ws.root, "--format", "yolo", "--annotation",
                         "first")
    assert rc == 2 and "chooses among the annotations of a Label Studio task" in err


def test_percent_escapes_in_file_names_round_trip_through_every_export(tmp_path, capsys):
    """``weld_50%AB_0021.png`` comes back from alnb's own Label Studio, COCO and CVAT exports (names were URL-decoded
    where they were never URL-encoded: "not an image of this workspace")."""
    ds = make_ds(tmp_path / "ds", unlabelled=range(16, 24),
                 stems=[f"img_{i:02d}" for i in range(20)] + ["weld_50%AB_0021", "a%20b", "c%2Fd", "e%"])
    ws = pipeline.setup(tmp_path / "ws", ds, n_val=4, n_gt1=4, log=None)
    odd = ["weld_50%AB_0021", "a%20b", "c%2Fd", "e%"]
    fake_autolabels(ws, odd, "1 0.5 0.5 0.25 0.25 0.9\n")
    sel.commit(ws, odd, "GT2")
    ds_before = tree_hash(ds)
    for fmt, imp, made in (("labelstudio", "labelstudio", "tasks.json"), ("coco", "coco", "instances.json"),
                           ("cvat", "yolo", labelio.CVAT_ZIP)):
        rc, _, err = run_cli(capsys, "export-queue", "--workspace", ws.root, "--format", fmt)
        assert rc == 0, err
        src = ws.root / "export" / fmt / made
        if fmt == "labelstudio":  # people accept the pre-annotations as they are
            tasks = json.loads(src.read_text())
            for i, t in enumerate(tasks):
                t["annotations"] = [{"id": 1, "result": t["predictions"][0]["result"]}]
                if i % 2:
                    del t["data"]["alnb_stem"]  # matched by the (URL-encoded) image path alone
            write_json(src, tasks)
        rc, out, err = run_cli(capsys, "import-labels", src, "--workspace", ws.root, "--format", imp, "--dry-run")
        assert rc == 0 and "would import labels" in out and "4 new" in out, (fmt, out + err)
    assert tree_hash(ds) == ds_before


@pytest.mark.parametrize("spoil, text", [
    (lambda t: t[0]["annotations"][0]["result"].append("crack 0.5 0.5 0.1 0.1"),
     "(task 1, annotation 100, region #2, image {s}): this region is a str ('crack 0.5 0.5 0.1 0.1')"),
    (lambda t: t[0]["annotations"].append("lgtm"), "(task 1, image {s}): 'annotations' holds 'lgtm'"),
    (lambda t: t[0]["annotations"][0].update(result={"x": 1}), "'result' is {{'x': 1}}, not a list of regions"),
    (lambda t: t[0]["annotations"][0]["result"][0].update(value=["x"]), "region type 'rectanglelabels' / value"),
    (lambda t: t[0]["annotations"][0]["result"][0]["value"].update(rectanglelabels=[["crack"]]),
     "class ['crack'] is not one of the workspace classes"),
    (lambda t: t[0]["annotations"][0]["result"][0].update(original_width="wide"), "original size 'wide'x32"),
    (lambda t: t[0]["data"].update(alnb_stem=["x"], image={"url": 1}), "is not an image of this workspace"),
    (lambda t: t.append("task 2"), "(task #2): not a Label Studio task (no 'data' object; found 'task 2')"),
])
def test_malformed_export_names_the_task_not_a_bug(real_ws, tmp_path, capsys, spoil, text):
    ws = real_ws
    s = ws.stems("GT2")[0]
    tasks = ls_export(ws, [s], ws.truth)
    spoil(tasks)
    src = write_json(tmp_path / "ls.json", tasks)
    labels_before, ds_before, m_before = tree_hash(ws.root / "labels"), tree_hash(ws.ds), ws.manifest_path.read_bytes()
    rc, _, err = run_cli(capsys, "import-labels", src, "--workspace", ws.root, "--format", "labelstudio")
    assert rc == 2 and "unexpected error" not in err and text.format(s=s) in err, err
    assert "nothing was imported" in err
    assert tree_hash(ws.root / "labels") == labels_before and tree_hash(ws.ds) == ds_before
    assert ws.manifest_path.read_bytes() == m_before


def test_malformed_coco_is_named_not_misread(real_ws, tmp_path, capsys):
    ws = real_ws
    s = ws.stems("GT2")[0]
    base = {"images": [{"id": [1], "file_name": f"images/{s}.png", "width": 32, "height": 32}],
            "categories": [{"id": {"a": 1}, "name": "crack"}],
            "annotations": [{"id": 1, "image_id": [1], "category_id": {"a": 1}, "bbox": "1234"}]}
    labels_before = tree_hash(ws.root / "labels")
    rc, _, err = run_cli(capsys, "import-labels", write_json(tmp_path / "c.json", base), "--workspace", ws.root,
                         "--format", "coco")  # unhashable ids were a TypeError, a string bbox read as 4 numbers
    assert rc == 2 and "bbox '1234' is not [x, y, width, height] (four numbers, pixels)" in err, err
    base["images"][0]["width"] = 32.5
    rc, _, err = run_cli(capsys, "import-labels", write_json(tmp_path / "c.json", base), "--workspace", ws.root,
                         "--format", "coco")
    assert rc == 2 and "COCO says 32.5x32 pixels" in err
    assert tree_hash(ws.root / "labels") == labels_before


def test_images_that_are_symlinks_work_with_the_default_document_root(tmp_path, capsys):
    """The real loop used to stop at "label GT2" ("not below the Label Studio document root ... pass a
    document_root", which `alnb run` cannot); Label Studio serves the path through the link."""
    ds = make_ds(tmp_path / "ds", unlabelled=range(16, 24))
    store = tmp_path / "store"
    store.mkdir()
    for p in sorted((ds / "images").glob("*.png")):
        shutil.move(p, store / p.name)
        p.symlink_to(store / p.name)
    ws = pipeline.setup(tmp_path / "ws", ds, n_val=4, n_gt1=4, log=None)
    pool = [s for s in ws.stems("POOL") if int(s[-2:]) >= 16]
    sel.commit(ws, pool[:3], "GT2")
    before = tree_hash(ds)
    with pytest.raises(WaitingForLabels) as w:  # `alnb run` at "label GT2": exports the queue and waits (exit 3)
        pipeline.ensure_labelled(ws, "GT2", log=None)
    tasks = json.loads((ws.root / "export" / "GT2_labelstudio" / "tasks.json").read_text())
    assert sorted(t["data"]["image"] for t in tasks) == [f"/data/local-files/?d=images/{s}.png" for s in pool[:3]]
    assert w.value.queue and sorted(w.value.waiting) == pool[:3]
    rc, _, err = run_cli(capsys, "export-queue", "--workspace", ws.root, "--format", "labelstudio", "--document-root",
                         tmp_path)
    assert rc == 0, err
    assert tree_hash(ds) == before


# ------------------------------------------- issue 37: every setting, label and file name either works or is named
def _next_argv(nxt: str):
    """The ``alnb run`` command of a ``next:`` line, parsed by alnb's own parser (what running it verbatim does)."""
    import shlex

    tokens = shlex.split(nxt[nxt.index("alnb run"):])
    return cli.build_parser().parse_args(tokens[1:])


@pytest.mark.slow
def test_issue37_case1_settings_survive_a_kill_inside_cal1_training(tiny_dataset, tmp_path, capsys):
    """``alnb run ... --profile smoke --epochs 300`` killed with SIGKILL while CAL1 trains: ``alnb status`` printed a
    next command without --profile / --epochs (it would have trained the quick profile, 25 epochs).  The settings are
    now recorded right after setup, before the first training."""
    import signal

    ws = tmp_path / "ws"
    argv = ["run", "--data", str(tiny_dataset), "--workspace", str(ws), "--profile", "smoke", "--epochs", "300",
            "--n-val", "8", "--n-gt1", "8", "--seed", "0", "--T", "2"]
    env = {k: v for k, v in os.environ.items() if k != lock.ENV}
    p = subprocess.Popen([sys.executable, "-m", "alnb", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env=env, start_new_session=True)
    run_dir = ws / "runs" / "CAL1"
    try:
        deadline = time.monotonic() + 600
        while not (run_dir / "results.csv").is_file():  # the first of 300 epochs is done: inside the training
            assert p.poll() is None, "alnb run ended before CAL1's first epoch"
            assert time.monotonic() < deadline, "CAL1 did not start training"
            time.sleep(0.2)
        assert p.poll() is None and not (run_dir / "alnb_run.json").exists()
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL
    nxt = status_next(capsys, ws)
    assert "round 1, train CAL1 on GT1" in nxt and "--profile smoke --epochs 300" in nxt, nxt
    args = _next_argv(nxt)
    assert (args.command, args.profile, args.epochs, args.n_val, args.n_gt1, args.seed, args.T) == \
        ("run", "smoke", 300, 8, 8, 0, 2)
    assert (args.data, args.workspace) == (str(tiny_dataset), str(ws))


def test_issue37_case2_imgsz_that_is_not_a_multiple_of_32_is_refused(tmp_path, capsys):
    """``--imgsz 33`` was accepted; ultralytics trained at 64 (said only in logs/CAL1_GT1.log) while alnb_run.json
    recorded 33."""
    from alnb.model.train import get_profile

    ds = make_ds(tmp_path / "ds")
    rc, out, err = run_cli(capsys, *run_args(ds, tmp_path / "ws"), "--imgsz", 33)
    assert rc == 2 and "--imgsz must be a whole number of pixels that is a multiple of 32" in err, err
    assert "got 33: use 32 or 64 (ultralytics would train 33 as 64)" in err and "Nothing was done" in err
    assert not (tmp_path / "ws").exists() and "[alnb] setup" not in out
    rc, _, err = run_cli(capsys, "score", "--workspace", tmp_path / "ws", "--imgsz", 100)  # inference size too
    assert rc == 2 and "got 100: use 96 or 128" in err
    with pytest.raises(ValueError, match="imgsz must be .* multiple of 32 .* got 33"):  # the Python API says the same
        get_profile("smoke", imgsz=33)
    assert get_profile("smoke", imgsz=96).train_args()["imgsz"] == 96


def test_issue37_case3_duplicate_box_lines_are_named_on_screen(tmp_path, capsys):
    """A label file holding its boxes twice: the manifest counted 4 boxes, ultralytics trained on 2 and said so only
    in a training log.  Now the image is a named validation problem, printed with its file and lines."""
    ds = make_ds(tmp_path / "ds")
    (ds / "labels" / "img_05.txt").write_text("1 0.5 0.5 0.25 0.25\n0 0.2 0.2 0.1 0.1\n" * 2)
    before = tree_hash(ds)
    rc, out, err = run_cli(capsys, *run_args(ds, tmp_path / "ws"), "--budget", 1000)  # stops after setup (exit 2)
    assert rc == 2, err
    assert "[alnb]   [duplicate_box] labels/img_05.txt:3: this box repeats line 1" in out, out
    assert "line(s) 3, 4 repeat line(s) 1, 2" in out and "delete the repeated line(s)" in out
    m = Workspace.open(tmp_path / "ws").manifest().set_index("stem")
    assert m.at["img_05", "tags"] == "EXCLUDED" and m.at["img_05", "problem"] == "duplicate_box"
    assert tree_hash(ds) == before


def test_issue37_case3_import_with_one_box_twice_is_refused_by_name(real_ws, tmp_path, capsys):
    ws = real_ws
    gt2 = ws.stems("GT2")
    exp = ls_export(ws, gt2, ws.truth)
    res = exp[1]["annotations"][0]["result"]
    res.append({**res[0], "id": "again"})  # the same region twice (a copy-paste in the tool)
    labels_before = tree_hash(ws.root / "labels")
    rc, _, err = run_cli(capsys, "import-labels", write_json(tmp_path / "ls.json", exp), "--workspace", ws.root,
                         "--format", "labelstudio")
    assert rc == 2 and "nothing was imported" in err and "[duplicate_box]" in err, err
    assert f"(task 2, annotation 101, image {gt2[1]})" in err and "appears more than once" in err and "2 times" in err
    assert tree_hash(ws.root / "labels") == labels_before


def test_issue37_case4_labelstudio_result_null_is_skipped_never_no_objects(real_ws, tmp_path, capsys):
    """``"result": null`` was imported as "new" with an empty label file (= "this image has no objects") while
    ``"annotations": null`` was skipped; both are now skipped, the task named."""
    ws = real_ws
    gt2 = ws.stems("GT2")
    exp = ls_export(ws, gt2, ws.truth)
    exp[0]["annotations"][0]["result"] = None
    exp[1]["annotations"] = None
    del exp[2]["annotations"][0]["result"]
    rc, out, err = run_cli(capsys, "import-labels", write_json(tmp_path / "ls.json", exp), "--workspace", ws.root,
                           "--format", "labelstudio")
    assert rc == 0, err
    assert "1 new, 0 replaced, 0 unchanged, 3 skipped" in out, out
    assert f"{gt2[0]} (task 1, annotation 100: 'result' is null, so it records no regions and is not 'no objects'" \
        in out and "task 3, annotation 102: 'result' is missing" in out
    m = ws.manifest().set_index("stem")
    for s in gt2[:3]:
        assert not (ws.root / "labels" / f"{s}.txt").exists() and m.at[s, "label_source"] == "none", s
    assert m.at[gt2[3], "label_source"] == "human"


def test_issue37_case5_hand_edited_selection_tag_is_named(real_ws, capsys, monkeypatch):
    """GT2 -> GT3 typed into manifest.csv was accepted without a word: ``alnb status`` showed round 3."""
    ws = real_ws
    rc, out, _ = run_cli(capsys, "status", "--workspace", ws.root)
    assert rc == 0 and "round:     1 of 2" in out
    good = ws.manifest_path.read_text()
    ws.manifest_path.write_text(good.replace(";GT2", ";GT3"))
    edited = ws.manifest_path.read_bytes()
    line = next(i for i, t in enumerate(edited.decode().splitlines(), start=1) if "GT3" in t)
    ds_before, labels_before = tree_hash(ws.ds), tree_hash(ws.root / "labels")
    for argv in (("status", "--workspace", ws.root), run_args(ws.ds, ws.root)):
        rc, out, err = run_cli(capsys, *argv)
        assert rc == 2 and f"{ws.manifest_path} line {line}: " in err and "carries the tag GT3" in err, out + err
        assert "there is no lists/GT3.txt" in err and "edited by hand" in err and "--overwrite" in err
        assert "round 3" not in out and "unexpected error" not in err
    assert ws.manifest_path.read_bytes() == edited  # nothing rewritten from the edited file
    assert tree_hash(ws.ds) == ds_before and tree_hash(ws.root / "labels") == labels_before
    # a commit killed half-way (manifest written, list not yet) leaves a workspace that still passes the check
    ws.manifest_path.write_text(good)
    state = {"manifest": False}
    real_write = Workspace.write_manifest

    def write_manifest(self, m):
        real_write(self, m)
        state["manifest"] = True

    def write_list(self, name, stems, _real=Workspace.write_list):
        if state["manifest"]:
            raise KeyboardInterrupt  # kill -9 right after the manifest was replaced
        return _real(self, name, stems)

    monkeypatch.setattr(Workspace, "write_manifest", write_manifest)
    monkeypatch.setattr(Workspace, "write_list", write_list)
    with pytest.raises(KeyboardInterrupt):
        sel.commit(ws, ws.pool[2:6], "GT2")
    monkeypatch.undo()
    assert sorted(ws.stems("GT2")) == sorted(ws.pool[2:6])
    ws.check_selections()
    rc, out, _ = run_cli(capsys, "status", "--workspace", ws.root)
    assert rc == 0 and "GT2:       0 of 4 labelled" in out


def test_issue37_case6_longest_legal_file_name_works_where_alnb_writes(tmp_path, capsys):
    """A 245-character image name passed validation, then scoring stopped with "File name too long" on alnb's own
    temporary name (``.<name>.txt.<random>.tmp``).  The longest legal name (255 bytes with its extension) now works
    through validation, auto-labels, export, import and an import that replaces labels (``labels/.history/``)."""
    from alnb.acquisition.scoring import write_autolabels

    long = "weld_0021_" + "y" * 241  # + ".png" = 255 bytes, the file system's limit
    ds = make_ds(tmp_path / "ds", unlabelled=range(16, 24), stems=[f"img_{i:02d}" for i in range(23)] + [long])
    ws = pipeline.setup(tmp_path / "ws", ds, n_val=4, n_gt1=4, log=None)
    m = ws.manifest().set_index("stem")
    assert m.at[long, "problem"] == "" and m.at[long, "tags"] == "POOL" and not len(ws.dataset.problems)
    pool = ws.manifest()[lambda d: d["tags"] == "POOL"]
    out = write_autolabels(ws, "CAL1", pd.DataFrame(), pool)  # where `alnb run` stopped
    assert (out / f"{long}.txt").read_text() == ""
    sel.commit(ws, [long], "GT2")
    rc, _, err = run_cli(capsys, "export-queue", "--workspace", ws.root, "--format", "labelstudio")
    assert rc == 0, err
    people = tmp_path / "people"
    people.mkdir()
    (people / f"{long}.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    rc, out, err = run_cli(capsys, "import-labels", people, "--workspace", ws.root, "--format", "yolo")
    assert rc == 0 and "1 new" in out, err
    (people / f"{long}.txt").write_text("1 0.4 0.4 0.2 0.2\n")  # corrected: replaces, the old file kept
    rc, out, err = run_cli(capsys, "import-labels", people, "--workspace", ws.root, "--format", "yolo", "--overwrite")
    assert rc == 0 and "1 replaced" in out, err
    (kept,) = (ws.root / "labels" / ".history").iterdir()
    assert kept.read_text() == "0 0.5 0.5 0.25 0.25\n" and len(kept.name.encode()) <= 255
    assert kept.name.startswith("weld_0021_yyy") and kept.name.endswith(".txt")
    assert (ws.root / "labels" / f"{long}.txt").read_text() == "1 0.4 0.4 0.2 0.2\n"
    assert not [p for p in ws.root.rglob("*.tmp")]


def test_issue37_case7_labelstudio_boxes_drawn_bottom_up_are_normalised(real_ws, tmp_path, capsys):
    """A box drawn bottom-up / right-to-left can carry a negative height / width in a Label Studio export (it spans
    y + height .. y); alnb refused it ("zero or negative width/height") and blocked the whole import."""
    ws = real_ws
    gt2 = ws.stems("GT2")
    exp = ls_export(ws, gt2, ws.truth)
    for k, (flip_x, flip_y) in enumerate(((False, True), (True, False), (True, True))):
        v = exp[k]["annotations"][0]["result"][0]["value"]
        if flip_x:
            v["x"], v["width"] = v["x"] + v["width"], -v["width"]
        if flip_y:
            v["y"], v["height"] = v["y"] + v["height"], -v["height"]
    rc, out, err = run_cli(capsys, "import-labels", write_json(tmp_path / "ls.json", exp), "--workspace", ws.root,
                           "--format", "labelstudio")
    assert rc == 0 and "4 new" in out, err
    from alnb.core.data import read_labels

    for s in gt2:
        np.testing.assert_allclose(read_labels(ws.root / "labels" / f"{s}.txt", 2),
                                   read_labels(ws.truth / f"{s}.txt", 2), atol=1e-6)
    exp = ls_export(ws, gt2, ws.truth)  # a box with no width at all is still refused, by name
    exp[0]["annotations"][0]["result"][0]["value"]["width"] = 0
    rc, _, err = run_cli(capsys, "import-labels", write_json(tmp_path / "ls0.json", exp), "--workspace", ws.root,
                         "--format", "labelstudio", "--overwrite")
    assert rc == 2 and "[zero_area]" in err and "task 1" in err


def test_issue37_case8_labelimg_layout_is_named_by_alnb_run(tmp_path, capsys):
    """Labels saved next to the images (LabelImg's default): "the dataset has only 0 labelled usable images ... label
    more images" although every image had a label file."""
    ds = make_ds(tmp_path / "ds")
    for lab in sorted((ds / "labels").glob("*.txt")):
        lab.rename(ds / "images" / lab.name)
    (ds / "labels").rmdir()
    before = tree_hash(ds)
    rc, _, err = run_cli(capsys, *run_args(ds, tmp_path / "ws"))
    assert rc == 2 and "24 label file(s) lie next to their images" in err, err
    assert "labels/img_00.txt" in err and f"mv {ds / 'images'}/*.txt {ds / 'labels'}/" in err
    assert "only 0 labelled" not in err and not (tmp_path / "ws").exists()
    assert tree_hash(ds) == before


def test_issue37_case9_workspace_path_that_is_a_file(tmp_path, capsys):
    """``--workspace`` naming an existing file gave "alnb: File exists: .../ws"."""
    ds = make_ds(tmp_path / "ds")
    f = tmp_path / "ws"
    f.write_text("my notes\n")
    for argv in (run_args(ds, f), ("status", "--workspace", f), ("export-queue", "--workspace", f, "--format", "coco"),
                 ("score", "--workspace", f)):
        rc, _, err = run_cli(capsys, *argv)
        assert rc == 2 and f"--workspace {f} is a file, not a folder" in err, (argv, err)
        assert "Choose another --workspace path" in err and "Nothing was done" in err
    rc, _, err = run_cli(capsys, *run_args(ds, f / "sub"))
    assert rc == 2 and f"--workspace {f / 'sub'} lies below {f}, which is a file" in err, err
    with pytest.raises(WorkspaceError, match="is a file, not a folder"):  # any command that takes the lock
        with lock.workspace_lock(f):
            pass
    assert f.read_text() == "my notes\n"
