"""Deprecated import path: ``alnb.widgets`` is :mod:`alnb.ui.widgets` (this alias goes in the next release)."""

import sys
import warnings

from alnb.ui import widgets as _module

warnings.warn("alnb.widgets moved to alnb.ui.widgets; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
