"""Deprecated import path: ``alnb.labeltimes`` is :mod:`alnb.evaluation.labeltimes` (this alias goes in the next release)."""

import sys
import warnings

from alnb.evaluation import labeltimes as _module

warnings.warn("alnb.labeltimes moved to alnb.evaluation.labeltimes; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
