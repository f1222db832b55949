"""Deprecated import path: ``alnb.workspace`` is :mod:`alnb.core.workspace` (this alias goes in the next release)."""

import sys
import warnings

from alnb.core import workspace as _module

warnings.warn("alnb.workspace moved to alnb.core.workspace; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
