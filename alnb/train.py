"""Deprecated import path: ``alnb.train`` is :mod:`alnb.model.train` (this alias goes in the next release)."""

import sys
import warnings

from alnb.model import train as _module

warnings.warn("alnb.train moved to alnb.model.train; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
