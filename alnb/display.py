"""Deprecated import path: ``alnb.display`` is :mod:`alnb.ui.display` (this alias goes in the next release)."""

import sys
import warnings

from alnb.ui import display as _module

warnings.warn("alnb.display moved to alnb.ui.display; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
