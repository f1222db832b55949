"""Deprecated import path: ``alnb.scoring`` is :mod:`alnb.acquisition.scoring` (this alias goes in the next release)."""

import sys
import warnings

from alnb.acquisition import scoring as _module

warnings.warn("alnb.scoring moved to alnb.acquisition.scoring; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
