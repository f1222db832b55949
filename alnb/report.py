"""Deprecated import path: ``alnb.report`` is :mod:`alnb.ui.report` (this alias goes in the next release)."""

import sys
import warnings

from alnb.ui import report as _module

warnings.warn("alnb.report moved to alnb.ui.report; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
