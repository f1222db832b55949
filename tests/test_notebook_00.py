import json

import pytest

from alnb.notebooks import run_notebook
from alnb.workspace import Workspace


@pytest.mark.slow
def test_notebook_00_headless(tmp_path):
    ws_dir, data_dir = tmp_path / "ws", tmp_path / "data"
    out = run_notebook("00_setup", tmp_path / "executed", {
        "workspace": str(ws_dir), "data_dir": str(data_dir), "generate": True, "n_images": 40, "image_size": 64,
        "n_val": 10, "n_gt1": 10, "seed": 0, "n_samples": 4})
    assert out.is_file()
    ws = Workspace.open(ws_dir)
    assert ws.tag_counts()["VAL1"] == 10 and ws.tag_counts()["POOL"] == 20
    setup = json.loads((ws_dir / "metrics" / "setup.json").read_text())
    assert setup["mode"] == "simulation" and setup["sizes"]["GT1"] == 10
    assert sum(setup["class_counts"]["VAL1"].values()) > 0
    for name in ("class_distribution", "sample_images"):
        for ext in ("png", "pdf", "svg"):
            assert (ws_dir / "figures" / f"{name}.{ext}").stat().st_size > 1000
    assert len(list((data_dir / "images").glob("*.png"))) == 40
    executed = json.loads(out.read_text())
    assert any(c.get("outputs") for c in executed["cells"] if c["cell_type"] == "code")
