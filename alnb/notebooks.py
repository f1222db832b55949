"""Deprecated import path: ``alnb.notebooks`` is :mod:`alnb.ui.notebooks` (this alias goes in the next release)."""

import sys
import warnings

from alnb.ui import notebooks as _module

warnings.warn("alnb.notebooks moved to alnb.ui.notebooks; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
