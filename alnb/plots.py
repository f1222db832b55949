"""Deprecated import path: ``alnb.plots`` is :mod:`alnb.figures.plots` (this alias goes in the next release)."""

import sys
import warnings

from alnb.figures import plots as _module

warnings.warn("alnb.plots moved to alnb.figures.plots; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
