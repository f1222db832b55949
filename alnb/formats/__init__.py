"""Deprecated import path: ``alnb.formats`` is :mod:`alnb.labels.formats` (this alias goes in the next release)."""

import importlib
import sys
import warnings

from alnb.labels import formats as _module

warnings.warn("alnb.formats moved to alnb.labels.formats; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
for _sub in ("common", "coco", "cvat", "labelstudio", "yolo"):
    sys.modules[f"{__name__}.{_sub}"] = importlib.import_module(f"alnb.labels.formats.{_sub}")
sys.modules[__name__] = _module
