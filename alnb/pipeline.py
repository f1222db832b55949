"""Deprecated import path: ``alnb.pipeline`` is :mod:`alnb.loop.pipeline` (this alias goes in the next release)."""

import sys
import warnings

from alnb.loop import pipeline as _module

warnings.warn("alnb.pipeline moved to alnb.loop.pipeline; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
