"""Validation of bring-your-own YOLO datasets: every bad-input kind, named with file and line."""

import hashlib

import numpy as np
import pytest
from PIL import Image

from alnb.core.data import DatasetError, load_dataset, parse_label_lines, validation_summary


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


# ------------------------------------------------------------------------- issue 37: nothing silently reinterpreted
def test_issue37_case3_duplicate_box_lines_are_named_with_file_and_lines(tmp_path):
    """A label file holding each of its 4 boxes twice was counted as 8 boxes while ultralytics silently trained on 4
    ("4 duplicate labels removed" in a training log only); now validation names the file and every repeated line."""
    boxes = ["0 0.5 0.5 0.2 0.2", "1 0.3 0.3 0.1 0.1", "0 0.7 0.2 0.1 0.3", "1 0.2 0.8 0.2 0.1"]
    r = tmp_path / "ds"
    (r / "labels").mkdir(parents=True)
    (r / "data.yaml").write_text("names: [crack, pore]\n")
    _img(r / "images" / "twice.png")
    _lab(r / "labels" / "twice.txt", "\n".join(boxes + boxes) + "\n")
    _img(r / "images" / "respelled.png")  # the same numbers written another way are the same box for the trainer
    _lab(r / "labels" / "respelled.txt", "0 0.5 0.5 0.2 0.2\n0 5e-01 0.50 .2 0.200000\n")
    _img(r / "images" / "close.png")  # two boxes that differ in one coordinate are two objects
    _lab(r / "labels" / "close.txt", "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2001\n")
    ds = load_dataset(r, progress=False)
    p = ds.problems.set_index("file")
    assert p.loc["labels/twice.txt", "kind"] == "duplicate_box" and p.loc["labels/twice.txt", "line"] == 5
    msg = p.loc["labels/twice.txt", "message"]
    assert "repeats line 1" in msg and "line(s) 5, 6, 7, 8 repeat line(s) 1, 2, 3, 4" in msg and "delete" in msg
    assert p.loc["labels/respelled.txt", "kind"] == "duplicate_box" and p.loc["labels/respelled.txt", "line"] == 2
    im = ds.images.set_index("stem")
    assert im.at["twice", "problem"] == "duplicate_box" and im.at["respelled", "problem"] == "duplicate_box"
    assert im.at["close", "problem"] == "" and im.at["close", "n_boxes"] == 2
    assert "[duplicate_box] labels/twice.txt:5: this box repeats line 1" in validation_summary(ds)
    with pytest.raises(ValueError, match=r"a.txt:2: this box repeats line 1"):  # the parser itself, first bad line
        parse_label_lines("0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.1\n", 2, file="a.txt")


def test_issue37_case8_labels_next_to_the_images_are_named(tmp_path):
    """LabelImg saves images/a.png + images/a.txt by default; the message was "the dataset has only 0 labelled usable
    images ... label more images" although every image had a label file."""
    r = tmp_path / "ds"
    (r).mkdir()
    (r / "data.yaml").write_text("names: [crack, pore]\n")
    for i in range(6):
        _img(r / "images" / f"a{i}.png")
        _lab(r / "images" / f"a{i}.txt", f"{i % 2} 0.5 0.5 0.2 0.2\n")
    _lab(r / "images" / "classes.txt", "crack\npore\n")  # LabelImg's class list: not a label file
    before = _hash(r)
    with pytest.raises(DatasetError) as e:
        load_dataset(r, progress=False)
    msg = str(e.value)
    assert "6 label file(s) lie next to their images" in msg and "images/a0.txt" in msg and "LabelImg" in msg
    assert "labels/a0.txt" in msg and f"mv {r / 'images'}/*.txt {r / 'labels'}/" in msg and "nothing was changed" in msg
    assert _hash(r) == before
    # some labels in labels/, one still next to its image: that image is named and excluded, never "unlabelled"
    (r / "labels").mkdir()
    for i in range(5):
        (r / "images" / f"a{i}.txt").rename(r / "labels" / f"a{i}.txt")
    ds = load_dataset(r, progress=False)
    p = ds.problems.set_index("file")
    assert p.loc["images/a5.txt", "kind"] == "label_beside_image" and "labels/a5.txt" in p.loc["images/a5.txt",
                                                                                               "message"]
    im = ds.images.set_index("stem")
    assert im.at["a5", "problem"] == "label_beside_image" and (im.drop("a5")["label_state"] == "labelled").all()
    assert "classes.txt" not in set(ds.problems["file"].str.rsplit("/", n=1).str[-1])
