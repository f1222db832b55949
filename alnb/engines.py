"""Deprecated import path: ``alnb.engines`` is :mod:`alnb.acquisition.engines` (this alias goes in the next release)."""

import sys
import warnings

from alnb.acquisition import engines as _module

warnings.warn("alnb.engines moved to alnb.acquisition.engines; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
