"""``python -m livedream``: the same as the ``livedream`` command."""

import sys

try:
    from livedream.cli import main
except KeyboardInterrupt:  # Ctrl-C while the command is still starting: nothing to finalize
    sys.exit(130)

sys.exit(main())
