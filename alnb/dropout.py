"""``alnb.dropout`` is :mod:`alnb.model.dropout`: kept for good, because checkpoints trained before the move pickle
their head's classes under this name (the shipped ``weld-defect-tiny.pt`` among them)."""

import sys

from alnb.model import dropout as _module

sys.modules[__name__] = _module
