"""Property-based tests (Hypothesis) of the label-file parser, the dataset validator and every importer.

What must hold for *every* generated input (docs/guide/setup.md, docs/guide/labelling-tools.md):

* the parser reads exactly what a label file says, or names the first bad line and its kind;
* the validator lists every image once, with the state its label file gives it (or a problem naming the file), the
  size the trainer sees (EXIF orientation applied), and never changes the dataset folder;
* an importer (Label Studio JSON, COCO, YOLO folder / CVAT zip) either imports exactly the boxes the export holds, or
  refuses it with every problem named (which image, which kind) and changes nothing; a human label never changes
  silently.

Every suite is seeded (``derandomize=True``) and bounded (``max_examples``), with no example database, so ``make
test`` stays fast and reproducible.  Examples Hypothesis found (and the fixes they led to) are kept as ordinary tests
at the end of the file.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from PIL import Image

from alnb.labels import labelio
from alnb.loop import pipeline
from alnb.loop import selection as sel
from alnb.core.data import LabelError, load_dataset, parse_label_lines, read_labels
from alnb.core.workspace import Workspace

NAMES = ["crack", "pore"]
KINDS = {"field_count", "not_a_number", "class_out_of_range", "zero_area", "out_of_bounds", "duplicate_box"}
LINE_KINDS = KINDS - {"duplicate_box"}  # what one line alone can get wrong (a duplicate needs an earlier line)


def bounded(n: int):
    """Seeded, bounded, no example database (nothing written into the work tree), no deadline (shared CPUs)."""
    return settings(max_examples=n, derandomize=True, deadline=None, database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def tree_hash(root) -> str:
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for n in sorted(filenames) + sorted(dirnames):
            p = os.path.join(dirpath, n)
            h.update(os.path.relpath(p, root).encode())
            if os.path.islink(p):
                h.update(b"L" + os.readlink(p).encode())
            elif os.path.isfile(p):
                h.update(Path(p).read_bytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------- the label parser
def fmt_number(draw, x: float) -> str:
    style = draw(st.sampled_from(["g", "f6", "e", "repr", "plus"]))
    return {"g": f"{x:g}", "f6": f"{x:.6f}", "e": f"{x:e}", "repr": repr(float(x)), "plus": f"+{x:.8f}"}[style]


@st.composite
def box_values(draw, n_classes=2):
    w = draw(st.floats(0.002, 1.0))
    h = draw(st.floats(0.002, 1.0))
    cx = draw(st.floats(w / 2, 1 - w / 2))
    cy = draw(st.floats(h / 2, 1 - h / 2))
    return draw(st.integers(0, n_classes - 1)), cx, cy, w, h


@st.composite
def valid_line(draw, n_classes=2):
    """A valid YOLO line in one of the ways tools write numbers; returns (text, values it stands for)."""
    c, cx, cy, w, h = draw(box_values(n_classes))
    toks = [draw(st.sampled_from([str(c), f"{c}.0", f"{c:e}"]))] + [fmt_number(draw, v) for v in (cx, cy, w, h)]
    sep = draw(st.sampled_from([" ", "  ", "\t", " \t "]))
    text = draw(st.sampled_from(["", " ", "\t"])) + sep.join(toks) + draw(st.sampled_from(["", " ", "\t"]))
    return text, [float(t) for t in toks]


@st.composite
def invalid_line(draw, n_classes=2):
    """A line with exactly one kind of fault; returns (text, kind)."""
    c, cx, cy, w, h = draw(box_values(n_classes))
    kind = draw(st.sampled_from(sorted(LINE_KINDS)))
    vals = [str(c), f"{cx:.6f}", f"{cy:.6f}", f"{w:.6f}", f"{h:.6f}"]
    if kind == "field_count":
        k = draw(st.sampled_from([1, 2, 3, 4, 6, 7, 9]))
        vals = (vals * 2)[:k]
    elif kind == "not_a_number":
        vals[draw(st.integers(0, 4))] = draw(st.sampled_from(["abc", "nan", "inf", "-inf", "0,5", "1/2", "0.5.1",
                                                              "x0.5", "1e", "—"]))
    elif kind == "class_out_of_range":
        vals[0] = draw(st.sampled_from([str(n_classes), str(n_classes + 7), "-1", "0.5", "1e3"]))
    elif kind == "zero_area":
        vals[draw(st.sampled_from([3, 4]))] = draw(st.sampled_from(["0", "0.0", "-0.1"]))
    else:  # out of bounds: a coordinate above 1, or an edge well outside the image (pixel units, shifted boxes)
        vals = draw(st.sampled_from([[str(c), "1.5", "0.5", "0.1", "0.1"], [str(c), "0.01", "0.5", "0.2", "0.1"],
                                     [str(c), "120", "80", "30", "20"], [str(c), "0.5", "0.99", "0.1", "0.1"]]))
    return " ".join(vals), kind


NEWLINES = st.sampled_from(["\n", "\r\n", "\r"])


def box_key(values) -> bytes:
    """A box as the trainer compares boxes (ultralytics drops exact float32 duplicates)."""
    return (np.asarray(values, np.float32) + np.float32(0)).tobytes()


def repeated_lines(lines) -> list:
    """``[(line number, earlier line it repeats)]`` of ``[(text, values or None), ...]`` (1-based, blanks count)."""
    seen, out = {}, []
    for i, (_, v) in enumerate(lines, start=1):
        if v is None:
            continue
        k = box_key(v)
        if k in seen:
            out.append((i, seen[k]))
        else:
            seen[k] = i
    return out


@bounded(150)
@given(lines=st.lists(st.one_of(valid_line(), st.just(("", None)), st.just(("   ", None))), max_size=8),
       nl=NEWLINES, trailing=st.booleans())
def test_parser_reads_exactly_what_a_valid_file_says(lines, nl, trailing):
    """... or, when a box repeats (issue 37), names the first repeated line and every other one."""
    text = nl.join(t for t, _ in lines) + (nl if trailing else "")
    dups = repeated_lines(lines)
    if dups:
        with pytest.raises(LabelError) as e:
            parse_label_lines(text, 2)
        assert (e.value.kind, e.value.line) == ("duplicate_box", dups[0][0]) and f"repeats line {dups[0][1]}" in str(
            e.value)
        return
    arr = parse_label_lines(text, 2)
    want = np.asarray([v for _, v in lines if v is not None], np.float32).reshape(-1, 5)
    np.testing.assert_array_equal(arr, want)
    assert arr.dtype == np.float32


@bounded(100)
@given(lines=st.lists(valid_line(), min_size=1, max_size=5, unique_by=lambda t: box_key(t[1])),
       data=st.data(), nl=NEWLINES)
def test_parser_names_every_repeated_box_line(lines, data, nl):
    """A box written twice -- the same line, or the same numbers spelled another way (``0.5`` / ``5e-01``) -- is a
    ``duplicate_box`` problem at the first repeat, the message listing every repeated line (issue 37: the trainer
    would silently keep one copy)."""
    repeats = data.draw(st.lists(st.integers(0, len(lines) - 1), min_size=1, max_size=4))
    out = list(lines)
    for j in repeats:
        c, *rest = lines[j][1]
        again = " ".join([str(int(c))] + [data.draw(st.sampled_from([f"{x!r}", f"{x:.17g}", f"{x:.17e}"]))
                                          for x in rest])
        out.insert(data.draw(st.integers(0, len(out))), (again, lines[j][1]))
    dups = repeated_lines(out)
    with pytest.raises(LabelError) as e:
        parse_label_lines(nl.join(t for t, _ in out), 2, file="a.txt")
    assert (e.value.kind, e.value.line) == ("duplicate_box", dups[0][0])
    if len(dups) > 1:
        assert (f"line(s) {', '.join(str(i) for i, _ in dups)} repeat line(s) "
                f"{', '.join(str(j) for _, j in dups)}") in e.value.message


@bounded(150)
@given(before=st.lists(valid_line(), max_size=4), bad=invalid_line(), after=st.lists(st.one_of(
    valid_line(), invalid_line()), max_size=3), blanks=st.integers(0, 2), nl=NEWLINES)
def test_parser_names_the_first_bad_line_and_its_kind(before, bad, after, blanks, nl):
    lines = [t for t, _ in before] + [""] * blanks + [bad[0]] + [t for t, _ in after]
    with pytest.raises(LabelError) as e:
        parse_label_lines(nl.join(lines), 2, file="f.txt")
    dups = repeated_lines(before)  # a box repeated before the bad line is the first problem
    assert (e.value.kind, e.value.line) == (("duplicate_box", dups[0][0]) if dups else
                                            (bad[1], len(before) + blanks + 1))
    assert str(e.value).startswith(f"f.txt:{e.value.line}: ") and e.value.message


@bounded(150)
@given(text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=80))
def test_parser_on_any_text_returns_checked_boxes_or_a_label_error(text):
    """Arbitrary text (odd Unicode, control characters, any separators): never an exception other than LabelError,
    and whatever it returns is a usable box table."""
    try:
        arr = parse_label_lines(text, 3)
    except LabelError as e:
        assert e.kind in KINDS and 1 <= e.line <= max(1, len(text.splitlines()))
        return
    assert arr.shape == (sum(1 for ln in text.splitlines() if ln.strip()), 5)
    assert np.isfinite(arr).all() and set(arr[:, 0]) <= {0.0, 1.0, 2.0}
    assert (arr[:, 3:] > 0).all() and (arr[:, 1:] >= 0).all() and (arr[:, 1:] <= 1).all()


@bounded(60)
@given(lines=st.lists(valid_line(), min_size=1, max_size=4), bom=st.booleans(), nl=NEWLINES)
def test_label_file_encodings_read_the_same(lines, bom, nl):
    """A byte-order mark (Notepad / Excel) and any newline style read as the same boxes."""
    text = nl.join(t for t, _ in lines)

    def outcome(read):
        try:
            return read().tolist()
        except LabelError as e:
            return (e.kind, e.line)

    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "a.txt"
        f.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
        assert outcome(lambda: read_labels(f, 2)) == outcome(lambda: parse_label_lines(text, 2))


# ------------------------------------------------------------------------------------------------------ the validator
NAME_CHARS = st.sampled_from(list("abcXYZ019 _-.%#&+'()éü漢字") + ["%AB", "%20", "%2F"])


def _long(base: str, n: int) -> str:
    """A name of about ``n`` bytes (the file system allows 255 with the extension; issue 37's names were 245)."""
    b = ("L" + base * (n // max(1, len(base.encode())) + 1)).encode()[:n]
    return b.decode(errors="ignore").rstrip(" .")


stems = st.one_of(st.lists(NAME_CHARS, min_size=1, max_size=6).map("".join),
                  st.builds(_long, st.lists(NAME_CHARS, min_size=1, max_size=4).map("".join),
                            st.integers(200, 250))).filter(lambda s: s.strip(" .") == s and s not in (".", ".."))


def write_image(path: Path, w: int, h: int, orientation=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(np.full((h, w), 100, np.uint8))
    if orientation:
        ex = Image.Exif()
        ex[274] = orientation
        im.save(path, format="JPEG", exif=ex)
    else:
        im.save(path, format={".png": "PNG", ".bmp": "BMP", ".jpg": "JPEG", ".jpeg": "JPEG"}[path.suffix.lower()])


@st.composite
def image_spec(draw):
    ext = draw(st.sampled_from([".png", ".PNG", ".jpg", ".JPEG", ".bmp"]))
    orientation = draw(st.sampled_from([None, 1, 3, 6, 8])) if ext.lower() in (".jpg", ".jpeg") else None
    label = draw(st.sampled_from(["none", "empty", "boxes", "bad", "folder", "dup"]))
    boxes = draw(st.lists(valid_line(), min_size=1, max_size=3, unique_by=lambda t: box_key(t[1]))) \
        if label in ("boxes", "dup") else []
    if label == "dup":  # one box written twice (issue 37)
        boxes.insert(draw(st.integers(0, len(boxes))), draw(st.sampled_from(boxes)))
    bad = draw(invalid_line()) if label == "bad" else None
    return {"ext": ext, "w": draw(st.integers(10, 24)), "h": draw(st.integers(10, 24)), "orientation": orientation,
            "label": label, "boxes": boxes, "bad": bad, "sub": draw(st.sampled_from(["", "sub/", "a b/c/"])),
            "label_ext": draw(st.sampled_from([".txt", ".TXT", ".Txt"])), "bom": draw(st.booleans())}


@bounded(30)
@given(names=st.lists(stems, min_size=1, max_size=6, unique=True), data=st.data(),
       images_link=st.booleans(), orphan=st.booleans())
def test_validator_lists_every_image_with_its_state_and_never_writes(names, data, images_link, orphan):
    specs = {s: data.draw(image_spec(), label=s) for s in names}
    with tempfile.TemporaryDirectory() as d:
        root, store = Path(d) / "ds", Path(d) / "store"
        root.mkdir()
        (root / "data.yaml").write_text("names: [crack, pore]\n")
        img_dir = store if images_link else root / "images"
        for s, sp in specs.items():
            write_image(img_dir / f"{sp['sub']}{s}{sp['ext']}", sp["w"], sp["h"], sp["orientation"])
            lab = root / "labels" / f"{sp['sub']}{s}{sp['label_ext']}"
            lab.parent.mkdir(parents=True, exist_ok=True)
            text = {"empty": "", "boxes": "\n".join(t for t, _ in sp["boxes"]) + "\n",
                    "dup": "\n".join(t for t, _ in sp["boxes"]) + "\n",
                    "bad": (sp["bad"] or ("", ""))[0] + "\n"}.get(sp["label"])
            if sp["label"] == "folder":
                lab.mkdir()
            elif text is not None:
                lab.write_bytes(("\ufeff" if sp["bom"] else "").encode() + text.encode())
        if images_link:
            (root / "images").symlink_to(store, target_is_directory=True)
        if orphan:
            (root / "labels").mkdir(exist_ok=True)
            (root / "labels" / "zz_no_image_zz.txt").write_text("0 0.5 0.5 0.1 0.1\n")
        before = tree_hash(root), tree_hash(store) if store.exists() else ""
        ds = load_dataset(root, progress=False)
        assert (tree_hash(root), tree_hash(store) if store.exists() else "") == before
        rows = ds.images.set_index("stem")
        assert sorted(rows.index) == sorted(specs) and rows.index.is_unique
        for s, sp in specs.items():
            r = rows.loc[s]
            assert r["image"] == f"images/{sp['sub']}{s}{sp['ext']}"
            swap = sp["orientation"] in (6, 8)
            assert (r["width"], r["height"]) == ((sp["h"], sp["w"]) if swap else (sp["w"], sp["h"])), s
            want = {"none": ("unlabelled", 0, ""), "empty": ("empty", 0, ""),
                    "boxes": ("labelled", len(sp["boxes"]), ""), "folder": ("unlabelled", 0, "label_is_folder"),
                    "dup": ("labelled", 0, "duplicate_box"),
                    "bad": ("labelled", 0, (sp["bad"] or ("", ""))[1])}[sp["label"]]
            assert (r["label_state"], int(r["n_boxes"]), r["problem"]) == want, (s, sp)
            if sp["label"] == "boxes":
                np.testing.assert_array_equal(ds.labels(s), np.asarray([v for _, v in sp["boxes"]], np.float32))
        for p in ds.problems.itertuples():  # every problem names a file or folder that is there
            assert (root / p.file).exists() or (root / p.file).is_symlink(), p
        assert ("orphan_label" in set(ds.problems["kind"])) == orphan
        assert ds.fully_labelled == all(sp["label"] != "none" for sp in specs.values() if sp["label"] in
                                        ("none", "empty", "boxes")) or not len(ds.usable)


# ------------------------------------------------------------------------------------------------------ the importers
LONG = "weld_0021_" + "y" * 241  # + ".png": 255 bytes, the longest legal name (issue 37: 245 failed at scoring)
GT2_STEMS = ["weld_50%AB_0021", "a b", "über", "漢字", "x.y", "c%2Fd", "e%", "plain", LONG]
JPEG_STEMS = {"über", "x.y"}  # stored 40x30 with EXIF orientation 6: shown and trained on as 30x40
HUMAN = "plain"  # already labelled by people in the base workspace
HUMAN_BOXES = [(1, 0.5, 0.5, 0.25, 0.5)]


@pytest.fixture(scope="module")
def base_ws(tmp_path_factory):
    """A real-loop workspace whose GT2 is 8 unlabelled images with odd names (two EXIF-rotated JPEGs); one of them
    (``plain``) already has labels from people."""
    root = tmp_path_factory.mktemp("props")
    ds = root / "ds"
    (ds / "images").mkdir(parents=True)
    (ds / "labels").mkdir()
    (ds / "data.yaml").write_text(f"names: {NAMES}\n")
    for i in range(16):
        write_image(ds / "images" / f"img_{i:02d}.png", 40, 30)
        (ds / "labels" / f"img_{i:02d}.txt").write_text(f"{i % 2} 0.5 0.5 0.25 0.25\n")
    for s in GT2_STEMS:
        if s in JPEG_STEMS:
            write_image(ds / "images" / f"{s}.jpg", 40, 30, orientation=6)
        else:
            write_image(ds / "images" / f"{s}.png", 40, 30)
    ws = pipeline.setup(root / "ws", ds, n_val=4, n_gt1=4, log=None)
    assert set(GT2_STEMS) <= set(ws.stems("POOL"))
    sel.commit(ws, GT2_STEMS, "GT2")
    people = root / "people"
    people.mkdir()
    (people / f"{HUMAN}.txt").write_text("".join(f"{c} {cx} {cy} {w} {h}\n" for c, cx, cy, w, h in HUMAN_BOXES))
    labelio.import_labels(ws, people, "yolo")
    size = ws.manifest().set_index("stem")[["width", "height"]]
    return {"ws": ws, "ds": ds, "root": root, "size": {s: tuple(map(int, size.loc[s])) for s in GT2_STEMS},
            "image": ws.manifest().set_index("stem")["image"].to_dict()}


def test_base_workspace_sizes_follow_exif(base_ws):
    assert base_ws["size"]["über"] == (30, 40) and base_ws["size"]["plain"] == (40, 30)


VICTIM_FAULTS = {"bad_box", "unknown_class", "malformed", "bbox_string", "unknown_region", "six_fields", "several",
                 "dup_box"}  # faults that spoil one image each


@st.composite
def import_plan(draw, faults):
    """What the export holds: ``intended`` {stem: boxes} (what people drew; [] = 'no objects'), the faults injected
    (each on its own image or entry), and the noise (extra fields, spellings) that must change nothing."""
    free = [s for s in GT2_STEMS if s != HUMAN]
    victims = draw(st.permutations(free))
    fault = draw(st.one_of(st.just(set()), st.sets(st.sampled_from(faults), min_size=1, max_size=2)))  # half clean
    n_victims = len(fault & VICTIM_FAULTS)
    pool = victims[n_victims:]
    chosen = draw(st.lists(st.sampled_from(pool), unique=True, min_size=1, max_size=len(pool))) if pool else []
    intended = {s: draw(st.lists(box_values(), max_size=3).map(
        lambda bs: [(c, cx, cy, max(w, 0.02), max(h, 0.02)) for c, cx, cy, w, h in bs]).map(
        lambda bs: [(c, min(max(cx, w / 2), 1 - w / 2), min(max(cy, h / 2), 1 - h / 2), w, h)
                    for c, cx, cy, w, h in bs]).map(
        lambda bs: list({box_key(b): b for b in bs}.values()))) for s in chosen}  # one box twice: the dup_box fault
    human = draw(st.sampled_from(["absent", "absent", "same", "changed"]))
    if human == "same":
        intended[HUMAN] = list(HUMAN_BOXES)
    elif human == "changed":
        intended[HUMAN] = [(0, 0.3, 0.3, 0.2, 0.2)]
    return {"intended": intended, "faults": sorted(fault),
            "victims": dict(zip(sorted(fault & VICTIM_FAULTS), victims[:n_victims])), "human": human,
            "dup": "dup" in fault and bool(chosen),
            "extra": draw(st.dictionaries(st.text("abcxyz_", min_size=1, max_size=6),
                                          st.one_of(st.integers(), st.text(max_size=5), st.none(),
                                                    st.lists(st.integers(), max_size=2)), max_size=3)),
            "ascii": draw(st.booleans()), "indent": draw(st.sampled_from([None, 2])),
            "seed": draw(st.integers(0, 9))}


def expected_kinds(plan, kinds_of) -> set:
    k = {kinds_of[f] for f in plan["faults"] if f != "dup"}
    if plan["dup"]:
        k.add("duplicate_image")
    if plan["human"] == "changed":
        k.add("changed_human")
    return k


def check_import(base, plan, src, fmt, kinds_of, skipped=()):
    """Import ``src`` into a copy of the base workspace; assert: exactly the intended boxes, or a refusal naming every
    injected fault and changing nothing."""
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "ws"
        shutil.copytree(base["ws"].root, root, symlinks=True)
        ws = Workspace.open(root)
        before_ws, before_ds = tree_hash(root), tree_hash(base["ds"])
        human_before = (root / "labels" / f"{HUMAN}.txt").read_bytes()
        want = expected_kinds(plan, kinds_of)
        if currently_in_test_context():  # --hypothesis-show-statistics: how many examples import, how many refuse
            event(f"expected: {', '.join(sorted(want)) or 'imported'}")
        try:
            summary = labelio.import_labels(ws, src, fmt)
        except labelio.ImportProblem as e:
            assert want and e.kinds == want, (e.kinds, want, str(e))
            for f, stem in plan["victims"].items():  # the image of each fault is named
                assert any(p["image"] == stem or stem in p["image"] for p in e.problems), (f, stem, str(e))
            assert tree_hash(root) == before_ws
        else:
            assert not want, f"accepted although it holds {want}: {summary}"
            acts = dict(zip(summary["stem"], summary["action"]))
            for s, boxes in plan["intended"].items():
                if s == HUMAN and plan["human"] == "same":
                    assert acts[s] == "unchanged"
                    continue
                assert acts[s] == "imported", (s, acts)
                got = read_labels(root / "labels" / f"{s}.txt", len(NAMES)).astype(np.float64)
                want_boxes = np.asarray(sorted(boxes), np.float64).reshape(-1, 5)
                np.testing.assert_allclose(got[np.lexsort(got.T[::-1])], want_boxes, atol=1e-6)
            for s in skipped:
                assert acts[s] == "skipped"
            assert set(acts) == set(plan["intended"]) | set(skipped)
            src_of = ws.manifest().set_index("stem")["label_source"]
            assert all(src_of[s] == "human" for s in plan["intended"])
            untouched = set(GT2_STEMS) - set(plan["intended"]) - {HUMAN}
            assert not any((root / "labels" / f"{s}.txt").exists() for s in untouched)
        assert (root / "labels" / f"{HUMAN}.txt").read_bytes() == human_before  # never changed silently
        assert tree_hash(base["ds"]) == before_ds


def dumps(plan, obj) -> str:
    return json.dumps(obj, ensure_ascii=plan["ascii"], indent=plan["indent"])


# ---- Label Studio JSON
LS_KINDS = {"bad_box": "out_of_bounds", "unknown_class": "unknown_class", "malformed": "malformed",
            "unknown_region": "unknown_region", "several": "several_annotations", "unknown_image": "unknown_image",
            "dup_box": "duplicate_box"}


def ls_region(i, c, cx, cy, w, h, size, typ="rectanglelabels", name=None):
    W, H = size
    return {"id": f"r{i}", "type": typ, "from_name": "label", "to_name": "image", "original_width": W,
            "original_height": H, "image_rotation": 0,
            "value": {"x": (cx - w / 2) * 100, "y": (cy - h / 2) * 100, "width": w * 100, "height": h * 100,
                      "rotation": 0, ("labels" if typ == "labels" else "rectanglelabels"): [name or NAMES[c]]}}


@bounded(50)
@given(plan=import_plan(sorted(LS_KINDS) + ["dup"]), data=st.data())
def test_labelstudio_import_is_exact_or_names_every_problem(base_ws, plan, data):
    rng = np.random.default_rng(plan["seed"])
    tasks, skipped = [], []

    def task(stem, anns, **extra):
        ref = base_ws["image"][stem]
        d = {"image": data.draw(st.sampled_from([f"/data/local-files/?d={quote(ref)}",
                                                 f"/data/local-files/?d=some%20root/{quote(ref)}"]))}
        if data.draw(st.booleans()):
            d["alnb_stem"] = stem
        t = {"id": len(tasks) + 1, "data": d, "annotations": anns, "predictions": [
            {"model_version": "CAL1", "result": [ls_region(99, 0, 0.5, 0.5, 0.9, 0.9, base_ws["size"][stem])]}],
             **plan["extra"], **extra}
        tasks.append(t)

    def drawn(r):
        """A box drawn right-to-left / bottom-up: negative width / height from the far edge (issue 37: the same box)."""
        v = r["value"]
        for pos, size in (("x", "width"), ("y", "height")):
            if data.draw(st.booleans()):
                v[pos], v[size] = v[pos] + v[size], -v[size]
        return r

    def annotation(stem, boxes, aid, **over):
        res = [drawn(ls_region(i, *b, base_ws["size"][stem], typ=data.draw(st.sampled_from(["rectanglelabels",
                                                                                            "labels"]))))
               for i, b in enumerate(boxes)]
        if data.draw(st.booleans()):
            res.append({"id": "ch", "type": "choices", "from_name": "ok", "to_name": "image",
                        "value": {"choices": ["fine"]}})  # carries no box: ignored
        if rng.random() < 0.5:
            res = res[::-1]
        return {"id": aid, "completed_by": 1, "result": res, "was_cancelled": False,
                "updated_at": f"2026-01-0{1 + aid % 8}T00:00:00Z", **over}

    for k, (s, boxes) in enumerate(plan["intended"].items()):
        anns = [annotation(s, boxes, 10 + k)]
        if data.draw(st.booleans()):  # a cancelled annotation never counts
            anns.append({**annotation(s, [(0, 0.5, 0.5, 0.5, 0.5)], 90 + k), "was_cancelled": True})
        task(s, anns)
        if plan["dup"] and k == 0:
            task(s, [annotation(s, boxes, 50)])
    for f, s in plan["victims"].items():
        box = (0, 0.5, 0.5, 0.2, 0.2)
        ann = annotation(s, [box], 70)
        if f == "bad_box":
            ann["result"].append(ls_region(7, 0, 1.3, 0.5, 0.2, 0.2, base_ws["size"][s]))
        elif f == "unknown_class":
            ann["result"].append(ls_region(7, 0, 0.5, 0.5, 0.2, 0.2, base_ws["size"][s], name="ghost"))
        elif f == "malformed":
            ann["result"].append(data.draw(st.sampled_from(["crack 0.5 0.5 0.1 0.1", 7, None, ["x"]])))
        elif f == "unknown_region":
            ann["result"].append({**ls_region(7, 0, 0.5, 0.5, 0.2, 0.2, base_ws["size"][s]), "type": "boxlabels"})
        elif f == "several":
            task(s, [ann, annotation(s, [], 71)])
            continue
        elif f == "dup_box":
            box_region = next(r for r in ann["result"] if "x" in r["value"])  # the same region twice (copy-paste)
            ann["result"].append({**copy.deepcopy(box_region), "id": "again"})
        task(s, [ann])
    if "unknown_image" in plan["faults"]:
        tasks.append({"id": 999, "data": {"image": "/data/local-files/?d=images/nope.png"},
                      "annotations": [annotation(GT2_STEMS[0], [], 99)]})
    left = [s for s in GT2_STEMS if s not in plan["intended"] and s not in plan["victims"].values() and s != HUMAN]
    if left and data.draw(st.booleans()):  # a task nobody has labelled yet: skipped and listed
        # no annotation, "annotations": null, "result": null or missing (issue 37: never "no objects")
        how = data.draw(st.sampled_from(["none", "annotations_null", "result_null", "result_missing"]))
        anns = {"none": [], "annotations_null": None,
                "result_null": [{"id": 80, "completed_by": 1, "result": None, "was_cancelled": False}],
                "result_missing": [{"id": 81, "completed_by": 1, "was_cancelled": False}]}[how]
        task(left[0], anns)
        skipped.append(left[0])
    rng.shuffle(tasks)
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "export.json"
        src.write_text(dumps(plan, tasks), encoding="utf-8")
        check_import(base_ws, plan, src, "labelstudio", LS_KINDS, skipped=skipped)


# ---- COCO
COCO_KINDS = {"bad_box": "out_of_bounds", "unknown_class": "unknown_class", "bbox_string": "not_a_number",
              "unknown_image": "unknown_image", "dup_box": "duplicate_box"}


@bounded(40)
@given(plan=import_plan(sorted(COCO_KINDS) + ["dup"]), data=st.data())
def test_coco_import_is_exact_or_names_every_problem(base_ws, plan, data):
    offset = data.draw(st.integers(0, 5))
    order = data.draw(st.permutations(range(len(NAMES))))
    cats = [{"id": offset + i, "name": NAMES[j], "supercategory": ""} for i, j in enumerate(order)]
    cat_of = {NAMES[j]: offset + i for i, j in enumerate(order)}
    if "unknown_class" in plan["faults"]:
        cats.append({"id": 77, "name": "ghost"})
    images, anns = [], []

    def image(stem, boxes, bbox_override=None):
        W, H = base_ws["size"][stem]
        iid = 1000 + len(images) * 3
        ref = base_ws["image"][stem]
        images.append({"id": iid, "file_name": data.draw(st.sampled_from([ref, ref.split("/", 1)[1]])),
                       "width": W, "height": H, **plan["extra"]})
        for c, cx, cy, w, h in boxes:
            bbox = [(cx - w / 2) * W, (cy - h / 2) * H, w * W, h * H]
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": cat_of.get(c, c) if isinstance(c, str)
                         else cat_of[NAMES[c]], "bbox": bbox_override or bbox, "area": bbox[2] * bbox[3],
                         "iscrowd": 0})

    for k, (s, boxes) in enumerate(plan["intended"].items()):
        image(s, boxes)
        if plan["dup"] and k == 0:
            image(s, boxes)
    for f, s in plan["victims"].items():
        if f == "bad_box":
            image(s, [(0, 0.5, 0.5, 0.2, 0.2), (0, 1.3, 0.5, 0.2, 0.2)])
        elif f == "unknown_class":
            image(s, [(0, 0.5, 0.5, 0.2, 0.2)])
            anns.append({"id": len(anns) + 1, "image_id": images[-1]["id"], "category_id": 77, "bbox": [1, 1, 5, 5]})
        elif f == "bbox_string":
            image(s, [(0, 0.5, 0.5, 0.2, 0.2)], bbox_override="1234")
        elif f == "dup_box":
            image(s, [(0, 0.5, 0.5, 0.2, 0.2), (1, 0.3, 0.3, 0.1, 0.1), (0, 0.5, 0.5, 0.2, 0.2)])
    if "unknown_image" in plan["faults"]:
        images.append({"id": 5, "file_name": "images/nope.png", "width": 40, "height": 30})
    doc = {"info": {}, "licenses": [], "categories": cats, "images": images, "annotations": anns}
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "instances.json"
        src.write_text(dumps(plan, doc), encoding="utf-8")
        check_import(base_ws, plan, src, "coco", COCO_KINDS)


# ---- YOLO folder / CVAT zip
YOLO_KINDS = {"bad_box": "out_of_bounds", "unknown_class": "unknown_class", "six_fields": "has_confidence",
              "unknown_image": "unknown_image", "dup_box": "duplicate_box"}


@bounded(40)
@given(plan=import_plan(sorted(YOLO_KINDS) + ["dup"]), data=st.data())
def test_yolo_import_is_exact_or_names_every_problem(base_ws, plan, data):
    names_file = data.draw(st.sampled_from([None, "obj.names", "classes.txt"]))
    order = list(data.draw(st.permutations(range(len(NAMES))))) if names_file else [0, 1]
    tool_id = {ours: tool for tool, ours in enumerate(order)}  # the tool's id of each workspace class
    nl = data.draw(st.sampled_from(["\n", "\r\n"]))
    bom = data.draw(st.booleans())
    files = {}

    def put(rel, lines):
        files[rel] = ("\ufeff" if bom else "") + nl.join(lines) + (nl if lines else "")

    def line(c, cx, cy, w, h):
        return f"{tool_id[c]} {cx:.10g} {cy:.10g} {w:.10g} {h:.10g}"

    ext = data.draw(st.sampled_from([".txt", ".TXT"]))
    for k, (s, boxes) in enumerate(plan["intended"].items()):
        put(f"obj_train_data/{s}{ext}", [line(*b) for b in boxes])
        if plan["dup"] and k == 0:
            put(f"obj_valid_data/{s}.txt", [line(*b) for b in boxes])
    for f, s in plan["victims"].items():
        ok = line(0, 0.5, 0.5, 0.2, 0.2)
        bad = {"bad_box": line(0, 0.95, 0.5, 0.2, 0.2), "unknown_class": "9 0.5 0.5 0.1 0.1",
               "six_fields": line(0, 0.5, 0.5, 0.2, 0.2) + " 0.87",
               "dup_box": f"{tool_id[0]} 5e-01 0.50 .2 0.2000"}[f]  # the same box as `ok`, spelled otherwise
        put(f"obj_train_data/{s}.txt", [ok, bad])
    if "unknown_image" in plan["faults"]:
        put("obj_train_data/nope.txt", [])
    if names_file:
        put(names_file, [NAMES[i] for i in order])
    put("train.txt", [f"data/obj_train_data/{s}.png" for s in plan["intended"]])
    as_zip = data.draw(st.booleans())
    with tempfile.TemporaryDirectory() as d:
        if as_zip:
            src = Path(d) / "cvat.zip"
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as zf:
                for rel, text in files.items():
                    zf.writestr(rel, text.encode())
            src.write_bytes(buf.getvalue())
        else:
            src = Path(d) / "labels"
            for rel, text in files.items():
                (src / rel).parent.mkdir(parents=True, exist_ok=True)
                (src / rel).write_bytes(text.encode())
        check_import(base_ws, plan, src, "yolo", YOLO_KINDS)


# ------------------------------------------------------------------------------- examples Hypothesis found (kept)
# Run against the code before issue 22, the seeded suites above found these (minimal examples, as Hypothesis shrank
# them); each is kept as an ordinary test.
def test_found_exif_rotated_jpeg_is_listed_with_the_trainers_size(tmp_path):
    """b.jpg stored 10x11 with EXIF orientation 6 was listed as 10x11; ultralytics trains on it as 11x10."""
    (tmp_path / "data.yaml").write_text("names: [crack, pore]\n")
    write_image(tmp_path / "images" / "a.png", 10, 10)
    write_image(tmp_path / "images" / "b.jpg", 10, 11, orientation=6)
    rows = load_dataset(tmp_path, progress=False).images.set_index("stem")
    assert (rows.at["b", "width"], rows.at["b", "height"]) == (11, 10)


def test_found_images_folder_that_is_a_link(tmp_path):
    """images/ -> a folder elsewhere: "no images found"."""
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "data.yaml").write_text("names: [crack, pore]\n")
    write_image(tmp_path / "store" / "a.png", 10, 10)
    (tmp_path / "ds" / "images").symlink_to(tmp_path / "store", target_is_directory=True)
    assert list(load_dataset(tmp_path / "ds", progress=False).images["image"]) == ["images/a.png"]


def test_found_byte_order_mark_in_label_files(tmp_path):
    """An empty label file holding only a byte-order mark was a field_count problem (not 'no objects'); a BOM before
    ' 0 0.5 0.5 1 1' made six fields."""
    (tmp_path / "data.yaml").write_text("names: [crack, pore]\n")
    write_image(tmp_path / "images" / "a.png", 10, 10)
    write_image(tmp_path / "images" / "b.png", 10, 10)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_bytes("\ufeff".encode())
    (tmp_path / "labels" / "b.txt").write_bytes("\ufeff 0 0.5 0.5 1 1".encode())
    ds = load_dataset(tmp_path, progress=False)
    rows = ds.images.set_index("stem")
    assert list(rows["label_state"]) == ["empty", "labelled"] and not len(ds.problems)
    assert ds.labels("b").tolist() == [[0, 0.5, 0.5, 1, 1]]


def test_found_labelstudio_region_that_is_not_an_object(base_ws):
    """A string where a region belongs was an AttributeError (exit 1, 'looks like a bug'); now it names the task."""
    for junk in ("crack 0.5 0.5 0.1 0.1", 7, None):
        tasks = [{"id": 3, "data": {"image": "/data/local-files/?d=images/weld_50%25AB_0021.png"},
                  "annotations": [{"id": 1, "result": [junk]}]}]
        with tempfile.TemporaryDirectory() as d:
            src = Path(d) / "ls.json"
            src.write_text(json.dumps(tasks))
            with pytest.raises(labelio.ImportProblem) as e:
                labelio.import_labels(base_ws["ws"], src, "labelstudio", dry_run=True)
        assert e.value.kinds == {"malformed"} and e.value.problems[0]["item"] == "task 3, annotation 1, region #1"
        assert e.value.problems[0]["image"] == "weld_50%AB_0021"


def test_found_percent_escapes_in_names_of_every_format(base_ws):
    """weld_50%AB_0021 -- as Label Studio's alnb_stem, a COCO file_name, a YOLO file name -- was URL-decoded to
    'weld_50\ufffd_0021' and matched no image."""
    s = "weld_50%AB_0021"
    W, H = base_ws["size"][s]
    with tempfile.TemporaryDirectory() as d:
        ls, coco, yolo = Path(d) / "ls.json", Path(d) / "c.json", Path(d) / "labels"
        ls.write_text(json.dumps([{"id": 1, "data": {"image": "/data/local-files/?d=images/weld_50%25AB_0021.png",
                                                     "alnb_stem": s}, "annotations": [{"id": 2, "result": []}]}]))
        coco.write_text(json.dumps({"categories": [{"id": 1, "name": "crack"}], "annotations": [],
                                    "images": [{"id": 1, "file_name": f"images/{s}.png", "width": W, "height": H}]}))
        yolo.mkdir()
        (yolo / f"{s}.txt").write_text("")
        for src, fmt in ((ls, "labelstudio"), (coco, "coco"), (yolo, "yolo")):
            summary = labelio.import_labels(base_ws["ws"], src, fmt, dry_run=True)
            assert list(summary["stem"]) == [s] and list(summary["action"]) == ["would be imported"], fmt


# Written by hand from the same properties (the seeded runs did not draw them): a string bbox, lists as ids.
def test_coco_string_bbox_is_not_four_numbers(base_ws):
    """bbox "1234" was read as [1, 2, 3, 4] (iterating a string): a silent misread."""
    plan = {"intended": {}, "faults": ["bbox_string"], "victims": {"bbox_string": "a b"}, "human": "absent",
            "dup": False}
    W, H = base_ws["size"]["a b"]
    doc = {"categories": [{"id": 1, "name": "crack"}], "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": "1234"}],
        "images": [{"id": 1, "file_name": "images/a b.png", "width": W, "height": H}]}
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "c.json"
        src.write_text(json.dumps(doc))
        check_import(base_ws, plan, src, "coco", COCO_KINDS)


def test_unhashable_ids_and_stems_are_named(base_ws):
    """A list where an id or a stem belongs (``"alnb_stem": ["x"]``, ``"id": [1]``) was a TypeError."""
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "ls.json"
        src.write_text(json.dumps([{"id": [1], "data": {"alnb_stem": ["x"], "image": {"u": 1}}, "annotations": []}]))
        with pytest.raises(labelio.ImportProblem) as e:
            labelio.import_labels(base_ws["ws"], src, "labelstudio", dry_run=True)
        assert e.value.kinds == {"unknown_image"} and e.value.problems[0]["item"] == "task #1"
        src.write_text(json.dumps({"categories": [{"id": [1], "name": "crack"}], "annotations": [],
                                   "images": [{"id": {"a": 1}, "file_name": "images/a b.png", "width": 40,
                                               "height": 30}]}))
        summary = labelio.import_labels(base_ws["ws"], src, "coco", dry_run=True)
        assert list(summary["action"]) == ["would be imported"] and list(summary["n_boxes"]) == [0]


# Issue 37's shapes, each through the same invariants (the seeded runs above may or may not draw them): a box twice
# in every format is refused by name; Label Studio boxes with negative sizes import as the same boxes; a "result":
# null annotation is skipped, never "no objects"; the longest legal file name works throughout.
def test_issue37_one_box_twice_is_refused_by_name_in_every_format(base_ws):
    plan = {"intended": {"a b": [(1, 0.3, 0.3, 0.1, 0.1)]}, "faults": ["dup_box"], "victims": {"dup_box": LONG},
            "human": "absent", "dup": False}
    W, H = base_ws["size"][LONG]
    twice = [(0, 0.5, 0.5, 0.2, 0.2), (1, 0.3, 0.3, 0.1, 0.1), (0, 0.5, 0.5, 0.2, 0.2)]
    with tempfile.TemporaryDirectory() as d:
        ls = Path(d) / "ls.json"
        ls.write_text(json.dumps([{"id": k + 1, "data": {"image": f"/data/local-files/?d={quote(base_ws['image'][s])}"},
                                   "annotations": [{"id": 10 + k, "result": [ls_region(i, *b, base_ws["size"][s])
                                                                             for i, b in enumerate(boxes)]}]}
                                  for k, (s, boxes) in enumerate((("a b", plan["intended"]["a b"]), (LONG, twice)))]))
        check_import(base_ws, plan, ls, "labelstudio", LS_KINDS)
        coco = Path(d) / "coco.json"
        coco.write_text(json.dumps({"categories": [{"id": 1, "name": "crack"}, {"id": 2, "name": "pore"}],
                                    "images": [{"id": 1, "file_name": base_ws["image"][LONG], "width": W, "height": H},
                                               {"id": 2, "file_name": "images/a b.png", "width": 40, "height": 30}],
                                    "annotations": [{"id": i + 1, "image_id": 1, "category_id": c + 1,
                                                     "bbox": [(cx - w / 2) * W, (cy - h / 2) * H, w * W, h * H]}
                                                    for i, (c, cx, cy, w, h) in enumerate(twice)]
                                    + [{"id": 9, "image_id": 2, "category_id": 2, "bbox": [10, 7.5, 4, 3]}]}))
        check_import(base_ws, plan, coco, "coco", COCO_KINDS)
        yolo = Path(d) / "labels"
        yolo.mkdir()
        (yolo / f"{LONG}.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n0 5e-01 .5 0.20 0.2\n")
        (yolo / "a b.txt").write_text("1 0.3 0.3 0.1 0.1\n")
        check_import(base_ws, plan, yolo, "yolo", YOLO_KINDS)


def test_issue37_labelstudio_negative_sizes_and_null_results(base_ws):
    """Boxes drawn bottom-up / right-to-left import as the boxes they are; ``"result": null`` (or no ``result``) is
    skipped and listed -- it was imported as an empty label, "this image has no objects"."""
    intended = {"a b": [(0, 0.5, 0.5, 0.2, 0.2), (1, 0.25, 0.7, 0.1, 0.3)], LONG: [(1, 0.6, 0.4, 0.3, 0.2)],
                "漢字": [(0, 0.3, 0.3, 0.2, 0.2)]}
    plan = {"intended": intended, "faults": [], "victims": {}, "human": "absent", "dup": False}
    tasks = []
    for k, (s, boxes) in enumerate(intended.items()):
        res = [ls_region(i, *b, base_ws["size"][s]) for i, b in enumerate(boxes)]
        for i, r in enumerate(res):  # flip: x only, y only, both
            v = r["value"]
            if (k + i) % 3 != 1:
                v["x"], v["width"] = v["x"] + v["width"], -v["width"]
            if (k + i) % 3 != 0:
                v["y"], v["height"] = v["y"] + v["height"], -v["height"]
        tasks.append({"id": k + 1, "data": {"image": f"/data/local-files/?d={quote(base_ws['image'][s])}"},
                      "annotations": [{"id": 10 + k, "result": res, "was_cancelled": False}]})
    tasks.append({"id": 7, "data": {"image": f"/data/local-files/?d={quote(base_ws['image']['x.y'])}"},
                  "annotations": [{"id": 70, "result": None, "was_cancelled": False}]})
    tasks.append({"id": 8, "data": {"alnb_stem": "e%", "image": "whatever"}, "annotations": [{"id": 80}]})
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "ls.json"
        src.write_text(json.dumps(tasks))
        check_import(base_ws, plan, src, "labelstudio", LS_KINDS, skipped=["x.y", "e%"])
        summary = labelio.import_labels(base_ws["ws"], src, "labelstudio", dry_run=True).set_index("stem")
    assert "task 7, annotation 70: 'result' is null" in summary.at["x.y", "note"]
    assert "task 8, annotation 80: 'result' is missing" in summary.at["e%", "note"]
