"""Deprecated import path: ``alnb.labelio`` is :mod:`alnb.labels.labelio` (this alias goes in the next release)."""

import sys
import warnings

from alnb.labels import labelio as _module

warnings.warn("alnb.labelio moved to alnb.labels.labelio; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
