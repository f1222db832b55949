"""README and docs stay true to the code: every relative link resolves, every quoted ``alnb`` command names a real
subcommand and real flags, every quoted ``alnb.x.y`` name imports, every quoted ``python benchmarks/X.py`` /
``python -m alnb...`` exists; README stays a short guide (at most 200 lines, no dated results heading).

Nothing here executes a command: the CLI is checked against ``alnb.apps.cli.build_parser()``'s argparse tree.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
GUIDE = sorted((ROOT / "docs" / "guide").glob("*.md"))
RESULTS = sorted((ROOT / "docs" / "results").glob("*.md"))
MAX_README_LINES = 200

LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^([ \t]*)(```|~~~)[^\n]*\n(.*?)^[ \t]*\2[ \t]*$", re.S | re.M)
INLINE = re.compile(r"(`+)(.+?)\1", re.S)
ALNB_CMD = re.compile(r"(?:^|[\s(;&|/])alnb\s+([a-z][a-z0-9-]*)((?:\s+[^\s;&|#]+)*)")
FLAG = re.compile(r"(?<![\w-])(--[A-Za-z][\w-]*)")
DOTTED = re.compile(r"(?<![\w./-])(alnb(?:\.[A-Za-z_]\w*)+)")
PY_SCRIPT = re.compile(r"(?:^|[\s/])python3?\s+((?:\./)?benchmarks/[\w./-]+\.py)")
PY_MODULE = re.compile(r"(?:^|[\s/])python3?\s+-m\s+(alnb(?:\.\w+)*)")
DATE = re.compile(r"20\d\d-\d\d-\d\d")


# ---------------------------------------------------------------------------------------------------- extraction
def code_blocks(text: str) -> list[str]:
    return [m.group(3) for m in FENCE.finditer(text)]


def prose(text: str) -> str:
    return FENCE.sub("", text)


def inline_code(text: str) -> list[str]:
    """Inline code spans outside fenced blocks (a span may wrap onto the next line, as Markdown allows)."""
    return [" ".join(m.group(2).split()) for m in INLINE.finditer(prose(text))]


def block_lines(text: str) -> list[str]:
    """Lines of fenced code blocks, backslash continuations joined, shell comments cut."""
    out = []
    for block in code_blocks(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line)  # a comment, never a command
            if line.strip():
                out.append(line)
    return out


def quoted_code(text: str) -> list[str]:
    return inline_code(text) + block_lines(text)


def relative_links(text: str) -> list[str]:
    """Targets of [..](target) and ![..](target) that are paths in this repository (no URL, no pure anchor)."""
    out = []
    for m in LINK.finditer(prose(text)):
        target = m.group(1)
        if re.match(r"^[a-zA-Z][\w+.-]*:", target) or target.startswith("#"):
            continue  # http:, mailto:, ... or an anchor in the same page
        out.append(target)
    return out


# ---------------------------------------------------------------------------------------------------- checkers
def bad_links(text: str, base: Path) -> list[str]:
    bad = []
    for target in relative_links(text):
        path = target.split("#", 1)[0].split("?", 1)[0]
        if not path:
            continue
        if not (base / path).exists():
            bad.append(target)
    return bad


def cli_tree() -> dict:
    """{subcommand: set of option strings} from the real parser; nested subparsers (``alnb data weld``) under
    'data weld'.  The global options (``--debug``, ``-h``) count for every subcommand."""
    from alnb.apps.cli import build_parser

    parser = build_parser()
    global_opts = set(parser._option_string_actions)
    tree: dict[str, set] = {}

    def walk(p: argparse.ArgumentParser, prefix: str):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    key = f"{prefix} {name}".strip()
                    tree[key] = set(sub._option_string_actions) | global_opts
                    walk(sub, key)

    walk(parser, "")
    return tree


def bad_cli(snippets: list[str], tree: dict) -> list[str]:
    """Every ``alnb <subcommand> [--flag ...]`` in the snippets: unknown subcommands and flags."""
    bad = []
    for snip in snippets:
        for m in ALNB_CMD.finditer(snip):
            sub, rest = m.group(1), m.group(2)
            words = rest.split()
            if sub not in tree:
                bad.append(f"alnb {sub}: no such subcommand")
                continue
            key = sub
            if words and f"{sub} {words[0]}" in tree:  # alnb data weld
                key = f"{sub} {words[0]}"
            for flag in FLAG.findall(rest):
                if flag not in tree[key]:
                    bad.append(f"alnb {key} {flag}: no such option")
    return bad


def resolve(dotted: str):
    """Import the longest importable module prefix of ``dotted`` and getattr the rest; raise when it does not."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        try:
            obj = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and not name.startswith(e.name) and e.name != name:
                raise  # the module exists but needs a missing dependency: a real failure
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # deprecated aliases resolve too
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def bad_dotted(snippets: list[str]) -> list[str]:
    bad = []
    for name in sorted({n.rstrip(".") for s in snippets for n in DOTTED.findall(s)}):
        if name.endswith((".py", ".md", ".lock", ".json", ".txt", ".yaml")) or name.startswith("alnb.egg"):
            continue  # a file name (``.alnb.lock`` is excluded by the look-behind), not a Python name
        try:
            resolve(name)
        except (ImportError, AttributeError) as e:
            bad.append(f"{name}: {type(e).__name__}: {e}")
    return bad


def bad_python(snippets: list[str]) -> list[str]:
    bad = []
    for snip in snippets:
        for script in PY_SCRIPT.findall(snip):
            if not (ROOT / script).is_file():
                bad.append(f"python {script}: no such file")
        for module in PY_MODULE.findall(snip):
            try:
                spec = importlib.util.find_spec(module)
            except ModuleNotFoundError:
                spec = None
            if spec is None:
                bad.append(f"python -m {module}: no such module")
    return bad


def too_long(text: str) -> bool:
    return len(text.splitlines()) > MAX_README_LINES


def dated_headings(text: str) -> list[str]:
    return [line for line in prose(text).splitlines() if line.startswith("#") and DATE.search(line)]


# ---------------------------------------------------------------------------------------------------- the checks
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


COMMAND_DOCS = [README, *GUIDE]                 # (b), (c): README and the guide
LINK_DOCS = [README, *GUIDE, *RESULTS]          # (a), (d): every page, results included


def _id(p: Path) -> str:
    return str(p.relative_to(ROOT))


def test_docs_exist():
    assert GUIDE and RESULTS, "docs/guide/ and docs/results/ hold the details README links to"


@pytest.mark.parametrize("doc", LINK_DOCS, ids=_id)
def test_docs_relative_links_resolve(doc):
    assert bad_links(_read(doc), doc.parent) == []


@pytest.mark.parametrize("doc", COMMAND_DOCS, ids=_id)
def test_docs_alnb_commands_are_real(doc):
    assert bad_cli(quoted_code(_read(doc)), cli_tree()) == []


@pytest.mark.parametrize("doc", COMMAND_DOCS, ids=_id)
def test_docs_dotted_names_resolve(doc):
    assert bad_dotted(quoted_code(_read(doc))) == []


@pytest.mark.parametrize("doc", LINK_DOCS, ids=_id)
def test_docs_python_commands_exist(doc):
    assert bad_python(quoted_code(_read(doc))) == []


def test_readme_is_short():
    text = _read(README)
    assert not too_long(text), (f"README.md has {len(text.splitlines())} lines (at most {MAX_README_LINES}); "
                                "details go to docs/guide, results to docs/results")


def test_readme_has_no_dated_results_heading():
    assert dated_headings(_read(README)) == [], "dated results belong in docs/results/YYYY-MM-DD-<topic>.md"


def test_docs_results_files_are_dated_and_reproducible():
    for f in RESULTS:
        assert re.match(r"20\d\d-\d\d-\d\d-[\w-]+\.md$", f.name), f.name
        assert "Reproduce" in _read(f), f"{f.name}: no command that reproduces it"


def test_docs_checks_report_planted_mistakes(tmp_path):
    """Each check above can fail: planted mistakes go through the same functions and are reported."""
    (tmp_path / "there.md").write_text("x")
    text = "\n".join([
        "# Guide",
        "A [good link](there.md#anchor), a [bad link](missing/page.md) and ![a bad image](figs/none.png);",
        "[a URL](https://example.org/x) and [an anchor](#top) are not files.",
        "Run `alnb run --data d --workspace w --no-such-flag` or `alnb frobnicate --x 1`;",
        "`alnb data weld --out data/weld` is fine, `alnb data weld --nope` is not.",
        "Names: `alnb.core.workspace.Workspace` is real, `alnb.core.workspace.NoSuchThing` and `alnb.nosuchmod.f` "
        "are not.",
        "```bash",
        "alnb review --workspace runs/weld \\",
        "  --fraction 0.4 --bogus-flag   # a comment --not-checked",
        "python benchmarks/no_such_benchmark.py runs/weld",
        "python -m alnb.no_such_module",
        "python benchmarks/train_speed.py runs/weld",
        "```",
        "## Results of 2026-12-06",
    ])
    assert sorted(bad_links(text, tmp_path)) == ["figs/none.png", "missing/page.md"]
    cli = bad_cli(quoted_code(text), cli_tree())
    assert cli == ["alnb run --no-such-flag: no such option", "alnb frobnicate: no such subcommand",
                   "alnb data weld --nope: no such option", "alnb review --bogus-flag: no such option"], cli
    dotted = bad_dotted(quoted_code(text))
    assert [d.split(":")[0] for d in dotted] == ["alnb.core.workspace.NoSuchThing", "alnb.no_such_module",
                                                 "alnb.nosuchmod.f"], dotted
    assert bad_python(quoted_code(text)) == ["python benchmarks/no_such_benchmark.py: no such file",
                                             "python -m alnb.no_such_module: no such module"]
    assert dated_headings(text) == ["## Results of 2026-12-06"]
    assert dated_headings("```\n# 2026-12-06 a shell comment\n```\n") == []
    assert too_long("line\n" * (MAX_README_LINES + 1)) and not too_long("line\n" * MAX_README_LINES)
