"""Deprecated import path: ``alnb._offline`` is :mod:`alnb.core.offline` (this alias goes in the next release)."""

import sys

from alnb.core import offline as _module

sys.modules[__name__] = _module
