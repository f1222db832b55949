"""``python -m alnb ...`` = the ``alnb`` command."""

import sys

from alnb.apps.cli import main

sys.exit(main())
