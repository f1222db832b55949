import hashlib

import pytest
import yaml

from alnb.core.workspace import Workspace, WorkspaceError, has_tag, make_split, with_tag
from alnb.core.data import load_dataset


def _hash(root):
    return hashlib.sha256(b"".join(p.as_posix().encode() + p.read_bytes()
                                   for p in sorted(root.rglob("*")) if p.is_file())).hexdigest()


def test_split_sizes_disjoint_and_reproducible(tiny_dataset):
    ds = load_dataset(tiny_dataset, progress=False)
    a = make_split(ds, n_val=10, n_gt1=8, seed=1)
    b = make_split(ds, n_val=10, n_gt1=8, seed=1)
    c = make_split(ds, n_val=10, n_gt1=8, seed=2)
    assert a.equals(b) and not a.equals(c)
    val, gt1, pool = (set(a.loc[has_tag(a, t), "stem"]) for t in ("VAL1", "GT1", "POOL"))
    assert (len(val), len(gt1), len(pool)) == (10, 8, 22)
    assert not (val & gt1) and not (val & pool) and not (gt1 & pool)
    assert set(a.loc[has_tag(a, "POOL"), "label_source"]) == {"none"}
    assert set(a.loc[has_tag(a, "GT1"), "label_source"]) == {"human"}


def test_fractions_and_too_large_requests(tiny_dataset):
    ds = load_dataset(tiny_dataset, progress=False)
    m = make_split(ds, n_val=0.25, n_gt1=0.25, seed=0)
    assert has_tag(m, "VAL1").sum() == 10 and has_tag(m, "GT1").sum() == 10
    with pytest.raises(ValueError, match="only 40"):
        make_split(ds, n_val=30, n_gt1=30)
    with pytest.raises(ValueError, match="nothing would be left"):
        make_split(ds, n_val=20, n_gt1=20)


def test_manifest_overwrite_protection(tiny_dataset, tmp_path):
    ws = Workspace.create(tmp_path / "ws", tiny_dataset, n_val=10, n_gt1=10, seed=0, progress=False)
    first = ws.manifest_path.read_text()
    same = Workspace.create(tmp_path / "ws", tiny_dataset, n_val=10, n_gt1=10, seed=0, progress=False)
    assert same.manifest_path.read_text() == first  # same settings: reopened unchanged
    with pytest.raises(WorkspaceError, match="overwrite=True"):
        Workspace.create(tmp_path / "ws", tiny_dataset, n_val=10, n_gt1=10, seed=5, progress=False)
    assert ws.manifest_path.read_text() == first
    Workspace.create(tmp_path / "ws", tiny_dataset, n_val=10, n_gt1=10, seed=5, overwrite=True, progress=False)
    assert ws.manifest_path.read_text() != first
    assert not list((tmp_path / "ws").glob(".*.tmp"))  # atomic write leaves no temp files


def test_hidden_pool_labels_view_and_data_yaml(tiny_workspace):
    ws = tiny_workspace
    before = _hash(ws.dataset_root)
    lab = ws.root / "view" / "labels"
    visible = {p.stem for p in lab.glob("*.txt")}
    assert visible == set(ws.stems("VAL1", "GT1"))  # POOL labels stay hidden
    y = yaml.safe_load(ws.write_data_yaml("CAL1", ["GT1"]).read_text())
    train = (ws.root / "lists" / "CAL1_train.txt").read_text().split()
    assert len(train) == 10 and y["names"][0] == "bite-edge" and y["train"].endswith("CAL1_train.txt")
    with pytest.raises(WorkspaceError, match="never trained on"):
        ws.write_data_yaml("bad", ["GT1", "VAL1"])
    pool = ws.stems("POOL")[:4]
    m = with_tag(ws.manifest(), pool, "GT2")
    ws.write_manifest(m)
    with pytest.raises(WorkspaceError, match="no trainable labels"):
        ws.write_data_yaml("CAL2", ["GT1", "GT2"])
    ws.reveal(pool)
    assert {p.stem for p in lab.glob("*.txt")} == set(ws.stems("VAL1", "GT1")) | set(pool)
    ws.write_data_yaml("CAL2", ["GT1", "GT2"])
    assert len((ws.root / "lists" / "CAL2_train.txt").read_text().split()) == 14
    with pytest.raises(WorkspaceError, match="held out"):
        ws.reveal(ws.stems("VAL1")[:1])
    assert _hash(ws.dataset_root) == before  # the dataset folder is never written
