"""The module graph of ``alnb`` (every import, including those inside functions) has no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import alnb

PKG = Path(alnb.__file__).resolve().parent


def module_names() -> set:
    return {p.stem for p in PKG.glob("*.py")}


def imports_of(path: Path, modules: set) -> set:
    """alnb modules imported anywhere in ``path`` (module level, functions, methods, conditionals)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "alnb":
                    out.add(parts[1] if len(parts) > 1 else "__init__")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] != "alnb":
                continue
            if len(parts) > 1:
                out.add(parts[1])
            else:  # from alnb import x: x is a module, or a name of alnb/__init__
                out |= {a.name if a.name in modules else "__init__" for a in node.names}
    return out - {path.stem}


def graph() -> dict:
    mods = module_names()
    return {m: imports_of(PKG / f"{m}.py", mods) & mods for m in sorted(mods)}


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
