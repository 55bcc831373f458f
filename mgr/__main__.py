"""``python -m mgr``: the same as the ``mgr`` console script."""

import sys

from mgr.cli import main

sys.exit(main())
