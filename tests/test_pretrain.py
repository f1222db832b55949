"""The shipped starting checkpoint: disjoint corpus, class-agnostic task, small, and used by the profiles."""

from __future__ import annotations

import json

import pytest

from alnb.model import pretrain
from alnb.model.train import PROFILES, start_weights


def test_corpus_is_disjoint_and_class_agnostic(tmp_path):
    with pytest.raises(ValueError, match="disjoint"):
        pretrain.make_corpus(tmp_path / "bad", n_images=4, n_val=1, seed=0, progress=False)
    data_yaml = pretrain.make_corpus(tmp_path / "c", n_images=6, n_val=2, progress=False)
    import yaml

    data = yaml.safe_load(data_yaml.read_text())
    assert data["names"] == {0: pretrain.AGNOSTIC_NAME}
    ag = data_yaml.parent
    assert len((ag / "val.txt").read_text().split()) == 2 and len((ag / "train.txt").read_text().split()) == 4
    n_boxes = 0
    for lab in (ag / "labels").glob("*.txt"):
        src = (tmp_path / "c" / "weld" / "labels" / lab.name).read_text().split("\n")
        rows = [ln.split() for ln in lab.read_text().split("\n") if ln.strip()]
        assert all(r[0] == "0" for r in rows)  # one class: "defect"
        assert [r[1:] for r in rows] == [ln.split()[1:] for ln in src if ln.strip()]  # the same boxes
        n_boxes += len(rows)
    assert n_boxes > 0
    # another generator seed than the study's: no image is byte-identical to the study's image of the same index
    from alnb.datasets import weld

    study = weld.generate(tmp_path / "study", weld.WeldConfig(n_images=6, seed=0), progress=False)
    for img in (study / "images").glob("*.png"):
        assert img.read_bytes() != (tmp_path / "c" / "weld" / "images" / img.name).read_bytes()


def test_shipped_checkpoint_is_small_one_class_and_documented():
    ck = pretrain.CHECKPOINT
    assert ck.is_file(), f"{ck} missing: rebuild it with `python -m alnb.model.pretrain`"
    assert ck.stat().st_size <= 5 * 2**20
    import torch

    model = torch.load(ck, map_location="cpu", weights_only=False)["model"]
    assert model.nc == 1 and dict(model.names) == {0: pretrain.AGNOSTIC_NAME}
    rec = json.loads(ck.with_suffix(".json").read_text())
    assert rec["corpus_seed"] == pretrain.CORPUS_SEED != 0 and rec["recipe"]["n_images"] >= 1000
    # the CPU profiles start from it; the GPU paper profile starts from scratch (or the user's own COCO weights)
    assert start_weights(PROFILES["quick"].start) == ck.resolve()
    assert start_weights(PROFILES["smoke"].start) == ck.resolve()
    with pytest.raises(FileNotFoundError, match="never downloads"):
        start_weights("not-there.pt")
    assert start_weights(None) is None
