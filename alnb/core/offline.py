"""Keep ultralytics offline: no weight, font, dataset or analytics downloads, no pip auto-installs.

Import this module before ``ultralytics`` anywhere in the package (``alnb.yolo()`` does it for you).
Environment variables are set before the first ultralytics import, because ultralytics reads them at import time
(``ONLINE``, ``AUTOINSTALL``).  After the import, the few helpers that would still reach the network are replaced:

* ``check_font`` (called by ``check_det_dataset`` and the plotting ``Annotator``) returns matplotlib's bundled
  DejaVu Sans instead of downloading Arial;
* ``check_amp`` (CUDA only) no longer downloads ``yolo26n.pt`` for its self-test; AMP stays on, as ultralytics itself
  does when it is offline;
* settings ``sync`` (analytics, crash reports) is switched off in memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import sys

# ultralytics replaces an unset OMP_NUM_THREADS with "1" when imported, and child processes (notebook kernels, Ray
# workers) inherit that "1": the user's own value is kept for alnb.core.cpu, and passed on to children in ALNB_USER_OMP.
from alnb.core import cpu as _cpu

if _cpu.ENV_USER_OMP in os.environ:
    _cpu.USER_OMP_NUM_THREADS = os.environ[_cpu.ENV_USER_OMP] or None
elif "ultralytics" not in sys.modules:
    _cpu.USER_OMP_NUM_THREADS = os.environ.get("OMP_NUM_THREADS")
    os.environ[_cpu.ENV_USER_OMP] = _cpu.USER_OMP_NUM_THREADS or ""

os.environ["YOLO_OFFLINE"] = "1"
os.environ["YOLO_AUTOINSTALL"] = "False"
os.environ.setdefault("YOLO_VERBOSE", "True")

_PATCHED = False


def local_font(font: str = "Arial.ttf") -> Path:
    """Return a font file that is already on disk (matplotlib's DejaVu Sans); never downloads."""
    # heavy, imported where used (not at module import): matplotlib, ultralytics
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def _amp_without_download(model) -> bool:
    """AMP on for CUDA, off elsewhere: ultralytics' own answer when it cannot download its check model."""
    try:
        return next(model.parameters()).device.type == "cuda"
    except StopIteration:  # pragma: no cover - a model without parameters
        return False


def ensure_offline():
    """Import ultralytics with network access disabled and return the module."""
    global _PATCHED
    import ultralytics

    if not _PATCHED:
        from ultralytics import utils as u
        from ultralytics.utils import checks

        u.SETTINGS["sync"] = False  # in memory only: no analytics / crash reports
        u.ONLINE = False
        checks.check_font = local_font
        import ultralytics.data.utils as data_utils
        import ultralytics.engine.trainer as trainer_mod
        import ultralytics.utils.plotting as plotting

        data_utils.check_font = local_font
        plotting.check_font = local_font
        trainer_mod.check_amp = _amp_without_download
        _PATCHED = True
    return ultralytics


def yolo(model: str | os.PathLike = "yolov8n.yaml", **kwargs):
    """Build ``ultralytics.YOLO`` offline.  ``model`` must be a yaml name/path or a ``.pt`` that exists on disk."""
    ensure_offline()
    from ultralytics import YOLO

    m = str(model)
    if m.endswith(".pt") and not Path(m).is_file():
        raise FileNotFoundError(
            f"Weights file {m!r} does not exist. alnb never downloads weights: pass a local .pt path, "
            f"or a model yaml such as 'yolov8n.yaml' to start from scratch."
        )
    return YOLO(m, **kwargs)
