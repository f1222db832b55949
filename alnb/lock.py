"""Deprecated import path: ``alnb.lock`` is :mod:`alnb.core.lock` (this alias goes in the next release)."""

import sys
import warnings

from alnb.core import lock as _module

warnings.warn("alnb.lock moved to alnb.core.lock; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
