"""Deprecated import path: ``alnb.serve`` is :mod:`alnb.apps.serve` (this alias goes in the next release)."""

import sys
import warnings

from alnb.apps import serve as _module

warnings.warn("alnb.serve moved to alnb.apps.serve; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
