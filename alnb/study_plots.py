"""Deprecated import path: ``alnb.study_plots`` is :mod:`alnb.figures.study_plots` (this alias goes in the next release)."""

import sys
import warnings

from alnb.figures import study_plots as _module

warnings.warn("alnb.study_plots moved to alnb.figures.study_plots; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
