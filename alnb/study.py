"""Deprecated import path: ``alnb.study`` is :mod:`alnb.loop.study` (this alias goes in the next release)."""

import sys
import warnings

from alnb.loop import study as _module

warnings.warn("alnb.study moved to alnb.loop.study; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
