"""Deprecated import path: ``alnb.weld`` is :mod:`alnb.datasets.weld` (this alias goes in the next release)."""

import sys
import warnings

from alnb.datasets import weld as _module

warnings.warn("alnb.weld moved to alnb.datasets.weld; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
