"""The module graph of ``alnb`` (every import, including those inside functions) has no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import alnb

PKG = Path(alnb.__file__).resolve().parent


def module_name(path: Path) -> str:
    """``select`` for alnb/loop/selection.py, ``formats`` for alnb/labels/formats/__init__.py, ``formats.coco`` for
    alnb/labels/formats/coco.py (alnb/__init__.py stays ``__init__``)."""
    parts = list(path.relative_to(PKG).with_suffix("").parts)
    if len(parts) > 1 and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def module_files() -> dict:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def module_names() -> set:
    return set(module_files())


def imports_of(path: Path, modules: set, name: str | None = None) -> set:
    """alnb modules imported anywhere in ``path`` (module level, functions, methods, conditionals); subpackage
    modules by dotted name (``formats.common``)."""
    out = set()

    def add(dotted: str, names=()):
        rest = dotted.split(".")[1:]  # without the leading "alnb"
        if not rest:  # from alnb import x: x is a module, or a name of alnb/__init__
            out.update(a if a in modules else "__init__" for a in names) if names else out.add("__init__")
            return
        mod = ".".join(rest)
        subs = {f"{mod}.{a}" for a in names} & modules  # from alnb.labels.formats import coco: the module formats.coco
        out.update(subs or {mod})
        if names and set(names) - {s.rsplit(".", 1)[-1] for s in subs}:
            out.add(mod)

    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "alnb":
                    add(a.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "alnb":
                add(node.module, [a.name for a in node.names])
    return out - {name if name is not None else path.stem}


def graph() -> dict:
    files = module_files()
    mods = set(files)
    return {m: imports_of(files[m], mods, m) & mods for m in sorted(mods)}


def find_cycle(g: dict) -> list | None:
    """One cycle of ``g`` as a list of nodes (first == last), or None."""
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if state.get(m) is None:
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if state.get(n) is None:
            c = visit(n)
            if c:
                return c
    return None


def test_cycle_finder_on_hand_made_graphs():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"b2"}, "b2": {"b"}}) == ["b", "b2", "b"]


def test_imports_are_parsed_inside_functions(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("import alnb\nfrom alnb import select as sel, data\n\ndef f():\n    from alnb.evaluation.metrics import x\n"
                 "    import alnb.model.train\n    from alnb import __version__\n")
    assert imports_of(p, {"select", "data", "evaluation.metrics", "model.train", "m"}) == {
        "__init__", "select", "data", "evaluation.metrics", "model.train"}


# The subpackages, lowest first: a module may import its own subpackage and the ones before it, never one after it
# (docs/guide/layout.md says what lives where).  ``figures`` sits below ``loop`` because the loop's steps write
# figures; ``ui`` (report, widgets, narrative) reads the loop's results, so it sits above it.
LAYERS = ("core", "datasets", "model", "evaluation", "labels", "acquisition", "figures", "loop", "ui", "apps")
# The old flat module names, kept as aliases of their new place for one release (alnb.dropout for good: checkpoints
# pickle their head's classes under it).
MOVED = {"workspace": "core.workspace", "data": "core.data", "lock": "core.lock", "cpu": "core.cpu",
         "logs": "core.logs", "_offline": "core.offline", "scoretable": "core.scoretable", "weld": "datasets.weld",
         "train": "model.train", "dropout": "model.dropout", "mc": "model.mc", "pretrain": "model.pretrain",
         "metrics": "evaluation.metrics", "stats": "evaluation.stats", "diagnostics": "evaluation.diagnostics",
         "labeltimes": "evaluation.labeltimes", "labelio": "labels.labelio", "formats": "labels.formats",
         "difficulty": "acquisition.difficulty", "scoring": "acquisition.scoring", "engines": "acquisition.engines",
         "pipeline": "loop.pipeline", "select": "loop.selection", "review": "loop.review",
         "reviewstep": "loop.reviewstep", "study": "loop.study", "plots": "figures.plots",
         "study_plots": "figures.study_plots", "display": "ui.display", "widgets": "ui.widgets", "report": "ui.report",
         "narrative": "ui.narrative", "notebooks": "ui.notebooks", "cli": "apps.cli", "serve": "apps.serve"}
SHIMS = set(MOVED) | {f"formats.{m}" for m in ("common", "coco", "cvat", "labelstudio", "yolo")}


def layer(module: str) -> str | None:
    top = module.split(".")[0]
    return top if top in LAYERS else None


def test_alnb_module_graph_has_no_cycle():
    g = graph()
    assert {"model.mc", "acquisition.strategies", "acquisition.tiers", "loop.study", "acquisition.scoring",
            "acquisition.difficulty"} <= set(g)
    cycle = find_cycle(g)
    assert cycle is None, f"import cycle inside alnb: {' -> '.join(cycle)}"


def test_every_module_lives_in_a_layer():
    stray = {m for m in graph() if layer(m) is None} - SHIMS - {"__init__", "__main__", "formats"}
    assert not stray, f"modules outside the subpackages {LAYERS}: {sorted(stray)}"


def test_subpackages_import_one_way():
    bad = []
    for m, deps in graph().items():
        if layer(m) is None:
            continue
        for d in deps:
            if d in SHIMS or d.split(".")[0] in MOVED:
                bad.append(f"{m} imports the old path alnb.{d}")
            elif layer(d) is not None and LAYERS.index(layer(d)) > LAYERS.index(layer(m)):
                bad.append(f"{m} ({layer(m)}) imports {d} ({layer(d)}), a layer above it")
    assert not bad, "\n".join(bad)


def test_direction_check_catches_an_upward_import(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("def f():\n    from alnb.ui.report import write_report\n")
    deps = imports_of(p, {"ui.report", "ui", "m"})
    assert "ui.report" in deps and LAYERS.index(layer("ui.report")) > LAYERS.index("evaluation")


def test_old_import_paths_are_the_new_modules():
    import importlib
    import warnings

    for old, new in MOVED.items():
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            assert importlib.import_module(f"alnb.{old}") is importlib.import_module(f"alnb.{new}"), old
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        from alnb.evaluation import evaluate  # noqa: F401  (the flat layout's name, from the package)
        from alnb.formats.common import ParseContext
    from alnb.labels.formats.common import ParseContext as new_ctx
    assert ParseContext is new_ctx and any(issubclass(w.category, DeprecationWarning) for w in seen)


def test_nothing_in_the_project_uses_an_old_import_path():
    import re

    root = PKG.parent
    old = "|".join(sorted(MOVED, key=len, reverse=True))
    pat = re.compile(rf"\bfrom alnb import [^\n]*\b({old})\b|\b(?:from|import) alnb\.({old})\b")
    hits = []
    for f in [*PKG.rglob("*.py"), *(root / "tests").rglob("*.py"), *(root / "benchmarks").rglob("*.py"),
              *(root / "notebooks").glob("*.ipynb")]:
        if f.parent == PKG and f.stem in MOVED or f.parent.name == "formats" and f.parent.parent == PKG:
            continue  # the aliases themselves
        if f.name == "test_imports.py":
            continue
        for ln, line in enumerate(f.read_text().splitlines(), 1):
            if pat.search(line):
                hits.append(f"{f.relative_to(root)}:{ln}: {line.strip()}")
    assert not hits, "old import paths:\n" + "\n".join(hits)


def test_layers_inside_subpackages():
    g = graph()
    assert not g["model.mc"] & {"acquisition.strategies", "acquisition.tiers", "loop.study", "acquisition.scoring"}
    assert not g["acquisition.strategies"] & {"model.mc", "acquisition.scoring", "core.workspace"}
    assert not g["acquisition.tiers"] & {"model.mc", "acquisition.strategies", "acquisition.scoring"}
    assert "ui.widgets" not in g["loop.pipeline"] and "acquisition.tiers" not in g["labels.labelio"]
    fmts = {m for m in g if m.startswith("labels.formats.")}
    assert {"labels.formats.labelstudio", "labels.formats.cvat", "labels.formats.coco", "labels.formats.yolo",
            "labels.formats.common"} <= fmts
    for m in fmts - {"labels.formats.common"}:  # each tool's module builds on the shared one, never another tool's
        assert not g[m] & (fmts - {"labels.formats.common"}) and "labels.labelio" not in g[m], (m, g[m])
    assert not g["labels.formats.common"] & (fmts | {"labels.formats", "labels.labelio"})
    # the ML backend is outer shell: only the CLI (and its own alias) imports it; it reuses the one Label Studio module
    backend = {m for m in g if m == "apps.serve" or m.startswith("apps.serve.")}  # the package and its modules
    assert {m for m, deps in g.items() if deps & backend} - backend - {"serve"} == {"apps.cli"}
    assert any("labels.formats.labelstudio" in g[m] for m in backend)
