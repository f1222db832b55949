"""Scaling up: several GPUs for training reach ultralytics' DDP as a device list; the scale benchmark runs end to end
on tiny pools and reports what it promises (times, memory, disk, growth exponents)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import alnb  # noqa: F401
from alnb.apps import cli

ROOT = Path(__file__).resolve().parent.parent


class _Stop(Exception):
    pass


def _capture_trainer(monkeypatch):
    """Replace the ultralytics trainer by one that records its arguments and stops (no GPUs here)."""
    from alnb.model import train

    seen = {}

    def fake(p=0.1, val_every=1, channels_last=False):
        class Trainer:
            def __init__(self, overrides):
                seen.update(overrides)
                raise _Stop

        return Trainer

    monkeypatch.setattr(train, "dropout_trainer", fake)
    return seen


@pytest.mark.parametrize("device", [[0, 1], "0,1", (0, 1)])
def test_device_list_reaches_ultralytics_ddp(tiny_workspace, monkeypatch, device):
    from ultralytics.utils.torch_utils import parse_device

    from alnb.loop import pipeline

    seen = _capture_trainer(monkeypatch)
    with pytest.raises(_Stop):  # the pipeline's path: overrides of alnb.apps.headless.run / train_and_evaluate
        pipeline.train_and_evaluate(tiny_workspace, "CAL1", ["GT1"], "smoke", device=device)
    assert parse_device(seen["device"]) == "0,1"  # what ultralytics turns into world_size 2 (DDP)
    seen.clear()
    from alnb.model.train import train_cal

    with pytest.raises(_Stop):
        train_cal(tiny_workspace, "CAL1", "GT1", "smoke", device=device, verbose=False)
    assert parse_device(seen["device"]) == "0,1"


@pytest.mark.parametrize("flags, key, value", [(["--device", "0,1"], "device", "0,1"),
                                               (["--round-recipe", "fresh"], "round_recipe", "fresh")])
def test_alnb_run_passes_its_training_options(monkeypatch, tmp_path, flags, key, value):
    from alnb.apps import headless

    seen = {}

    def fake_run(data_dir, workspace, **kw):
        seen.update(kw)
        raise _Stop

    monkeypatch.setattr(headless, "run", fake_run)
    with pytest.raises(_Stop):
        cli._dispatch(cli.build_parser().parse_args(["run", "--data", str(tmp_path / "d"), "--workspace",
                                                     str(tmp_path / "w"), *flags]), [])
    assert seen[key] == value


def test_alnb_run_refuses_an_unknown_round_recipe():
    with pytest.raises(SystemExit):  # argparse names the choices (from alnb.model.recipes.RECIPES)
        cli.build_parser().parse_args(["run", "--data", "d", "--workspace", "w", "--round-recipe", "warm"])


@pytest.mark.slow
def test_scale_benchmark_smoke(tmp_path):
    """benchmarks/scale.py on two tiny pools (smoke-profile model at 64 px): every step, number and file."""
    out = tmp_path / "scale"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--sizes", "20", "40", "--labels", "10",
           "--T", "2", "--profile", "smoke", "--epochs", "1", "--imgsz", "64", "--image-size", "64", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((out / "scale_results.json").read_text())
    steps = ["setup", "scoring", "tiering", "selection", "import", "report"]
    assert [row["step"] for row in res["rows"]] == steps * 2
    for row in res["rows"]:
        assert row["seconds"] > 0 and 50 < row["peak_rss_mib"] < 4096 and row["disk_mib"] > 0
    assert res["pool"] == {"20": 20, "40": 40}
    assert set(res["exponents"]) == set(steps) and all(len(v) == 1 for v in res["exponents"].values())
    imp = [row for row in res["rows"] if row["step"] == "import"]
    assert [row["counts"]["imported"] for row in imp] == [10, 10]
    assert res["dominating"] in steps and "| scoring |" in res["markdown"]
    assert "growth exponents" in r.stdout and "dominating step at a POOL of 40" in r.stdout
