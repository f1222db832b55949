"""Deprecated import path: ``alnb.pretrain`` is :mod:`alnb.model.pretrain` (this alias goes in the next release)."""

import sys
import warnings

from alnb.model import pretrain as _module

warnings.warn("alnb.pretrain moved to alnb.model.pretrain; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
