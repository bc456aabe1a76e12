"""``python -m livedream``: the same as the ``livedream`` command."""

import sys

from livedream.cli import main

sys.exit(main())
