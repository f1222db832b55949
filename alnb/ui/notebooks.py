"""Run the numbered notebooks headless (papermill), as `make demo`, the CLI and the smoke tests do."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
ORDER = ["00_setup", "01_train_gt1", "02_autolabel", "03_select_gt2", "04_random_control"]
# A kernel that never answers at start-up is started again (nothing of the notebook ran yet): over TCP, jupyter_client
# picks free ports and the kernel binds them a moment later, so another process taking one in between ("Address
# already in use" in the kernel's log, "Kernel didn't respond in 60 seconds" here) fails a start that a retry passes.
KERNEL_START_TRIES = 3
_KERNEL_START_FAILURES = ("Kernel didn't respond", "Kernel died before replying")


def kernel_start_failed(exc: BaseException) -> bool:
    """True for the errors jupyter_client raises when a kernel did not come up (before any cell ran)."""
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in _KERNEL_START_FAILURES)


def available(names=ORDER) -> list:
    """Notebook names (in order) that exist in ``notebooks/``."""
    return [n for n in names if (NOTEBOOK_DIR / f"{n}.ipynb").is_file()]


def run_notebook(name: str, out_dir, parameters: dict | None = None, progress: bool = False, timeout: int = 3600,
                 trust: bool = True):
    """Execute ``notebooks/<name>.ipynb`` with ``parameters`` injected; save the executed copy to ``out_dir``.

    The kernel runs with the notebooks folder as its working directory (as in JupyterLab), so relative paths in the
    parameters cell such as ``"../runs/weld"`` mean the same thing in both.  Returns the executed copy's path.
    Raises ``papermill.PapermillExecutionError`` naming the failing cell.  A kernel that does not start is started
    again, up to :data:`KERNEL_START_TRIES` times (:func:`kernel_start_failed`).

    ``trust``: sign the executed copy with this user's Jupyter notary (:func:`trust_notebook`), as JupyterLab does
    for a notebook the user ran and saved, so its interactive tables (itables) work when it is opened here; on any
    other machine (or unsigned) it shows their static previews.
    """
    # heavy, imported where used (not at module import): papermill, nbformat, IPython
    import papermill as pm

    src = NOTEBOOK_DIR / f"{name}.ipynb"
    if not src.is_file():
        raise FileNotFoundError(f"{src} not found")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dst = out / f"{name}.ipynb"
    for attempt in range(1, KERNEL_START_TRIES + 1):
        try:
            pm.execute_notebook(str(src), str(dst), parameters=parameters or {}, cwd=str(NOTEBOOK_DIR),
                                kernel_name="python3", progress_bar=progress, request_save_on_cell_execute=False,
                                execution_timeout=timeout)
            break
        except RuntimeError as e:
            if not kernel_start_failed(e) or attempt == KERNEL_START_TRIES:
                raise
            print(f"[alnb] {name}: the Jupyter kernel did not start ({e}); starting a new one "
                  f"(try {attempt + 1} of {KERNEL_START_TRIES})", flush=True)
    if trust:
        trust_notebook(dst)
    return dst


def trust_notebook(path):
    """Mark ``path`` trusted for this user's Jupyter (``jupyter trust``: its outputs' scripts may run when opened)."""
    import nbformat
    from nbformat.sign import NotebookNotary

    NotebookNotary().sign(nbformat.read(str(path), as_version=4))


KEY_NUMBERS_MARK = "[alnb key numbers]"  # prefix of the line older notebooks printed (still read back)
KEY_NUMBERS_META = "alnb_key_numbers"  # output metadata key holding the exact key numbers (machine-readable)


def _clean_number(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):  # numpy scalars
        return _clean_number(v.item())
    return v


def _rounded(v) -> str:
    """A key number for people: integers as they are, floats to 3 significant digits, None as n/a."""
    if v is None:
        return "n/a"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int) or (float(v).is_integer() and abs(v) >= 1):
        return f"{int(v):,}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.1f}" if abs(v) >= 100 else f"{v:.3g}"


def key_numbers_markdown(numbers: dict) -> str:
    """The key numbers as a small markdown table, rounded (the exact values stay in the output's metadata)."""
    rows = "\n".join(f"| {k} | {_rounded(v)} |" for k, v in numbers.items())
    return "| key number | value |\n|---|---:|\n" + rows


def record_key_numbers(numbers: dict, show=None) -> dict:
    """Show the notebook's key numbers as a small rounded table and record their exact values in that output's
    metadata (``metadata["alnb_key_numbers"]``; the last cell of every notebook calls this).  ``show``: the keys
    the table shows (default: all; every number is recorded either way).

    The executed notebook keeps the output, so tests (:func:`read_key_numbers`) compare the numbers of a seeded run
    with expected values and tolerances (Microsoft Recommenders' notebook tests do the same).  Outside IPython the
    table is printed.
    """
    out = {str(k): _clean_number(v) for k, v in numbers.items()}
    md = key_numbers_markdown(out if show is None else {k: out[k] for k in show if k in out})
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython is a dependency
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display({"text/markdown": md, "text/plain": md}, raw=True, metadata={KEY_NUMBERS_META: out})
    else:
        print(md)
    return out


def _outputs(nb: dict):
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            yield from cell.get("outputs", [])


def read_key_numbers(executed) -> dict:
    """The key numbers recorded in an executed notebook: the last output carrying :data:`KEY_NUMBERS_META`
    metadata (:func:`record_key_numbers`), or, in a notebook executed before that, its last
    :data:`KEY_NUMBERS_MARK` line."""
    nb = json.loads(Path(executed).read_text())
    found = None
    for o in _outputs(nb):
        meta = o.get("metadata") or {}
        if KEY_NUMBERS_META in meta:
            found = meta[KEY_NUMBERS_META]
            continue
        text = o.get("text") if o.get("output_type") == "stream" else None
        text = "".join(text) if isinstance(text, list) else (text or "")
        for line in text.splitlines():
            if line.startswith(KEY_NUMBERS_MARK):
                found = json.loads(line[len(KEY_NUMBERS_MARK):])
    if found is None:
        raise ValueError(f"{executed}: no key numbers recorded (the last cell calls alnb.ui.notebooks.record_key_numbers)")
    return found


# --------------------------------------------------------------------------------------- numbers in the narrative
PROSE_NUMBER = r"(?<![\w.])(\d+(?:\.\d+)?\s?%|\d+\.\d+)"
"""A figure quoted in prose: a decimal (``0.84``, ``12.3``) or a percentage (``60 %``, ``12.3%``).  Whole numbers are
left alone (``3 most uncertain``, ``T=20``, ``1 green bar`` are definitions, not results)."""


def prose_numbers(nb: dict) -> list:
    """``[(cell index, number)]`` quoted in the notebook's markdown cells (:data:`PROSE_NUMBER`), outside inline
    code and code blocks (settings and formulas are written as code)."""
    out = []
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "markdown":
            continue
        src = "".join(cell.get("source", ""))
        src = re.sub(r"```.*?```", " ", src, flags=re.S)
        src = re.sub(r"`[^`]*`", " ", src)
        src = re.sub(r"\]\([^)]*\)", "]", src)  # link targets
        out += [(i, m.group(1)) for m in re.finditer(PROSE_NUMBER, src)]
    return out


def output_text(nb: dict) -> str:
    """Everything the notebook's outputs show as text: streams, text/plain, text/markdown, text/html."""
    parts = []
    for o in _outputs(nb):
        t = o.get("text")
        if t is not None:
            parts.append("".join(t) if isinstance(t, list) else t)
        for mime in ("text/plain", "text/markdown", "text/html"):
            v = (o.get("data") or {}).get(mime)
            if v is not None:
                parts.append("".join(v) if isinstance(v, list) else v)
    return "\n".join(parts)


def unbacked_prose_numbers(executed) -> list:
    """Figures the markdown of an executed notebook quotes that none of its outputs shows: ``[(cell, number)]``.
    A hand-typed result goes stale with the next recipe change; narrative numbers must be rendered from the run
    (a function in ``alnb`` building the text) or left out."""
    nb = json.loads(Path(executed).read_text()) if not isinstance(executed, dict) else executed
    shown = output_text(nb)
    missing = []
    for i, num in prose_numbers(nb):
        value = re.sub(r"\s?%$", "", num)
        pct = num.endswith("%")
        pattern = r"(?<![\d.])" + re.escape(value) + (r"\s?%" if pct else r"(?![\d])")
        if not re.search(pattern, shown):
            missing.append((i, num))
    return missing
