"""Deprecated import path: ``alnb.mc`` is :mod:`alnb.model.mc` (this alias goes in the next release)."""

import sys
import warnings

from alnb.model import mc as _module

warnings.warn("alnb.mc moved to alnb.model.mc; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
