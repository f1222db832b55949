"""Deprecated import path: ``alnb.scoretable`` is :mod:`alnb.core.scoretable` (this alias goes in the next release)."""

import sys
import warnings

from alnb.core import scoretable as _module

warnings.warn("alnb.scoretable moved to alnb.core.scoretable; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
