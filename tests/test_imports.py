"""The module graph of ``alnb`` (every import, including those inside functions) has no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import alnb

PKG = Path(alnb.__file__).resolve().parent


def module_name(path: Path) -> str:
    """``select`` for alnb/select.py, ``formats`` for alnb/formats/__init__.py, ``formats.coco`` for
    alnb/formats/coco.py (alnb/__init__.py stays ``__init__``)."""
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
        subs = {f"{mod}.{a}" for a in names} & modules  # from alnb.formats import coco: the module formats.coco
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
    p.write_text("import alnb\nfrom alnb import select as sel, data\n\ndef f():\n    from alnb.metrics import x\n"
                 "    import alnb.train\n    from alnb import __version__\n")
    assert imports_of(p, {"select", "data", "metrics", "train", "m"}) == {"__init__", "select", "data", "metrics",
                                                                          "train"}


def test_alnb_module_graph_has_no_cycle():
    g = graph()
    assert {"mc", "acquisition", "select", "study", "scoring", "difficulty"} <= set(g)
    assert "uncertainty" not in g  # split into mc / acquisition / difficulty / scoring / display
    cycle = find_cycle(g)
    assert cycle is None, f"import cycle inside alnb: {' -> '.join(cycle)}"


def test_layers_point_one_way():
    g = graph()
    assert not g["mc"] & {"acquisition", "select", "study", "scoring", "pipeline", "plots", "widgets"}
    assert not g["acquisition"] & {"mc", "scoring", "study", "pipeline", "plots", "widgets", "workspace"}
    assert not g["select"] & {"mc", "acquisition", "scoring", "study", "pipeline", "plots", "widgets"}
    assert "widgets" not in g["pipeline"] and "select" not in g["labelio"]  # labelio reads scores via scoretable
    fmts = {m for m in g if m.startswith("formats.")}
    assert {"formats.labelstudio", "formats.cvat", "formats.coco", "formats.yolo", "formats.common"} <= fmts
    for m in fmts - {"formats.common"}:  # each tool's module builds on the shared one, never on another tool's
        assert not g[m] & (fmts - {"formats.common"}) and "labelio" not in g[m], (m, g[m])
    assert not g["formats.common"] & (fmts | {"formats", "labelio"})
    # the ML backend is outer shell: only the CLI imports it, and it reuses the one Label Studio format module
    assert {m for m, deps in g.items() if "serve" in deps} == {"cli"} and "formats.labelstudio" in g["serve"]
