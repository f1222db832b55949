"""The lock files (requirements/main.txt, requirements/labelstudio.txt) match their inputs; a stale lock is caught."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("alnb_lock", REPO / "requirements" / "lock.py")
lock = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lock)


def test_locks_match_their_inputs():
    assert lock.problems(lock.MAIN_LOCK, lock.main_requirements(), lock.PYPROJECT) == []
    assert lock.problems(lock.LS_LOCK, lock.ls_requirements(), lock.LS_IN) == []
    _, pins = lock.read_lock(lock.MAIN_LOCK)
    for name in ("torch", "torchvision", "ultralytics", "numpy", "pytest", "ray", "pip"):
        assert name in pins, name
    assert pins["ultralytics"] == "8.4.190"
    _, ls = lock.read_lock(lock.LS_LOCK)
    assert ls["label-studio"] == "1.23.2" and int(ls["sentry-sdk"].split(".")[0]) < 3


def test_a_dependency_added_without_refreshing_the_lock_is_caught(tmp_path):
    text = (REPO / "pyproject.toml").read_text()
    planted = tmp_path / "pyproject.toml"
    planted.write_text(text.replace('dependencies = [\n', 'dependencies = [\n    "rich>=13",\n', 1))
    errs = lock.problems(lock.MAIN_LOCK, lock.main_requirements(planted), planted)
    assert any("written for other requirements" in e for e in errs), errs
    assert any("rich (required by pyproject.toml) is not locked" in e for e in errs), errs


def test_a_range_the_locked_version_leaves_is_caught(tmp_path):
    text = (REPO / "pyproject.toml").read_text()
    planted = tmp_path / "pyproject.toml"
    planted.write_text(re.sub(r'"numpy>=[^"]*"', '"numpy>=99"', text))
    errs = lock.problems(lock.MAIN_LOCK, lock.main_requirements(planted), planted)
    assert any("does not satisfy 'numpy>=99'" in e for e in errs), errs


def test_a_lock_edited_by_hand_is_refused(tmp_path):
    bad = tmp_path / "main.txt"
    bad.write_text(lock.MAIN_LOCK.read_text() + "requests>=2\n")
    try:
        lock.read_lock(bad)
    except ValueError as e:
        assert "is not 'name==version'" in str(e)
    else:
        raise AssertionError("a range in a lock file was accepted")


def test_every_install_goes_through_a_lock():
    make = (REPO / "Makefile").read_text()
    installs = [line.strip() for line in make.splitlines() if "pip install" in line and not line.startswith("#")]
    assert installs and all(" -c $(LOCK)" in i or " -c $(LS_LOCK)" in i or "-r $(LS_LOCK)" in i for i in installs), \
        installs
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_lines = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-c requirements/main.txt" in pip_lines
    header = lock.MAIN_LOCK.read_text().splitlines()[1]
    py = re.search(r"Python (\d+\.\d+)", header).group(1)
    assert f"python={py}" in env["dependencies"], (py, env["dependencies"])
