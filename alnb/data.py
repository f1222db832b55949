"""Deprecated import path: ``alnb.data`` is :mod:`alnb.core.data` (this alias goes in the next release)."""

import sys
import warnings

from alnb.core import data as _module

warnings.warn("alnb.data moved to alnb.core.data; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
