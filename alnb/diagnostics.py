"""Deprecated import path: ``alnb.diagnostics`` is :mod:`alnb.evaluation.diagnostics` (this alias goes in the next release)."""

import sys
import warnings

from alnb.evaluation import diagnostics as _module

warnings.warn("alnb.diagnostics moved to alnb.evaluation.diagnostics; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
