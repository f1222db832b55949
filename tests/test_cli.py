"""The ``alnb`` command line: parser, ``python -m alnb``, and end-to-end smoke runs (CLI and notebooks 03/04)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from alnb.apps import cli
from alnb.core.workspace import Workspace, has_tag


def test_parser_and_counts():
    a = cli.build_parser().parse_args(["run", "--data", "d", "--workspace", "w", "--profile", "smoke",
                                       "--n-val", "0.25", "--n-gt1", "12", "--T", "4"])
    assert (a.profile, a.n_val, a.n_gt1, a.T) == ("smoke", 0.25, 12, 4)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["run", "--data", "d", "--workspace", "w", "--profile", "huge"])
    p = cli.notebook_parameters("00_setup", cli.build_parser().parse_args(["notebooks", "--workspace", "w"]))
    assert p["generate"] is True and p["n_val"] == 178 and p["workspace"].endswith("w")


def test_python_m_alnb_help():
    out = subprocess.run([sys.executable, "-m", "alnb", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "run" in out.stdout and "notebooks" in out.stdout


def test_data_weld(tmp_path, capsys):
    assert cli.main(["data", "weld", "--out", str(tmp_path / "d"), "--n-images", "3", "--size", "32"]) == 0
    assert len(list((tmp_path / "d" / "images").glob("*.png"))) == 3
    assert "3 images, 32x32" in capsys.readouterr().out


def check_study(ws: Workspace):
    """What every finished run must satisfy, whatever the numbers."""
    m = ws.manifest()
    gt2, ctl = ws.stems("GT2", manifest=m), ws.stems("CONTROL", manifest=m)
    assert gt2 and len(ctl) == len(gt2)
    held = set(ws.stems("VAL1", "GT1", manifest=m))
    assert not (set(gt2) | set(ctl)) & held
    src = m.set_index("stem")["label_source"]
    assert (src[gt2 + ctl] == "oracle").all()  # simulated annotator revealed exactly these
    others = [s for s in ws.stems("POOL", manifest=m) if s not in set(gt2) | set(ctl)]
    assert not src[others].isin(["oracle", "human"]).any()
    sel = ws.load_json("selection")
    th = ws.load_json("thresholds")
    assert (sel["t_medium"], sel["t_hard"]) == (th["t_medium"], th["t_hard"])  # headless: the scoring defaults
    for name in ("CAL1", "CAL2", "Control"):
        ev = ws.load_json(f"eval_{name}")
        # operating point: chosen per model on VAL1 (alnb.evaluation.metrics) unless --conf fixes it
        assert ev["tag"] == "VAL1" and 0.0 < ev["conf"] < 1.0 and len(ev["per_class"]) == len(ws.names)
    comp = ws.load_json("comparison")
    assert comp["verdict"]["outcome"]  # its value for a seeded run: tests/test_study.py (notebook key numbers)
    text = (ws.root / "report.md").read_text()
    assert "## Verdict" in text and "(figures/compare_per_class.png)" in text
    for name in ("score_histogram", "compare_per_class", "compare_map", "compare_efficiency", "selection_overlap",
                 "selection_class_distribution"):
        for ext in ("png", "pdf", "svg"):
            assert (ws.figures_dir / f"{name}.{ext}").stat().st_size > 0


@pytest.mark.slow
def test_cli_run_smoke_end_to_end(tiny_dataset, tmp_path, capsys, no_network):
    ws_dir = tmp_path / "ws"
    rc = cli.main(["run", "--data", str(tiny_dataset), "--workspace", str(ws_dir), "--profile", "smoke", "--T", "4",
                   "--n-val", "10", "--n-gt1", "10"])
    assert rc == 0
    cap = capsys.readouterr()
    out = cap.out
    assert f"report:  {ws_dir.resolve() / 'report.md'}" in out
    # the terminal shows alnb's step lines; ultralytics' training output is in the step's log file
    assert "Epoch" not in out + cap.err and "[alnb] CAL1 (GT1) done in" in out and "log: logs/CAL1_GT1.log" in out
    assert "Epoch" in (ws_dir / "logs" / "CAL1_GT1.log").read_text()
    ws = Workspace.open(ws_dir)
    check_study(ws)
    times = json.loads((ws.root / "metrics" / "run_times.json").read_text())
    assert times["profile"] == "smoke" and "round 2: CAL2 (GT1 + GT2)" in times["seconds"]
    # re-running reuses the cached training runs and gives the same selection
    before = ws.stems("GT2"), ws.stems("CONTROL")
    assert cli.main(["run", "--data", str(tiny_dataset), "--workspace", str(ws_dir), "--profile", "smoke",
                     "--T", "4", "--n-val", "10", "--n-gt1", "10"]) == 0
    assert (ws.stems("GT2"), ws.stems("CONTROL")) == before


@pytest.mark.slow
def test_notebooks_03_04_smoke(tiny_dataset, tmp_path, capsys):
    """Headless notebooks 03 and 04 (smoke profile) on a workspace prepared up to the scoring step."""
    import nbformat

    from alnb.loop import pipeline
    from alnb.acquisition.scoring import score_pool

    ws_dir = tmp_path / "ws"
    ws = pipeline.setup(ws_dir, tiny_dataset, n_val=10, n_gt1=10, seed=0)
    pipeline.train_and_evaluate(ws, "CAL1", ["GT1"], "smoke")
    score_pool(ws, "CAL1", T=4, progress=False)
    assert cli.main(["notebooks", "--workspace", str(ws_dir), "--profile", "smoke",
                     "--only", "03_select_gt2", "04_random_control"]) == 0
    for name in ("03_select_gt2", "04_random_control"):
        nb = nbformat.read(ws_dir / "notebooks" / f"{name}.ipynb", as_version=4)
        assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
    check_study(Workspace.open(ws_dir))
    assert "report:" in capsys.readouterr().out


def test_parser_reliability_flags():
    p = cli.build_parser()
    a = p.parse_args(["run", "--data", "d", "--workspace", "w", "--overwrite"])
    assert a.overwrite is True
    a = p.parse_args(["export-queue", "--workspace", "w", "--format", "labelstudio", "--url-prefix",
                      "http://localhost:8081/", "--document-root", "/data"])
    assert (a.url_prefix, a.document_root) == ("http://localhost:8081/", "/data")
    assert p.parse_args(["import-labels", "x.json", "--workspace", "w", "--format", "coco"]).tag == "selections"  # every round's selections
    assert p.parse_args(["status", "--workspace", "w", "--json"]).json is True
    for bad in ("0", "-1", "2.5", "x"):
        with pytest.raises(SystemExit):
            p.parse_args(["run", "--data", "d", "--workspace", "w", "--n-gt1", bad])
    assert cli._count("0.25") == 0.25 and cli._count("12") == 12


def test_exit_codes_are_distinct_and_documented():
    codes = (cli.EXIT_OK, cli.EXIT_BUG, cli.EXIT_USER, cli.EXIT_WAITING, cli.EXIT_BUSY, cli.EXIT_INTERRUPTED)
    assert len(set(codes)) == len(codes)
    for code in codes:
        assert f"{code} " in cli.__doc__


def test_python_m_alnb_user_error_has_no_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "alnb", "status", "--workspace", str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "is not an alnb workspace" in out.stderr
    out = subprocess.run([sys.executable, "-m", "alnb", "status", "--workspace", str(tmp_path), "--debug"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" in out.stderr
