"""Deprecated import path: ``alnb.metrics`` is :mod:`alnb.evaluation.metrics` (this alias goes in the next release)."""

import sys
import warnings

from alnb.evaluation import metrics as _module

warnings.warn("alnb.metrics moved to alnb.evaluation.metrics; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
