"""``python -m alnb ...`` = the ``alnb`` command."""

import sys

from alnb.cli import main

sys.exit(main())
