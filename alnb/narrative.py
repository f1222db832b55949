"""Deprecated import path: ``alnb.narrative`` is :mod:`alnb.ui.narrative` (this alias goes in the next release)."""

import sys
import warnings

from alnb.ui import narrative as _module

warnings.warn("alnb.narrative moved to alnb.ui.narrative; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
