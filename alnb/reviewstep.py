"""Deprecated import path: ``alnb.reviewstep`` is :mod:`alnb.loop.reviewstep` (this alias goes in the next release)."""

import sys
import warnings

from alnb.loop import reviewstep as _module

warnings.warn("alnb.reviewstep moved to alnb.loop.reviewstep; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
