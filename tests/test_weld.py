import hashlib

import numpy as np
import pytest

from alnb.datasets import weld
from alnb.core.data import load_dataset


def _tree_hash(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_gives_byte_identical_files(tmp_path):
    cfg = weld.WeldConfig(n_images=12, width=96, height=96, seed=7)
    a = weld.generate(tmp_path / "a", cfg, progress=False)
    b = weld.generate(tmp_path / "b", cfg, progress=False)
    assert _tree_hash(a) == _tree_hash(b)
    c = weld.generate(tmp_path / "c", weld.WeldConfig(n_images=12, width=96, height=96, seed=8), progress=False)
    assert _tree_hash(a) != _tree_hash(c)


def test_class_list_layout_and_counts(tmp_path):
    root = weld.generate(tmp_path / "w", weld.WeldConfig(n_images=150, width=128, height=128), progress=False)
    ds = load_dataset(root, progress=False)
    assert ds.names == ["bite-edge", "crack", "slag-inclusion", "broken-arc", "air-hole", "unfused"]
    assert len(ds.images) == 150 and ds.problems.empty and ds.fully_labelled
    counts = ds.class_counts()
    assert (counts > 0).all(), counts
    share = counts / counts.sum()
    assert share["slag-inclusion"] < 0.08  # rare, as in the study
    assert share["air-hole"] == share.max() or share["air-hole"] > 0.15  # pores come in clusters
    assert (ds.images["label_state"] == "empty").sum() > 0  # some images hold no defect
    meta = (root / "meta.csv").read_text().splitlines()[1:]
    setups = [line.split(",")[1] for line in meta]
    assert 0.1 < setups.count("B") / len(setups) < 0.32  # about a fifth from the second setup


def test_generated_boxes_are_valid_and_visible(tmp_path):
    cfg = weld.WeldConfig(n_images=30, width=160, height=120, seed=2)
    for i in range(cfg.n_images):
        img, labels, meta = weld.render(i, cfg)
        assert img.shape == (120, 160) and img.dtype == np.uint8
        for c, x0, y0, x1, y1 in labels:
            assert 0 <= x0 < x1 <= 159 and 0 <= y0 < y1 <= 119
            # defects are darker than their surroundings' bead/background average
            assert img[int(y0):int(y1) + 1, int(x0):int(x1) + 1].size > 0


def test_second_setup_has_lower_contrast_and_more_noise():
    cfg = weld.WeldConfig(n_images=80, width=128, height=128, seed=0)
    metas = [weld.render(i, cfg)[2] for i in range(cfg.n_images)]
    a = [m["grain"] for m in metas if m["setup"] == "A"]
    b = [m["grain"] for m in metas if m["setup"] == "B"]
    assert b and a and min(b) > max(a)


def test_generate_refuses_foreign_folder_and_reuses_same_config(tmp_path):
    cfg = weld.WeldConfig(n_images=4, width=64, height=64)
    root = weld.generate(tmp_path / "w", cfg, progress=False)
    before = _tree_hash(root)
    weld.generate(root, cfg, progress=False)  # same config: left as it is
    assert _tree_hash(root) == before
    with pytest.raises(FileExistsError, match="other settings"):
        weld.generate(root, weld.WeldConfig(n_images=5, width=64, height=64), progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "mine.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not empty"):
        weld.generate(tmp_path / "other", cfg, progress=False)
    assert (tmp_path / "other" / "mine.txt").read_text() == "user data"
