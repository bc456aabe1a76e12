"""``python -m livedream.doctor``."""

import sys

from livedream.doctor import main

sys.exit(main())
