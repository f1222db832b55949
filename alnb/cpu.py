"""Deprecated import path: ``alnb.cpu`` is :mod:`alnb.core.cpu` (this alias goes in the next release)."""

import sys
import warnings

from alnb.core import cpu as _module

warnings.warn("alnb.cpu moved to alnb.core.cpu; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
