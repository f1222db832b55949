"""Deprecated import path: ``alnb.cli`` is :mod:`alnb.apps.cli` (this alias goes in the next release)."""

import sys
import warnings

from alnb.apps import cli as _module

warnings.warn("alnb.cli moved to alnb.apps.cli; import it from there (the old path goes in the next release)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
