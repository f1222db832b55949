"""Validation of bring-your-own YOLO datasets: every bad-input kind, named with file and line."""

import hashlib

import numpy as np
import pytest
from PIL import Image

from alnb.data import DatasetError, load_dataset, parse_label_lines, validation_summary


def _img(path, w=32, h=24):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w), 128, np.uint8)).save(path)


def _lab(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def byod(tmp_path):
    """A small hand-made dataset with one instance of every problem kind, nested folders included."""
    r = tmp_path / "ds"
    r.mkdir()
    (r / "data.yaml").write_text("names: [crack, pore]\n")
    _img(r / "images" / "ok.png"); _lab(r / "labels" / "ok.txt", "0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n")
    _img(r / "images" / "sub" / "nested.png"); _lab(r / "labels" / "sub" / "nested.txt", "1 0.5 0.5 0.5 0.5\n")
    _img(r / "images" / "empty.png"); _lab(r / "labels" / "empty.txt", "")
    _img(r / "images" / "unlabelled.png")
    (r / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    _lab(r / "labels" / "corrupt.txt", "0 0.5 0.5 0.1 0.1\n")
    _img(r / "images" / "fields.png"); _lab(r / "labels" / "fields.txt", "0 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.1\n")
    _img(r / "images" / "nan.png"); _lab(r / "labels" / "nan.txt", "0 0.5 abc 0.1 0.1\n")
    _img(r / "images" / "cls.png"); _lab(r / "labels" / "cls.txt", "0 0.5 0.5 0.1 0.1\n\n2 0.5 0.5 0.1 0.1\n")
    _img(r / "images" / "oob.png"); _lab(r / "labels" / "oob.txt", "1 0.95 0.5 0.2 0.1\n")
    _img(r / "images" / "zero.png"); _lab(r / "labels" / "zero.txt", "1 0.5 0.5 0 0.1\n")
    _img(r / "images" / "a" / "dup.png"); _img(r / "images" / "b" / "dup.jpg")
    _lab(r / "labels" / "orphan.txt", "0 0.5 0.5 0.1 0.1\n")
    return r


def _hash(root):
    return hashlib.sha256(b"".join(p.as_posix().encode() + p.read_bytes()
                                   for p in sorted(root.rglob("*")) if p.is_file())).hexdigest()


def test_every_problem_kind_is_reported_with_file_and_line(byod):
    before = _hash(byod)
    ds = load_dataset(byod, progress=False)
    assert _hash(byod) == before  # never modified
    p = ds.problems.set_index("file")
    assert p.loc["labels/fields.txt", "kind"] == "field_count" and p.loc["labels/fields.txt", "line"] == 2
    assert p.loc["labels/nan.txt", "kind"] == "not_a_number" and p.loc["labels/nan.txt", "line"] == 1
    assert p.loc["labels/cls.txt", "kind"] == "class_out_of_range" and p.loc["labels/cls.txt", "line"] == 3
    assert p.loc["labels/oob.txt", "kind"] == "out_of_bounds"
    assert p.loc["labels/zero.txt", "kind"] == "zero_area"
    assert p.loc["images/corrupt.png", "kind"] == "unreadable_image"
    assert p.loc["labels/orphan.txt", "kind"] == "orphan_label"
    dups = ds.problems[ds.problems["kind"] == "duplicate_stem"]
    assert sorted(dups["file"]) == ["images/a/dup.png", "images/b/dup.jpg"]
    assert all(len(m) > 20 for m in ds.problems["message"])  # says what to do
    assert "data.yaml" in p.loc["labels/cls.txt", "message"]


def test_states_and_exclusion(byod):
    ds = load_dataset(byod, progress=False)
    im = ds.images.set_index("stem")
    assert im.at["ok", "label_state"] == "labelled" and im.at["ok", "n_boxes"] == 2
    assert im.at["nested", "image"] == "images/sub/nested.png" and im.at["nested", "label_file"] == "labels/sub/nested.txt"
    assert im.at["empty", "label_state"] == "empty"
    assert im.at["unlabelled", "label_state"] == "unlabelled"
    assert im.at["ok", "width"] == 32 and im.at["ok", "height"] == 24
    assert sorted(ds.usable["stem"]) == ["empty", "nested", "ok", "unlabelled"]
    assert not ds.fully_labelled
    text = validation_summary(ds)
    assert "real loop" in text and "labels/fields.txt:2" in text and "4 usable" in text


def test_polygon_line_gets_a_hint():
    with pytest.raises(ValueError, match="polygon"):
        parse_label_lines("0 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2\n", 2, file="x.txt")


def test_fatal_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "d").mkdir()
    with pytest.raises(DatasetError, match="data.yaml"):
        load_dataset(tmp_path / "d")
    (tmp_path / "d" / "data.yaml").write_text("nc: 2\n")
    with pytest.raises(DatasetError, match="names"):
        load_dataset(tmp_path / "d")
    (tmp_path / "d" / "data.yaml").write_text("names: {0: a, 1: b}\n")
    with pytest.raises(DatasetError, match="no images"):
        load_dataset(tmp_path / "d")
