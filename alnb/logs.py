"""Deprecated import path: ``alnb.logs`` is :mod:`alnb.core.logs` (this alias goes in the next release)."""

import sys
import warnings

from alnb.core import logs as _module

warnings.warn("alnb.logs moved to alnb.core.logs; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
