"""Deprecated import path: ``alnb.select`` is :mod:`alnb.loop.selection` (this alias goes in the next release)."""

import sys
import warnings

from alnb.loop import selection as _module

warnings.warn("alnb.select moved to alnb.loop.selection; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
