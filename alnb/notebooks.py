"""Run the numbered notebooks headless (papermill), as `make demo`, the CLI and the smoke tests do."""

from __future__ import annotations

from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
ORDER = ["00_setup", "01_train_gt1", "02_autolabel", "03_select_gt2", "04_random_control"]


def available(names=ORDER) -> list:
    """Notebook names (in order) that exist in ``notebooks/``."""
    return [n for n in names if (NOTEBOOK_DIR / f"{n}.ipynb").is_file()]


def run_notebook(name: str, out_dir, parameters: dict | None = None, progress: bool = False, timeout: int = 3600,
                 trust: bool = True):
    """Execute ``notebooks/<name>.ipynb`` with ``parameters`` injected; save the executed copy to ``out_dir``.

    The kernel runs with the notebooks folder as its working directory (as in JupyterLab), so relative paths in the
    parameters cell such as ``"../runs/weld"`` mean the same thing in both.  Returns the executed copy's path.
    Raises ``papermill.PapermillExecutionError`` naming the failing cell.

    ``trust``: sign the executed copy with this user's Jupyter notary (:func:`trust_notebook`), as JupyterLab does
    for a notebook the user ran and saved, so its interactive tables (itables) work when it is opened here; on any
    other machine (or unsigned) it shows their static previews.
    """
    import papermill as pm

    src = NOTEBOOK_DIR / f"{name}.ipynb"
    if not src.is_file():
        raise FileNotFoundError(f"{src} not found")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dst = out / f"{name}.ipynb"
    pm.execute_notebook(str(src), str(dst), parameters=parameters or {}, cwd=str(NOTEBOOK_DIR),
                        kernel_name="python3", progress_bar=progress, request_save_on_cell_execute=False,
                        execution_timeout=timeout)
    if trust:
        trust_notebook(dst)
    return dst


def trust_notebook(path):
    """Mark ``path`` trusted for this user's Jupyter (``jupyter trust``: its outputs' scripts may run when opened)."""
    import nbformat
    from nbformat.sign import NotebookNotary

    NotebookNotary().sign(nbformat.read(str(path), as_version=4))


KEY_NUMBERS_MARK = "[alnb key numbers]"  # prefix of the line the last cell of each notebook prints


def record_key_numbers(numbers: dict) -> dict:
    """Print the notebook's key numbers as one JSON line (the last cell of every notebook calls this).

    The executed notebook keeps the line in its output, so tests (:func:`read_key_numbers`) compare the numbers of
    a seeded run with expected values and tolerances (Microsoft Recommenders' notebook tests do the same).
    """
    import json
    import math

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if hasattr(v, "item"):  # numpy scalars
            return clean(v.item())
        return v

    out = {str(k): clean(v) for k, v in numbers.items()}
    print(KEY_NUMBERS_MARK, json.dumps(out, sort_keys=True))
    return out


def read_key_numbers(executed) -> dict:
    """The key numbers recorded in an executed notebook (the last :data:`KEY_NUMBERS_MARK` line of its outputs)."""
    import json

    nb = json.loads(Path(executed).read_text())
    found = None
    for cell in nb.get("cells", []):
        for o in cell.get("outputs", []):
            text = o.get("text") if o.get("output_type") == "stream" else None
            text = "".join(text) if isinstance(text, list) else (text or "")
            for line in text.splitlines():
                if line.startswith(KEY_NUMBERS_MARK):
                    found = json.loads(line[len(KEY_NUMBERS_MARK):])
    if found is None:
        raise ValueError(f"{executed}: no key numbers recorded (the last cell calls alnb.notebooks.record_key_numbers)")
    return found
