"""Deprecated import path: ``alnb.review`` is :mod:`alnb.loop.review` (this alias goes in the next release)."""

import sys
import warnings

from alnb.loop import review as _module

warnings.warn("alnb.review moved to alnb.loop.review; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
