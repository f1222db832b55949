"""Deprecated import path: ``alnb.difficulty`` is :mod:`alnb.acquisition.difficulty` (this alias goes in the next release)."""

import sys
import warnings

from alnb.acquisition import difficulty as _module

warnings.warn("alnb.difficulty moved to alnb.acquisition.difficulty; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
