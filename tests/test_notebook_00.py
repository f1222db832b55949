import json

import pytest

from alnb.core.workspace import Workspace
from notebook_ws import build


@pytest.mark.slow
def test_notebook_00_headless(tmp_path_factory):
    """Notebook 00 as executed for the shared notebook workspace (tests/notebook_ws.py: 48 images, 12/12/24)."""
    built = build(tmp_path_factory.mktemp("notebooks"))
    ws_dir, data_dir, out = built["workspace"], built["data"], built["executed"]["00_setup"]
    assert out.is_file()
    ws = Workspace.open(ws_dir)
    setup = json.loads((ws_dir / "metrics" / "setup.json").read_text())
    assert setup["mode"] == "simulation" and setup["sizes"]["GT1"] == 12 and setup["sizes"]["VAL1"] == 12
    assert setup["sizes"]["POOL"] == 24 and ws.tag_counts()["VAL1"] == 12  # later notebooks never touch VAL1
    assert sum(setup["class_counts"]["VAL1"].values()) > 0
    for name in ("class_distribution", "sample_images"):
        for ext in ("png", "pdf", "svg"):
            assert (ws_dir / "figures" / f"{name}.{ext}").stat().st_size > 1000
    assert len(list((data_dir / "images").glob("*.png"))) == 48
    executed = json.loads(out.read_text())
    assert any(c.get("outputs") for c in executed["cells"] if c["cell_type"] == "code")
