"""One small workspace built by executing the numbered notebooks (smoke profile), shared by the notebook checks
(tests/test_notebooks.py) and the browser test (tests/test_browser.py): built once per test session."""

from __future__ import annotations

import os
import time
from pathlib import Path

# small parameters: 48 generated 128-px images (12 VAL1, 12 GT1, 24 POOL), the smoke training profile, T = 4;
# conf 0.001 for scoring so that a 1-epoch CAL1 has detections and the POOL spreads over easy/medium/hard
PARAMS = {
    "00_setup": {"generate": True, "n_images": 48, "image_size": 128, "n_val": 12, "n_gt1": 12, "seed": 0,
                 "n_samples": 4},
    "01_train_gt1": {"profile": "smoke"},
    "02_autolabel": {"T": 4, "conf": 0.001, "n_grid": 4},
    "03_select_gt2": {"profile": "smoke", "interactive": False, "n_thumbs": 4},
    "04_random_control": {"profile": "smoke"},
    "06_next_round": {"round": 3, "profile": "smoke", "T": 4, "conf": 0.001, "rule": "budget", "budget": 4,
                      "interactive": False, "n_thumbs": 4},
    # the review plan of CAL1 on a copy of the workspace as notebook 02 left it (24 unlabelled POOL images; after
    # round 2 only a few are left): half of them reviewed, the rest accepted
    "07_label_the_rest": {"T": 4, "conf": 0.001, "unit": "fraction", "cut": 0.5, "accept": True,
                          "interactive": False},
}
_BUILT: dict = {}


def build(base: Path) -> dict:
    """Execute notebooks 00 -> 04 (round 2) into ``base`` (once per process), then 06 (round 3) on a copy of that
    workspace (``workspace_round3``), so the round-2 workspace stays as notebooks 00-04 left it, and 07 (label the
    rest) on a copy taken right after notebook 02 (``workspace_review``); returns
    ``{workspace, workspace_round3, workspace_review, data, executed, seconds}``.

    The kernels run without ``MPLBACKEND`` (as in JupyterLab and ``make demo``: the inline backend), so a figure
    that a cell shows twice shows up twice here too.
    """
    if "workspace" in _BUILT:
        return _BUILT
    from alnb.ui.notebooks import run_notebook

    import shutil

    ws, data, ws3, wsr = base / "ws", base / "data", base / "ws_round3", base / "ws_review"
    executed, seconds = {}, {}
    saved = os.environ.pop("MPLBACKEND", None)
    try:
        for name, params in PARAMS.items():
            extra = {"data_dir": str(data)} if name == "00_setup" else {}
            target = ws
            if name == "06_next_round":
                shutil.copytree(ws, ws3, symlinks=True)
                target = ws3
            if name == "07_label_the_rest":
                target = wsr
            t0 = time.perf_counter()
            executed[name] = run_notebook(name, base / "executed", {"workspace": str(target), **extra, **params},
                                          timeout=600)
            seconds[name] = time.perf_counter() - t0
            if name == "02_autolabel":
                shutil.copytree(ws, wsr, symlinks=True)
    finally:
        if saved is not None:
            os.environ["MPLBACKEND"] = saved
    _BUILT.update(workspace=ws, workspace_round3=ws3, workspace_review=wsr, data=data, executed=executed, seconds=seconds)
    return _BUILT
