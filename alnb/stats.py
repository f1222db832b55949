"""Deprecated import path: ``alnb.stats`` is :mod:`alnb.evaluation.stats` (this alias goes in the next release)."""

import sys
import warnings

from alnb.evaluation import stats as _module

warnings.warn("alnb.stats moved to alnb.evaluation.stats; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
